//! Accepting connections: the STARTTLS port and the optional implicit-TLS port, with a cap
//! on concurrent sessions. Sessions live in a JoinSet owned by `run`, so dropping `run`
//! ends every one of them at once.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use sqlx::PgPool;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{
    limit::SubmissionLimiter,
    session::{self, Role, Settings, Shared},
    tls::{self, CertSource},
};
use crate::{
    config::Config, inbound::Inbox, ratelimit::AuthThrottle, service::Gate, store::projects,
    submission::SubmissionCore,
};

pub struct SmtpListener {
    starttls: TcpListener,
    implicit_tls: Option<TcpListener>,
    cert: CertSource,
    max_sessions: usize,
    shared: Shared,
}

impl SmtpListener {
    /// Loads or makes the certificate, finds the trusted project and binds the ports
    /// (port 0 picks a free one). Accepted mail goes to `submissions`.
    pub async fn bind(
        config: &Config,
        pool: PgPool,
        submissions: SubmissionCore,
        gate: Gate,
    ) -> anyhow::Result<Self> {
        let smtp = &config.smtp;
        let (tls, cert) = tls::acceptor(smtp)?;
        let trusted_networks = smtp.trusted_networks()?;
        let trusted_project = match (&smtp.trusted_project, trusted_networks.is_empty()) {
            (Some(name), false) => Some(
                projects::ensure(&pool, name)
                    .await
                    .with_context(|| format!("cannot find or create trusted project `{name}`"))?
                    .0
                    .id,
            ),
            _ => None,
        };
        let addr = config.smtp_addr;
        let starttls = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for SMTP on {addr}"))?;
        let implicit_tls = match smtp.implicit_tls_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for SMTP over TLS on {addr}"))?,
            ),
            None => None,
        };
        let settings = Settings {
            hostname: smtp.hostname.clone(),
            max_message_bytes: config.smtp_max_message_bytes(),
            max_recipients: smtp.max_recipients,
            idle_timeout: Duration::from_secs(smtp.idle_timeout_secs),
            session_timeout: Duration::from_secs(smtp.session_timeout_secs),
            trusted_networks,
            trusted_project,
        };
        Ok(Self {
            starttls,
            implicit_tls,
            cert,
            max_sessions: smtp.max_sessions,
            shared: Shared {
                // `auth_max_failures` within the lockout period, then locked out for it.
                throttle: AuthThrottle::new(
                    smtp.auth_max_failures.max(1),
                    Duration::from_secs(smtp.auth_lockout_secs),
                    Some(Duration::from_secs(smtp.auth_lockout_secs)),
                ),
                settings,
                tls,
                role: Role::Submission {
                    submissions,
                    gate,
                    limiter: None,
                },
            },
        })
    }

    /// The inbound listener (`inbound.addr`): MX-facing, no AUTH, mail only for the bounce
    /// and inbound domains, handed to `inbox`.
    pub async fn bind_inbound(config: &Config, inbox: Inbox) -> anyhow::Result<Self> {
        let inbound = &config.inbound;
        let addr = inbound
            .addr
            .context("the inbound listener needs inbound.addr")?;
        // The submission listener's TLS settings, with the inbound ones over them.
        let mut tls_config = config.smtp.clone();
        if let Some(hostname) = &inbound.hostname {
            tls_config.hostname = hostname.clone();
        }
        if inbound.tls_cert.is_some() {
            tls_config.tls_cert = inbound.tls_cert.clone();
            tls_config.tls_key = inbound.tls_key.clone();
        }
        let (tls, cert) = tls::acceptor(&tls_config)?;
        let starttls = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for inbound SMTP on {addr}"))?;
        let per_minute = std::num::NonZeroU32::new(inbound.per_ip_per_minute)
            .context("inbound.per_ip_per_minute must be positive")?;
        Ok(Self {
            starttls,
            implicit_tls: None,
            cert,
            max_sessions: inbound.max_sessions,
            shared: Shared {
                throttle: AuthThrottle::new(0, Duration::ZERO, None),
                settings: Settings {
                    hostname: tls_config.hostname,
                    max_message_bytes: inbound.max_message_bytes,
                    max_recipients: inbound.max_recipients,
                    idle_timeout: Duration::from_secs(inbound.idle_timeout_secs),
                    session_timeout: Duration::from_secs(inbound.session_timeout_secs),
                    trusted_networks: Vec::new(),
                    trusted_project: None,
                },
                tls,
                role: Role::Inbound {
                    inbox,
                    per_ip: crate::ratelimit::PerAddress::per_minute(per_minute),
                },
            },
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.starttls.local_addr().ok()
    }

    pub fn implicit_tls_addr(&self) -> Option<SocketAddr> {
        self.implicit_tls.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Hands in the per-key rate limiter (see `limit`).
    pub fn set_limiter(&mut self, limiter: Arc<dyn SubmissionLimiter>) {
        if let Role::Submission { limiter: slot, .. } = &mut self.shared.role {
            *slot = Some(limiter);
        }
    }

    /// For the start-up line: `127.0.0.1:2525 (starttls: self-signed, implicit tls: off, …)`.
    pub fn describe(&self) -> String {
        let s = &self.shared.settings;
        if let Role::Inbound { .. } = self.shared.role {
            return format!(
                "{} (starttls: {}, no AUTH, bounce and inbound domains only)",
                self.local_addr().map_or("?".to_string(), |a| a.to_string()),
                match self.cert {
                    CertSource::Files => "configured certificate",
                    CertSource::SelfSigned => "self-signed certificate",
                },
            );
        }
        format!(
            "{} (starttls: {}, implicit tls: {}, trusted networks: {})",
            self.local_addr().map_or("?".to_string(), |a| a.to_string()),
            match self.cert {
                CertSource::Files => "configured certificate",
                CertSource::SelfSigned => "self-signed dev certificate",
            },
            self.implicit_tls_addr()
                .map_or("off".to_string(), |a| a.to_string()),
            if s.trusted_project.is_some() {
                s.trusted_networks
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                "none".into()
            },
        )
    }

    /// Accepts until `cancel` fires; sessions then say 421 at their next wait and end.
    pub async fn run(self, cancel: CancellationToken) {
        if self.cert == CertSource::SelfSigned
            && matches!(self.shared.role, Role::Submission { .. })
        {
            tracing::warn!(
                "SMTP STARTTLS uses a self-signed certificate; set smtp.tls_cert and smtp.tls_key in production"
            );
        }
        let shared = Arc::new(self.shared);
        let permits = Arc::new(Semaphore::new(self.max_sessions));
        let mut sessions = JoinSet::new();
        loop {
            let (accepted, implicit_tls) = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = self.starttls.accept() => (accepted, false),
                accepted = accept(self.implicit_tls.as_ref()) => (accepted, true),
                Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: pause, never give up.
                    tracing::warn!(error = %e, "SMTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Replies are small writes, some right after another (a reply, then the next
            // greeting or a pipelined group's): none may wait for the client's delayed ACK.
            let _ = tcp.set_nodelay(true);
            let permit = permits.clone().try_acquire_owned().ok();
            let shared = shared.clone();
            let cancel = cancel.clone();
            sessions.spawn(async move {
                let Some(_permit) = permit else {
                    return turn_away(tcp).await;
                };
                session::run(&shared, tcp, peer, implicit_tls, cancel).await;
            });
        }
        while sessions.join_next().await.is_some() {}
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Over `max_sessions`: say so and hang up, so the client retries later.
async fn turn_away(mut tcp: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        tcp.write_all(b"421 4.3.2 too many connections; try again later\r\n")
            .await?;
        tcp.shutdown().await
    })
    .await;
}
