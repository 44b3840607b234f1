//! Redis over TLS (`rediss://`): the CA file, client certificates, and the shared key limit
//! enforced through it by two mailgate processes.

use mailgate::{
    Config,
    config::RedisConfig,
    domain::api_key::KeyLimits,
    ratelimit::{RedisCheck, check_redis},
};
use serde_json::json;
use std::time::Duration;

use super::{pki::Pki, servers::TlsRedis};
use crate::support::app::{TestApp, create_database, test_config, unique_redis_prefix};

fn tls_config(pki: &Pki, client_cert: bool) -> RedisConfig {
    RedisConfig {
        ca_file: Some(pki.ca.clone()),
        client_cert: client_cert.then(|| pki.client_cert.clone()),
        client_key: client_cert.then(|| pki.client_key.clone()),
        ..RedisConfig::default()
    }
}

async fn app_on(redis: &TlsRedis, tls: RedisConfig) -> (TestApp, Config) {
    let mut config = test_config(&create_database().await);
    config.redis_url = Some(redis.url().into());
    config.redis = RedisConfig {
        key_prefix: unique_redis_prefix(),
        // A TLS handshake on a loaded test machine can take longer than the 100 ms default.
        timeout_ms: 2000,
        ..tls
    };
    (
        TestApp::builder().config(config.clone()).start().await,
        config,
    )
}

#[tokio::test]
async fn a_key_limit_is_shared_by_two_processes_over_rediss() {
    mailgate::tls::install_provider();
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki, false).await;
    let (a, config) = app_on(&redis, tls_config(&pki, false)).await;
    let b = a.another_instance(config).await;
    for app in [&a, &b] {
        let status = app.limiter.status().await;
        assert_eq!((status.backend, status.redis), ("redis", Some("up")));
    }
    // Three sends at once and next to no refill, split over both processes.
    let (key, _) = a
        .create_limited_key(KeyLimits {
            rate_per_sec: Some(0.01),
            burst: Some(3),
            daily_quota: None,
        })
        .await;
    let body = json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"});
    let mut statuses = Vec::new();
    for app in [&a, &b, &a, &b, &a] {
        statuses.push(app.post_email_raw(&key, &body).await.status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429]);
    // Decided by Redis, not by each process's fallback.
    assert_eq!(a.limiter.status().await.fallbacks, 0);
    assert_eq!(b.limiter.status().await.fallbacks, 0);
}

#[tokio::test]
async fn a_redis_that_asks_for_client_certificates() {
    mailgate::tls::install_provider();
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki, true).await;
    let timeout = Duration::from_secs(5);

    let err = check_redis(&redis.url(), &tls_config(&pki, false), timeout)
        .await
        .expect_err("no client certificate, no entry");
    assert!(matches!(err, RedisCheck::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("client certificate"), "{err}");

    check_redis(&redis.url(), &tls_config(&pki, true), timeout)
        .await
        .expect("the client certificate is accepted");
    let (app, _) = app_on(&redis, tls_config(&pki, true)).await;
    let status = app.limiter.status().await;
    assert_eq!(status.redis, Some("up"));
}

#[tokio::test]
async fn a_wrong_ca_file_is_refused_with_the_reason() {
    mailgate::tls::install_provider();
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki, false).await;
    let wrong = RedisConfig {
        ca_file: Some(pki.wrong_ca.clone()),
        ..RedisConfig::default()
    };
    let err = check_redis(&redis.url(), &wrong, Duration::from_secs(5))
        .await
        .expect_err("a server the CA did not sign");
    assert!(matches!(err, RedisCheck::Tls(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "TLS: certificate not trusted (signed by an unknown issuer: check the CA file) (redis.ca_file={})",
            pki.wrong_ca.display()
        )
    );
    // Without a CA file only public roots count: the test CA is not one.
    let err = check_redis(
        &redis.url(),
        &RedisConfig::default(),
        Duration::from_secs(5),
    )
    .await
    .expect_err("not publicly trusted");
    assert!(
        err.to_string().starts_with("TLS: certificate not trusted"),
        "{err}"
    );

    // A CA file that is missing stops the start with its name.
    let missing = RedisConfig {
        ca_file: Some(pki.path("nope.pem")),
        ..RedisConfig::default()
    };
    let err = check_redis(&redis.url(), &missing, Duration::from_secs(5))
        .await
        .expect_err("no file");
    assert!(matches!(err, RedisCheck::Setup(_)), "{err:?}");
    assert!(
        err.to_string().contains("cannot read redis.ca_file"),
        "{err}"
    );
}
