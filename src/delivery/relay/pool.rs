//! A relay's own pool of SMTP connections: checkout (an idle connection not idle too long,
//! or a new one), one transaction per send, checkin, the connection slots a capped relay
//! takes through the pacer, and why an attempt got no answer ([`RelayError`]). Every step is
//! bounded by the attempt timeout.
//!
//! The transaction itself is `transaction`'s (pipelined when the relay offers it).
//!
//! A reused connection gets no NOOP first (a round trip per message): one idle longer than
//! [`REUSE_IDLE`] is closed instead, and when a relay closed the connection meanwhile (its
//! first command meets a closed socket or `421`), the message goes on a fresh connection,
//! once. Nothing of the message was said on the old one, so it is never sent twice.
//!
//! A send that finds a capped relay's slots all taken takes the first connection another
//! send checks in, or the first slot freed; a sweep every second closes connections idle
//! past `REUSE_IDLE`, or holding a slot and idle past `SLOT_IDLE`, so a slot never runs out
//! while its connection is open and an idle process leaves the slots to the busy ones.

use std::{sync::Arc, time::Duration};

use lettre::{
    address::Envelope,
    transport::smtp::{
        Error as SmtpError,
        authentication::Credentials,
        client::AsyncSmtpConnection,
        extension::{Extension, MailBodyParameter, MailParameter},
        response::Response,
    },
};

use super::{
    transaction::{Failed, closed_by_relay, offers_pipelining, transaction},
    upstream::{HORIZON, Pooled, Relay},
    url::TlsMode,
};
use crate::{
    delivery::intl::{Intl, Smtputf8},
    ratelimit::pace::{Lane, RelayPacer, SLOT_POLL, SLOT_TTL, Slot, keeps_slot},
};

/// An idle connection older than this is closed rather than reused: relays drop idle
/// clients (Postfix after 300 s, some after a minute), and middleboxes forget quiet
/// connections without a word, which a first command would wait out to the timeout.
pub const REUSE_IDLE: Duration = Duration::from_secs(30);

/// Whether an idle connection may still be reused.
fn fresh(pooled: &Pooled) -> bool {
    let idle = pooled
        .idle_since
        .map(|since| since.elapsed())
        .unwrap_or_default();
    idle <= REUSE_IDLE && (pooled.slot.is_none() || keeps_slot(idle, pooled.renewed))
}

/// Says QUIT (bounded: a relay that stopped answering gets no wait) and frees the slot.
async fn close(pacer: &RelayPacer, mut pooled: Pooled) {
    let _ = tokio::time::timeout(Duration::from_secs(5), pooled.conn.abort()).await;
    if let Some(slot) = pooled.slot {
        pacer.release(slot).await;
    }
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
    /// The envelope has a UTF-8 local part and the relay does not offer SMTPUTF8: it can
    /// never take this message (nothing was sent).
    #[error("the envelope needs SMTPUTF8, which the relay does not offer")]
    NoSmtputf8(Intl),
}

impl Relay {
    /// Relays one message to one envelope: connecting and the transaction are each bounded
    /// by the attempt timeout.
    /// `intl` says what the envelope and headers need of SMTPUTF8 (see `delivery::intl`).
    pub async fn send(
        &self,
        envelope: &Envelope,
        intl: Intl,
        mime: &[u8],
    ) -> Result<Response, RelayError> {
        // lettre ends the data with CRLF.CRLF, whose first CRLF ends the last line: the
        // message's own final CRLF is left to it, so the upstream receives the stored bytes
        // exactly, not with an empty line added.
        let mime = mime.strip_suffix(b"\r\n").unwrap_or(mime);
        let mut pooled = self.checkout().await?;
        loop {
            let info = pooled.conn.server_info();
            let eight_bit = info.supports_feature(Extension::EightBitMime);
            let mut params = Vec::new();
            match intl.at_hop(info.supports_feature(Extension::SmtpUtfEight)) {
                Smtputf8::Impossible => {
                    // Nothing was said: the connection stays good for the next message.
                    self.checkin(pooled).await;
                    return Err(RelayError::NoSmtputf8(intl));
                }
                // UTF-8 headers with an ASCII envelope (RFC 6532): SMTPUTF8 by hand, with
                // `BODY=8BITMIME` when offered, as RFC 6531 §3.1 pairs them.
                Smtputf8::Use if !intl.required() => {
                    params.push(MailParameter::SmtpUtfEight);
                    if eight_bit {
                        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
                    }
                }
                // As lettre's own `send` would say it.
                use_or_not => {
                    if matches!(use_or_not, Smtputf8::Use) {
                        params.push(MailParameter::SmtpUtfEight);
                    }
                    if !mime.is_ascii() {
                        if !eight_bit {
                            // lettre refuses 8-bit data to a relay without 8BITMIME, before
                            // saying anything: its error, and the connection stays good.
                            let refused = pooled.conn.send(envelope, mime).await;
                            self.checkin(pooled).await;
                            return refused.map_err(Into::into);
                        }
                        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
                    }
                }
            }
            let reused = pooled.idle_since.is_some();
            let sent = tokio::time::timeout(
                self.timeout,
                transaction(&mut pooled.conn, envelope, params, mime, pooled.pipelining),
            )
            .await;
            match sent {
                Ok(Ok(response)) => {
                    self.checkin(pooled).await;
                    return Ok(response);
                }
                Ok(Err(Failed::Mail(err))) if reused && closed_by_relay(&err) => {
                    // The relay hung up while the connection idled. Nothing of this message
                    // was said on it: it goes once, on a fresh connection.
                    tracing::debug!(relay = %self.name, error = %err, "pooled connection closed by the relay; retrying on a new one");
                    self.close(pooled).await;
                    pooled = self.connect_new().await?;
                }
                Ok(Err(Failed::Mail(err) | Failed::Later(err))) => {
                    self.close(pooled).await;
                    return Err(err.into());
                }
                // The half-used connection is dropped, never pooled: its late reply would
                // answer the next command.
                Err(_) => {
                    self.give_back(pooled.slot).await;
                    return Err(RelayError::Timeout(self.timeout));
                }
            }
        }
    }

    /// An idle connection, not idle longer than [`REUSE_IDLE`] (and still holding its
    /// slot), or a new one.
    async fn checkout(&self) -> Result<Pooled, RelayError> {
        self.connection(true).await
    }

    /// A new connection with its slot, bounded by the attempt timeout.
    async fn connect_new(&self) -> Result<Pooled, RelayError> {
        self.connection(false).await
    }

    /// A connection: an idle one when `reuse` and one is fit, else a new one, with its slot
    /// when the relay caps connections. While every slot is taken it waits up to
    /// [`HORIZON`] for a slot or (when `reuse`) for a connection checked in by another send
    /// of this process, whichever comes first: waiting for a slot alone, a send would give
    /// up while the connections its neighbours finished with sat idle holding the slots.
    async fn connection(&self, reuse: bool) -> Result<Pooled, RelayError> {
        let deadline = tokio::time::Instant::now() + HORIZON;
        let mut holder = None;
        loop {
            let returned = self.idle.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            let idle = reuse
                .then(|| self.idle.conns.lock().expect("not poisoned").pop())
                .flatten();
            if let Some(pooled) = idle {
                if let Some(pooled) = self.fit(pooled).await {
                    return Ok(pooled);
                }
                continue;
            }
            let Some(max) = self.config.max_connections else {
                return self.connect(None).await;
            };
            let holder = holder.get_or_insert_with(|| {
                let n = self
                    .next_holder
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("{}:{n}", self.holder)
            });
            if let Some(slot) = self
                .pacer
                .acquire(Lane::Relay(&self.name), max, holder)
                .await
            {
                return self.connect(Some(slot)).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RelayError::Busy(max));
            }
            let _ = tokio::time::timeout(SLOT_POLL, returned).await;
        }
    }

    /// `pooled` when it may be reused (its slot renewed when due), else closed.
    async fn fit(&self, mut pooled: Pooled) -> Option<Pooled> {
        let mut usable = !pooled.conn.has_broken() && fresh(&pooled);
        if usable
            && let (Some(slot), Some(max)) = (&pooled.slot, self.config.max_connections)
            && pooled.renewed.elapsed() > SLOT_TTL / 3
        {
            usable = self.pacer.renew(slot, max).await;
            pooled.renewed = std::time::Instant::now();
        }
        if usable {
            return Some(pooled);
        }
        self.close(pooled).await;
        None
    }

    /// Opens a connection holding `slot`, bounded by the attempt timeout.
    async fn connect(&self, slot: Option<Slot>) -> Result<Pooled, RelayError> {
        match tokio::time::timeout(self.timeout, self.open()).await {
            Ok(Ok((conn, pipelining))) => Ok(Pooled {
                conn,
                pipelining,
                slot,
                renewed: std::time::Instant::now(),
                idle_since: None,
            }),
            Ok(Err(err)) => {
                self.give_back(slot).await;
                Err(err)
            }
            Err(_) => {
                self.give_back(slot).await;
                Err(RelayError::Timeout(self.timeout))
            }
        }
    }

    /// Says QUIT (bounded: a relay that stopped answering gets no wait) and frees the slot.
    async fn close(&self, pooled: Pooled) {
        close(&self.pacer, pooled).await;
    }

    async fn give_back(&self, slot: Option<Slot>) {
        if let Some(slot) = slot {
            self.pacer.release(slot).await;
        }
    }

    async fn checkin(&self, mut pooled: Pooled) {
        if pooled.conn.has_broken() {
            return self.give_back(pooled.slot).await;
        }
        pooled.idle_since = Some(std::time::Instant::now());
        let surplus = {
            let mut idle = self.idle.conns.lock().expect("not poisoned");
            if idle.len() < self.pool_size() {
                idle.push(pooled);
                None
            } else {
                Some(pooled)
            }
        };
        match surplus {
            Some(pooled) => self.close(pooled).await,
            None => self.idle.returned.notify_waiters(),
        }
        self.sweeping.get_or_init(|| {
            let pacer = self.pacer.clone();
            crate::delivery::sweep::spawn(Arc::downgrade(&self.idle), move |idle| {
                let stale: Vec<Pooled> = (idle.conns.lock().expect("not poisoned"))
                    .extract_if(.., |pooled| !fresh(pooled))
                    .collect();
                for pooled in stale {
                    let pacer = pacer.clone();
                    tokio::spawn(async move { close(&pacer, pooled).await });
                }
            });
        });
    }

    /// Idle connections kept: `pool_size` (`Config::relay_map` fills in the delivery
    /// concurrency when unset), and never more than the connection cap.
    fn pool_size(&self) -> usize {
        let size = self
            .config
            .pool_size
            .unwrap_or(crate::config::DeliveryConfig::default().runner.concurrency as u32)
            .max(1);
        self.config
            .max_connections
            .map_or(size, |max| size.min(max)) as usize
    }

    /// Connect (from an egress address by weight, greeting with its name, when the relay
    /// has them), EHLO, STARTTLS as configured, AUTH when credentials are given; with
    /// whether the relay offers PIPELINING.
    async fn open(&self) -> Result<(AsyncSmtpConnection, bool), RelayError> {
        use lettre::transport::smtp::{authentication::Mechanism, extension::ClientId};
        let egress = self.config.pick_egress();
        let hello = egress.map_or_else(ClientId::default, |e| ClientId::Domain(e.helo.clone()));
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
                egress.map(|e| e.addr),
            )
            .await?
        } else {
            let tcp = match egress {
                None => {
                    tokio::net::TcpStream::connect((self.url.host.as_str(), self.url.port)).await?
                }
                Some(egress) => self.connect_from(egress.addr).await?,
            };
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
        let pipelining = offers_pipelining(&mut conn, &hello).await?;
        if let Some((user, pass)) = &self.url.credentials {
            let credentials = Credentials::new(user.clone(), pass.clone());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await?;
        }
        Ok((conn, pipelining))
    }

    /// A connection to the relay bound to `source`, to the first of its addresses in the
    /// same family.
    async fn connect_from(
        &self,
        source: std::net::IpAddr,
    ) -> Result<tokio::net::TcpStream, RelayError> {
        let peer = tokio::net::lookup_host((self.url.host.as_str(), self.url.port))
            .await?
            .find(|a| a.is_ipv4() == source.is_ipv4())
            .ok_or_else(|| {
                RelayError::Setup(format!(
                    "{} has no address in the family of egress address {source}",
                    self.url.host
                ))
            })?;
        let socket = if source.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(source, 0))?;
        Ok(socket.connect(peer).await?)
    }
}
