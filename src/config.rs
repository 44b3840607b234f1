//! Typed configuration: defaults, then a TOML file, then `MAILGATE_*` environment variables.
//!
//! Nested keys come from the environment with a double underscore, e.g.
//! `MAILGATE_DELIVERY__CONCURRENCY=64`. Secrets are wrapped so they never print.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

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
    pub smtp_addr: SocketAddr,
    /// The default upstream relay; unset (and no `[relays]`) means sandbox delivery.
    pub relay_url: Option<String>,
    /// HMAC secret for operator JWTs (`mailgate token`); unset disables operator endpoints.
    #[serde(serialize_with = "ser_secret")]
    pub jwt_secret: Option<SecretString>,
    /// tracing filter, e.g. `info,mailgate=debug`.
    pub log: String,
    /// Run the HTTP API in `serve`.
    pub api_enabled: bool,
    /// Run delivery workers in `serve`.
    pub workers_enabled: bool,
    pub http: HttpConfig,
    pub delivery: DeliveryConfig,
    pub redis: RedisConfig,
    pub ratelimit: RateLimitConfig,
    /// Named upstream relays; `default` is taken from `relay_url` when set.
    pub relays: BTreeMap<String, RelayConfig>,
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
            api_enabled: true,
            workers_enabled: true,
            http: HttpConfig::default(),
            delivery: DeliveryConfig::default(),
            redis: RedisConfig::default(),
            ratelimit: RateLimitConfig::default(),
            relays: BTreeMap::new(),
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
        Ok(())
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
    fn lease_must_outlive_timeout() {
        let mut c = Config::default();
        c.delivery.lease_secs = 10;
        assert!(c.validate().is_err());
    }
}
