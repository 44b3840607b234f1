//! Per-destination shaping (`[shaping.NAME]`): which *site* a domain's mail goes to, and the
//! limits on each (site, egress address) lane, kept through the relay pacer (so shared by
//! every process through Redis, per process without it).
//!
//! A site is the set of MX hosts a domain resolves to (KumoMTA's idea): domains that share
//! their MX hosts share one site, so one cap. A shaping entry that claims a host by its
//! `mx_suffix` makes every domain with such a host one site of that entry's name (every
//! Google-hosted domain shares Google's limits); the others are each their own MX set under
//! `[shaping.default]`'s limits.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Direct, client::Session};
use crate::{
    config::{DEFAULT_SHAPING, ShapingConfig, TlsRequirement},
    delivery::{
        dns::{MxHost, Route},
        reply::Reply,
        tls_policy::{DomainPolicy, TlsInfo},
    },
    ratelimit::pace::{Lane, PaceStatus, Rate, RelayPacer, Reservation, SLOT_POLL, SLOT_TTL, Slot},
};

/// The longest a delivery waits for its site's rate or a connection slot while holding its
/// job; beyond it the job goes back to the queue (not an attempt). As for relays.
pub const HORIZON: Duration = Duration::from_secs(2);
/// What a site's lane is called when the OS picks the source address.
pub const ANY_EGRESS: &str = "any";
/// Metrics label of the sites no named entry claims: the label set stays bounded.
pub const OTHER: &str = "other";

/// One site's limits per egress address.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Connections open at once from one egress address, across every process.
    pub max_connections: Option<u32>,
    /// Transactions a second from one egress address, across every process.
    pub max_rate_per_sec: Option<f64>,
    /// Transactions one connection carries before it is closed.
    pub max_messages_per_connection: u32,
    /// Whether mail to the site needs verified TLS whatever its domains publish.
    pub tls: TlsRequirement,
}

impl Limits {
    fn of(config: &ShapingConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            max_rate_per_sec: config.max_rate_per_sec,
            max_messages_per_connection: config
                .max_messages_per_connection
                .unwrap_or(super::MAX_DELIVERIES),
            tls: config.tls.unwrap_or_default(),
        }
    }

    fn rate(&self) -> Option<Rate> {
        self.max_rate_per_sec.map(|r| Rate::per_sec(r, 1))
    }
}

/// Where a domain's mail goes, for limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// The shaping entry that governs it (`default` for the unclaimed).
    pub shaping: String,
    /// Its name in the pacer: the entry's name, or the MX hosts for an unclaimed site.
    pub key: String,
    /// Its MX hosts, sorted.
    pub mx: Vec<String>,
    pub limits: Limits,
}

impl Site {
    /// Its label on metrics: the entry's name, or `other`.
    pub fn label(&self) -> &str {
        if self.shaping == DEFAULT_SHAPING {
            OTHER
        } else {
            &self.shaping
        }
    }
}

/// The shaping entries in force, built once from `Config::shaping_map`.
#[derive(Debug, Clone)]
pub struct Shaping {
    /// Named entries: (name, lower-case suffixes each starting with `.`, limits).
    named: Vec<(String, Vec<String>, Limits)>,
    default: Limits,
}

impl Default for Shaping {
    fn default() -> Self {
        Self::new(&crate::config::Config::default().shaping_map())
    }
}

impl Shaping {
    pub fn new(entries: &BTreeMap<String, ShapingConfig>) -> Self {
        let named = entries
            .iter()
            .filter(|(name, _)| name.as_str() != DEFAULT_SHAPING)
            .map(|(name, entry)| {
                let suffixes = entry
                    .mx_suffix
                    .iter()
                    .map(|s| format!(".{}", s.trim_start_matches('.').to_ascii_lowercase()))
                    .collect();
                (name.clone(), suffixes, Limits::of(entry))
            })
            .collect();
        let default = entries
            .get(DEFAULT_SHAPING)
            .map(Limits::of)
            .unwrap_or(Limits {
                max_connections: None,
                max_rate_per_sec: None,
                max_messages_per_connection: super::MAX_DELIVERIES,
                tls: TlsRequirement::Opportunistic,
            });
        Self { named, default }
    }

    /// The names of the entries (for metrics and the operator's views), `other` last.
    pub fn labels(&self) -> Vec<&str> {
        self.named
            .iter()
            .map(|(n, _, _)| n.as_str())
            .chain([OTHER])
            .collect()
    }

    /// The site of a domain whose mail goes to `hosts`.
    pub fn site(&self, hosts: &[MxHost]) -> Site {
        let mut mx: Vec<String> = hosts
            .iter()
            .map(|h| h.name.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        mx.sort();
        mx.dedup();
        // The hosts in preference order: the most preferred claimed one decides.
        let claimed = hosts.iter().find_map(|host| {
            let name = format!(".{}", host.name.trim_end_matches('.').to_ascii_lowercase());
            self.named
                .iter()
                .find(|(_, suffixes, _)| suffixes.iter().any(|s| name.ends_with(s.as_str())))
        });
        match claimed {
            Some((name, _, limits)) => Site {
                shaping: name.clone(),
                key: name.clone(),
                mx,
                limits: *limits,
            },
            None => Site {
                shaping: DEFAULT_SHAPING.to_string(),
                key: mx.join(","),
                mx,
                limits: self.default,
            },
        }
    }
}

/// Says QUIT on `pooled` and frees its slot, in the background.
fn close(pacer: &Arc<RelayPacer>, pooled: Pooled) {
    let pacer = pacer.clone();
    tokio::spawn(async move {
        pooled.session.quit().await;
        if let Some(slot) = pooled.slot {
            pacer.release(slot).await;
        }
    });
}

/// How a delivery reaches a host ([`Direct::connection`]): a pooled session, or a new one,
/// with its site's connection slot when the site caps connections.
pub(super) enum Connection {
    Reused(Box<Pooled>),
    New(Option<Slot>),
}

/// A session kept in the pool with the connection slot it holds.
pub(super) struct Pooled {
    pub(super) session: Session,
    pub(super) slot: Option<Slot>,
    /// When the slot was last renewed.
    pub(super) renewed: Instant,
}

/// A site as reached from one egress address, for the operator.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LaneState {
    /// The egress address (`any` when the OS picks the source).
    pub addr: String,
    /// Connections open now from this address to the site (every process, when shared).
    pub open_connections: u32,
    /// The last throttling reply from the site to this address, as this instance saw it.
    pub last_throttle: Option<String>,
    pub last_throttle_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub pacing: PaceStatus,
}

/// Why a delivery did not happen now: it goes back to the queue for `wait` (not an
/// attempt), keeping the throttling reply that caused it, if any.
#[derive(Debug, Clone)]
pub struct NotNow {
    pub wait: Duration,
    pub why: String,
    pub reply: Option<Reply>,
}

/// What one delivery came to for one recipient.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The attempt's reply.
    Done(Reply),
    /// Not an attempt: the site had no room, or asked to slow down.
    NotNow(NotNow),
}

/// This process's side of shaping: names for its connection slots in Redis, and the last
/// throttling reply it saw on each lane and the TLS of each site (for the operator's views).
#[derive(Debug)]
pub(super) struct Holders {
    process: String,
    next: AtomicU64,
    throttles: Mutex<HashMap<String, (DateTime<Utc>, String)>>,
    tls: Mutex<HashMap<String, SiteTls>>,
}

/// The TLS policy a site's mail went under lately, and its last TLS failure, as this
/// instance saw them (`GET /v1/destinations`).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SiteTls {
    /// The policy of the last attempt: `dane`, `mta-sts`, `required` (the site's shaping entry
    /// has `tls = "required"`), `opportunistic` or `none` (no STARTTLS, nothing asked for it).
    pub policy: String,
    /// The TLSA set's or the MTA-STS policy's id.
    pub policy_id: Option<String>,
    /// The last thing a policy found wrong with a session to the site (kept until another).
    pub last_failure: Option<String>,
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// Lanes whose last throttling reply is remembered; beyond it the memory starts over.
const MAX_REMEMBERED: usize = 1024;

impl Default for Holders {
    fn default() -> Self {
        Self {
            process: uuid::Uuid::now_v7().to_string(),
            next: AtomicU64::new(0),
            throttles: Mutex::default(),
            tls: Mutex::default(),
        }
    }
}

impl Holders {
    fn remember(&self, site: &Site, egress: &str, reply: &str) {
        let mut seen = self.throttles.lock().expect("not poisoned");
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(
            format!("{}@{egress}", site.key),
            (Utc::now(), reply.to_string()),
        );
    }

    /// Notes the policy an attempt to `site` went under (over `tls`, if any), and the last
    /// of its failures. Once per delivery: the site's entry is found without copying its key.
    pub(super) fn note_tls(&self, site: &Site, policy: &DomainPolicy, tls: Option<&TlsInfo>) {
        let (label, id) = policy.label(tls);
        let mut seen = self.tls.lock().expect("not poisoned");
        if !seen.contains_key(&site.key) {
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
            seen.insert(site.key.clone(), SiteTls::default());
        }
        let entry = seen.get_mut(&site.key).expect("inserted above");
        if entry.policy != label {
            entry.policy = label.to_string();
        }
        entry.policy_id = id;
        if let Some(last) = policy.failures.last() {
            entry.last_failure = Some(last.clone());
            entry.last_failure_at = Some(Utc::now());
        }
    }

    fn last_throttle(&self, site: &Site, egress: &str) -> Option<(DateTime<Utc>, String)> {
        let seen = self.throttles.lock().expect("not poisoned");
        seen.get(&format!("{}@{egress}", site.key)).cloned()
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}:{n}", self.process)
    }
}

impl Direct {
    pub(super) fn lane<'a>(site: &'a Site, egress: &'a str) -> Lane<'a> {
        Lane::Site {
            site: &site.key,
            egress,
        }
    }

    /// A moment from the site's schedule for this egress address: now, after a wait within
    /// [`HORIZON`] (waited out here), or not now (paused, or no room in its rate).
    pub(super) async fn admit(&self, site: &Site, egress: &str) -> Result<(), NotNow> {
        let lane = Self::lane(site, egress);
        match self
            .pacer
            .reserve(lane, site.limits.rate(), HORIZON, true)
            .await
        {
            Reservation::Reserved { wait } => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Reservation::Refused { retry_after } => {
                let state = self.pacer.status(lane, true);
                let why = match state.paused_until {
                    Some(until) => format!(
                        "site {} is paused from {egress} until {} after a throttling reply",
                        site.label_with_key(),
                        until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    ),
                    None => format!(
                        "no room in the rate of site {} from {egress}",
                        site.label_with_key()
                    ),
                };
                self.not_now(site, "rate");
                Err(NotNow {
                    wait: retry_after,
                    why,
                    reply: None,
                })
            }
        }
    }

    /// A session to `host` from `source`: an idle one from the pool (RSET, its slot renewed),
    /// or room for a new one, with the site's connection slot when the site caps connections.
    /// While every slot is taken it waits up to [`HORIZON`] for a slot or for a session put
    /// back by another of this process's deliveries, whichever comes first: waiting for a
    /// slot alone, a delivery would go back to the queue while the sessions its neighbours
    /// finished with sat idle holding the slots.
    pub(super) async fn connection(
        &self,
        site: &Site,
        egress: &str,
        source: Option<IpAddr>,
        host: &str,
    ) -> Result<Connection, NotNow> {
        let deadline = tokio::time::Instant::now() + HORIZON;
        let mut holder = None;
        loop {
            let returned = self.pool.returned();
            tokio::pin!(returned);
            returned.as_mut().enable();
            let (pooled, stale) = self.pool.take(source, host);
            for old in stale {
                self.close(old);
            }
            if let Some(mut pooled) = pooled {
                if pooled.session.reset().await && self.renew(&mut pooled, site).await {
                    return Ok(Connection::Reused(Box::new(pooled)));
                }
                self.close(pooled);
                continue;
            }
            let Some(max) = site.limits.max_connections else {
                return Ok(Connection::New(None));
            };
            let holder = holder.get_or_insert_with(|| self.holders.next());
            if let Some(slot) = self
                .pacer
                .acquire(Self::lane(site, egress), max, holder)
                .await
            {
                return Ok(Connection::New(Some(slot)));
            }
            if tokio::time::Instant::now() >= deadline {
                self.not_now(site, "connections");
                return Err(NotNow {
                    wait: Duration::from_secs(1),
                    why: format!(
                        "all {max} connections to site {} from {egress} are in use",
                        site.label_with_key()
                    ),
                    reply: None,
                });
            }
            // Another process's slot frees itself with no word to this one: look again soon.
            let _ = tokio::time::timeout(SLOT_POLL, returned).await;
        }
    }

    /// Keeps a pooled session's slot held; false when it was lost to others (then the
    /// session must close rather than exceed the cap).
    pub(super) async fn renew(&self, pooled: &mut Pooled, site: &Site) -> bool {
        let (Some(slot), Some(max)) = (&pooled.slot, site.limits.max_connections) else {
            return true;
        };
        if pooled.renewed.elapsed() < SLOT_TTL / 3 {
            return true;
        }
        pooled.renewed = Instant::now();
        self.pacer.renew(slot, max).await
    }

    /// Says QUIT and frees the slot, in the background.
    pub(super) fn close(&self, pooled: Pooled) {
        close(&self.pacer, pooled);
    }

    /// Keeps `pooled` for the next delivery to `host`, or closes it when it is spent; the
    /// first session kept starts this relay's sweep of idle sessions.
    pub(super) fn keep(&self, source: Option<IpAddr>, host: &str, pooled: Pooled, site: &Site) {
        if let Some(spent) = self.pool.put(
            source,
            host,
            pooled,
            site.limits.max_messages_per_connection,
        ) {
            self.close(spent);
        }
        self.sweeping.get_or_init(|| {
            let pacer = self.pacer.clone();
            crate::delivery::sweep::spawn(Arc::downgrade(&self.pool), move |pool| {
                for stale in pool.sweep() {
                    close(&pacer, stale);
                }
            });
        });
    }

    /// Frees a slot whose connection never opened.
    pub(super) async fn give_back(&self, slot: Option<Slot>) {
        if let Some(slot) = slot {
            self.pacer.release(slot).await;
        }
    }

    /// The site throttled (`why` says how): pause it for this egress address, every
    /// process, and say for how long.
    pub(super) async fn throttled(&self, site: &Site, egress: &str, why: &str) -> Duration {
        let pause = self.pacer.throttled(Self::lane(site, egress), true).await;
        self.holders.remember(site, egress, why);
        let label = site.label().to_string();
        metrics::counter!("mailgate_site_throttled_total", "site" => label.clone()).increment(1);
        metrics::gauge!("mailgate_site_backoff_seconds", "site" => label).set(pause.as_secs_f64());
        tracing::warn!(
            site = site.key,
            egress,
            pause_ms = pause.as_millis() as u64,
            reply = why,
            "site throttled: pausing it for this egress address"
        );
        pause
    }

    /// What each recipient's reply of one transaction comes to: a throttling reply pauses
    /// the site for this egress address and puts its recipient back (not an attempt).
    pub(super) async fn outcomes(
        &self,
        site: &Site,
        egress: &str,
        replies: Vec<Reply>,
        throttled: Option<Reply>,
    ) -> Vec<Delivery> {
        let pause = match &throttled {
            Some(reply) => {
                let text = reply.response.as_deref().unwrap_or_default();
                Some(self.throttled(site, egress, text).await)
            }
            None => None,
        };
        replies
            .into_iter()
            .map(|reply| match pause {
                Some(pause) if reply.is_throttling() => {
                    self.not_now(site, "throttled");
                    Delivery::NotNow(NotNow {
                        wait: pause,
                        why: format!(
                            "site {} throttled {egress} ({}): paused {} ms",
                            site.label_with_key(),
                            reply.response.as_deref().unwrap_or_default(),
                            pause.as_millis()
                        ),
                        reply: Some(reply),
                    })
                }
                _ => {
                    self.count(site, reply.status.as_str());
                    Delivery::Done(reply)
                }
            })
            .collect()
    }

    pub(super) fn not_now(&self, site: &Site, reason: &'static str) {
        metrics::counter!("mailgate_site_postponed_total",
            "site" => site.label().to_string(), "reason" => reason)
        .increment(1);
    }

    /// Counts one recipient's outcome at its site.
    pub(super) fn count(&self, site: &Site, outcome: &'static str) {
        metrics::counter!("mailgate_site_deliveries_total",
            "site" => site.label().to_string(), "outcome" => outcome)
        .increment(1);
    }

    /// The pacer (and so the Redis backend) sites are shaped through.
    pub fn with_pacer(&mut self, pacer: Arc<RelayPacer>) {
        self.pacer = pacer;
    }

    pub fn with_shaping(&mut self, shaping: Arc<Shaping>) {
        self.shaping = shaping;
    }

    pub fn shaping(&self) -> &Shaping {
        &self.shaping
    }

    /// The site `domain`'s mail goes to, from DNS (whose cache answers for domains with mail
    /// waiting); `None` when DNS says nothing useful within `timeout`.
    pub async fn site_of(&self, domain: &str, timeout: Duration) -> Option<Site> {
        match tokio::time::timeout(timeout, self.dns.route(domain)).await {
            Ok(Ok(Route::Hosts(hosts))) => Some(self.shaping.site(&hosts)),
            _ => None,
        }
    }

    /// One lane's state across every process (pause, back-off, open connections), and the
    /// last throttling reply this process saw on it.
    pub async fn lane_state(&self, site: &Site, egress: &str) -> LaneState {
        let lane = Self::lane(site, egress);
        let last = self.holders.last_throttle(site, egress);
        LaneState {
            addr: egress.to_string(),
            open_connections: self.pacer.open_connections(lane).await,
            last_throttle_at: last.as_ref().map(|(at, _)| *at),
            last_throttle: last.map(|(_, reply)| reply),
            pacing: self.pacer.peek(lane).await,
        }
    }

    /// The TLS of the last attempt this instance made to `site`.
    pub fn site_tls(&self, site: &Site) -> Option<SiteTls> {
        self.holders
            .tls
            .lock()
            .expect("not poisoned")
            .get(&site.key)
            .cloned()
    }

    /// The egress addresses new connections go from (`any` when the OS picks).
    pub fn egress_names(&self) -> Vec<String> {
        if self.config.egress.is_empty() {
            vec![ANY_EGRESS.to_string()]
        } else {
            self.config
                .egress
                .iter()
                .map(|e| e.addr.to_string())
                .collect()
        }
    }
}

/// Whether an SMTP reply (a greeting's, say) asks mailgate to slow down.
pub(super) fn throttling(reply: &super::client::Reply) -> bool {
    Reply::transient(
        Some(i32::from(reply.code)),
        Some(reply.text()),
        String::new(),
        None,
    )
    .is_throttling()
}

impl Site {
    /// `google`, or `default (mx1.example.net,mx2.example.net)` for an unclaimed site.
    pub fn label_with_key(&self) -> String {
        if self.shaping == DEFAULT_SHAPING {
            format!("{} ({})", self.shaping, self.key)
        } else {
            self.shaping.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, preference: u16) -> MxHost {
        MxHost {
            name: name.into(),
            preference,
            addrs: Vec::new(),
            implicit: false,
        }
    }

    #[test]
    fn sites_are_claimed_by_suffix_or_are_their_mx_set() {
        let shaping = Shaping::default();
        let gmail = shaping.site(&[
            host("gmail-smtp-in.l.google.com.", 5),
            host("alt1.gmail-smtp-in.l.google.com", 10),
        ]);
        assert_eq!(
            (gmail.shaping.as_str(), gmail.label()),
            ("google", "google")
        );
        assert_eq!(gmail.limits.max_connections, Some(5));
        // A Workspace domain with the same MX hosts is the same site.
        let workspace = shaping.site(&[host("aspmx.l.google.com", 1)]);
        assert_eq!(workspace.key, "google");
        let outlook = shaping.site(&[host("contoso-com.mail.protection.outlook.com", 0)]);
        assert_eq!(outlook.shaping, "microsoft");
        // Not fooled by a name that only ends in the same letters.
        let other = shaping.site(&[host("mx.notgoogle.com", 10), host("mx2.example.net", 20)]);
        assert_eq!(other.shaping, DEFAULT_SHAPING);
        assert_eq!(other.label(), OTHER);
        assert_eq!(other.key, "mx.notgoogle.com,mx2.example.net");
        let same = shaping.site(&[host("MX2.example.net.", 5), host("mx.notgoogle.com", 5)]);
        assert_eq!(same.key, other.key, "one MX set, one site");
        assert_eq!(other.limits.max_messages_per_connection, 100);
    }
}
