//! Sends that arrive together commit together (`store::group_commit`), and stay apart in
//! every other way: each gets its own answer, its own project, and its own failure.

use futures_util::future::join_all;
use mailgate::store::{
    group_commit::GroupCommit,
    messages::{AcceptedMessage, Submitter},
    projects,
};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{api::Accepted, app::TestApp};

fn message(project_id: Uuid, to: &str, subject: &str) -> AcceptedMessage {
    let id = Uuid::now_v7();
    AcceptedMessage {
        id,
        by: Submitter {
            project_id,
            api_key_id: None,
            sandbox: true,
        },
        from: "app@example.com".into(),
        subject: subject.into(),
        message_id: format!("<{}@example.com>", id.simple()),
        mime: format!("Subject: {subject}\r\n\r\nhello\r\n").into_bytes(),
        tags: vec![],
        metadata: json!({}),
        relay: None,
        send_at: None,
        recipients: vec![(to.to_string(), "to")],
        hold: None,
        scan: None,
    }
}

/// How many transactions committed these messages (rows of one transaction share `xmin`).
async fn transactions(pool: &PgPool, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM messages WHERE id = ANY($1)")
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn project(app: &TestApp, name: &str) -> Uuid {
    projects::ensure(&app.pool, name).await.unwrap().0.id
}

#[tokio::test]
async fn sends_waiting_together_commit_in_one_transaction_with_their_own_answers() {
    // Accepts but never delivers: delivery would update the messages' rows, and so their
    // `xmin`, which is what these tests count transactions by.
    let app = TestApp::builder().without_workers().start().await;
    let (a, b) = (project(&app, "acme").await, project(&app, "globex").await);
    // One committer: while it is busy, everything else queues and forms the next group.
    let commits = GroupCommit::start(app.pool.clone(), 1);
    let sends: Vec<_> = (0..6)
        .map(|i| {
            let p = if i % 2 == 0 { a } else { b };
            vec![message(p, &format!("user{i}@example.com"), "hi")]
        })
        .collect();
    let ids: Vec<Uuid> = sends.iter().map(|s| s[0].id).collect();
    let answers = join_all(sends.into_iter().map(|s| commits.commit(s))).await;

    for (i, answer) in answers.into_iter().enumerate() {
        let rows = answer.expect("committed");
        assert_eq!(rows.len(), 1, "send {i} gets exactly its own recipient");
        assert_eq!(rows[0].message_id, ids[i]);
        assert_eq!(rows[0].email, format!("user{i}@example.com"));
        assert_eq!(rows[0].status, "queued");
    }
    assert_eq!(
        transactions(&app.pool, &ids).await,
        1,
        "one group, one commit"
    );
    // Sharing a statement never mixes projects.
    let owners: Vec<Uuid> =
        sqlx::query_scalar("SELECT project_id FROM messages WHERE id = ANY($1) ORDER BY id")
            .bind(&ids)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(owners, vec![a, b, a, b, a, b]);
}

#[tokio::test]
async fn a_send_the_database_refuses_fails_alone() {
    // Accepts but never delivers: delivery would update the messages' rows, and so their
    // `xmin`, which is what these tests count transactions by.
    let app = TestApp::builder().without_workers().start().await;
    let p = project(&app, "acme").await;
    let commits = GroupCommit::start(app.pool.clone(), 1);
    let good1 = message(p, "one@example.com", "fine");
    // Postgres refuses NUL in text: the whole statement would fail with it.
    let bad = message(p, "two@example.com", "nul \0 inside");
    let good2 = message(p, "three@example.com", "fine");
    let ids = [good1.id, bad.id, good2.id];
    let answers = join_all([vec![good1], vec![bad], vec![good2]].map(|s| commits.commit(s))).await;

    assert!(answers[0].is_ok(), "{:?}", answers[0].as_ref().err());
    assert!(answers[1].is_err(), "the refused send gets its error");
    assert!(answers[2].is_ok(), "{:?}", answers[2].as_ref().err());
    let stored: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM messages WHERE id = ANY($1)")
        .bind(&ids[..])
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(!stored.contains(&ids[1]));
}

#[tokio::test]
async fn a_group_stops_at_its_cap_and_a_batch_is_never_split() {
    // Accepts but never delivers: delivery would update the messages' rows, and so their
    // `xmin`, which is what these tests count transactions by.
    let app = TestApp::builder().without_workers().start().await;
    let p = project(&app, "acme").await;
    let commits = GroupCommit::start(app.pool.clone(), 1);
    // Three batches of 200: no two fit one group of 256, and none may be cut in two.
    let batches: Vec<Vec<AcceptedMessage>> = (0..3)
        .map(|b| {
            (0..200)
                .map(|i| message(p, &format!("b{b}-{i}@example.com"), "batch"))
                .collect()
        })
        .collect();
    let ids: Vec<Vec<Uuid>> = batches
        .iter()
        .map(|b| b.iter().map(|m| m.id).collect())
        .collect();
    let answers = join_all(batches.into_iter().map(|b| commits.commit(b))).await;
    for (b, answer) in answers.into_iter().enumerate() {
        let rows = answer.expect("committed");
        let got: Vec<Uuid> = rows.iter().map(|r| r.message_id).collect();
        assert_eq!(got, ids[b], "batch {b}: its own rows, in input order");
        assert_eq!(
            transactions(&app.pool, &ids[b]).await,
            1,
            "batch {b} commits whole"
        );
    }
    let all: Vec<Uuid> = ids.concat();
    assert_eq!(transactions(&app.pool, &all).await, 3);
}

#[tokio::test]
async fn concurrent_http_sends_of_two_projects_each_see_only_their_own() {
    // Accepts but never delivers: delivery would update the messages' rows, and so their
    // `xmin`, which is what these tests count transactions by.
    let app = TestApp::builder().without_workers().start().await;
    let other = app.create_key("globex", "send,messages", false).await;
    let sends = (0..40).map(|i| {
        let (key, to) = if i % 2 == 0 {
            (app.key.clone(), format!("acme{i}@example.com"))
        } else {
            (other.clone(), format!("globex{i}@example.com"))
        };
        let app = &app;
        async move {
            let body =
                json!({"from": "app@example.com", "to": to, "subject": "hi", "text": "hello"});
            let resp = app.post_email_raw(&key, &body).await;
            assert_eq!(resp.status(), 202);
            let answer: Accepted = resp.json().await.unwrap();
            assert_eq!(answer.recipients[0].email, to.as_str());
            (key, answer.id)
        }
    });
    let sent = join_all(sends).await;
    for (key, id) in &sent {
        let mine = app.get_email_raw(key, id).await;
        assert_eq!(mine.status(), 200);
        let theirs = if *key == app.key { &other } else { &app.key };
        assert_eq!(app.get_email_raw(theirs, id).await.status(), 404);
    }
}
