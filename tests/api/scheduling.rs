//! `send_at` and cancel.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{api::Accepted, app::spawn_app_relaying_to, smtp_server::TestSmtpServer};

#[tokio::test]
async fn a_scheduled_message_waits_for_its_time() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(1);
    let r = app
        .post_email_raw(
            &app.key,
            &json!({"from": "a@example.com", "to": "later@example.com", "subject": "s", "text": "t",
                    "send_at": at.to_rfc3339()}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let body: Accepted = r.json().await.unwrap();
    assert_eq!(body.status, "scheduled");
    let id = body.id;
    // Everything due is done, and the message is not among it.
    app.drain().await;
    assert!(smtp.received().is_empty(), "sent before its time");
    assert_eq!(app.get_email(&id).await.status, "scheduled");

    // Its time is the clock's: wait for it, then it is due like any other.
    let until_due = (at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_due + Duration::from_millis(10)).await;
    app.drain().await;
    let email = app.get_email(&id).await;
    assert_eq!(email.status, "delivered", "{email:#}");
    assert!(email.send_at.is_some());
    let delivered_at = email.events_of("delivered")[0].at;
    assert!(delivered_at >= at, "delivered at {delivered_at}, due {at}");
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn scheduling_is_bounded_and_checked() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    for bad in [
        json!("tomorrow"),
        json!((chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339()),
    ] {
        let r = app
            .post_email_raw(&app.key, &json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t", "send_at": bad}))
            .await;
        assert_eq!(r.status(), 422);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], "send_at");
    }
}

#[tokio::test]
async fn a_scheduled_message_can_be_cancelled_but_a_relayed_one_cannot() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let scheduled = app
        .send_ok(&json!({"from": "a@example.com", "to": ["x@example.com", "y@example.com"], "subject": "s", "text": "t", "send_at": at}))
        .await;
    let email = app.cancel_email(&scheduled).await;
    assert_eq!(email.status, "cancelled");
    assert!(!email.events_of("cancelled").is_empty(), "{email:#}");
    // Cancelling twice: nothing left.
    assert_eq!(app.cancel_email_raw(&scheduled).await.status(), 409);

    let sent = app
        .send_ok(
            &json!({"from": "a@example.com", "to": "z@example.com", "subject": "s", "text": "t"}),
        )
        .await;
    app.wait_for_status(&sent, &["delivered"], Duration::from_secs(15))
        .await;
    let r = app.cancel_email_raw(&sent).await;
    assert_eq!(r.status(), 409);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "not_cancellable");
    // Another project's message is not found.
    let other = app.create_key("globex", "send", false).await;
    let r = app
        .http
        .post(app.url(&format!("/v1/emails/{}/cancel", uuid::Uuid::now_v7())))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// `PATCH /v1/emails/{id}` moves a scheduled message: later, or to now (then it goes at
/// once); a message no longer scheduled is `409 not_scheduled`, a bad or too distant time
/// `422` naming `send_at`, another project's message `404`.
#[tokio::test]
async fn a_scheduled_message_can_be_rescheduled_until_it_is_sent() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let id = app
        .send_ok(&json!({"from": "a@example.com", "to": "x@example.com", "subject": "s", "text": "t", "send_at": in_an_hour}))
        .await;
    let path = format!("/v1/emails/{id}");

    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let r = app
        .patch_json(&path, &json!({"send_at": later.to_rfc3339()}))
        .await;
    assert_eq!(r.status(), 200);
    let email = app.get_email(&id).await;
    assert_eq!(email.status, "scheduled");
    assert_eq!(email.send_at.unwrap().timestamp(), later.timestamp());

    for bad in [
        json!("tomorrow"),
        json!((chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339()),
    ] {
        let r = app.patch_json(&path, &json!({"send_at": bad})).await;
        assert_eq!(r.status(), 422);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], "send_at", "{p}");
    }

    // Moved to now, it is sent at once.
    let r = app
        .patch_json(&path, &json!({"send_at": chrono::Utc::now().to_rfc3339()}))
        .await;
    assert_eq!(r.status(), 200);
    app.wait_for_status(&id, &["delivered"], Duration::from_secs(15))
        .await;
    assert_eq!(smtp.received().len(), 1);
    let r = app
        .patch_json(&path, &json!({"send_at": later.to_rfc3339()}))
        .await;
    assert_eq!(r.status(), 409);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "not_scheduled");

    let other = app.create_key("globex", "send", false).await;
    let r = app
        .http
        .patch(app.url(&path))
        .bearer_auth(&other)
        .json(&json!({"send_at": later.to_rfc3339()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// The queue's own table (migration 0037) holds exactly the recipients that wait, are in
/// flight or are held, with their status, due time and lease, whichever path wrote them: the
/// accept, a claim, an outcome (delivered, deferred), a reschedule and a cancel.
#[tokio::test]
async fn the_queue_table_keeps_step_with_the_recipients() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    let in_step = || async {
        let apart: Vec<(i64, String)> = sqlx::query_as(
            "WITH waiting AS (
                 SELECT id, message_id, status, next_attempt_at, lease_owner, lease_until
                 FROM recipients WHERE status IN ('queued', 'scheduled', 'deferred', 'sending', 'held')
             ), mirrored AS (
                 SELECT id, message_id, status, next_attempt_at, lease_owner, lease_until FROM queue
             )
             SELECT id, 'only in recipients' FROM (SELECT * FROM waiting EXCEPT SELECT * FROM mirrored) a
             UNION ALL
             SELECT id, 'only in queue' FROM (SELECT * FROM mirrored EXCEPT SELECT * FROM waiting) b",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        apart
    };
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let scheduled = app
        .send_ok(&json!({"from": "a@example.com", "to": ["x@example.com", "y@example.com"], "subject": "s", "text": "t", "send_at": at}))
        .await;
    // One recipient is refused for now once, so it is deferred and waits again.
    smtp.rcpt_reply("later@example.com", 451, "4.7.1 try again", Some(1));
    let sent = app
        .send_ok(&json!({"from": "a@example.com", "to": ["now@example.com", "later@example.com"], "subject": "s", "text": "t"}))
        .await;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM queue")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        queued >= 2,
        "the scheduled message's recipients are queued: {queued}"
    );
    assert_eq!(in_step().await, vec![]);

    app.wait_for_status(&sent, &["deferred"], Duration::from_secs(15))
        .await;
    assert_eq!(in_step().await, vec![]);
    let deferred: Vec<String> =
        sqlx::query_scalar("SELECT status FROM queue WHERE message_id = $1")
            .bind(uuid::Uuid::parse_str(&sent).unwrap())
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        deferred,
        vec!["deferred"],
        "the delivered recipient left the queue"
    );

    let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let r = app
        .patch_json(
            &format!("/v1/emails/{scheduled}"),
            &json!({"send_at": later}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(in_step().await, vec![]);

    app.cancel_email(&scheduled).await;
    assert_eq!(in_step().await, vec![]);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM queue WHERE message_id = $1")
        .bind(uuid::Uuid::parse_str(&scheduled).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "a cancelled message leaves the queue");
}
