//! Typed configuration: defaults, then a TOML file, then `MAILGATE_*` environment variables.
//!
//! Nested keys come from the environment with a double underscore, e.g.
//! `MAILGATE_DELIVERY__CONCURRENCY=64`. Secrets are wrapped so they never print.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// Postgres connection URL; the queue lives there.
    pub database_url: String,
    /// Connections per process to Postgres.
    pub database_pool_size: u32,
    /// Redis URL for shared rate limits; unset means per-process limits.
    pub redis_url: Option<String>,
    pub http_addr: SocketAddr,
    /// The SMTP submission listener (`MAILGATE_SMTP_ADDR`); `smtp.addr` overrides it.
    pub smtp_addr: SocketAddr,
    /// The default upstream relay; unset (and no `[relays]`) means sandbox delivery.
    pub relay_url: Option<String>,
    /// HMAC secret for operator JWTs (`mailgate token`); unset disables operator endpoints.
    #[serde(serialize_with = "ser_secret")]
    pub jwt_secret: Option<SecretString>,
    /// tracing filter, e.g. `info,mailgate=debug`.
    pub log: String,
    /// `human` (default) or `json`: one JSON object per line, with span fields such as
    /// `message_id` and `request_id` (`MAILGATE_LOG_FORMAT=json`).
    pub log_format: LogFormat,
    /// Run the HTTP API in `serve`.
    pub api_enabled: bool,
    /// Run delivery workers in `serve`.
    pub workers_enabled: bool,
    pub http: HttpConfig,
    pub delivery: DeliveryConfig,
    pub redis: RedisConfig,
    pub ratelimit: RateLimitConfig,
    pub retention: RetentionConfig,
    pub smtp: SmtpConfig,
    pub webhooks: WebhooksConfig,
    /// Named upstream relays; `default` is taken from `relay_url` when set.
    pub relays: BTreeMap<String, RelayConfig>,
    /// Named pools: relays by priority, tried in order on connection, TLS or 4xx trouble.
    /// A send's `relay` may name a pool or a single relay; pool `default` is the default.
    pub pools: BTreeMap<String, Vec<String>>,
    /// DKIM keys, one per signing domain (`[[dkim]]` tables in the TOML file).
    pub dkim: Vec<DkimKeyConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// One DKIM signing key: mail whose From domain is `domain` (or a subdomain of it without a
/// key of its own) is signed with it before relay.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DkimKeyConfig {
    pub domain: String,
    /// Published at `{selector}._domainkey.{domain}`.
    pub selector: String,
    #[serde(default)]
    pub algorithm: DkimAlgorithm,
    /// PEM private key: PKCS#1 or PKCS#8 for RSA, PKCS#8 for Ed25519
    /// (`openssl genpkey -algorithm ed25519`).
    pub private_key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum DkimAlgorithm {
    #[default]
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

impl DkimAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaSha256 => "rsa-sha256",
            Self::Ed25519Sha256 => "ed25519-sha256",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Largest accepted request body (base64 attachments inflate by 4/3).
    pub max_body_bytes: usize,
    /// Largest MIME message mailgate builds or accepts.
    pub max_message_bytes: usize,
    /// How long a verified API key is trusted before it is looked up again (revocation delay).
    pub key_cache_secs: u64,
    /// Most messages in one `POST /v1/emails/batch`.
    pub max_batch: usize,
    /// How far ahead `send_at` may schedule a message.
    pub max_schedule_days: i64,
}

/// The SMTP submission listener: apps that speak SMTP send through it with an API key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SmtpConfig {
    /// Run the listener in `serve`.
    pub enabled: bool,
    /// Overrides the top-level `smtp_addr` when set.
    pub addr: Option<SocketAddr>,
    /// Name in the greeting and in the generated dev certificate.
    pub hostname: String,
    /// PEM certificate chain and private key for STARTTLS; unset means a self-signed
    /// certificate generated at start (development only: clients must skip verification).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A second port speaking TLS from the first byte (like 465), if set.
    pub implicit_tls_addr: Option<SocketAddr>,
    /// CIDRs (or single addresses) whose clients may send without AUTH, into
    /// `trusted_project`. Empty means every client must authenticate.
    pub trusted_networks: Vec<String>,
    /// The project that mail from trusted networks belongs to (created if missing).
    pub trusted_project: Option<String>,
    /// Largest message accepted (advertised with SIZE); unset means `http.max_message_bytes`.
    pub max_message_bytes: Option<usize>,
    /// Recipients per message, as over HTTP.
    pub max_recipients: usize,
    /// A client silent this long is disconnected.
    pub idle_timeout_secs: u64,
    /// No session lasts longer than this, however busy.
    pub session_timeout_secs: u64,
    /// Concurrent sessions per process; more are turned away with 421.
    pub max_sessions: usize,
    /// Failed AUTH attempts from one IP address before it is locked out…
    pub auth_max_failures: u32,
    /// …for this long (failures older than this are forgotten too).
    pub auth_lockout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: None,
            hostname: "localhost".into(),
            tls_cert: None,
            tls_key: None,
            implicit_tls_addr: None,
            trusted_networks: Vec::new(),
            trusted_project: None,
            max_message_bytes: None,
            max_recipients: crate::domain::email::MAX_RECIPIENTS,
            idle_timeout_secs: 300,
            session_timeout_secs: 1800,
            max_sessions: 200,
            auth_max_failures: 5,
            auth_lockout_secs: 300,
        }
    }
}

impl SmtpConfig {
    /// Parses `trusted_networks`; a bare address counts as a single host.
    pub fn trusted_networks(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_networks
            .iter()
            .map(|raw| {
                let s = raw.trim();
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| {
                        format!("smtp.trusted_networks: `{s}` is not a CIDR like 10.0.0.0/8")
                    })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Finished messages (with recipients and events) older than this are deleted.
    pub days: i64,
    /// Idempotency keys are kept at least this long.
    pub idempotency_hours: i64,
    /// How often each instance runs the clean-up.
    pub interval_secs: u64,
    /// Rows deleted per statement, so clean-up never holds long locks.
    pub batch: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            days: 30,
            idempotency_hours: 24,
            interval_secs: 3600,
            batch: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DeliveryConfig {
    /// Deliveries in flight per process.
    pub concurrency: usize,
    /// Jobs claimed per round trip.
    pub claim_batch: i64,
    /// How often idle workers look for due work (other instances' mail, retries).
    pub poll_interval_ms: u64,
    /// A claimed job is someone else's after this long; must outlive one SMTP attempt.
    pub lease_secs: u64,
    /// Longest one delivery attempt may take: connect, TLS and the whole SMTP transaction.
    pub smtp_timeout_secs: u64,
    pub max_attempts: i32,
    /// A recipient still undelivered this long after acceptance is failed.
    pub max_age_secs: u64,
    /// First retry delay; doubles each attempt, with ±20 % jitter.
    pub retry_base_secs: f64,
    pub retry_max_secs: f64,
    /// How long SIGTERM waits for in-flight deliveries before releasing them.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct WebhooksConfig {
    /// Run the webhook delivery worker in `serve` (only where `workers_enabled` too).
    pub worker_enabled: bool,
    /// Webhook requests in flight per process; its own pool, apart from mail delivery.
    pub concurrency: usize,
    /// Requests in flight to one endpoint, so a slow endpoint cannot take every slot.
    pub per_endpoint_concurrency: i64,
    /// How often an idle worker looks for due deliveries.
    pub poll_interval_ms: u64,
    /// Longest one request may take: resolve, connect, TLS, send, read the answer.
    pub timeout_secs: f64,
    /// A claimed delivery is someone else's after this long; must outlive one request.
    pub lease_secs: u64,
    /// Delay before each retry (the first entry follows the first failure); its length is
    /// the number of retries. Each delay gets ±`retry_jitter` (a fraction).
    pub retry_schedule_secs: Vec<f64>,
    pub retry_jitter: f64,
    /// Cap on a receiver's `Retry-After`.
    pub max_retry_after_secs: f64,
    /// An endpoint failing without a single success for this long is disabled.
    pub disable_after_secs: u64,
    /// After a secret rotation the old secret also signs for this long.
    pub rotation_overlap_secs: u64,
    /// Allow targets on loopback, private, link-local and other non-public addresses
    /// (development and tests only: it opens the door to SSRF).
    pub allow_private_targets: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            worker_enabled: true,
            concurrency: 32,
            per_endpoint_concurrency: 4,
            poll_interval_ms: 1000,
            timeout_secs: 15.0,
            lease_secs: 60,
            retry_schedule_secs: vec![5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
            retry_jitter: 0.2,
            max_retry_after_secs: 36000.0,
            disable_after_secs: 3 * 24 * 3600,
            rotation_overlap_secs: 24 * 3600,
            allow_private_targets: false,
        }
    }
}

impl WebhooksConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            bail!("webhooks.timeout_secs must be positive");
        }
        // A lease shorter than one request would let a second worker send the same delivery.
        if (self.lease_secs as f64) < self.timeout_secs * 2.0 + 5.0 {
            bail!(
                "webhooks.lease_secs ({}) must exceed twice webhooks.timeout_secs ({}) plus 5 s",
                self.lease_secs,
                self.timeout_secs
            );
        }
        if self.concurrency == 0 || self.per_endpoint_concurrency <= 0 {
            bail!("webhooks.concurrency and webhooks.per_endpoint_concurrency must be positive");
        }
        if self
            .retry_schedule_secs
            .iter()
            .chain([&self.retry_jitter, &self.max_retry_after_secs])
            .any(|s| !s.is_finite() || *s < 0.0)
            || self.retry_jitter >= 1.0
        {
            bail!(
                "webhooks.retry_schedule_secs, retry_jitter (below 1) and max_retry_after_secs must be non-negative numbers"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RedisConfig {
    /// Prepended to every Redis key, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Longest a rate-limit call may wait for Redis before the fallback decides.
    pub timeout_ms: u64,
    /// After a Redis failure, how long the fallback decides alone before Redis is tried again.
    pub retry_ms: u64,
}

/// Per-key limits. Sends count one unit per message; every other request one unit of `api`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Off: no limits and no `RateLimit-*` headers (the failed-auth throttle stays on).
    pub enabled: bool,
    /// Defaults for messages sent; a key's own `rate_per_sec`, `burst`, `daily_quota` win.
    pub send: SendLimits,
    /// Every other authenticated request, per key (and for the operator).
    pub api: ApiLimits,
    /// What happens while Redis cannot be reached.
    pub on_redis_error: RedisFailureMode,
    /// At most one warning per this many seconds while Redis stays unreachable.
    pub warn_interval_secs: u64,
    /// Failed authentications per client IP and minute before it gets 429s; 0 turns this off.
    pub auth_failures_per_minute: u32,
    /// Length of the "daily" quota period, aligned to the Unix epoch (86400: UTC days).
    /// Only tests have a reason to change it.
    pub quota_period_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SendLimits {
    pub rate_per_sec: f64,
    pub burst: u32,
    /// Messages per UTC day; unset means none.
    pub daily_quota: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ApiLimits {
    pub rate_per_sec: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisFailureMode {
    /// The per-process governor limiter decides until Redis is back (limits per process).
    FailOpen,
    /// Authenticated requests get 503 until Redis is back.
    FailClosed,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RelayConfig {
    /// `smtp://[user:pass@]host[:port][?tls=required|opportunistic|none]` or `smtps://…`.
    pub url: String,
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Accept any certificate from this relay (self-signed test relays only).
    #[serde(default)]
    pub tls_insecure: bool,
}

fn default_pool_size() -> u32 {
    8
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/mailgate".into(),
            database_pool_size: 16,
            redis_url: None,
            http_addr: "127.0.0.1:8080".parse().expect("valid default"),
            smtp_addr: "127.0.0.1:2525".parse().expect("valid default"),
            relay_url: None,
            jwt_secret: None,
            log: "info,sqlx=warn".into(),
            log_format: LogFormat::Human,
            api_enabled: true,
            workers_enabled: true,
            http: HttpConfig::default(),
            delivery: DeliveryConfig::default(),
            redis: RedisConfig::default(),
            ratelimit: RateLimitConfig::default(),
            retention: RetentionConfig::default(),
            smtp: SmtpConfig::default(),
            webhooks: WebhooksConfig::default(),
            relays: BTreeMap::new(),
            pools: BTreeMap::new(),
            dkim: Vec::new(),
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            key_prefix: "mailgate:".into(),
            timeout_ms: 100,
            retry_ms: 1000,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            send: SendLimits::default(),
            api: ApiLimits::default(),
            on_redis_error: RedisFailureMode::FailOpen,
            warn_interval_secs: 60,
            auth_failures_per_minute: 10,
            quota_period_secs: 86_400,
        }
    }
}

impl Default for SendLimits {
    fn default() -> Self {
        // A burst of 500 lets the largest batch through at once.
        Self {
            rate_per_sec: 50.0,
            burst: 500,
            daily_quota: None,
        }
    }
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            rate_per_sec: 100.0,
            burst: 200,
        }
    }
}

impl RedisConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn retry(&self) -> Duration {
        Duration::from_millis(self.retry_ms)
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 14 * 1024 * 1024,
            max_message_bytes: 10 * 1024 * 1024,
            key_cache_secs: 10,
            max_batch: 500,
            max_schedule_days: 30,
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            claim_batch: 64,
            poll_interval_ms: 1000,
            lease_secs: 300,
            smtp_timeout_secs: 60,
            max_attempts: 12,
            max_age_secs: 3 * 24 * 3600,
            retry_base_secs: 30.0,
            retry_max_secs: 3600.0,
            shutdown_grace_secs: 20,
        }
    }
}

impl DeliveryConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    pub fn smtp_timeout(&self) -> Duration {
        Duration::from_secs(self.smtp_timeout_secs)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

/// The relay name used when a send names none.
pub const DEFAULT_RELAY: &str = "default";

impl Config {
    /// Loads defaults → TOML (`path`, or `MAILGATE_CONFIG`) → environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("MAILGATE_CONFIG").map(Into::into));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        // DATABASE_URL is the common convention; MAILGATE_DATABASE_URL wins over it.
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(Serialized::default("database_url", url));
        }
        // Likewise REDIS_URL for MAILGATE_REDIS_URL.
        if let Ok(url) = std::env::var("REDIS_URL") {
            figment = figment.merge(Serialized::default("redis_url", url));
        }
        figment = figment.merge(Env::prefixed("MAILGATE_").split("__").ignore(&["config"]));
        let config: Config = figment.extract().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let d = &self.delivery;
        // A lease shorter than one attempt would let a second worker send the same job.
        if d.lease_secs < d.smtp_timeout_secs * 2 + 5 {
            bail!(
                "delivery.lease_secs ({}) must exceed twice delivery.smtp_timeout_secs ({}) plus 5 s",
                d.lease_secs,
                d.smtp_timeout_secs
            );
        }
        if d.concurrency == 0 || d.claim_batch <= 0 {
            bail!("delivery.concurrency and delivery.claim_batch must be positive");
        }
        let r = &self.ratelimit;
        for (name, rate, burst) in [
            ("send", r.send.rate_per_sec, r.send.burst),
            ("api", r.api.rate_per_sec, r.api.burst),
        ] {
            if let Err(m) = crate::domain::api_key::check_rate(rate) {
                bail!("ratelimit.{name}.rate_per_sec: {m}");
            }
            if let Err(m) = crate::domain::api_key::check_burst(burst.into()) {
                bail!("ratelimit.{name}.burst: {m}");
            }
        }
        if let Some(q) = r.send.daily_quota
            && let Err(m) = crate::domain::api_key::check_daily_quota(q as i64)
        {
            bail!("ratelimit.send.daily_quota: {m}");
        }
        if r.quota_period_secs == 0 || self.redis.timeout_ms == 0 || self.redis.retry_ms == 0 {
            bail!(
                "ratelimit.quota_period_secs, redis.timeout_ms and redis.retry_ms must be positive"
            );
        }
        let smtp = &self.smtp;
        // Without a project, mail from a trusted network would have no owner.
        if !smtp.trusted_networks()?.is_empty() && smtp.trusted_project.is_none() {
            bail!("smtp.trusted_networks needs smtp.trusted_project");
        }
        if smtp.tls_cert.is_some() != smtp.tls_key.is_some() {
            bail!("smtp.tls_cert and smtp.tls_key go together");
        }
        if smtp.max_recipients == 0
            || smtp.max_sessions == 0
            || smtp.idle_timeout_secs == 0
            || smtp.session_timeout_secs == 0
        {
            bail!(
                "smtp.max_recipients, smtp.max_sessions, smtp.idle_timeout_secs and smtp.session_timeout_secs must be positive"
            );
        }
        self.webhooks.validate()?;
        let mut dkim_domains = std::collections::HashSet::new();
        for key in &self.dkim {
            if key.domain.trim().is_empty() || key.selector.trim().is_empty() {
                bail!("dkim: every key needs a domain and a selector");
            }
            // One key per domain keeps the choice of signer unambiguous.
            if !dkim_domains.insert(key.domain.trim().trim_end_matches('.').to_ascii_lowercase()) {
                bail!("dkim: more than one key for domain {}", key.domain);
            }
        }
        Ok(())
    }

    /// Where the SMTP submission listener binds.
    pub fn smtp_listen_addr(&self) -> SocketAddr {
        self.smtp.addr.unwrap_or(self.smtp_addr)
    }

    /// The largest message the SMTP listener takes.
    pub fn smtp_max_message_bytes(&self) -> usize {
        self.smtp
            .max_message_bytes
            .unwrap_or(self.http.max_message_bytes)
    }

    /// All upstream relays by name, with `relay_url` as `default`.
    pub fn relay_map(&self) -> BTreeMap<String, RelayConfig> {
        let mut relays = self.relays.clone();
        if let Some(url) = &self.relay_url {
            relays.insert(
                DEFAULT_RELAY.to_string(),
                RelayConfig {
                    url: url.clone(),
                    pool_size: default_pool_size(),
                    tls_insecure: false,
                },
            );
        }
        relays
    }
}

fn ser_secret<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    // Serialization only feeds figment's defaults layer; the value never reaches a log.
    match v {
        Some(secret) => s.serialize_some(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

/// A relay URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact_url("smtp://bob:hunter2@mx.example.com:587"),
            "smtp://bob:***@mx.example.com:587"
        );
        assert_eq!(redact_url("smtp://127.0.0.1:25"), "smtp://127.0.0.1:25");
    }

    #[test]
    fn trusted_networks_need_a_project_and_parse() {
        let mut c = Config::default();
        c.smtp.trusted_networks = vec!["10.0.0.0/8".into(), "192.0.2.7".into()];
        assert!(c.validate().is_err());
        c.smtp.trusted_project = Some("internal".into());
        c.validate().unwrap();
        let nets = c.smtp.trusted_networks().unwrap();
        assert!(nets[1].contains(&"192.0.2.7".parse::<std::net::IpAddr>().unwrap()));
        c.smtp.trusted_networks = vec!["10.0.0.0/33".into()];
        assert!(c.validate().is_err());
    }

    #[test]
    fn rate_limits_are_checked() {
        let mut c = Config::default();
        c.ratelimit.send.rate_per_sec = 0.0;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.ratelimit.api.burst = 0;
        assert!(c.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn dkim_keys_need_a_domain_a_selector_and_one_key_per_domain() {
        let key = |domain: &str| DkimKeyConfig {
            domain: domain.into(),
            selector: "mg1".into(),
            algorithm: DkimAlgorithm::default(),
            private_key_file: "/etc/mailgate/dkim.pem".into(),
        };
        let mut c = Config {
            dkim: vec![key("example.com"), key("example.org")],
            ..Config::default()
        };
        c.validate().unwrap();
        c.dkim.push(key("Example.COM."));
        assert!(c.validate().is_err());
        c.dkim = vec![key(" ")];
        assert!(c.validate().is_err());
    }

    #[test]
    fn dkim_tables_and_log_format_come_from_toml() {
        let c: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(
                r#"
                log_format = "json"
                [[dkim]]
                domain = "example.com"
                selector = "mg1"
                algorithm = "ed25519-sha256"
                private_key_file = "/etc/mailgate/dkim/example.com.pem"
                "#,
            ))
            .extract()
            .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.dkim[0].algorithm, DkimAlgorithm::Ed25519Sha256);
        assert_eq!(Config::default().log_format, LogFormat::Human);
    }

    #[test]
    fn lease_must_outlive_timeout() {
        let mut c = Config::default();
        c.delivery.lease_secs = 10;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.webhooks.lease_secs = 20;
        assert!(c.validate().is_err());
    }
}
