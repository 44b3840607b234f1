//! Direct delivery (`relays.NAME.mx = true`): each recipient domain's own mail servers, found
//! in DNS, instead of an upstream relay.
//!
//! For a message's recipients at one domain (`batch`: one transaction, up to 100 of them) it
//! walks the domain's route (`dns`): MX hosts by preference, each host's addresses in turn,
//! moving on when a connection, its greeting, EHLO or STARTTLS fails. Once MAIL FROM is
//! sent the replies are final for this attempt: per recipient, 2xx delivered, 4xx deferred,
//! 5xx bounced. Sessions (`client`) are kept per (egress address, MX host) (`pool`); each new
//! one goes from an egress address chosen by weight, greeting with that address's name.
//! Each domain's MX hosts make its site, whose limits per egress address (`shaping`) every
//! attempt keeps to: a schedule, connection slots, and a pause after a throttling reply.

mod batch;
mod client;
mod pool;
pub mod shaping;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use tokio::sync::oneshot;

pub use batch::MAX_RECIPIENTS;
use batch::{Batches, Joined, Member};
use client::Session;
pub use pool::MAX_DELIVERIES;
use shaping::throttling;
pub use shaping::{Delivery, NotNow, Shaping, Site};

use super::{
    dns::{Dns, DnsFailure, MxHost, Route, is_private},
    health::RelayHealth,
    intl::{Intl, Smtputf8},
    reply::{Reply, enhanced_code},
    tls_policy::{TlsPolicies, tlsrpt::Failure},
};
use crate::{
    config::{RelayConfig, TlsRequirement},
    domain::RecipientStatus,
    queue::mail::Job,
    ratelimit::pace::RelayPacer,
};

/// SMTP's port: MX hosts are reached on it and nothing else (RFC 5321 §4.5.4).
const SMTP_PORT: u16 = 25;

/// One relay that delivers to each domain's MX.
pub struct Direct {
    pub name: String,
    config: RelayConfig,
    dns: Arc<Dns>,
    timeout: Duration,
    /// The EHLO name when no egress address names one: this host's name.
    default_helo: String,
    pool: Arc<pool::Pool>,
    /// Started with the first session kept: closes the ones idle too long.
    sweeping: std::sync::OnceLock<()>,
    batches: Batches,
    /// Limits per destination site, kept through `pacer` (see `shaping`).
    shaping: Arc<Shaping>,
    pacer: Arc<RelayPacer>,
    holders: shaping::Holders,
    /// Attempts that reached an MX (whatever it answered) succeed; those where DNS failed
    /// or no MX took a session fail. Per process.
    health: std::sync::Mutex<RelayHealth>,
    /// Recipient domains' TLS policies and the certificate trust (opportunistic until
    /// [`Direct::with_tls_policies`]).
    tls: Arc<TlsPolicies>,
}

/// The envelope of one message to one recipient, domains in A-labels.
pub struct Envelope<'a> {
    /// Empty for the null sender.
    pub from: &'a str,
    pub to: &'a str,
    /// Whether the addresses or headers need SMTPUTF8 of the MX (RFC 6531).
    pub intl: Intl,
}

impl Direct {
    pub fn build(
        name: &str,
        config: &RelayConfig,
        dns: Arc<Dns>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_string(),
            config: config.clone(),
            dns,
            timeout,
            default_helo: hostname(),
            pool: Default::default(),
            sweeping: Default::default(),
            batches: Default::default(),
            shaping: Default::default(),
            pacer: Arc::new(RelayPacer::local()),
            holders: Default::default(),
            health: Default::default(),
            tls: Arc::new(TlsPolicies::opportunistic()),
        })
    }

    /// Honours recipient domains' TLS policies (MTA-STS) with this trust.
    pub fn with_tls_policies(&mut self, tls: Arc<TlsPolicies>) {
        self.tls = tls;
    }

    /// The resolver this relay asks.
    pub fn dns(&self) -> Arc<Dns> {
        self.dns.clone()
    }

    /// What this process has seen of this relay lately.
    pub fn health(&self) -> RelayHealth {
        self.health.lock().expect("not poisoned").clone()
    }

    fn record(&self, started: std::time::Instant, failure: Option<&str>) {
        self.health
            .lock()
            .expect("not poisoned")
            .note(started.elapsed(), failure);
    }

    /// One line for `serve`'s start-up log and `/v1/relays`-like descriptions.
    pub fn describe(&self) -> String {
        match self.config.egress.len() {
            0 => "MX of each domain".into(),
            n => format!("MX of each domain, from {n} egress address(es)"),
        }
    }

    /// `mailgate doctor`'s check: every egress address must be one of this host's, or each
    /// connection from it would fail.
    pub fn diagnose(&self) -> Vec<(String, Result<String, String>)> {
        if self.config.egress.is_empty() {
            return vec![(
                "egress".into(),
                Ok("none: the OS picks each connection's source address".into()),
            )];
        }
        self.config
            .egress
            .iter()
            .map(|e| {
                let result = if can_bind(e.addr) {
                    Ok(format!(
                        "{} is an address of this host (EHLO {}, weight {})",
                        e.addr, e.helo, e.weight
                    ))
                } else {
                    Err(format!(
                        "{} is not an address of this host: connections from it would fail",
                        e.addr
                    ))
                };
                (format!("egress {}", e.addr), result)
            })
            .collect()
    }

    /// Delivers one recipient, in one transaction with the message's other recipients at
    /// the same domain when they are delivered at the same moment.
    pub async fn deliver(&self, job: &Job, envelope: &Envelope<'_>, mime: &[u8]) -> Delivery {
        let domain = envelope
            .to
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        let (tx, rx) = oneshot::channel();
        let member = Member {
            rcpt: envelope.to.to_string(),
            reply: tx,
        };
        let key = (
            job.message_id,
            domain.clone(),
            envelope.from.to_string(),
            envelope.intl.recipient,
        );
        if job.together <= 1 {
            // No other recipient of this message at this domain was claimed with it: nobody
            // to wait for.
            self.send_to_members(&domain, envelope, mime, vec![member])
                .await;
            return rx.await.unwrap_or_else(|_| cancelled());
        }
        match self.batches.join(key, member) {
            (Joined::Leader(lead), _) => {
                // Until every recipient claimed with it has joined, or GATHER has passed
                // (some may be waiting for a delivery slot).
                let deadline = tokio::time::Instant::now() + batch::GATHER;
                while lead.joined() < job.together as usize
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                let members = lead.take();
                self.send_to_members(&domain, envelope, mime, members).await;
            }
            (Joined::Alone, Some(member)) => {
                self.send_to_members(&domain, envelope, mime, vec![member])
                    .await;
            }
            _ => {}
        }
        rx.await.unwrap_or_else(|_| cancelled())
    }

    async fn send_to_members(
        &self,
        domain: &str,
        envelope: &Envelope<'_>,
        mime: &[u8],
        members: Vec<Member>,
    ) {
        let rcpts: Vec<String> = members.iter().map(|m| m.rcpt.clone()).collect();
        let replies = self.send(domain, envelope, mime, &rcpts).await;
        for (member, reply) in members.into_iter().zip(replies) {
            let _ = member.reply.send(reply);
        }
    }

    /// One attempt for `rcpts` (all at `domain`): what came of each, in order.
    async fn send(
        &self,
        domain: &str,
        envelope: &Envelope<'_>,
        mime: &[u8],
        rcpts: &[String],
    ) -> Vec<Delivery> {
        let all = |reply: Reply| vec![Delivery::Done(reply); rcpts.len()];
        let none_now = |not_now: NotNow| vec![Delivery::NotNow(not_now); rcpts.len()];
        let started = std::time::Instant::now();
        let hosts = match self.dns.route(domain).await {
            Ok(Route::Hosts(hosts)) => hosts,
            Ok(Route::NullMx) => {
                return all(permanent(
                    "5.1.10",
                    format!("the domain {domain} accepts no mail (null MX, RFC 7505)"),
                ));
            }
            Err(DnsFailure::NoSuchDomain(why)) => return all(permanent("5.1.2", why)),
            Err(DnsFailure::Transient(why)) => {
                self.record(started, Some(&why));
                let mut reply = Reply::transient(None, None, why, None);
                reply.enhanced = Some("4.4.3".into());
                return all(reply);
            }
        };
        let mut policy = self
            .tls
            .for_domain(domain, self.config.allow_private_mx)
            .await;
        let egress = self.config.pick_egress();
        let source = egress.map(|e| e.addr);
        let helo = egress.map_or(self.default_helo.as_str(), |e| e.helo.as_str());
        let site = self.shaping.site(&hosts);
        if site.limits.tls == TlsRequirement::Required {
            policy.required_by = Some(site.shaping.clone());
        }
        let egress_name =
            source.map_or_else(|| shaping::ANY_EGRESS.to_string(), |ip| ip.to_string());
        if let Err(not_now) = self.admit(&site, &egress_name).await {
            return none_now(not_now);
        }
        let mut tried = Vec::new();
        let mut refused_private = 0;
        let mut candidates = 0;
        // A throttling greeting or EHLO reply (`421`): the site is pushing back.
        let mut pushed_back: Option<String> = None;
        for host in &hosts {
            policy.begin_host();
            // DANE (TLSA under DNSSEC) first: it takes precedence over MTA-STS.
            let verifier = match self.tls.host_verifier(&mut policy, host).await {
                Ok(verifier) => verifier,
                Err(why) => {
                    self.tls.record(domain, &policy, &host.name, None);
                    tried.push(why);
                    continue;
                }
            };
            if let Err(why) = policy.host(&host.name) {
                self.tls.record(domain, &policy, &host.name, None);
                tried.push(why);
                continue;
            }
            // TLS-RPT counts TLS sessions: a pooled one was counted when it was opened.
            let mut fresh = false;
            let (mut session, mut slot) = match self
                .connection(&site, &egress_name, source, &host.name)
                .await
            {
                Ok(shaping::Connection::Reused(pooled)) => (Some(*pooled), None),
                Ok(shaping::Connection::New(slot)) => (None, Some(slot)),
                Err(not_now) => return none_now(not_now),
            };
            if session.is_none() {
                for &ip in &host.addrs {
                    // A socket bound to an IPv4 egress address cannot reach an IPv6 MX.
                    if source.is_some_and(|src| src.is_ipv4() != ip.is_ipv4()) {
                        tried.push(format!(
                            "{} [{ip}]: skipped, not in the egress address's family",
                            host.name
                        ));
                        continue;
                    }
                    candidates += 1;
                    if is_private(ip) && !self.config.allow_private_mx {
                        refused_private += 1;
                        tried.push(format!(
                            "{} [{ip}]: refused, a private or loopback address (relays.{}.allow_private_mx)",
                            host.name, self.name
                        ));
                        continue;
                    }
                    let peer = SocketAddr::new(ip, SMTP_PORT);
                    let verifier = verifier.clone();
                    match Session::open(peer, source, &host.name, helo, self.timeout, verifier)
                        .await
                    {
                        Ok(s) => {
                            fresh = true;
                            session = Some(shaping::Pooled {
                                session: s,
                                slot: slot.take().flatten(),
                                renewed: std::time::Instant::now(),
                            });
                            break;
                        }
                        Err(err) => {
                            metrics::counter!("mailgate_direct_connect_failures_total",
                                "relay" => self.name.clone(), "stage" => err.stage)
                            .increment(1);
                            if let Some(reply) = &err.reply
                                && throttling(reply)
                            {
                                pushed_back = Some(reply.text());
                            }
                            if err.stage == "starttls" {
                                // STARTTLS offered but refused, or a handshake that failed.
                                let failure = match err.reply {
                                    Some(_) => Failure::StarttlsNotSupported,
                                    None => Failure::ValidationFailure,
                                };
                                policy.host_failed(failure, &err.to_string());
                                self.tls.record(domain, &policy, &host.name, Some(ip));
                            }
                            tried.push(format!("{} [{ip}]: {err}", host.name));
                        }
                    }
                }
                if let Some(slot) = slot {
                    self.give_back(slot).await;
                }
            }
            let Some(mut pooled) = session else {
                continue;
            };
            // Under an enforced policy, no MAIL FROM before TLS that verified for this host.
            let judged = policy.session(&host.name, pooled.session.tls.as_ref());
            if fresh {
                self.tls
                    .record(domain, &policy, &host.name, Some(pooled.session.peer.ip()));
            }
            if let Err(why) = judged {
                tried.push(format!(
                    "{} [{}]: {why}",
                    host.name,
                    pooled.session.peer.ip()
                ));
                self.keep(source, &host.name, pooled, &site);
                continue;
            }
            let mut replies = self
                .transaction(&mut pooled.session, host, envelope, mime, rcpts, &tried)
                .await;
            policy.annotate(&mut replies, pooled.session.tls.as_ref());
            self.holders
                .note_tls(&site, &policy, pooled.session.tls.as_ref());
            self.record(started, None);
            let throttled = replies.iter().find(|r| r.is_throttling()).cloned();
            if throttled.is_some() {
                // A server that throttles mid-session is closing it, or soon will.
                self.close(pooled);
            } else {
                self.keep(source, &host.name, pooled, &site);
            }
            return self.outcomes(&site, &egress_name, replies, throttled).await;
        }
        if let Some(reply) = pushed_back {
            let pause = self.throttled(&site, &egress_name, &reply).await;
            return none_now(NotNow {
                wait: pause,
                why: format!(
                    "site {} throttled {egress_name} ({reply}): paused {} ms; {}",
                    site.label_with_key(),
                    pause.as_millis(),
                    tried.join("; ")
                ),
                reply: None,
            });
        }
        if candidates > 0 && refused_private == candidates {
            // Mailgate's own policy, not the recipient's refusal: `failed`, so the address is
            // not suppressed as a bounce would be, and allowing private MX can deliver it.
            let mut reply = permanent(
                "5.4.4",
                format!(
                    "every MX address of {domain} is private: {}",
                    tried.join("; ")
                ),
            );
            reply.status = RecipientStatus::Failed;
            return all(reply);
        }
        if policy.enforced() && !policy.failures.is_empty() {
            self.holders.note_tls(&site, &policy, None);
            let why = policy.refusal(domain);
            self.record(started, Some(&why));
            let mut reply = Reply::transient(None, None, why, None);
            // RFC 3463 X.7.10: the encryption the destination requires could not be had.
            reply.enhanced = Some("4.7.10".into());
            reply.data = Some(serde_json::json!({
                "tls": policy.describe(None),
                "route": { "skipped": tried },
            }));
            return all(reply);
        }
        let why = format!(
            "no MX host of {domain} took a session: {}",
            tried.join("; ")
        );
        self.record(started, Some(&why));
        let mut reply = Reply::transient(None, None, why, None);
        // RFC 3463 4.4.1: no answer from the host; the detail names each one's failure.
        reply.enhanced = Some("4.4.1".into());
        all(reply)
    }

    /// The transaction on an open session; every reply is final for this attempt.
    async fn transaction(
        &self,
        session: &mut Session,
        host: &MxHost,
        envelope: &Envelope<'_>,
        mime: &[u8],
        rcpts: &[String],
        tried: &[String],
    ) -> Vec<Reply> {
        let where_ = format!("{} [{}]", host.name, session.peer.ip());
        let mut detail = format!(
            "MX {}{} from {} (EHLO {}); {}",
            where_,
            if host.implicit { " (implicit MX)" } else { "" },
            session.local.ip(),
            session.helo,
            match &session.tls {
                Some(tls) => format!("TLS {tls}"),
                None => "no TLS (STARTTLS not offered)".into(),
            }
        );
        if !tried.is_empty() {
            detail.push_str(&format!("; after {}", tried.join("; ")));
        }
        let mut route = serde_json::json!({
            "mx": host.name,
            "ip": session.peer.ip().to_string(),
            "implicit_mx": host.implicit,
            "egress": session.local.ip().to_string(),
            "helo": session.helo,
            "tls": session.tls.as_ref().map(|tls| serde_json::json!({
                "version": tls.version,
                "cipher": tls.cipher,
                "verified": tls.verified.is_ok(),
                "verify_error": tls.verified.as_ref().err(),
            })),
            "skipped": tried,
        });
        let data = |route: &serde_json::Value| Some(serde_json::json!({ "route": route }));
        let all = |status: RecipientStatus, enhanced: &str, why: String| {
            vec![
                Reply {
                    status,
                    code: None,
                    enhanced: Some(enhanced.into()),
                    response: None,
                    relay_host: Some(where_.clone()),
                    detail: Some(format!("{why}; {detail}")),
                    data: data(&route),
                };
                rcpts.len()
            ]
        };
        if let Some(limit) = session.ext.size.filter(|&n| n > 0)
            && mime.len() as u64 > limit
        {
            return all(
                RecipientStatus::Bounced,
                "5.3.4",
                format!(
                    "the message ({} bytes) is larger than {} takes (SIZE {limit})",
                    mime.len(),
                    host.name
                ),
            );
        }
        let smtputf8 = envelope.intl.at_hop(session.ext.smtputf8);
        if smtputf8 == Smtputf8::Impossible {
            return all(
                RecipientStatus::Bounced,
                "5.6.7",
                envelope.intl.refusal(&host.name),
            );
        }
        let mut params = String::new();
        if session.ext.size.is_some() {
            params.push_str(&format!(" SIZE={}", mime.len()));
        }
        if session.ext.eightbitmime && mime.iter().any(|b| *b >= 0x80) {
            params.push_str(" BODY=8BITMIME");
        }
        if smtputf8 == Smtputf8::Use {
            params.push_str(" SMTPUTF8");
        }
        let started = std::time::Instant::now();
        let result = session
            .transaction(envelope.from, &params, rcpts, mime)
            .await;
        metrics::histogram!("mailgate_smtp_send_seconds", "relay" => self.name.clone())
            .record(started.elapsed().as_secs_f64());
        if session.pipelined {
            detail.push_str("; pipelined");
        }
        route["pipelined"] = session.pipelined.into();
        match result {
            Ok(replies) => replies
                .into_iter()
                .map(|r| {
                    let text = r.lines.join(" ");
                    Reply {
                        status: match r.code {
                            200..=399 => RecipientStatus::Delivered,
                            400..=499 => RecipientStatus::Deferred,
                            _ => RecipientStatus::Bounced,
                        },
                        code: Some(i32::from(r.code)),
                        enhanced: enhanced_code(&text),
                        response: Some(r.text()),
                        relay_host: Some(where_.clone()),
                        detail: Some(detail.clone()),
                        data: data(&route),
                    }
                })
                .collect(),
            Err(broken) => {
                let mut reply = Reply::transient(
                    None,
                    None,
                    format!("{broken}; {detail}"),
                    Some(where_.clone()),
                );
                reply.enhanced = Some("4.4.2".into());
                reply.data = data(&route);
                vec![reply; rcpts.len()]
            }
        }
    }
}

/// A permanent outcome decided before any SMTP reply (no MX, null MX, too large).
fn permanent(enhanced: &str, why: String) -> Reply {
    Reply {
        status: RecipientStatus::Bounced,
        code: None,
        enhanced: Some(enhanced.into()),
        response: None,
        relay_host: None,
        detail: Some(why),
        data: None,
    }
}

/// This host's name for EHLO when no egress address names one.
fn hostname() -> String {
    let name = lettre::transport::smtp::extension::ClientId::default().to_string();
    if name.is_empty() || name.contains(' ') {
        "localhost".into()
    } else {
        name
    }
}

/// Whether `ip` is an address of this host (egress addresses must be).
fn can_bind(ip: IpAddr) -> bool {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// What a recipient gets when the delivery of its batch was dropped before answering.
fn cancelled() -> Delivery {
    Delivery::Done(Reply::transient(
        None,
        None,
        "the delivery of this recipient's batch was cancelled".into(),
        None,
    ))
}
