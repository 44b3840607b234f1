//! The crash test: 2,000 messages accepted, mailgate killed with SIGKILL during delivery,
//! restarted at once, all with the default delivery settings (only the send rate limit is
//! raised). The mail the dead process held (its leases) must be delivered within 5 s of the
//! restart, not after its 30 s leases run out: the restarted process, under the same
//! identity, finds its predecessor silent and takes its work back at once (`queue::holder`).
//! Every accepted message must be at the SMTP server in the end, and duplicates (only
//! possible from the crash window) are counted and reported.

#[path = "support/mod.rs"]
mod support;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use support::{
    app::{create_database, message_id_of},
    eventually, process,
    smtp_server::TestSmtpServer,
};
use tokio::process::{Child, Command};

const MESSAGES: usize = 2000;
const CLIENTS: usize = 16;

fn mailgate(db: &str, http: &str, relay: &str) -> Command {
    let mut cmd = process::command(db, http);
    cmd.env("MAILGATE_RELAY_URL", relay);
    cmd
}

async fn start(db: &str, http: &str, relay: &str) -> Child {
    process::serve(mailgate(db, http, relay), http).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_loses_nothing() {
    let smtp = TestSmtpServer::start().await;
    // A relay slow enough that delivery is still under way when the process dies.
    smtp.set_data_delay(Duration::from_millis(150));
    let db = create_database().await;
    let http = format!("127.0.0.1:{}", support::free_port());
    let relay = format!("smtp://{}?tls=none", smtp.addr);

    let key = process::create_key(mailgate(&db, &http, &relay), "crash", "send,messages").await;

    let mut first = start(&db, &http, &relay).await;
    let client = support::app::http_client();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, key, http, next) = (client.clone(), key.clone(), http.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= MESSAGES {
                    return ids;
                }
                let r = client
                    .post(format!("http://{http}/v1/emails"))
                    .bearer_auth(&key)
                    .json(
                        &json!({"from": "app@example.com", "to": format!("user{i}@example.com"),
                                  "subject": format!("crash test {i}"), "text": "x".repeat(2000)}),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                let body: serde_json::Value = r.json().await.unwrap();
                ids.push(body["id"].as_str().unwrap().to_string());
            }
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.extend(t.await.unwrap());
    }
    let accept_secs = started.elapsed().as_secs_f64();
    assert_eq!(accepted.len(), MESSAGES);

    // Kill -9 while the relay is mid-stream.
    eventually(
        "a quarter of the mail delivered",
        Duration::from_secs(60),
        async || smtp.received().len() >= MESSAGES / 4,
    )
    .await;
    first.kill().await.unwrap();
    let at_kill = smtp.received().len();
    assert!(
        at_kill < MESSAGES,
        "delivery finished before the kill; slow the relay down"
    );

    // What the dead process held: claimed, never recorded.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let held: Vec<i64> = sqlx::query_scalar("SELECT id FROM recipients WHERE status = 'sending'")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!held.is_empty(), "the process held no work when it died");

    // Recipients not yet at a terminal status, among `ids` (or all).
    let open = async |ids: Option<&Vec<i64>>| -> Result<(), String> {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM recipients WHERE ($1::bigint[] IS NULL OR id = ANY($1))
               AND status IN ('queued', 'deferred', 'sending', 'scheduled')",
        )
        .bind(ids)
        .fetch_one(&pool)
        .await
        .unwrap();
        if open == 0 {
            Ok(())
        } else {
            Err(format!("{open} recipients open"))
        }
    };

    let restarted = Instant::now();
    let second = start(&db, &http, &relay).await;
    eventually(
        format!(
            "the {} recipients the dead process held, within 5 s of the restart",
            held.len()
        ),
        Duration::from_secs(5).saturating_sub(restarted.elapsed()),
        async || open(Some(&held)).await,
    )
    .await;
    let held_secs = restarted.elapsed().as_secs_f64();
    eventually(
        "every recipient at a terminal status after the restart",
        Duration::from_secs(45),
        async || open(None).await,
    )
    .await;
    let recovered_secs = restarted.elapsed().as_secs_f64();
    let (delivered,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM recipients WHERE status = 'delivered'")
            .fetch_one(&pool)
            .await
            .unwrap();

    let stored: Vec<(String,)> = sqlx::query_as("SELECT message_id FROM messages")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut at_server: HashMap<String, usize> = HashMap::new();
    for m in smtp.received() {
        *at_server
            .entry(message_id_of(&m.data).unwrap())
            .or_default() += 1;
    }
    let lost = stored
        .iter()
        .filter(|(id,)| !at_server.contains_key(id))
        .count();
    let duplicated: usize = at_server.values().map(|n| n - 1).sum();
    println!(
        "crash test: accepted {MESSAGES} in {accept_secs:.1} s ({:.0}/s), killed after {at_kill} relayed; \
         its {} leased delivered {held_secs:.1} s after the restart; delivered {delivered} ({recovered_secs:.1} s after the restart), \
         lost {lost}, duplicated {duplicated}",
        MESSAGES as f64 / accept_secs,
        held.len()
    );
    assert_eq!(stored.len(), MESSAGES);
    assert_eq!(lost, 0, "accepted messages never reached the relay");
    assert_eq!(delivered as usize, MESSAGES);
    // Only the crash window can repeat a send: at most what was in flight or unrecorded.
    assert!(
        duplicated <= 64,
        "{duplicated} duplicates is more than the crash window explains"
    );

    // SIGTERM: a clean exit.
    process::stop(second, Duration::from_secs(30)).await;
}
