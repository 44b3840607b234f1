//! Rate limits against real Redis: the machine's (each test under its own key prefix) and,
//! for outages, a private redis-server the test stops, freezes and restarts.
//!
//! SMTP submission is counted through the same `Limiter::check` the listener calls; the
//! end-to-end SMTP test belongs with the listener.

use std::time::{Duration, Instant};

use mailgate::{
    Config,
    config::RedisFailureMode,
    domain::{ApiKeySecret, api_key::KeyLimits},
    ratelimit::{Class, Refusal},
    store::api_keys,
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    app::{JWT_SECRET, TestApp, create_database, require_shared_redis, test_config},
    eventually,
    test_redis::{TestRedis, redis_exists},
};

fn body() -> Value {
    json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"})
}

fn limits(rate: f64, burst: u32) -> KeyLimits {
    KeyLimits {
        rate_per_sec: Some(rate),
        burst: Some(burst),
        daily_quota: None,
    }
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

fn number(response: &Response, name: &str) -> u64 {
    header(response, name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .parse()
        .unwrap()
}

async fn shared_redis_app() -> (TestApp, Config) {
    require_shared_redis();
    let config = test_config(&create_database().await);
    (
        TestApp::builder().config(config.clone()).start().await,
        config,
    )
}

/// A mailgate on a private Redis that comes back quickly after an outage.
async fn private_redis_app(redis: &TestRedis, mode: RedisFailureMode) -> (TestApp, Config) {
    let mut config = test_config(&create_database().await);
    config.redis_url = Some(redis.url().into());
    config.redis.timeout_ms = 100;
    config.redis.retry_ms = 200;
    config.ratelimit.on_redis_error = mode;
    (
        TestApp::builder().config(config.clone()).start().await,
        config,
    )
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_burst_then_a_steady_rate() {
    let (app, _) = shared_redis_app().await;
    let (key, _) = app.create_limited_key(limits(4.0, 8)).await;

    let start = Instant::now();
    for _ in 0..8 {
        assert_eq!(app.post_email_raw(&key, &body()).await.status(), 202);
    }
    // The burst is spent; only what refilled meanwhile (4 per second) still fits.
    let mut extra = 0;
    let refused = loop {
        let response = app.post_email_raw(&key, &body()).await;
        if response.status() == 429 {
            break response;
        }
        assert_eq!(response.status(), 202);
        extra += 1;
        assert!(
            f64::from(extra) <= 4.0 * start.elapsed().as_secs_f64() + 1.0,
            "{extra} sends beyond the burst after {:?}",
            start.elapsed()
        );
    };
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");

    // Then the sustained rate: a client trying every 50 ms gets 4 a second through.
    let start = Instant::now();
    let (mut accepted, mut attempts) = (0, 0);
    while start.elapsed() < Duration::from_secs(2) {
        attempts += 1;
        match app.post_email_raw(&key, &body()).await.status().as_u16() {
            202 => accepted += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = 4.0 * start.elapsed().as_secs_f64();
    // A client slowed down (a loaded machine answering in hundreds of ms) tries less often
    // than the rate refills: then nearly every try must get through.
    let floor = (expected - 2.0).min(f64::from(attempts) - 1.0);
    assert!(
        (floor..=expected + 1.0).contains(&f64::from(accepted)),
        "{accepted} accepted of {attempts} tries in {:?}, expected about {expected:.1}",
        start.elapsed()
    );
}

#[tokio::test]
async fn two_instances_share_one_limit() {
    let (a, config) = shared_redis_app().await;
    let b = a.another_instance(config).await;
    // One unit per 10 s: refill cannot blur the count.
    let (key, _) = a.create_limited_key(limits(0.1, 10)).await;
    let mut accepted = [0, 0];
    for i in 0..30 {
        let app = if i % 2 == 0 { &a } else { &b };
        match app.post_email_raw(&key, &body()).await.status().as_u16() {
            202 => accepted[i % 2] += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    let total = accepted[0] + accepted[1];
    assert!(
        (10..=11).contains(&total),
        "two instances let {total} through a burst of 10 ({accepted:?})"
    );
    assert!(accepted[0] >= 4 && accepted[1] >= 4, "{accepted:?}");
}

#[tokio::test]
async fn every_authenticated_response_carries_the_headers() {
    let (app, _) = shared_redis_app().await;
    let (key, _) = app
        .create_limited_key(KeyLimits {
            rate_per_sec: Some(2.0),
            burst: Some(5),
            daily_quota: Some(1000),
        })
        .await;

    let response = app.post_email_raw(&key, &body()).await;
    assert_eq!(response.status(), 202);
    assert_eq!(number(&response, "ratelimit-limit"), 5);
    assert_eq!(number(&response, "ratelimit-remaining"), 4);
    // One unit takes half a second to come back.
    assert_eq!(number(&response, "ratelimit-reset"), 1);
    assert_eq!(
        header(&response, "ratelimit-policy").as_deref(),
        Some("5;w=3, 1000;w=86400")
    );
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Reads count against the looser `api` bucket, even when the answer is 404.
    for path in [format!("/v1/emails/{id}"), "/v1/emails/nope".to_string()] {
        let response = app
            .http
            .get(app.url(&path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(number(&response, "ratelimit-limit"), 100_000, "{path}");
        assert_eq!(number(&response, "ratelimit-remaining"), 99_999, "{path}");
    }

    // The operator is limited (and told) too.
    let token = mailgate::service::gate::mint_operator_token(
        &JWT_SECRET.to_string().into(),
        Duration::from_secs(60),
    )
    .unwrap();
    let response = app
        .http
        .get(app.url("/v1/projects"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(number(&response, "ratelimit-limit"), 100_000);

    // Unauthenticated answers have no bucket to speak of.
    let response = app.post_email_raw("mg_live_nope", &body()).await;
    assert_eq!(response.status(), 401);
    assert!(header(&response, "ratelimit-limit").is_none());

    let refused = loop {
        let response = app.post_email_raw(&key, &body()).await;
        if response.status() == 429 {
            break response;
        }
        assert_eq!(response.status(), 202);
    };
    assert_eq!(
        header(&refused, "content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(number(&refused, "ratelimit-limit"), 5);
    assert_eq!(number(&refused, "ratelimit-remaining"), 0);
    assert!(number(&refused, "ratelimit-reset") >= 1);
    let retry_after = number(&refused, "retry-after");
    assert!(retry_after >= 1);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["retry_after"], retry_after);
}

#[tokio::test]
async fn an_exhausted_quota_answers_quota_exceeded_until_the_period_ends() {
    require_shared_redis();
    let mut config = test_config(&create_database().await);
    // A 4-second "day", so the test can see it end.
    config.ratelimit.quota_period_secs = 4;
    let app = TestApp::builder().config(config).start().await;
    let (key, _) = app
        .create_limited_key(KeyLimits {
            daily_quota: Some(2),
            ..KeyLimits::default()
        })
        .await;
    // Start early in a period, so both sends and the refusal fall in the same one.
    let now = chrono::Utc::now();
    let into_period = (now.timestamp() % 4) as f64 + f64::from(now.timestamp_subsec_millis()) / 1e3;
    if into_period > 2.0 {
        tokio::time::sleep(Duration::from_secs_f64(4.05 - into_period)).await;
    }

    let first = app.post_email_raw(&key, &body()).await;
    assert_eq!(first.status(), 202);
    // The quota is closer to running out than the burst, so the headers speak of it.
    assert_eq!(number(&first, "ratelimit-limit"), 2);
    assert_eq!(number(&first, "ratelimit-remaining"), 1);
    assert_eq!(app.post_email_raw(&key, &body()).await.status(), 202);

    let refused = app.post_email_raw(&key, &body()).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(number(&refused, "ratelimit-remaining"), 0);
    let retry_after = number(&refused, "retry-after");
    assert!((1..=4).contains(&retry_after), "{retry_after}");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "quota_exceeded");
    let reset_at = chrono::DateTime::parse_from_rfc3339(problem["reset_at"].as_str().unwrap())
        .expect("reset_at is RFC 3339");
    assert!(reset_at > chrono::Utc::now() - chrono::Duration::seconds(1));
    // Reads are not messages: the quota does not stop them.
    let read = app
        .http
        .get(app.url("/v1/emails/nope"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 404);

    // The period has to end on the clock: wait out the Retry-After it announced.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(100)).await;
    let again = app.post_email_raw(&key, &body()).await;
    assert_eq!(again.status(), 202, "the quota resets with the period");
    assert_eq!(number(&again, "ratelimit-remaining"), 1);
}

#[tokio::test]
async fn redis_stopped_mid_test_fails_open_then_mailgate_returns_to_it() {
    let mut redis = TestRedis::start().await;
    let (app, config) = private_redis_app(&redis, RedisFailureMode::FailOpen).await;
    let (key, id) = app.create_limited_key(limits(0.1, 3)).await;
    let bucket = format!("{}rl:send:{id}", config.redis.key_prefix);

    for _ in 0..3 {
        assert_eq!(app.post_email_raw(&key, &body()).await.status(), 202);
    }
    assert_eq!(app.post_email_raw(&key, &body()).await.status(), 429);
    assert!(redis_exists(&redis.url(), &bucket).await);

    redis.stop().await;
    // The local limiter takes over, with its own (full) bucket, and still limits.
    let start = Instant::now();
    for _ in 0..3 {
        let response = app.post_email_raw(&key, &body()).await;
        assert_eq!(response.status(), 202);
        assert_eq!(number(&response, "ratelimit-limit"), 3);
    }
    assert_eq!(app.post_email_raw(&key, &body()).await.status(), 429);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "an unreachable Redis slowed requests down: {:?}",
        start.elapsed()
    );
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 200, "fail open keeps serving: {ready}");
    assert_eq!(ready["rate_limits"]["redis"], "down");
    assert!(ready["rate_limits"]["fallbacks"].as_u64().unwrap() >= 4);

    redis.restart().await;
    // Back on Redis by itself: the next probe finds it (empty, so the bucket is full again).
    eventually(
        "a send charged in Redis again",
        Duration::from_secs(10),
        async || {
            app.post_email_raw(&key, &body()).await.status() == 202
                && redis_exists(&redis.url(), &bucket).await
        },
    )
    .await;
    assert_eq!(readyz(&app).await.1["rate_limits"]["redis"], "up");
}

#[tokio::test]
async fn a_hung_redis_costs_at_most_the_timeout() {
    let redis = TestRedis::start().await;
    let (app, _) = private_redis_app(&redis, RedisFailureMode::FailOpen).await;
    assert_eq!(app.post_email_raw(&app.key, &body()).await.status(), 202);

    redis.freeze(true).await;
    for _ in 0..5 {
        let start = Instant::now();
        let response = app.post_email_raw(&app.key, &body()).await;
        assert_eq!(response.status(), 202);
        assert!(
            start.elapsed() < Duration::from_millis(1000),
            "a send waited {:?} on a hung Redis",
            start.elapsed()
        );
    }
    redis.freeze(false).await;
    eventually(
        "Redis counted as back",
        Duration::from_secs(10),
        async || readyz(&app).await.1["rate_limits"]["redis"] == "up",
    )
    .await;
    assert_eq!(app.post_email_raw(&app.key, &body()).await.status(), 202);
}

#[tokio::test]
async fn fail_closed_answers_503_until_redis_is_back() {
    let mut redis = TestRedis::start().await;
    let (app, _) = private_redis_app(&redis, RedisFailureMode::FailClosed).await;
    assert_eq!(app.post_email_raw(&app.key, &body()).await.status(), 202);

    redis.stop().await;
    for _ in 0..3 {
        let response = app.post_email_raw(&app.key, &body()).await;
        assert_eq!(response.status(), 503);
        assert!(header(&response, "retry-after").is_some());
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "unavailable");
    }
    let read = app
        .http
        .get(app.url("/v1/emails/nope"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 503);
    let (status, ready) = readyz(&app).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    redis.restart().await;
    // A process out of the load balancer sees only readiness checks: they must bring it back.
    eventually(
        "ready after Redis came back",
        Duration::from_secs(10),
        async || readyz(&app).await.0 == 200,
    )
    .await;
    assert_eq!(app.post_email_raw(&app.key, &body()).await.status(), 202);
}

#[tokio::test]
async fn without_redis_each_process_limits_on_its_own() {
    let mut config = test_config(&create_database().await);
    config.redis_url = None;
    let a = TestApp::builder().config(config.clone()).start().await;
    let b = a.another_instance(config).await;
    let (key, _) = a.create_limited_key(limits(0.1, 2)).await;
    for app in [&a, &b] {
        assert_eq!(app.post_email_raw(&key, &body()).await.status(), 202);
        let response = app.post_email_raw(&key, &body()).await;
        assert_eq!(response.status(), 202);
        assert_eq!(number(&response, "ratelimit-remaining"), 0);
        assert_eq!(app.post_email_raw(&key, &body()).await.status(), 429);
    }
    assert_eq!(readyz(&a).await.1["rate_limits"]["backend"], "local");
}

#[tokio::test]
async fn limits_can_be_switched_off() {
    let mut config = test_config(&create_database().await);
    config.ratelimit.enabled = false;
    let app = TestApp::builder().config(config).start().await;
    let (key, _) = app.create_limited_key(limits(0.1, 1)).await;
    for _ in 0..3 {
        let response = app.post_email_raw(&key, &body()).await;
        assert_eq!(response.status(), 202);
        assert!(header(&response, "ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn failed_authentication_is_throttled_per_address() {
    let app = TestApp::builder().start().await;
    let wrong = "mg_live_0000000000000000000000000000000000000000";
    for i in 0..10 {
        let response = if i % 2 == 0 {
            app.post_email_raw(wrong, &body()).await
        } else {
            // A missing header is a failure too.
            app.http.get(app.url("/v1/emails/x")).send().await.unwrap()
        };
        assert_eq!(response.status(), 401, "attempt {i}");
    }
    let response = app.post_email_raw(wrong, &body()).await;
    assert_eq!(response.status(), 429);
    let retry_after = number(&response, "retry-after");
    assert!((1..=6).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "rate_limited"
    );
    // The address is refused before any key is looked at, a right one included.
    assert_eq!(app.post_email_raw(&app.key, &body()).await.status(), 429);
    // Probes stay outside.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn key_limits_are_set_at_creation_and_changed_with_patch() {
    let (app, _) = shared_redis_app().await;
    let created = app
        .create_api_key(&json!({"scopes": ["send"], "rate_per_sec": 0.1, "burst": 2}))
        .await;
    assert_eq!(created["rate_per_sec"], 0.1);
    assert_eq!(created["burst"], 2);
    assert_eq!(created["daily_quota"], Value::Null);
    let (key, id) = (
        created["key"].as_str().unwrap().to_string(),
        created["id"].as_str().unwrap().to_string(),
    );
    let response = app.post_email_raw(&key, &body()).await;
    assert_eq!(number(&response, "ratelimit-limit"), 2);

    let response = app
        .patch_key_limits_raw(&app.key, &id, &json!({"burst": 1}))
        .await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(
        (updated["burst"].clone(), updated["rate_per_sec"].clone()),
        (json!(1), json!(0.1))
    );
    // At once on this instance: one message already counts, and the bucket now holds one.
    let response = app.post_email_raw(&key, &body()).await;
    assert_eq!(response.status(), 429);
    assert_eq!(number(&response, "ratelimit-limit"), 1);

    // null returns a setting to the configured default.
    let response = app
        .patch_key_limits_raw(
            &app.key,
            &id,
            &json!({"burst": null, "rate_per_sec": null, "daily_quota": 5}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["burst"], Value::Null);
    assert_eq!(updated["daily_quota"], 5);
    let response = app.post_email_raw(&key, &body()).await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        number(&response, "ratelimit-limit"),
        5,
        "the quota is the tighter limit"
    );

    // Bad values are 422 naming each field; never a 500.
    for (body, fields) in [
        (
            json!({"burst": 0, "rate_per_sec": -1}),
            vec!["rate_per_sec", "burst"],
        ),
        (json!({"daily_quota": 1.5}), vec!["daily_quota"]),
        (json!({"burst": "ten"}), vec!["burst"]),
        (json!({"rate_per_sec": 1e308}), vec!["rate_per_sec"]),
        (json!({"scopes": ["send"]}), vec!["scopes"]),
    ] {
        let response = app.patch_key_limits_raw(&app.key, &id, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let problem: Value = response.json().await.unwrap();
        let named: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        for field in fields {
            assert!(named.iter().any(|n| n.contains(field)), "{body}: {problem}");
        }
    }
    let response = app
        .post_json(
            "/v1/api-keys",
            &json!({"scopes": ["send"], "burst": 2_000_000}),
        )
        .await;
    assert_eq!(response.status(), 422);

    // Only the operator or a `keys` key of the same project.
    let unscoped = app.create_key("acme", "send", false).await;
    assert_eq!(
        app.patch_key_limits_raw(&unscoped, &id, &json!({"burst": 3}))
            .await
            .status(),
        403
    );
    let other = app.create_key("globex", "keys", false).await;
    assert_eq!(
        app.patch_key_limits_raw(&other, &id, &json!({"burst": 3}))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.patch_key_limits_raw(
            &app.key,
            &uuid::Uuid::now_v7().to_string(),
            &json!({"burst": 3})
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        app.patch_key_limits_raw(&app.key, "not-a-uuid", &json!({"burst": 3}))
            .await
            .status(),
        404
    );
    let token = mailgate::service::gate::mint_operator_token(
        &JWT_SECRET.to_string().into(),
        Duration::from_secs(60),
    )
    .unwrap();
    let response = app
        .patch_key_limits_raw(&token, &id, &json!({"burst": 7}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["burst"], 7);
}

#[tokio::test]
async fn the_cli_sets_and_updates_key_limits() {
    let app = TestApp::builder().start().await;
    let mailgate = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailgate"));
        command
            .args(args)
            .env("MAILGATE_DATABASE_URL", &app.database_url);
        async move { command.output().await.unwrap() }
    };
    let out = mailgate(&[
        "keys",
        "create",
        "--project",
        "limited",
        "--rate",
        "10",
        "--burst",
        "20",
        "--daily-quota",
        "10000",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let response = app.post_email_raw(&key, &body()).await;
    assert_eq!(response.status(), 202);
    assert_eq!(number(&response, "ratelimit-limit"), 20);

    let out = mailgate(&["keys", "list", "--project", "limited"]).await;
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        listed.contains("rate=10/s,burst=20,daily_quota=10000"),
        "{listed}"
    );
    let id = listed.split('\t').next().unwrap().to_string();

    let out = mailgate(&[
        "keys",
        "update",
        &id,
        "--burst",
        "3",
        "--daily-quota",
        "default",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row: (Option<f64>, Option<i32>, Option<i64>) =
        sqlx::query_as("SELECT rate_per_sec, burst, daily_quota FROM api_keys WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(row, (Some(10.0), Some(3), None));

    let out = mailgate(&["keys", "update", &id, "--rate", "0"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate"));
}

#[tokio::test]
async fn messages_charged_outside_http_share_the_send_bucket() {
    // What the SMTP listener will do for each message it accepts.
    let (app, _) = shared_redis_app().await;
    let (key, _) = app.create_limited_key(limits(0.1, 10)).await;
    let authenticated = api_keys::find_active(&app.pool, &ApiKeySecret::parse(&key).unwrap())
        .await
        .unwrap()
        .unwrap();
    let decision = app
        .limiter
        .check(authenticated.id, &authenticated.limits, Class::Send, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decision.remaining, 7);

    let response = app.post_email_raw(&key, &body()).await;
    assert_eq!(number(&response, "ratelimit-remaining"), 6);

    // A batch of 7 no longer fits; 11 never will.
    assert!(matches!(
        app.limiter
            .check(authenticated.id, &authenticated.limits, Class::Send, 7)
            .await,
        Err(Refusal::RateLimited(_))
    ));
    assert!(matches!(
        app.limiter
            .check(authenticated.id, &authenticated.limits, Class::Send, 11)
            .await,
        Err(Refusal::TooLarge {
            units: 11,
            burst: 10
        })
    ));
    let decision = app
        .limiter
        .check(authenticated.id, &authenticated.limits, Class::Send, 6)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decision.remaining, 0);
}
