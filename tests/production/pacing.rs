//! Per-relay rates, connection caps and throttling back-off (`relays.NAME.max_rate_per_sec`,
//! `max_connections`), shared by every mailgate process through Redis.

use std::time::{Duration, Instant};

use mailgate::delivery::{Relays, intl::Intl, relay::RelayError};
use serde_json::{Value, json};

use crate::support::{
    app::{
        JWT_SECRET, TestApp, create_database, relay_to, relays_of, require_shared_redis,
        test_config, unique_redis_prefix,
    },
    process,
    smtp_server::TestSmtpServer,
};

const WAIT: Duration = Duration::from_secs(60);

fn message(i: usize) -> Value {
    json!({"from": "app@example.com", "to": format!("user{i}@example.com"),
           "subject": format!("paced {i}"), "text": "hello"})
}

/// Messages per second at the sink, over the steady part: from the first to the last
/// message of `received_at`, leaving out the first `skip` (the burst and the start-up).
fn rate_at_sink(times: &mut [Instant], skip: usize) -> f64 {
    times.sort();
    let steady = &times[skip..];
    (steady.len() - 1) as f64 / (steady[steady.len() - 1] - steady[0]).as_secs_f64()
}

/// What `/metrics` of one process (its metrics listener at `metrics`) counts as delivered.
async fn delivered_by(metrics: &str) -> f64 {
    let text = crate::support::app::http_client()
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("mailgate_deliveries_total{") && l.contains("outcome=\"delivered\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_relay_rate() {
    const MESSAGES: usize = 140;
    const RATE: f64 = 20.0;
    let smtp = TestSmtpServer::start().await;
    let db = create_database().await;
    let redis = require_shared_redis();
    let prefix = unique_redis_prefix();
    let https = [
        format!("127.0.0.1:{}", crate::support::free_port()),
        format!("127.0.0.1:{}", crate::support::free_port()),
    ];
    let metrics = [
        format!("127.0.0.1:{}", crate::support::free_port()),
        format!("127.0.0.1:{}", crate::support::free_port()),
    ];
    let mailgate = |i: usize| {
        let mut cmd = process::command(&db, &https[i]);
        cmd.env("MAILGATE_METRICS__ADDR", &metrics[i])
            .env("MAILGATE_REDIS_URL", &redis)
            .env("MAILGATE_REDIS__KEY_PREFIX", &prefix)
            .env(
                "MAILGATE_RELAYS__DEFAULT__URL",
                format!("smtp://{}?tls=none", smtp.addr),
            )
            .env(
                "MAILGATE_RELAYS__DEFAULT__MAX_RATE_PER_SEC",
                RATE.to_string(),
            )
            .env("MAILGATE_DELIVERY__POLL_INTERVAL_MS", "100");
        cmd
    };
    let key = process::create_key(mailgate(0), "paced", "send,messages").await;
    // The first process must not drain the queue alone before the second is up: both are
    // running before anything is sent.
    let first = process::serve(mailgate(0), &https[0]).await;
    let second = process::serve(mailgate(1), &https[1]).await;

    let client = crate::support::app::http_client();
    let items: Vec<Value> = (0..MESSAGES).map(message).collect();
    let r = client
        .post(format!("http://{}/v1/emails/batch", https[0]))
        .bearer_auth(&key)
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let received = smtp.wait_for(MESSAGES, WAIT).await;
    assert_eq!(received.len(), MESSAGES, "every message arrives once");

    let mut times: Vec<Instant> = received.iter().map(|m| m.received_at).collect();
    let rate = rate_at_sink(&mut times, 10);
    let (a, b) = (
        delivered_by(&metrics[0]).await,
        delivered_by(&metrics[1]).await,
    );
    println!(
        "shared relay rate: {rate:.1} msg/s at the sink with two processes (cap {RATE}/s); delivered by each: {a} + {b}"
    );
    assert!(a > 0.0 && b > 0.0, "both processes delivered ({a} + {b})");
    assert!(
        (RATE * 0.9..=RATE * 1.1).contains(&rate),
        "two processes together must relay at {RATE}/s ±10 %, measured {rate:.1}/s"
    );

    // No waiting for the rate was counted as an attempt.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let (over,): (i64,) = sqlx::query_as("SELECT count(*) FROM recipients WHERE attempts <> 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(over, 0, "waiting for the relay's rate is not an attempt");
    let (deferrals,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM events WHERE type = 'deferred'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        deferrals, 0,
        "waiting for the relay's rate records no deferral"
    );

    process::stop(first, Duration::from_secs(30)).await;
    process::stop(second, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_throttling_relay_is_paused_and_everything_still_arrives() {
    const MESSAGES: usize = 12;
    let smtp = TestSmtpServer::start().await;
    // SES's answer when its sending rate is exceeded, for the next three transactions.
    smtp.data_reply(454, "Throttling failure: Maximum sending rate exceeded.", 3);
    let db = create_database().await;
    let mut config = test_config(&db);
    relay_to(&mut config, &smtp);
    let app = TestApp::builder().config(config).start().await;

    let started = Instant::now();
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..MESSAGES {
            ids.push(app.send_ok(&message(i)).await);
        }
        ids
    };
    for id in &ids {
        app.wait_for_status(id, &["delivered"], WAIT).await;
    }
    let received = smtp.received();
    assert_eq!(received.len(), MESSAGES, "everything arrives, once");

    // The relay was paused after the first throttling reply: a gap of about a second at
    // the sink (or before its first message), instead of the three recipients being retried
    // at once.
    let mut times: Vec<Instant> = received.iter().map(|m| m.received_at).collect();
    times.push(started);
    times.sort();
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        gap >= Duration::from_millis(900),
        "a throttled relay pauses (longest gap at the sink {gap:?})"
    );

    let secret: secrecy::SecretString = JWT_SECRET.to_string().into();
    let operator =
        mailgate::service::gate::mint_operator_token(&secret, Duration::from_secs(60)).unwrap();
    let (status, relays) = app
        .call_as(&operator, reqwest::Method::GET, "/v1/relays", None)
        .await;
    assert_eq!(status, 200, "{relays}");
    let pacing = &relays["data"][0]["pacing"];
    assert!(pacing["throttles"].as_u64().unwrap() >= 1, "{pacing}");
    assert!(pacing["backoff_ms"].as_u64().unwrap() >= 1000, "{pacing}");

    // Throttling was not held against the recipients: no attempt counted, no deferral.
    let (deferrals,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM events WHERE type = 'deferred'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(deferrals, 0);
    let (over,): (i64,) = sqlx::query_as("SELECT count(*) FROM recipients WHERE attempts <> 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(over, 0, "a throttling reply is not counted as an attempt");
    let metrics = app.scrape_metrics().await;
    assert!(
        metrics.contains("mailgate_relay_throttled_total{relay=\"default\"}"),
        "throttling is counted in the metrics"
    );
}

#[tokio::test]
async fn two_instances_keep_to_the_relays_connection_cap() {
    const MESSAGES: usize = 40;
    let smtp = TestSmtpServer::start().await;
    // Slow answers, so both instances want more connections than the cap.
    smtp.set_data_delay(Duration::from_millis(60));
    let db = create_database().await;
    let mut config = test_config(&db);
    require_shared_redis();
    relay_to(&mut config, &smtp);
    let relay = config.relays.get_mut("default").unwrap();
    relay.max_connections = Some(2);
    relay.pool_size = Some(8);
    // The cap is shared while Redis answers; a call slower than `redis.timeout_ms` (100 ms)
    // on a loaded machine makes each process fall back to its own cap, by design. This test
    // is about the shared cap, so Redis is given time to answer.
    config.redis.timeout_ms = 2_000;
    let app = TestApp::builder().config(config.clone()).start().await;
    // Another instance on the same database and Redis: they share the cap.
    let _other = app.another_instance(config).await;

    let items: Vec<Value> = (0..MESSAGES).map(message).collect();
    let r = app.post_batch_raw(&app.key, &json!(items)).await;
    assert_eq!(r.status(), 200);
    smtp.wait_for(MESSAGES, WAIT).await;
    assert_eq!(smtp.received().len(), MESSAGES);
    let most = smtp.max_open_connections();
    assert!(
        most <= 2,
        "two instances opened {most} connections at once to a relay capped at 2"
    );
}

/// A connection left idle with a capped relay's only slot is closed within seconds: another
/// process with mail for the relay gets the slot, and the relay never sees the two
/// connections open at once. Two relay sets built as `serve` builds them, sharing one Redis,
/// stand for two processes; the first keeps its connection and has no more mail.
#[tokio::test]
async fn an_idle_connection_hands_its_slot_to_another_process_within_seconds() {
    let smtp = TestSmtpServer::start().await;
    let mut config = test_config("postgres://unused");
    config.redis_url = Some(require_shared_redis().into());
    relay_to(&mut config, &smtp);
    config.relays.get_mut("default").unwrap().max_connections = Some(1);
    let (one, two) = (relays_of(&config), relays_of(&config));
    let mime = b"From: app@example.com\r\nTo: a@example.com\r\nSubject: idle\r\n\r\nhello\r\n";
    // As the queue does: a relay whose connections are all in use is no attempt, and the
    // message comes back a moment later.
    let send = async |relays: &Relays, to: &str| {
        let envelope = lettre::address::Envelope::new(
            Some("app@example.com".parse().unwrap()),
            vec![to.parse().unwrap()],
        )
        .unwrap();
        loop {
            match relays
                .pick(None)
                .unwrap()
                .send(&envelope, Intl::default(), mime)
                .await
            {
                Err(RelayError::Busy(_)) => tokio::time::sleep(Duration::from_secs(1)).await,
                sent => return sent.unwrap(),
            }
        }
    };

    assert!(send(&one, "a@example.com").await.is_positive());
    // The first process keeps its connection, idle, holding the one slot.
    let started = Instant::now();
    assert!(send(&two, "b@example.com").await.is_positive());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the second process waited {:?} for the slot of an idle connection",
        started.elapsed()
    );
    assert_eq!(
        smtp.max_open_connections(),
        1,
        "the idle connection was closed before the other process opened its own"
    );
    assert_eq!(smtp.connections(), 2);
}
