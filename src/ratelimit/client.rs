//! Opening the Redis client: `redis://`, or `rediss://` through rustls with `redis.ca_file`
//! and an optional client certificate; and the one-off check `mailgate doctor` and the start
//! of `serve` make with it.

use std::{path::Path, time::Duration};

use anyhow::Context;
use redis::{Client, ClientTlsConfig, ConnectionInfo, IntoConnectionInfo, TlsCertificates};

use crate::config::RedisConfig;

/// The client for `url`. The TLS files are read here, so a missing or malformed file stops
/// the start with its name; the server's certificate is checked on the first connection.
pub fn open_client(url: &str, config: &RedisConfig) -> anyhow::Result<Client> {
    // redis builds its rustls config from the process's provider.
    crate::tls::install_provider();
    let url = with_nodelay(url)?;
    if !config.has_tls_files() {
        return Client::open(url).context("invalid redis_url");
    }
    let root_cert = config
        .ca_file
        .as_deref()
        .map(|path| read_pem("redis.ca_file", path))
        .transpose()?;
    let client_tls = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read_pem("redis.client_cert", cert)?,
            client_key: read_pem("redis.client_key", key)?,
        }),
        _ => None,
    };
    Client::build_with_tls(
        url,
        TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .context("cannot set up TLS to Redis (redis_url, redis.ca_file, redis.client_cert, redis.client_key)")
}

/// `url` with `TCP_NODELAY` on its socket. The redis crate opens with Nagle's algorithm on:
/// a command written in two pieces (over TLS, two records) then waits for the server's
/// delayed ACK, up to 40 ms per command on Linux.
fn with_nodelay(url: &str) -> anyhow::Result<ConnectionInfo> {
    let info = url.into_connection_info().context("invalid redis_url")?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    Ok(info.set_tcp_settings(tcp))
}

fn read_pem(key: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {key} {}", path.display()))
}

/// Connects afresh (TLS handshake and AUTH included) and sends a PING, within `timeout`.
/// The error says what an operator must fix, a TLS failure in plain words with the CA file.
pub async fn check(url: &str, config: &RedisConfig, timeout: Duration) -> Result<(), RedisCheck> {
    let client = open_client(url, config).map_err(|e| RedisCheck::Setup(format!("{e:#}")))?;
    let attempt = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(RedisCheck::Unreachable(format!(
            "no answer within {timeout:?}"
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(match crate::tls::explain(&err) {
            Some(why) => RedisCheck::Tls(format!(
                "TLS: {why}{}",
                config
                    .ca_file
                    .as_ref()
                    .map(|f| format!(" (redis.ca_file={})", f.display()))
                    .unwrap_or_default()
            )),
            None => RedisCheck::Unreachable(err.to_string()),
        }),
    }
}

/// Why [`check`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisCheck {
    /// The configuration cannot make a client (a file, the URL).
    #[error("{0}")]
    Setup(String),
    /// The handshake failed: a misconfiguration, not an outage.
    #[error("{0}")]
    Tls(String),
    /// No connection, no answer, or an error reply (AUTH, say).
    #[error("{0}")]
    Unreachable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_redis_socket_is_opened_with_tcp_nodelay() {
        let config = RedisConfig::default();
        for url in ["redis://127.0.0.1:6379", "rediss://127.0.0.1:6380/2"] {
            let client = open_client(url, &config).unwrap();
            assert!(
                client.get_connection_info().tcp_settings().nodelay(),
                "{url} is opened with Nagle's algorithm on"
            );
        }
    }
}
