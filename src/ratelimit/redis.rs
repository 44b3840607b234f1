//! The shared backend: `gcra.lua` run with EVALSHA (loaded again after a NOSCRIPT, e.g. once
//! Redis restarted) over a multiplexed connection, every call bounded by `redis.timeout_ms`.

use std::{
    sync::{LazyLock, RwLock},
    time::Duration,
};

use anyhow::Context;
use redis::{
    Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use uuid::Uuid;

use super::{Class, Outcome, Params, Verdict};
use crate::config::RedisConfig;

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("gcra.lua")));

pub(super) struct RedisGcra {
    client: Client,
    conn: RwLock<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    retry: Duration,
}

/// Why Redis did not decide.
#[derive(Debug, thiserror::Error)]
pub(super) enum RedisTrouble {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from the rate-limit script: {0:?}")]
    Reply(Vec<i64>),
}

impl RedisGcra {
    pub(super) fn new(url: &str, config: &RedisConfig) -> anyhow::Result<Self> {
        let client = super::client::open_client(url, config)?;
        let conn = connection(&client, config.timeout())?;
        Ok(Self {
            client,
            conn: RwLock::new(conn),
            prefix: config.key_prefix.clone(),
            timeout: config.timeout(),
            retry: config.retry(),
        })
    }

    pub(super) fn retry(&self) -> Duration {
        self.retry
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs another script (relay pacing) on the same terms: one call, bounded by the timeout.
    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisTrouble> {
        let mut conn = self.conn();
        tokio::time::timeout(self.timeout, invocation.invoke_async::<T>(&mut conn))
            .await
            .map_err(|_| RedisTrouble::Timeout(self.timeout))?
            .map_err(RedisTrouble::from)
    }

    /// Starts over with a new connection (made on first use).
    pub(super) fn reconnect(&self) {
        match connection(&self.client, self.timeout) {
            Ok(conn) => *self.conn.write().expect("not poisoned") = conn,
            Err(err) => tracing::warn!(error = %err, "cannot set up a redis connection"),
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.read().expect("not poisoned").clone()
    }

    pub(super) async fn check(
        &self,
        subject: Uuid,
        params: &Params,
        units: u32,
    ) -> Result<Outcome, RedisTrouble> {
        let subject = if subject.is_nil() {
            "operator".to_string()
        } else {
            subject.to_string()
        };
        let bucket = format!("{}rl:{}:{}", self.prefix, params.class.as_str(), subject);
        let quota_key = format!("{}quota:{}", self.prefix, subject);
        // Only sends have a quota; the other buckets never touch the quota key.
        let quota = match params.class {
            Class::Send => params.quota.unwrap_or(0),
            Class::Api | Class::Tracking => 0,
        };
        let mut invocation = GCRA.key(&bucket);
        invocation
            .key(&quota_key)
            .arg(params.interval_us)
            .arg(params.burst)
            .arg(units)
            .arg(quota)
            .arg(params.quota_period_secs);
        let reply = self.run::<Vec<i64>>(&invocation).await?;
        parse_reply(reply)
    }

    pub(super) async fn ping(&self) -> Result<(), RedisTrouble> {
        let mut conn = self.conn();
        let ping = async { redis::cmd("PING").query_async::<String>(&mut conn).await };
        tokio::time::timeout(self.timeout, ping)
            .await
            .map_err(|_| RedisTrouble::Timeout(self.timeout))??;
        Ok(())
    }
}

fn connection(client: &Client, timeout: Duration) -> anyhow::Result<ConnectionManager> {
    // No retries inside the manager: the caller's timeout and the health check pace them.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .context("cannot set up a redis connection")
}

fn parse_reply(reply: Vec<i64>) -> Result<Outcome, RedisTrouble> {
    let &[
        verdict,
        remaining,
        reset_us,
        retry_us,
        quota_used,
        quota_reset_s,
    ] = reply.as_slice()
    else {
        return Err(RedisTrouble::Reply(reply));
    };
    let verdict = match verdict {
        0 => Verdict::Allowed,
        1 => Verdict::Limited,
        2 => Verdict::OverQuota,
        _ => return Err(RedisTrouble::Reply(reply)),
    };
    let non_negative = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(Outcome {
        verdict,
        remaining: non_negative(remaining),
        reset: Duration::from_micros(non_negative(reset_us)),
        retry_after: Duration::from_micros(non_negative(retry_us)),
        quota_used: non_negative(quota_used),
        quota_reset: Duration::from_secs(non_negative(quota_reset_s)),
    })
}
