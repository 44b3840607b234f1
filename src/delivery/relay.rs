//! Upstream relays: named, with pooled connections, built from URLs, paced.
//!
//! Each relay keeps its own small pool of lettre connections. Plain and STARTTLS ones are on
//! sockets with `TCP_NODELAY`: lettre writes the DATA terminator as a separate write, which
//! on a Nagle socket waits for the peer's delayed ACK (~40 ms a message).
//!
//! A relay with `max_rate_per_sec` or `max_connections` is paced through the [`RelayPacer`]
//! (shared by every process through Redis): a send first asks the schedule for a moment
//! ([`Relay::admit`]), and a new connection first takes a slot. Both wait at most
//! [`HORIZON`]; beyond it the relay is "not now" and the job goes back to the queue without
//! counting an attempt.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use lettre::{
    address::Envelope,
    transport::smtp::{
        Error as SmtpError,
        authentication::Credentials,
        client::{AsyncSmtpConnection, TlsParameters},
        response::Response,
    },
};

use crate::{
    config::RelayConfig,
    ratelimit::pace::{Admission, PaceStatus, Rate, RelayPacer, SLOT_TTL, Slot},
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
    url: RelayUrl,
    config: RelayConfig,
    timeout: Duration,
    /// Idle connections of the own pool; a connection is returned only after a clean send.
    idle: std::sync::Mutex<Vec<Pooled>>,
    health: std::sync::Mutex<RelayHealth>,
    rate: Option<Rate>,
    pacer: Arc<RelayPacer>,
    /// Names this process's connection slots in Redis.
    holder: String,
    next_holder: std::sync::atomic::AtomicU64,
}

/// A connection with the slot it holds (when the relay caps connections).
struct Pooled {
    conn: AsyncSmtpConnection,
    slot: Option<Slot>,
    renewed: std::time::Instant,
}

/// What this process has seen of a relay lately (per instance, not shared).
// Named `Health` in openapi.json as it stands, where it collides with the `/healthz` body;
// kept byte-identical here, to be renamed with the spec.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Health)]
pub struct RelayHealth {
    pub attempts: u64,
    /// Attempts without an SMTP answer, or with a 4xx for the whole transaction.
    pub failures: u64,
    pub consecutive_failures: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_success_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Moving average of attempt latency.
    pub avg_latency_ms: f64,
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

/// Why an attempt got no SMTP answer.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(#[from] std::io::Error),
    #[error("{0}")]
    Setup(String),
    /// Every connection slot stayed taken for the whole horizon: not an attempt.
    #[error("all {0} connections to the relay are in use")]
    Busy(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TlsMode {
    None,
    Opportunistic,
    Required,
    Implicit,
}

#[derive(Clone, PartialEq, Eq)]
struct RelayUrl {
    host: String,
    port: u16,
    tls: TlsMode,
    credentials: Option<(String, String)>,
}

// By hand, so that a logged relay never shows its password.
impl std::fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

/// `smtp://[user:pass@]host[:port][?tls=none|opportunistic|required]` (default opportunistic)
/// or `smtps://[user:pass@]host[:port]` (implicit TLS, port 465).
fn parse_url(url: &str) -> anyhow::Result<RelayUrl> {
    let (scheme, rest) = url
        .split_once("://")
        .context("relay URL needs a scheme (smtp:// or smtps://)")?;
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a.trim_end_matches('/'), Some(q)),
        None => (rest.trim_end_matches('/'), None),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let credentials = userinfo
        .map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            Ok::<_, anyhow::Error>((percent_decode(user)?, percent_decode(pass)?))
        })
        .transpose()?;
    let mut tls = match scheme {
        "smtp" => TlsMode::Opportunistic,
        "smtps" => TlsMode::Implicit,
        other => bail!("unsupported relay scheme `{other}` (use smtp or smtps)"),
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("tls", value)) if tls != TlsMode::Implicit => {
                tls = match value {
                    "none" => TlsMode::None,
                    "opportunistic" => TlsMode::Opportunistic,
                    "required" | "starttls" => TlsMode::Required,
                    other => bail!("unknown tls mode `{other}` (none, opportunistic, required)"),
                }
            }
            _ => bail!("unknown relay URL parameter `{pair}`"),
        }
    }
    let default_port = if tls == TlsMode::Implicit { 465 } else { 25 };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
            h.to_string(),
            p.parse().with_context(|| format!("bad port `{p}`"))?,
        ),
        _ => (hostport.to_string(), default_port),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        bail!("relay URL has no host");
    }
    Ok(RelayUrl {
        host,
        port,
        tls,
        credentials,
    })
}

fn percent_decode(s: &str) -> anyhow::Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])?;
            out.push(u8::from_str_radix(hex, 16).with_context(|| format!("bad escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8(out)?)
}

impl Relay {
    pub fn build(name: &str, config: &RelayConfig, timeout: Duration) -> anyhow::Result<Self> {
        let url = parse_url(config.url.expose()).with_context(|| format!("relay `{name}`"))?;
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
    fn shared(&self) -> bool {
        self.rate.is_some() || self.config.max_connections.is_some()
    }

    /// A moment to send: now, after a wait within [`HORIZON`] (waited out here), or not now.
    pub async fn admit(&self) -> Result<(), Duration> {
        match self.pacer.reserve(&self.name, self.rate, HORIZON).await {
            Admission::Reserved { wait } => {
                if !wait.is_zero() {
                    metrics::histogram!("mailgate_relay_pace_wait_seconds", "relay" => self.name.clone())
                        .record(wait.as_secs_f64());
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Admission::Refused { retry_after } => Err(retry_after),
        }
    }

    /// The relay answered a throttling reply: pause it (every process, when shared) and
    /// say for how long.
    pub async fn throttled(&self) -> Duration {
        self.pacer.throttled(&self.name, self.shared()).await
    }

    /// Its rate, connection cap and back-off as this process last saw them.
    pub fn pacing(&self) -> Pacing {
        Pacing {
            max_rate_per_sec: self.config.max_rate_per_sec,
            burst: self.rate.map(|r| r.burst),
            max_connections: self.config.max_connections,
            state: self.pacer.status(&self.name, self.shared()),
        }
    }

    /// Records one attempt's result for health reporting and metrics.
    pub fn record(&self, latency: Duration, failure: Option<&str>) {
        let mut h = self.health.lock().expect("not poisoned");
        h.attempts += 1;
        let ms = latency.as_secs_f64() * 1000.0;
        h.avg_latency_ms = if h.attempts == 1 {
            ms
        } else {
            h.avg_latency_ms * 0.9 + ms * 0.1
        };
        match failure {
            None => {
                h.consecutive_failures = 0;
                h.last_success_at = Some(chrono::Utc::now());
            }
            Some(err) => {
                h.failures += 1;
                h.consecutive_failures += 1;
                h.last_error = Some(err.to_string());
                h.last_error_at = Some(chrono::Utc::now());
                metrics::counter!("mailgate_relay_failures_total", "relay" => self.name.clone())
                    .increment(1);
            }
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

    /// Relays one message to one envelope: connecting and the transaction are each bounded
    /// by the attempt timeout.
    pub async fn send(&self, envelope: &Envelope, mime: &[u8]) -> Result<Response, RelayError> {
        let mut pooled = self.checkout().await?;
        match tokio::time::timeout(self.timeout, pooled.conn.send(envelope, mime)).await {
            Ok(Ok(response)) => {
                self.checkin(pooled).await;
                Ok(response)
            }
            Ok(Err(err)) => {
                self.close(pooled).await;
                Err(err.into())
            }
            // The half-used connection is dropped, never pooled: its late reply would
            // answer the next command.
            Err(_) => {
                self.give_back(pooled.slot).await;
                Err(RelayError::Timeout(self.timeout))
            }
        }
    }

    /// An idle connection that still answers NOOP (and still holds its slot), or a new one.
    async fn checkout(&self) -> Result<Pooled, RelayError> {
        loop {
            let idle = self.idle.lock().expect("not poisoned").pop();
            let Some(mut pooled) = idle else {
                let slot = self.take_slot().await?;
                return match tokio::time::timeout(self.timeout, self.open()).await {
                    Ok(Ok(conn)) => Ok(Pooled {
                        conn,
                        slot,
                        renewed: std::time::Instant::now(),
                    }),
                    Ok(Err(err)) => {
                        self.give_back(slot).await;
                        Err(err)
                    }
                    Err(_) => {
                        self.give_back(slot).await;
                        Err(RelayError::Timeout(self.timeout))
                    }
                };
            };
            // A relay that stopped answering must not hold the attempt: NOOP is bounded like
            // every other step.
            let mut usable = !pooled.conn.has_broken()
                && tokio::time::timeout(self.timeout, pooled.conn.test_connected())
                    .await
                    .unwrap_or(false);
            if usable
                && let (Some(slot), Some(max)) = (&pooled.slot, self.config.max_connections)
                && pooled.renewed.elapsed() > SLOT_TTL / 3
            {
                usable = self.pacer.renew(slot, max).await;
                pooled.renewed = std::time::Instant::now();
            }
            if usable {
                return Ok(pooled);
            }
            self.close(pooled).await;
        }
    }

    /// Says QUIT (bounded: a relay that stopped answering gets no wait) and frees the slot.
    async fn close(&self, mut pooled: Pooled) {
        let _ = tokio::time::timeout(Duration::from_secs(5), pooled.conn.abort()).await;
        self.give_back(pooled.slot).await;
    }

    /// A connection slot when the relay caps connections, waiting up to [`HORIZON`].
    async fn take_slot(&self) -> Result<Option<Slot>, RelayError> {
        let Some(max) = self.config.max_connections else {
            return Ok(None);
        };
        let holder = format!(
            "{}:{}",
            self.holder,
            self.next_holder
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let deadline = tokio::time::Instant::now() + HORIZON;
        loop {
            if let Some(slot) = self.pacer.acquire(&self.name, max, &holder).await {
                return Ok(Some(slot));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RelayError::Busy(max));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn give_back(&self, slot: Option<Slot>) {
        if let Some(slot) = slot {
            self.pacer.release(slot).await;
        }
    }

    async fn checkin(&self, pooled: Pooled) {
        if pooled.conn.has_broken() {
            return self.give_back(pooled.slot).await;
        }
        let surplus = {
            let mut idle = self.idle.lock().expect("not poisoned");
            if idle.len() < self.pool_size() {
                idle.push(pooled);
                None
            } else {
                Some(pooled)
            }
        };
        if let Some(pooled) = surplus {
            self.close(pooled).await;
        }
    }

    /// Idle connections kept: `pool_size` (`Config::relay_map` fills in the delivery
    /// concurrency when unset), and never more than the connection cap.
    fn pool_size(&self) -> usize {
        let size = self
            .config
            .pool_size
            .unwrap_or(crate::config::DeliveryConfig::default().concurrency as u32)
            .max(1);
        self.config
            .max_connections
            .map_or(size, |max| size.min(max)) as usize
    }

    /// Connect, EHLO, STARTTLS as configured, AUTH when credentials are given.
    async fn open(&self) -> Result<AsyncSmtpConnection, RelayError> {
        use lettre::transport::smtp::{authentication::Mechanism, extension::ClientId};
        let hello = ClientId::default();
        let tls = |relay: &Relay| {
            relay
                .tls_parameters()
                .map_err(|e| RelayError::Setup(format!("{e:#}")))
        };
        let mut conn = if self.url.tls == TlsMode::Implicit {
            AsyncSmtpConnection::connect_tokio1(
                (self.url.host.as_str(), self.url.port),
                Some(self.timeout),
                &hello,
                Some(tls(self)?),
                None,
            )
            .await?
        } else {
            let tcp =
                tokio::net::TcpStream::connect((self.url.host.as_str(), self.url.port)).await?;
            tcp.set_nodelay(true)?;
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await?
        };
        match self.url.tls {
            // lettre refuses when the relay does not offer STARTTLS: never plain text here.
            TlsMode::Required => conn.starttls(tls(self)?, &hello).await?,
            TlsMode::Opportunistic if conn.can_starttls() => {
                conn.starttls(tls(self)?, &hello).await?
            }
            _ => {}
        }
        if let Some((user, pass)) = &self.url.credentials {
            let credentials = Credentials::new(user.clone(), pass.clone());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await?;
        }
        Ok(conn)
    }

    fn tls_parameters(&self) -> anyhow::Result<TlsParameters> {
        tls_parameters(&self.url, &self.config)
    }

    /// Walks through a session step by step (connect and EHLO, STARTTLS, AUTH) on a fresh
    /// connection, so an operator sees exactly which step fails. For `mailgate doctor`.
    pub async fn diagnose(&self) -> Vec<(String, Result<String, String>)> {
        use lettre::transport::smtp::{
            authentication::Mechanism, client::AsyncSmtpConnection, extension::ClientId,
        };
        let mut steps = Vec::new();
        let hello = ClientId::default();
        let started = std::time::Instant::now();
        let wrapper = match self.url.tls {
            TlsMode::Implicit => match self.tls_parameters() {
                Ok(p) => Some(p),
                Err(e) => {
                    steps.push(("connect".into(), Err(format!("{e:#}"))));
                    return steps;
                }
            },
            _ => None,
        };
        let connected = AsyncSmtpConnection::connect_tokio1(
            (self.url.host.as_str(), self.url.port),
            Some(self.timeout),
            &hello,
            wrapper,
            None,
        )
        .await;
        let mut conn = match connected {
            Ok(c) => c,
            Err(e) => {
                steps.push(("connect and EHLO".into(), Err(e.to_string())));
                return steps;
            }
        };
        steps.push((
            "connect and EHLO".into(),
            Ok(format!(
                "{} in {} ms: {}",
                self.host,
                started.elapsed().as_millis(),
                conn.server_info()
            )),
        ));
        match self.url.tls {
            TlsMode::Required | TlsMode::Opportunistic => {
                let required = self.url.tls == TlsMode::Required;
                if conn.can_starttls() {
                    let result = match self.tls_parameters() {
                        Ok(p) => conn.starttls(p, &hello).await.map_err(|e| e.to_string()),
                        Err(e) => Err(format!("{e:#}")),
                    };
                    steps.push(("STARTTLS".into(), result.map(|()| "encrypted".to_string())));
                } else if required {
                    steps.push((
                        "STARTTLS".into(),
                        Err("required but not offered by the relay".into()),
                    ));
                } else {
                    steps.push((
                        "STARTTLS".into(),
                        Ok("not offered; continuing in plain text".into()),
                    ));
                }
            }
            TlsMode::Implicit => steps.push(("TLS".into(), Ok("implicit (smtps)".into()))),
            TlsMode::None => steps.push(("TLS".into(), Ok("disabled by ?tls=none".into()))),
        }
        if steps.iter().any(|(_, r)| r.is_err()) {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.abort()).await;
            return steps;
        }
        if let Some((user, pass)) = &self.url.credentials {
            let creds = Credentials::new(user.clone(), pass.clone());
            let result = conn
                .auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await;
            steps.push((
                "AUTH".into(),
                result
                    .map(|_| format!("accepted for user {user}"))
                    .map_err(|e| e.to_string()),
            ));
        } else {
            steps.push(("AUTH".into(), Ok("no credentials configured".into())));
        }
        let _ = conn.quit().await;
        steps
    }
}

/// TLS for this relay; `tls_insecure` accepts any certificate (self-signed test relays only).
fn tls_parameters(url: &RelayUrl, config: &RelayConfig) -> anyhow::Result<TlsParameters> {
    TlsParameters::builder(url.host.clone())
        .dangerous_accept_invalid_certs(config.tls_insecure)
        .dangerous_accept_invalid_hostnames(config.tls_insecure)
        .build_rustls()
        .context("TLS parameters")
}

/// Every configured relay by name. Empty means sandbox delivery.
pub struct Relays {
    relays: BTreeMap<String, Relay>,
    pools: BTreeMap<String, Vec<String>>,
}

impl Relays {
    pub fn build(
        configs: &BTreeMap<String, RelayConfig>,
        pools: &BTreeMap<String, Vec<String>>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut relays = BTreeMap::new();
        for (name, config) in configs {
            relays.insert(name.clone(), Relay::build(name, config, timeout)?);
        }
        for (pool, members) in pools {
            if members.is_empty() {
                anyhow::bail!("pool `{pool}` lists no relays");
            }
            if let Some(missing) = members.iter().find(|m| !relays.contains_key(*m)) {
                anyhow::bail!("pool `{pool}` names relay `{missing}`, which is not configured");
            }
        }
        Ok(Self {
            relays,
            pools: pools.clone(),
        })
    }

    /// Paces every relay through this pacer (shared through Redis when it has a backend);
    /// without it each relay paces within this process.
    pub fn with_pacer(mut self, pacer: Arc<RelayPacer>) -> Self {
        for relay in self.relays.values_mut() {
            relay.pacer = pacer.clone();
        }
        self
    }

    /// The relays to try, in order, for a pool or relay name, or the default: pool
    /// `default`, else relay `default`, else the first relay.
    pub fn chain(&self, name: Option<&str>) -> Option<Vec<&Relay>> {
        let name = match name {
            Some(n) => n,
            None if self.pools.contains_key(crate::config::DEFAULT_RELAY) => {
                crate::config::DEFAULT_RELAY
            }
            None => return self.pick(None).map(|r| vec![r]),
        };
        match self.pools.get(name) {
            Some(members) => Some(members.iter().filter_map(|m| self.relays.get(m)).collect()),
            None => self.relays.get(name).map(|r| vec![r]),
        }
    }

    /// Pools that list this relay.
    pub fn pools_of(&self, relay: &str) -> Vec<String> {
        self.pools
            .iter()
            .filter(|(_, members)| members.iter().any(|m| m == relay))
            .map(|(p, _)| p.clone())
            .collect()
    }

    pub fn is_sandbox(&self) -> bool {
        self.relays.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.relays.contains_key(name) || self.pools.contains_key(name)
    }

    /// The named relay, or the default (`default`, else the first configured).
    pub fn pick(&self, name: Option<&str>) -> Option<&Relay> {
        match name {
            Some(n) => self.relays.get(n),
            None => self
                .relays
                .get(crate::config::DEFAULT_RELAY)
                .or_else(|| self.relays.values().next()),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Relay> {
        self.relays.values()
    }

    pub fn describe(&self) -> String {
        if self.relays.is_empty() {
            return "sandbox (no relay configured; nothing leaves this machine)".into();
        }
        self.relays
            .values()
            .map(|r| format!("{}={}", r.name, r.host))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relay_urls() {
        let u = parse_url("smtp://bob:p%40ss@mx.example.com:587?tls=required").unwrap();
        assert_eq!(u.host, "mx.example.com");
        assert_eq!(u.port, 587);
        assert_eq!(u.tls, TlsMode::Required);
        assert_eq!(u.credentials, Some(("bob".into(), "p@ss".into())));
        let u = parse_url("smtps://mx.example.com").unwrap();
        assert_eq!((u.port, u.tls), (465, TlsMode::Implicit));
        let u = parse_url("smtp://127.0.0.1:2526?tls=none").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("127.0.0.1", 2526, TlsMode::None)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("smtp://x?tls=maybe").is_err());
    }
}
