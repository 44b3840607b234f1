//! One configured upstream relay: what it is built from, its pacing (a moment from its
//! schedule before each send, a pause when it throttles) and the health this process has
//! seen of it. Its connections are `pool`'s.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};

use super::url::{RelayUrl, TlsMode, parse_url, tls_parameters};
pub use crate::delivery::health::RelayHealth;
use crate::{
    config::RelayConfig,
    ratelimit::pace::{Lane, PaceStatus, Rate, RelayPacer, Reservation, Slot},
};

/// The longest a send waits for its relay's rate or a connection slot while holding its
/// job; beyond it the job goes back to the queue. Short against the lease (its heartbeat
/// keeps it anyway), long enough that a capped relay is not fed by a claim per message.
pub const HORIZON: Duration = Duration::from_secs(2);

/// One configured upstream.
pub struct Relay {
    pub name: String,
    /// `host:port`, recorded on every event.
    pub host: String,
    pub(super) url: RelayUrl,
    pub(super) config: RelayConfig,
    pub(super) timeout: Duration,
    /// Idle connections of the own pool; a connection is returned only after a clean send.
    pub(super) idle: Arc<Idle>,
    /// Started with the first connection checked in: closes the ones idle too long.
    pub(super) sweeping: std::sync::OnceLock<()>,
    pub(super) health: std::sync::Mutex<RelayHealth>,
    pub(super) rate: Option<Rate>,
    pub(super) pacer: Arc<RelayPacer>,
    /// Names this process's connection slots in Redis.
    pub(super) holder: String,
    pub(super) next_holder: std::sync::atomic::AtomicU64,
}

/// A connection of the relay's own pool (`pool` works them), with the slot it holds when the
/// relay caps connections.
pub(super) struct Pooled {
    pub(super) conn: AsyncSmtpConnection,
    /// Whether the relay offered PIPELINING on this connection.
    pub(super) pipelining: bool,
    pub(super) slot: Option<Slot>,
    pub(super) renewed: std::time::Instant,
    /// When it was last checked in; a fresh connection has never been idle.
    pub(super) idle_since: Option<std::time::Instant>,
}

/// A relay's idle connections, shared with the sweep that closes those idle too long.
#[derive(Default)]
pub(super) struct Idle {
    pub(super) conns: std::sync::Mutex<Vec<Pooled>>,
    /// Woken whenever a connection is checked in.
    pub(super) returned: tokio::sync::Notify,
}

/// A relay's limits and its back-off, for `/v1/relays`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Pacing {
    /// `relays.NAME.max_rate_per_sec`, when set.
    pub max_rate_per_sec: Option<f64>,
    pub burst: Option<u32>,
    /// `relays.NAME.max_connections`, when set.
    pub max_connections: Option<u32>,
    #[serde(flatten)]
    pub state: PaceStatus,
}

impl Relay {
    pub fn build(name: &str, config: &RelayConfig, timeout: Duration) -> anyhow::Result<Self> {
        let url = config
            .url
            .as_ref()
            .with_context(|| format!("relay `{name}` needs `url` (or `mx = true`)"))?;
        let url = parse_url(url.expose()).with_context(|| format!("relay `{name}`"))?;
        if url.tls != TlsMode::None {
            // Fails now, not at the first send, on a TLS set-up that cannot work.
            tls_parameters(&url, config)?;
        }
        Ok(Self {
            name: name.to_string(),
            host: format!("{}:{}", url.host, url.port),
            url,
            config: config.clone(),
            timeout,
            idle: Default::default(),
            sweeping: Default::default(),
            health: Default::default(),
            rate: config
                .max_rate_per_sec
                .map(|r| Rate::per_sec(r, config.burst.unwrap_or(1))),
            pacer: Arc::new(RelayPacer::local()),
            holder: uuid::Uuid::now_v7().to_string(),
            next_holder: Default::default(),
        })
    }

    /// Whether this relay's pacing is shared by every process (through Redis).
    pub(super) fn shared(&self) -> bool {
        self.rate.is_some() || self.config.max_connections.is_some()
    }

    /// A moment to send: now, after a wait within [`HORIZON`] (waited out here), or not now.
    pub async fn admit(&self) -> Result<(), Duration> {
        let lane = Lane::Relay(&self.name);
        match self
            .pacer
            .reserve(lane, self.rate, HORIZON, self.rate.is_some())
            .await
        {
            Reservation::Reserved { wait } => {
                if !wait.is_zero() {
                    metrics::histogram!("mailgate_relay_pace_wait_seconds", "relay" => self.name.clone())
                        .record(wait.as_secs_f64());
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Reservation::Refused { retry_after } => Err(retry_after),
        }
    }

    /// The relay answered a throttling reply: pause it (every process, when shared) and
    /// say for how long.
    pub async fn throttled(&self) -> Duration {
        metrics::counter!("mailgate_relay_throttled_total", "relay" => self.name.clone())
            .increment(1);
        let pause = self
            .pacer
            .throttled(Lane::Relay(&self.name), self.shared())
            .await;
        metrics::gauge!("mailgate_relay_backoff_seconds", "relay" => self.name.clone())
            .set(pause.as_secs_f64());
        tracing::warn!(
            relay = self.name,
            pause_ms = pause.as_millis() as u64,
            "relay throttled: pausing it"
        );
        pause
    }

    /// Its rate, connection cap and back-off as this process last saw them.
    pub fn pacing(&self) -> Pacing {
        Pacing {
            max_rate_per_sec: self.config.max_rate_per_sec,
            burst: self.rate.map(|r| r.burst),
            max_connections: self.config.max_connections,
            state: self.pacer.status(Lane::Relay(&self.name), self.shared()),
        }
    }

    /// Records one attempt's result for health reporting and metrics.
    pub fn record(&self, latency: Duration, failure: Option<&str>) {
        let mut h = self.health.lock().expect("not poisoned");
        h.note(latency, failure);
        if failure.is_some() {
            metrics::counter!("mailgate_relay_failures_total", "relay" => self.name.clone())
                .increment(1);
        }
        metrics::gauge!("mailgate_relay_up", "relay" => self.name.clone()).set(
            if h.consecutive_failures == 0 {
                1.0
            } else {
                0.0
            },
        );
    }

    pub fn health(&self) -> RelayHealth {
        self.health.lock().expect("not poisoned").clone()
    }

    pub(super) fn tls_parameters(&self) -> anyhow::Result<TlsParameters> {
        tls_parameters(&self.url, &self.config)
    }
}
