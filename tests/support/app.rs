//! `spawn_app()`: a real mailgate (HTTP, workers, its own Postgres database) on 127.0.0.1:0.

use std::{
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    sync::{Once, OnceLock},
    time::{Duration, Instant},
};

use mailgate::{
    Application, Config,
    config::{ApiLimits, RelayConfig, SendLimits},
    delivery::DeliveryRunner,
    domain::{
        ApiKeySecret, Scope,
        api_key::{KeyLimits, parse_scopes},
    },
    ratelimit::Limiter,
    store::{api_keys, projects},
    webhooks::WebhookRunner,
};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::smtp_server::TestSmtpServer;

pub const JWT_SECRET: &str = "test-operator-secret";

fn admin_url() -> String {
    std::env::var("MAILGATE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database for one test, so tests run in parallel without seeing each other.
pub async fn create_database() -> String {
    let admin = admin_url();
    let name = format!("mailgate_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("Postgres must be running for the tests (scripts/test starts it)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("URL with a database");
    format!("{base}/{name}")
}

/// The machine's Redis (`MAILGATE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) when it
/// answers; tests then share it, each under its own key prefix.
pub fn shared_redis_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("MAILGATE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        // scheme://[user:pass@]host:port[/db]
        let authority = url.split("://").nth(1).unwrap_or("");
        let authority = authority.rsplit('@').next().unwrap_or("");
        let host_port = authority.split('/').next().unwrap_or("");
        let reachable = host_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
        if reachable {
            Some(url)
        } else {
            eprintln!("Redis at {url} does not answer: tests use per-process rate limits");
            None
        }
    })
    .clone()
}

/// Like `shared_redis_url`, for tests that are about Redis and must not pass without it.
pub fn require_shared_redis() -> String {
    shared_redis_url().expect(
        "these tests need Redis: start it (scripts/test does) or set MAILGATE_TEST_REDIS_URL",
    )
}

/// A key prefix no other test uses.
pub fn unique_redis_prefix() -> String {
    format!("mailgate-test:{}:", uuid::Uuid::new_v4().simple())
}

/// Delivery settings fast enough for tests, and rate limits no test meets unless it sets its
/// own (per key, or here); everything else stays as in production.
pub fn test_config(database_url: &str) -> Config {
    let mut c = Config {
        database_url: database_url.into(),
        database_pool_size: 6,
        http_addr: "127.0.0.1:0".parse().unwrap(),
        smtp_addr: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: Some(JWT_SECRET.to_string().into()),
        redis_url: shared_redis_url().map(Into::into),
        ..Config::default()
    };
    c.redis.key_prefix = unique_redis_prefix();
    c.ratelimit.send = SendLimits {
        rate_per_sec: 100_000.0,
        burst: 100_000,
        daily_quota: None,
    };
    c.ratelimit.api = ApiLimits {
        rate_per_sec: 100_000.0,
        burst: 100_000,
    };
    c.delivery.poll_interval_ms = 100;
    c.delivery.retry_base_secs = 0.2;
    c.delivery.retry_max_secs = 1.0;
    c.delivery.smtp_timeout_secs = 2;
    c.delivery.lease_secs = 10;
    c.delivery.max_attempts = 5;
    c.delivery.shutdown_grace_secs = 5;
    c.delivery.concurrency = 8;
    c
}

/// Points the default relay at a test SMTP server (plain SMTP on loopback).
pub fn relay_to(config: &mut Config, smtp: &TestSmtpServer) {
    config.relays.insert(
        "default".into(),
        RelayConfig {
            url: format!("smtp://{}?tls=none", smtp.addr).into(),
            pool_size: 4,
            tls_insecure: false,
        },
    );
}

static LOG: Once = Once::new();

/// A plain HTTP client for talking to mailgate. reqwest's TLS has no built-in crypto
/// provider in this build, so ring is installed first (see `install_tls_provider`).
pub fn http_client() -> reqwest::Client {
    mailgate::webhooks::install_tls_provider();
    reqwest::Client::new()
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The SMTP submission listener (STARTTLS port), when enabled.
    pub smtp_addr: Option<SocketAddr>,
    /// Its implicit-TLS port, when configured.
    pub smtp_tls_addr: Option<SocketAddr>,
    pub base: String,
    pub pool: PgPool,
    pub database_url: String,
    /// A live key of project `acme` with every scope.
    pub key: String,
    pub http: reqwest::Client,
    /// The limiter this instance charges (the SMTP listener will charge it too).
    pub limiter: Limiter,
    /// Clones of the running app's queue runners, for `drain`.
    delivery: Option<DeliveryRunner>,
    webhooks: Option<WebhookRunner>,
    cancel: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A sandboxed mailgate (no relay).
pub async fn spawn_app() -> TestApp {
    let db = create_database().await;
    TestApp::start(test_config(&db)).await
}

/// A mailgate relaying to `smtp`.
pub async fn spawn_app_relaying_to(smtp: &TestSmtpServer) -> TestApp {
    let db = create_database().await;
    let mut config = test_config(&db);
    relay_to(&mut config, smtp);
    TestApp::start(config).await
}

impl TestApp {
    pub async fn start(config: Config) -> TestApp {
        Self::start_with(config, |_| {}).await
    }

    /// Like `start`, with a chance to adjust the application before it runs.
    pub async fn start_with(config: Config, adjust: impl FnOnce(&mut Application)) -> TestApp {
        LOG.call_once(|| {
            if std::env::var("TEST_LOG").is_ok() {
                mailgate::telemetry::init("info,mailgate=debug,sqlx=warn");
            }
        });
        let database_url = config.database_url.expose().to_string();
        let mut app = Application::build(config).await.expect("mailgate starts");
        adjust(&mut app);
        let addr = app.http_addr().expect("API enabled");
        let (smtp_addr, smtp_tls_addr) = (app.smtp_addr(), app.smtp_implicit_tls_addr());
        let pool = app.pool().clone();
        let limiter = app.limiter().clone();
        let delivery = app.delivery_runner().cloned();
        let webhooks = app.webhook_runner().cloned();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(app.run(cancel.clone()));
        let mut me = TestApp {
            addr,
            smtp_addr,
            smtp_tls_addr,
            base: format!("http://{addr}"),
            pool,
            database_url,
            key: String::new(),
            http: http_client(),
            limiter,
            delivery,
            webhooks,
            cancel,
            task: Some(task),
        };
        me.key = me
            .create_key(
                "acme",
                "send,messages,templates,webhooks,suppressions,keys",
                false,
            )
            .await;
        me
    }

    /// Another mailgate process on the same database (and the same relays).
    pub async fn another_instance(&self, mut config: Config) -> TestApp {
        config.database_url = self.database_url.as_str().into();
        let mut other = TestApp::start(config).await;
        other.key = self.key.clone();
        other
    }

    /// Creates a key directly in the store, as `mailgate keys create` does.
    pub async fn create_key(&self, project: &str, scopes: &str, test: bool) -> String {
        let (p, _) = projects::ensure(&self.pool, project).await.unwrap();
        let scopes: Vec<Scope> = parse_scopes(&[scopes.to_string()]).unwrap();
        let secret = ApiKeySecret::generate(test);
        api_keys::create(&self.pool, p.id, None, &scopes, &secret)
            .await
            .unwrap();
        secret.expose().to_string()
    }

    /// A live `acme` key with every scope and its own send limits; returns (key, id).
    pub async fn create_limited_key(&self, limits: KeyLimits) -> (String, uuid::Uuid) {
        let (p, _) = projects::ensure(&self.pool, "acme").await.unwrap();
        let scopes = parse_scopes(&["send,messages,keys".to_string()]).unwrap();
        let secret = ApiKeySecret::generate(false);
        let info = api_keys::create_with_limits(&self.pool, p.id, None, &scopes, &secret, &limits)
            .await
            .unwrap();
        (secret.expose().to_string(), info.id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_email(&self, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/emails"))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Sends and expects 202; returns the new email's id.
    pub async fn send_ok(&self, body: &Value) -> String {
        let response = self.post_email(&self.key, body).await;
        let status = response.status();
        let json: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "send refused: {json}");
        json["id"].as_str().unwrap().to_string()
    }

    pub async fn get_email_as(&self, key: &str, id: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/v1/emails/{id}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_email(&self, id: &str) -> Value {
        let response = self.get_email_as(&self.key, id).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls until the email's status is one of `wanted`; panics with the last state after `timeout`.
    pub async fn wait_for_status(&self, id: &str, wanted: &[&str], timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let email = self.get_email(id).await;
            if wanted.iter().any(|w| email["status"] == *w) {
                return email;
            }
            if start.elapsed() > timeout {
                panic!("email {id} did not reach {wanted:?} in {timeout:?}: {email:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Works the queues until nothing is due or in flight, the way the running app would
    /// (and alongside it): mail first, then the webhooks its events queued. Afterwards,
    /// whatever was going to happen has happened, so a test asserts instead of sleeping.
    /// Retries scheduled for later are not waited for.
    pub async fn drain(&self) {
        let limit = Duration::from_secs(30);
        loop {
            let mut handled = 0;
            if let Some(runner) = &self.delivery {
                handled += runner.drain(limit).await.expect("the mail queue drains");
            }
            if let Some(runner) = &self.webhooks {
                handled += runner.drain(limit).await.expect("the webhook queue drains");
            }
            if handled == 0 {
                return;
            }
        }
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops everything at once, mid-whatever, like `kill -9`.
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Recipient rows of an email as (email, status) pairs.
pub fn recipient_statuses(email: &Value) -> Vec<(String, String)> {
    email["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["email"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The event types of an email, in order.
pub fn event_types(email: &Value) -> Vec<String> {
    email["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["recipient"].as_str().unwrap()
            )
        })
        .collect()
}

/// The Message-ID header of raw MIME.
pub fn message_id_of(mime: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(mime);
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Message-ID: ").map(|v| v.trim().to_string()))
}
