//! `[redis]`: how mailgate uses the Redis named by `redis_url` (shared rate limits).

use std::{path::PathBuf, time::Duration};

use anyhow::bail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Prepended to every Redis key, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Longest a rate-limit call may wait for Redis before the fallback decides.
    pub timeout_ms: u64,
    /// After a Redis failure, how long the fallback decides alone before Redis is tried again.
    pub retry_ms: u64,
    /// PEM file of the CA(s) that sign the server's certificate, for a `rediss://` URL; it
    /// replaces the built-in (webpki) roots. Unset: a publicly signed certificate is expected.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate (chain) to present to a Redis that asks for one
    /// (`tls-auth-clients yes`); needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            key_prefix: "mailgate:".into(),
            timeout_ms: 100,
            retry_ms: 1000,
            ca_file: None,
            client_cert: None,
            client_key: None,
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

    /// Whether any TLS file is set (they need a `rediss://` URL).
    pub fn has_tls_files(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    pub(super) fn validate(&self, redis_url: Option<&str>) -> anyhow::Result<()> {
        if self.timeout_ms == 0 || self.retry_ms == 0 {
            bail!("redis.timeout_ms and redis.retry_ms must be positive");
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            bail!("redis.client_cert and redis.client_key go together: set both or neither");
        }
        if self.has_tls_files() && !redis_url.is_some_and(|u| u.starts_with("rediss://")) {
            bail!(
                "redis.ca_file, redis.client_cert and redis.client_key are for TLS: set redis_url to a rediss:// URL"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_need_a_rediss_url_and_a_certificate_needs_its_key() {
        let tls = RedisConfig {
            ca_file: Some("/etc/mailgate/redis-ca.pem".into()),
            ..RedisConfig::default()
        };
        assert!(
            tls.validate(Some("rediss://cache.example.com:6380"))
                .is_ok()
        );
        let err = tls
            .validate(Some("redis://cache.example.com:6379"))
            .unwrap_err();
        assert!(err.to_string().contains("rediss://"), "{err}");
        assert!(tls.validate(None).is_err());
        let half = RedisConfig {
            client_cert: Some("/etc/mailgate/redis-client.pem".into()),
            ..tls
        };
        let err = half
            .validate(Some("rediss://cache.example.com:6380"))
            .unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        assert!(RedisConfig::default().validate(Some("redis://x")).is_ok());
    }
}
