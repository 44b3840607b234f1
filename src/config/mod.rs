//! Typed configuration: defaults, then a TOML file, then `MAILGATE_*` environment variables.
//!
//! Nested keys come from the environment with a double underscore, e.g.
//! `MAILGATE_DELIVERY__CONCURRENCY=64`. Secrets are wrapped so they never print.
//!
//! This file holds the top level (`Config`, loading, and the order of validation); each
//! section lives in its own file with its defaults and its own checks.

mod delivery;
mod dkim;
mod http;
mod ratelimit;
mod redis;
mod relays;
mod retention;
mod secret;
mod smtp;
mod webhooks;

use std::{collections::BTreeMap, net::SocketAddr, path::Path};

use anyhow::{Context, bail};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use self::{
    delivery::DeliveryConfig,
    dkim::{DkimAlgorithm, DkimKeyConfig},
    http::HttpConfig,
    ratelimit::{ApiLimits, RateLimitConfig, RedisFailureMode, SendLimits},
    redis::RedisConfig,
    relays::{DEFAULT_RELAY, RelayConfig},
    retention::RetentionConfig,
    secret::{SecretUrl, redact_url},
    smtp::SmtpConfig,
    webhooks::WebhooksConfig,
};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// Postgres connection URL; the queue lives there.
    pub database_url: SecretUrl,
    /// Connections per process to Postgres.
    pub database_pool_size: u32,
    /// Redis URL for shared rate limits; unset means per-process limits.
    pub redis_url: Option<SecretUrl>,
    pub http_addr: SocketAddr,
    /// The SMTP submission listener (`MAILGATE_SMTP_ADDR`); `smtp.addr` overrides it.
    pub smtp_addr: SocketAddr,
    /// The default upstream relay; unset (and no `[relays]`) means sandbox delivery.
    pub relay_url: Option<SecretUrl>,
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

    /// Each section checks itself; checks that span sections live here.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.delivery.validate()?;
        self.ratelimit.validate()?;
        self.redis.validate()?;
        self.smtp.validate()?;
        self.webhooks.validate()?;
        dkim::validate(&self.dkim)?;
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
}

/// Leases are renewed by a heartbeat every third of their length while the work runs; below
/// 3 s that leaves the heartbeat no room, and a second worker would take live work.
fn check_lease(section: &str, lease_secs: u64) -> anyhow::Result<()> {
    if lease_secs < 3 {
        bail!(
            "{section}.lease_secs ({lease_secs}) must be at least 3: a heartbeat renews the lease every third of it while the work runs"
        );
    }
    Ok(())
}

/// Like `SecretUrl`, the secret serializes redacted: serialization is only for showing.
fn ser_secret<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("***"),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_password_prints() {
        let mut c = Config {
            database_url: "postgres://mailgate:pg-hunter2@db.example.com/mailgate".into(),
            redis_url: Some("redis://:redis-hunter2@cache.example.com:6379/0".into()),
            relay_url: Some("smtp://bob:relay-hunter2@mx.example.com:587".into()),
            jwt_secret: Some("jwt-hunter2".into()),
            ..Config::default()
        };
        c.relays.insert(
            "eu".into(),
            RelayConfig {
                url: "smtps://alice:eu-hunter2@mx.example.eu".into(),
                pool_size: 2,
                tls_insecure: false,
            },
        );
        let printed = [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{:?}", c.relay_map()),
            serde_json::to_string(&c).unwrap(),
            toml::to_string(&c).unwrap(),
        ];
        for text in &printed {
            assert!(!text.contains("hunter2"), "a password prints:\n{text}");
        }
        assert!(printed[0].contains("postgres://mailgate:***@db.example.com/mailgate"));
        assert!(printed[2].contains("smtp://bob:***@mx.example.com:587"));
        // The code that connects still gets the real URLs.
        assert!(c.database_url.expose().contains("pg-hunter2"));
        assert!(c.relay_map()["eu"].url.expose().contains("eu-hunter2"));
        assert!(
            c.relay_map()["default"]
                .url
                .expose()
                .contains("relay-hunter2")
        );
    }
}
