//! `spawn_app()`: a real mailgate (HTTP, workers, its own Postgres database) on 127.0.0.1:0.

use std::{
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    sync::{Arc, Once, OnceLock},
    time::Duration,
};

use super::{
    api::{Accepted, Email, EmailSummary, Page, RotatedSecret, Webhook, WebhookDelivery},
    eventually,
};
use mailgate::{
    Application, Config,
    config::{ApiLimits, RelayConfig, SendLimits},
    delivery::{DeliveryRunner, Relays, direct::Shaping},
    domain::{
        ApiKeySecret, Scope,
        api_key::{KeyLimits, parse_scopes},
    },
    inbound::InboundRunner,
    ratelimit::{Limiter, SharedRedis, pace::RelayPacer},
    store::{api_keys, projects},
    webhooks::WebhookRunner,
};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::smtp_server::TestSmtpServer;

pub const JWT_SECRET: &str = "test-operator-secret";
/// The server key sending domains' DKIM keys are sealed under (`MAILGATE_SECRET_KEY`).
pub const SECRET_KEY: &str = "test-secret-key-test-secret-key-test-secret";

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
        secret_key: Some(SECRET_KEY.to_string().into()),
        redis_url: shared_redis_url().map(Into::into),
        ..Config::default()
    };
    c.redis.key_prefix = unique_redis_prefix();
    // Tests run side by side: each metrics listener on a port of its own.
    c.metrics.addr = "127.0.0.1:0".parse().unwrap();
    c.ratelimit.send = SendLimits {
        rate_per_sec: 100_000.0,
        burst: 100_000,
        daily_quota: None,
    };
    c.ratelimit.api = ApiLimits {
        rate_per_sec: 100_000.0,
        burst: 100_000,
    };
    c.delivery.runner.poll_interval_ms = 100;
    c.delivery.retry_base_secs = 0.2;
    c.delivery.retry_max_secs = 1.0;
    c.delivery.smtp_timeout_secs = 2;
    c.delivery.runner.lease_secs = 10;
    c.delivery.max_attempts = 5;
    c.delivery.runner.shutdown_grace_secs = 5;
    c.delivery.runner.concurrency = 8;
    c
}

/// Points the default relay at a test SMTP server (plain SMTP on loopback).
pub fn relay_to(config: &mut Config, smtp: &TestSmtpServer) {
    set_default_relay(config, relay_url(smtp));
}

/// Relays every message through the SMTP server at `url` (`smtp://host:port?tls=none`).
pub fn relay_to_url(config: &mut Config, url: &str) {
    set_default_relay(config, url.to_string());
}

/// One process's relays as `serve` builds them from `config` (connect timeout 5 s): paced
/// through its Redis, which every set built from the same config shares as processes do,
/// and shaped by its entries. For tests that stand two processes side by side without the
/// queue choosing which one delivers.
pub fn relays_of(config: &Config) -> Relays {
    Relays::build(
        &config.relay_map(),
        &config.pools,
        &config.dns,
        Duration::from_secs(5),
    )
    .unwrap()
    .with_pacer(Arc::new(RelayPacer::new(
        config,
        SharedRedis::from_config(config).unwrap(),
    )))
    .with_shaping(Arc::new(Shaping::new(&config.shaping_map())))
}

fn relay_url(smtp: &TestSmtpServer) -> String {
    format!("smtp://{}?tls=none", smtp.addr)
}

fn set_default_relay(config: &mut Config, url: String) {
    config.relays.insert(
        "default".into(),
        RelayConfig {
            url: Some(url.into()),
            pool_size: Some(4),
            tls_insecure: false,
            max_rate_per_sec: None,
            burst: None,
            max_connections: None,
            mx: false,
            egress: Vec::new(),
            allow_private_mx: false,
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
    /// The inbound listener (bounces, complaints, inbound mail), when `inbound.addr` is set.
    pub inbound_addr: Option<SocketAddr>,
    /// The metrics listener (`/metrics`), when `metrics.enabled`.
    pub metrics_addr: Option<SocketAddr>,
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
    inbound: Option<InboundRunner>,
    cancel: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A sandboxed mailgate (no relay): `TestApp::builder().start()`.
pub async fn spawn_app() -> TestApp {
    TestApp::builder().start().await
}

/// A mailgate relaying to `smtp`: `TestApp::builder().relaying_to(smtp).start()`.
pub async fn spawn_app_relaying_to(smtp: &TestSmtpServer) -> TestApp {
    TestApp::builder().relaying_to(smtp).start().await
}

type ConfigStep<'a> = Box<dyn FnOnce(&mut Config) + 'a>;
type Adjust<'a> = Box<dyn FnOnce(&mut Application) + 'a>;

/// How a test asks for its mailgate: `TestApp::builder()`, then what differs from
/// `test_config` (a relay, loopback webhooks, no workers, any setting), then `start()`.
#[must_use = "start() runs the app"]
pub struct TestAppBuilder<'a> {
    /// A whole configuration given by the test (its database included); `None`: a fresh
    /// database with `test_config`.
    config: Option<Config>,
    /// The database of `test_config` when no whole configuration is given; `None`: a fresh one.
    database: Option<String>,
    steps: Vec<ConfigStep<'a>>,
    adjust: Option<Adjust<'a>>,
}

impl<'a> TestAppBuilder<'a> {
    /// Starts from this configuration instead of `test_config` on a fresh database.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// `test_config` on this database (another instance's) instead of a fresh one.
    pub fn on_database(mut self, url: &str) -> Self {
        self.database = Some(url.to_string());
        self
    }

    /// Changes any setting. Every step (this one, `relaying_to`, …) applies in the order asked,
    /// over `test_config` or the configuration given.
    pub fn configure(mut self, step: impl FnOnce(&mut Config) + 'a) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// The default relay is `smtp` (plain SMTP on loopback).
    pub fn relaying_to(self, smtp: &TestSmtpServer) -> Self {
        let url = relay_url(smtp);
        self.configure(move |c| set_default_relay(c, url))
    }

    /// Webhook endpoints on loopback are allowed (test receivers), and polled every 100 ms.
    pub fn webhooks_to_loopback(self) -> Self {
        self.configure(|c| {
            c.webhooks.allow_private_targets = true;
            c.webhooks.runner.poll_interval_ms = 100;
        })
    }

    /// Accepts but never works the queues (the API and listeners only).
    pub fn without_workers(self) -> Self {
        self.configure(|c| c.workers_enabled = false)
    }

    /// A chance to change the built application before it runs.
    pub fn adjust(mut self, adjust: impl FnOnce(&mut Application) + 'a) -> Self {
        self.adjust = Some(Box::new(adjust));
        self
    }

    /// The configuration `start` would run with (creating its database if none was given),
    /// for a test that starts a second instance with `TestApp::another_instance`.
    pub async fn build_config(self) -> Config {
        self.into_parts().await.0
    }

    pub async fn start(self) -> TestApp {
        let (config, adjust) = self.into_parts().await;
        TestApp::launch(config, adjust.unwrap_or_else(|| Box::new(|_| {}))).await
    }

    async fn into_parts(self) -> (Config, Option<Adjust<'a>>) {
        let mut config = match self.config {
            Some(config) => config,
            None => match self.database {
                Some(url) => test_config(&url),
                None => test_config(&create_database().await),
            },
        };
        for step in self.steps {
            step(&mut config);
        }
        (config, self.adjust)
    }
}

impl TestApp {
    /// The one way to start a test's mailgate; see `TestAppBuilder`.
    pub fn builder<'a>() -> TestAppBuilder<'a> {
        TestAppBuilder {
            config: None,
            database: None,
            steps: Vec::new(),
            adjust: None,
        }
    }

    async fn launch(config: Config, adjust: Adjust<'_>) -> TestApp {
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
        let inbound = app.inbound_runner().cloned();
        let inbound_addr = app.inbound_addr();
        let metrics_addr = app.metrics_addr();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(app.run(cancel.clone()));
        let mut me = TestApp {
            addr,
            smtp_addr,
            smtp_tls_addr,
            inbound_addr,
            metrics_addr,
            base: format!("http://{addr}"),
            pool,
            database_url,
            key: String::new(),
            http: http_client(),
            limiter,
            delivery,
            webhooks,
            inbound,
            cancel,
            task: Some(task),
        };
        me.key = me
            .create_key(
                "acme",
                "send,messages,templates,webhooks,suppressions,keys,domains",
                false,
            )
            .await;
        me
    }

    /// Another mailgate process on the same database (and the same relays).
    pub async fn another_instance(&self, mut config: Config) -> TestApp {
        config.database_url = self.database_url.as_str().into();
        let mut other = TestApp::builder().config(config).start().await;
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

    /// `GET /metrics` from the metrics listener, as Prometheus scrapes it: the text.
    pub async fn scrape_metrics(&self) -> String {
        let addr = self.metrics_addr.expect("metrics enabled");
        let response = self
            .http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    // The API as a client sees it, in one convention:
    // - a helper named for an operation (`get_email`, `list_webhooks`, …) asserts its success
    //   status and returns the answer's body, typed (`support::api`);
    // - its `_raw` twin returns the response itself, for a test about statuses, headers or
    //   refusals (`expect(422, response)` then asserts the status and gives the body);
    // - under both, requests to any path: `get`, `post_json`, … (the response) and `call`
    //   (status and JSON body, for refusals of paths with no helper).

    /// A request to `path` with `key`, ready to send.
    pub fn request_as(&self, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(key)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        send(self.request_as(&self.key, Method::GET, path)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        send(self.request_as(&self.key, Method::POST, path).json(body)).await
    }

    /// A POST without a body (`…/test`, `…/cancel`, `…/rotate-secret`).
    pub async fn post_empty(&self, path: &str) -> reqwest::Response {
        send(self.request_as(&self.key, Method::POST, path)).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> reqwest::Response {
        send(self.request_as(&self.key, Method::PUT, path).json(body)).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        send(self.request_as(&self.key, Method::PATCH, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        send(self.request_as(&self.key, Method::DELETE, path)).await
    }

    /// One call with the app's key, answered as (status, JSON body, `null` when empty): for
    /// tests about refusals and edge cases of paths without a helper.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.key, method, path, body).await
    }

    /// `call` with another key.
    pub async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.request_as(key, method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        status_and_json(send(request).await).await
    }

    // Emails.

    /// `POST /v1/emails` with `key`.
    pub async fn post_email_raw(&self, key: &str, body: &Value) -> reqwest::Response {
        send(self.request_as(key, Method::POST, "/v1/emails").json(body)).await
    }

    /// Sends and expects 202.
    pub async fn send_email(&self, body: &Value) -> Accepted {
        typed(expect(202, self.post_email_raw(&self.key, body).await).await)
    }

    /// Sends and expects 202; returns the new email's id.
    pub async fn send_ok(&self, body: &Value) -> String {
        self.send_email(body).await.id
    }

    /// `GET /v1/emails/{id}` with `key`.
    pub async fn get_email_raw(&self, key: &str, id: &str) -> reqwest::Response {
        send(self.request_as(key, Method::GET, &format!("/v1/emails/{id}"))).await
    }

    pub async fn get_email(&self, id: &str) -> Email {
        self.get_email_as(&self.key, id).await
    }

    /// `get_email` with another key.
    pub async fn get_email_as(&self, key: &str, id: &str) -> Email {
        typed(expect(200, self.get_email_raw(key, id).await).await)
    }

    /// One page of `GET /v1/emails`; `query` as in `status=delivered&limit=2`, or empty.
    pub async fn list_emails(&self, query: &str) -> Page<EmailSummary> {
        typed(expect(200, self.get(&format!("/v1/emails?{query}")).await).await)
    }

    /// `POST /v1/emails/batch` with `key`.
    pub async fn post_batch_raw(&self, key: &str, items: &Value) -> reqwest::Response {
        send(
            self.request_as(key, Method::POST, "/v1/emails/batch")
                .json(items),
        )
        .await
    }

    /// `GET /v1/emails/{id}/source` with `key`: the stored MIME.
    pub async fn get_source_raw(&self, key: &str, id: &str) -> reqwest::Response {
        send(self.request_as(key, Method::GET, &format!("/v1/emails/{id}/source"))).await
    }

    /// The stored MIME of an email.
    pub async fn get_source(&self, id: &str) -> String {
        let response = self.get_source_raw(&self.key, id).await;
        assert_eq!(response.status(), 200, "source of {id}");
        response.text().await.expect("body read")
    }

    pub async fn cancel_email_raw(&self, id: &str) -> reqwest::Response {
        self.post_empty(&format!("/v1/emails/{id}/cancel")).await
    }

    /// Cancels what is left of the email; returns it.
    pub async fn cancel_email(&self, id: &str) -> Email {
        typed(expect(200, self.cancel_email_raw(id).await).await)
    }

    /// Polls until the email's status is one of `wanted`; panics with the last state after `timeout`.
    pub async fn wait_for_status(&self, id: &str, wanted: &[&str], timeout: Duration) -> Email {
        eventually(format_args!("email {id} {wanted:?}"), timeout, async || {
            let email = self.get_email(id).await;
            if wanted.contains(&email.status.as_str()) {
                Ok(email)
            } else {
                Err(format!("{email:#}"))
            }
        })
        .await
    }

    // Webhooks.

    /// Creates an endpoint; returns its id and its secret (shown only here).
    pub async fn create_webhook(&self, body: &Value) -> (String, String) {
        let created = expect(201, self.post_json("/v1/webhooks", body).await).await;
        (string(&created["id"]), string(&created["secret"]))
    }

    /// The project's endpoints (`data` of the first page).
    pub async fn list_webhooks(&self) -> Vec<Webhook> {
        let page: Page<Webhook> = typed(expect(200, self.get("/v1/webhooks").await).await);
        page.data
    }

    pub async fn get_webhook(&self, id: &str) -> Webhook {
        typed(expect(200, self.get(&format!("/v1/webhooks/{id}")).await).await)
    }

    /// PATCH: changes what `body` names; returns the endpoint.
    pub async fn update_webhook(&self, id: &str, body: &Value) -> Webhook {
        typed(expect(200, self.update_webhook_raw(id, body).await).await)
    }

    pub async fn update_webhook_raw(&self, id: &str, body: &Value) -> reqwest::Response {
        self.patch_json(&format!("/v1/webhooks/{id}"), body).await
    }

    pub async fn enable_webhook(&self, id: &str) -> Webhook {
        self.update_webhook(id, &json!({"enabled": true})).await
    }

    pub async fn disable_webhook(&self, id: &str) -> Webhook {
        self.update_webhook(id, &json!({"enabled": false})).await
    }

    pub async fn delete_webhook(&self, id: &str) {
        expect(204, self.delete(&format!("/v1/webhooks/{id}")).await).await;
    }

    /// Returns the answer: the new `secret` and `previous_secret_expires_at`.
    pub async fn rotate_webhook_secret(&self, id: &str) -> RotatedSecret {
        typed(
            expect(
                200,
                self.post_empty(&format!("/v1/webhooks/{id}/rotate-secret"))
                    .await,
            )
            .await,
        )
    }

    /// Queues a `webhook.test` event for the endpoint.
    pub async fn send_webhook_test(&self, id: &str) {
        expect(
            202,
            self.post_empty(&format!("/v1/webhooks/{id}/test")).await,
        )
        .await;
    }

    /// The endpoint's delivery log, newest first (up to 100).
    pub async fn webhook_deliveries(&self, id: &str) -> Vec<WebhookDelivery> {
        self.webhook_deliveries_page(id, "limit=100").await.data
    }

    /// One page of the endpoint's delivery log; `query` as in `limit=1&cursor=…`.
    pub async fn webhook_deliveries_page(&self, id: &str, query: &str) -> Page<WebhookDelivery> {
        typed(
            expect(
                200,
                self.get(&format!("/v1/webhooks/{id}/deliveries?{query}"))
                    .await,
            )
            .await,
        )
    }

    /// Sends a delivery again; returns it (pending).
    pub async fn replay_webhook_delivery(&self, webhook: &str, delivery: &str) -> WebhookDelivery {
        typed(
            expect(
                202,
                self.replay_webhook_delivery_raw(webhook, delivery).await,
            )
            .await,
        )
    }

    pub async fn replay_webhook_delivery_raw(
        &self,
        webhook: &str,
        delivery: &str,
    ) -> reqwest::Response {
        self.post_empty(&format!(
            "/v1/webhooks/{webhook}/deliveries/{delivery}/retry"
        ))
        .await
    }

    // Templates: bodies as JSON (`name`, `subject`, `html`, `text`, `layout`, `version`, …).

    /// POST: creates a template (`name` in the body).
    pub async fn create_template(&self, body: &Value) -> Value {
        expect(201, self.post_json("/v1/templates", body).await).await
    }

    /// PUT: creates or replaces the template `name`.
    pub async fn put_template(&self, name: &str, body: &Value) -> Value {
        let response = self.put_json(&format!("/v1/templates/{name}"), body).await;
        let (status, json) = status_and_json(response).await;
        assert!(status == 200 || status == 201, "{status}: {json}");
        json
    }

    pub async fn get_template(&self, name: &str) -> Value {
        expect(200, self.get(&format!("/v1/templates/{name}")).await).await
    }

    /// One page of templates; `query` as in `limit=2&cursor=…`, or empty.
    pub async fn list_templates(&self, query: &str) -> Page<Value> {
        typed(expect(200, self.get(&format!("/v1/templates?{query}")).await).await)
    }

    pub async fn delete_template(&self, name: &str) {
        expect(204, self.delete(&format!("/v1/templates/{name}")).await).await;
    }

    /// Renders the template with `variables` and expects 200: `subject`, `html`, `text`.
    pub async fn render_template(&self, name: &str, variables: Value) -> Value {
        expect(200, self.render_template_raw(name, variables).await).await
    }

    pub async fn render_template_raw(&self, name: &str, variables: Value) -> reqwest::Response {
        self.post_json(
            &format!("/v1/templates/{name}/render"),
            &json!({ "variables": variables }),
        )
        .await
    }

    // Suppressions.

    /// Adds an address (`{"email": …}` and optionally `reason`, `detail`) that was not
    /// listed: 201 and the new entry.
    pub async fn add_suppression(&self, body: &Value) -> Value {
        expect(201, self.add_suppression_raw(body).await).await
    }

    /// An address already listed is answered 200 with the entry as it was.
    pub async fn add_suppression_raw(&self, body: &Value) -> reqwest::Response {
        self.post_json("/v1/suppressions", body).await
    }

    /// One page of the list; `query` as in `reason=bounce&limit=1`, or empty.
    pub async fn list_suppressions(&self, query: &str) -> Page<Value> {
        typed(expect(200, self.get(&format!("/v1/suppressions?{query}")).await).await)
    }

    pub async fn get_suppression(&self, email: &str) -> Value {
        expect(200, self.get(&format!("/v1/suppressions/{email}")).await).await
    }

    pub async fn remove_suppression(&self, email: &str) {
        expect(204, self.delete(&format!("/v1/suppressions/{email}")).await).await;
    }

    // API keys, through the API (`create_key` above writes to the store directly).

    /// Creates a key with the app's key; the answer holds the `key` in clear, once.
    pub async fn create_api_key(&self, body: &Value) -> Value {
        expect(201, self.post_json("/v1/api-keys", body).await).await
    }

    pub async fn list_api_keys(&self) -> Page<Value> {
        typed(expect(200, self.get("/v1/api-keys").await).await)
    }

    pub async fn revoke_api_key(&self, id: &str) {
        expect(200, self.delete(&format!("/v1/api-keys/{id}")).await).await;
    }

    /// PATCHes a key's limits as `who` (a key or an operator token).
    pub async fn patch_key_limits_raw(
        &self,
        who: &str,
        id: &str,
        body: &Value,
    ) -> reqwest::Response {
        send(
            self.request_as(who, Method::PATCH, &format!("/v1/api-keys/{id}"))
                .json(body),
        )
        .await
    }

    // The queues.

    /// Works the queues until nothing is due or in flight, the way the running app would
    /// (and alongside it): mail first, then inbound mail, then the webhooks their events queued. Afterwards,
    /// whatever was going to happen has happened, so a test asserts instead of sleeping.
    /// Retries scheduled for later are not waited for.
    pub async fn drain(&self) {
        let limit = Duration::from_secs(30);
        loop {
            let mut handled = 0;
            if let Some(runner) = &self.delivery {
                handled += runner.drain(limit).await.expect("the mail queue drains");
            }
            if let Some(runner) = &self.inbound {
                handled += runner.drain(limit).await.expect("the inbound queue drains");
            }
            if let Some(runner) = &self.webhooks {
                handled += runner.drain(limit).await.expect("the webhook queue drains");
            }
            if handled == 0 {
                return;
            }
        }
    }

    /// Like `drain`, for the mail queue only: the webhooks its outcomes queued are left to
    /// the app's own runner (or to the test).
    pub async fn drain_mail(&self) {
        if let Some(runner) = &self.delivery {
            runner
                .drain(Duration::from_secs(30))
                .await
                .expect("the mail queue drains");
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

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("request sent")
}

/// The status and the JSON body (`null` when empty).
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body read");
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{status}, not JSON: {bytes:?}"))
    };
    (status, json)
}

/// Asserts the status (showing the body when it differs); returns the JSON body.
pub async fn expect(status: u16, response: reqwest::Response) -> Value {
    let url = response.url().path().to_string();
    let (got, json) = status_and_json(response).await;
    assert_eq!(got, status, "{url}: {json}");
    json
}

fn string(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// The body as `T`, naming what did not fit.
pub fn typed<T: serde::de::DeserializeOwned>(body: Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not a {}: {e}\n{body:#}", std::any::type_name::<T>()))
}

/// The Message-ID header of raw MIME.
pub fn message_id_of(mime: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(mime);
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Message-ID: ").map(|v| v.trim().to_string()))
}
