//! One SMTP session, from greeting to QUIT: the protocol state machine.
//!
//! smtp-proto parses each command line, un-stuffs DATA and writes the replies; this file keeps
//! the state (greeting, TLS, AUTH, the open transaction) and decides what each command may do.
//!
//! - `auth`: the AUTH command and its SASL exchange (PLAIN, LOGIN).
//! - `framing`: the connection, its clocks, cutting input into lines and DATA into a message.
//!   A command is parsed once its line is complete, so a malformed line can never leave the
//!   parser out of step with the client.

mod auth;
mod framing;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use ipnet::IpNet;
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, EXT_8BIT_MIME, EXT_AUTH, EXT_ENHANCED_STATUS_CODES, EXT_PIPELINING,
    EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS, EhloResponse, Error as ParseError,
    MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8, Request,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::framing::{End, Io, MAX_LINE};
use super::{
    limit::{Admission, Client, SubmissionLimiter},
    message,
};
use crate::{
    domain::{EmailAddress, status::MessageStatus},
    inbound::{Inbox, Rcpt},
    ratelimit::{AuthThrottle, PerAddress},
    service::Gate,
    store::api_keys::AuthenticatedKey,
    submission::{SubmissionCore, SubmissionError},
};

/// Errors a client may make before it is disconnected.
const MAX_ERRORS: u32 = 20;

/// RFC 6531 §3.4: a UTF-8 address only after `MAIL FROM:<…> SMTPUTF8`.
const UTF8_NEEDS_SMTPUTF8: &str =
    "a UTF-8 address needs the SMTPUTF8 parameter on MAIL FROM (this server offers it)";

/// The listener's settings, resolved from config at start.
pub(super) struct Settings {
    pub hostname: String,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub idle_timeout: Duration,
    pub session_timeout: Duration,
    pub trusted_networks: Vec<IpNet>,
    /// Set when trusted networks are configured.
    pub trusted_project: Option<Uuid>,
}

impl Settings {
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_project.is_some() && self.trusted_networks.iter().any(|n| n.contains(&ip))
    }
}

/// What every session of this listener shares.
pub(super) struct Shared {
    pub settings: Settings,
    pub tls: TlsAcceptor,
    pub throttle: AuthThrottle,
    pub role: Role,
}

/// What a listener is for: apps submitting mail (AUTH with an API key, relayed upstream), or
/// the world handing in mail for mailgate's own domains (no AUTH, never relayed).
pub(super) enum Role {
    Submission {
        submissions: SubmissionCore,
        /// Authenticates AUTH's API keys (the application's one gate).
        gate: Gate,
        limiter: Option<Arc<dyn SubmissionLimiter>>,
    },
    Inbound {
        inbox: Inbox,
        /// Messages and refused recipients per client (an IPv6 /64) and minute.
        per_ip: PerAddress,
    },
}

/// Runs one session on an accepted connection until the client quits or a limit ends it.
pub(super) async fn run(
    shared: &Shared,
    tcp: TcpStream,
    peer: SocketAddr,
    implicit_tls: bool,
    cancel: CancellationToken,
) {
    let settings = &shared.settings;
    let ip = peer.ip().to_canonical();
    let mut io = Io::new(tcp, settings.idle_timeout, settings.session_timeout, cancel);
    if implicit_tls {
        io = match io.start_tls(&shared.tls).await {
            Ok(io) => io,
            Err(_) => return,
        };
    }
    let mut session = Session {
        shared,
        ip,
        trusted: settings.is_trusted(ip),
        tls: implicit_tls,
        greeted: false,
        auth: None,
        tx: None,
        errors: 0,
    };
    tracing::debug!(%peer, trusted = session.trusted, tls = implicit_tls, "SMTP session");
    io.write_line(format_args!("220 {} ESMTP mailgate", settings.hostname));
    loop {
        let step = match io.line(MAX_LINE).await {
            Ok(Some(line)) => session.command(&line, &mut io).await,
            Ok(None) => {
                io.reply(500, [5, 5, 6], "line too long");
                Ok(Step::Error)
            }
            Err(end) => Err(end),
        };
        match step {
            Ok(Step::Continue) => {}
            Ok(Step::Error) => {
                session.errors += 1;
                if session.errors >= MAX_ERRORS {
                    return io.close(End::TooManyErrors).await;
                }
            }
            Ok(Step::StartTls) => {
                io = match io.start_tls(&shared.tls).await {
                    Ok(io) => io,
                    Err(_) => return,
                };
                // RFC 3207: after the handshake the client starts over, knowing nothing.
                session.tls = true;
                session.greeted = false;
                session.auth = None;
                session.tx = None;
            }
            Ok(Step::Quit) => return io.close(End::Closed).await,
            Err(end) => return io.close(end).await,
        }
    }
}

/// What the loop does after a command.
enum Step {
    Continue,
    /// The command was refused for a client mistake; too many and the client is dropped.
    Error,
    StartTls,
    Quit,
}

/// The open mail transaction: MAIL FROM given, recipients so far.
struct Transaction {
    /// `None`: the null return path (`MAIL FROM:<>`), which only inbound mail may have.
    from: Option<EmailAddress>,
    recipients: Vec<EmailAddress>,
    /// `MAIL FROM:<…> SMTPUTF8`: UTF-8 addresses (and headers) may follow (RFC 6531).
    smtputf8: bool,
}

struct Session<'a> {
    shared: &'a Shared,
    ip: IpAddr,
    /// The client is on a trusted network: it may send without AUTH.
    trusted: bool,
    tls: bool,
    greeted: bool,
    auth: Option<AuthenticatedKey>,
    tx: Option<Transaction>,
    errors: u32,
}

impl Session<'_> {
    /// May this client hand in mail? Inbound mail needs no AUTH: its recipients are checked
    /// instead, so it can only ever reach mailgate itself.
    fn authorized(&self) -> bool {
        self.auth.is_some() || self.trusted || self.inbound()
    }

    fn inbound(&self) -> bool {
        matches!(self.shared.role, Role::Inbound { .. })
    }

    async fn command(&mut self, line: &[u8], io: &mut Io) -> Result<Step, End> {
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(e) => {
                let (code, esc, text) = match e {
                    ParseError::UnknownCommand => (500, [5, 5, 2], "command not recognized"),
                    ParseError::InvalidSenderAddress => {
                        (501, [5, 1, 7], "sender address syntax is invalid")
                    }
                    ParseError::InvalidRecipientAddress => {
                        (501, [5, 1, 3], "recipient address syntax is invalid")
                    }
                    ParseError::SyntaxError { syntax } => {
                        io.reply(501, [5, 5, 4], format_args!("syntax: {syntax}"));
                        return Ok(Step::Error);
                    }
                    ParseError::InvalidParameter { param } => {
                        io.reply(501, [5, 5, 4], format_args!("invalid {param} parameter"));
                        return Ok(Step::Error);
                    }
                    ParseError::UnsupportedParameter { .. } => {
                        (555, [5, 5, 4], "unsupported parameter")
                    }
                    _ => (500, [5, 5, 2], "syntax error"),
                };
                io.reply(code, esc, text);
                return Ok(Step::Error);
            }
        };
        let shared = self.shared;
        let settings = &shared.settings;
        match request {
            Request::Ehlo { .. } => {
                self.greeted = true;
                self.tx = None;
                let mut ehlo = EhloResponse::new(settings.hostname.as_str());
                ehlo.capabilities =
                    EXT_PIPELINING | EXT_8BIT_MIME | EXT_ENHANCED_STATUS_CODES | EXT_SIZE;
                ehlo.size = settings.max_message_bytes;
                if !self.tls {
                    ehlo.capabilities |= EXT_START_TLS;
                }
                // Apps may submit internationalized addresses and headers (RFC 6531/6532);
                // inbound mail stays ASCII-only.
                if !self.inbound() {
                    ehlo.capabilities |= EXT_SMTP_UTF8;
                }
                // Passwords only travel encrypted, unless the network is trusted.
                if (self.tls || self.trusted) && !self.inbound() {
                    ehlo.capabilities |= EXT_AUTH;
                    ehlo.auth_mechanisms = AUTH_PLAIN | AUTH_LOGIN;
                }
                io.ehlo(&ehlo);
            }
            Request::Helo { .. } => {
                self.greeted = true;
                self.tx = None;
                io.write_line(format_args!("250 {}", settings.hostname));
            }
            Request::StartTls => {
                if self.tls {
                    io.reply(503, [5, 5, 1], "TLS is already active");
                    return Ok(Step::Error);
                }
                io.reply(220, [2, 0, 0], "ready to start TLS");
                return Ok(Step::StartTls);
            }
            Request::Auth { .. } if self.inbound() => {
                io.reply(503, [5, 5, 1], "AUTH is not offered here");
                return Ok(Step::Error);
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(io, mechanism, &initial_response).await,
            Request::Mail { from } => {
                if !self.greeted {
                    io.reply(503, [5, 5, 1], "send EHLO first");
                    return Ok(Step::Error);
                }
                if !self.authorized() {
                    io.reply(530, [5, 7, 0], "authentication required");
                    return Ok(Step::Error);
                }
                if self.tx.is_some() {
                    io.reply(503, [5, 5, 1], "nested MAIL command");
                    return Ok(Step::Error);
                }
                if from.flags & MAIL_BODY_BINARYMIME != 0
                    || (from.flags & MAIL_SMTPUTF8 != 0 && self.inbound())
                {
                    io.reply(555, [5, 5, 4], "SMTPUTF8 and BINARYMIME are not supported");
                    return Ok(Step::Error);
                }
                let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
                if !smtputf8 && !from.address.is_ascii() {
                    io.reply(553, [5, 6, 7], UTF8_NEEDS_SMTPUTF8);
                    return Ok(Step::Error);
                }
                if from.size > settings.max_message_bytes {
                    io.reply(
                        552,
                        [5, 3, 4],
                        format_args!(
                            "message size exceeds the limit of {} bytes",
                            settings.max_message_bytes
                        ),
                    );
                    return Ok(Step::Continue);
                }
                if let Role::Inbound { per_ip, .. } = &shared.role
                    && !per_ip.check(self.ip)
                {
                    io.reply(
                        451,
                        [4, 7, 1],
                        "too many messages from your address; try again later",
                    );
                    return Ok(Step::Continue);
                }
                if from.address.is_empty() {
                    // Bounces and other automatic replies come from the null return path.
                    if self.inbound() {
                        self.tx = Some(Transaction {
                            from: None,
                            recipients: Vec::new(),
                            smtputf8,
                        });
                        io.reply(250, [2, 1, 0], "sender OK");
                    } else {
                        io.reply(553, [5, 1, 7], "a sender address is required");
                    }
                    return Ok(Step::Continue);
                }
                match EmailAddress::parse(&from.address) {
                    Ok(from) => {
                        self.tx = Some(Transaction {
                            from: Some(from),
                            recipients: Vec::new(),
                            smtputf8,
                        });
                        io.reply(250, [2, 1, 0], "sender OK");
                    }
                    Err(_) => io.reply(553, [5, 1, 7], "sender address is not valid"),
                }
            }
            Request::Rcpt { to } => {
                // Checked before anything else: without AUTH nothing is relayed, ever.
                if !self.authorized() {
                    io.reply(530, [5, 7, 0], "authentication required");
                    return Ok(Step::Error);
                }
                let Some(tx) = self.tx.as_mut() else {
                    io.reply(503, [5, 5, 1], "send MAIL first");
                    return Ok(Step::Error);
                };
                if !tx.smtputf8 && !to.address.is_ascii() {
                    io.reply(553, [5, 6, 7], UTF8_NEEDS_SMTPUTF8);
                    return Ok(Step::Error);
                }
                let Ok(address) = EmailAddress::parse(&to.address) else {
                    io.reply(553, [5, 1, 3], "recipient address is not valid");
                    return Ok(Step::Continue);
                };
                // Inbound: only mailgate's own domains (anything else would be relaying), and
                // at a bounce domain only the return paths it gave out, so junk is refused
                // here and never stored.
                if let Role::Inbound { inbox, per_ip } = &shared.role {
                    let (local, domain) = address.as_str().rsplit_once('@').unwrap_or_default();
                    match inbox.recipient(local, domain).await {
                        Ok(Rcpt::Accepted) => {}
                        Ok(refused) => {
                            let (reason, esc, text) = match refused {
                                Rcpt::Foreign => ("relay", [5, 7, 1], "relay denied"),
                                _ => ("return_path", [5, 1, 1], "no such return path"),
                            };
                            metrics::counter!("mailgate_inbound_refused_total", "reason" => reason)
                                .increment(1);
                            // A refused recipient costs the client a unit of its allowance,
                            // as a message does: probing for return paths is bounded too.
                            if !per_ip.check(self.ip) {
                                io.reply(
                                    421,
                                    [4, 7, 1],
                                    "too many refused recipients from your address; try again later",
                                );
                                return Ok(Step::Quit);
                            }
                            io.reply(550, esc, text);
                            return Ok(Step::Error);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "inbound SMTP: could not check a recipient");
                            io.reply(451, [4, 3, 0], "temporary failure; try again later");
                            return Ok(Step::Continue);
                        }
                    }
                }
                let duplicate = tx
                    .recipients
                    .iter()
                    .any(|r| r.as_str().eq_ignore_ascii_case(address.as_str()));
                if duplicate {
                    io.reply(250, [2, 1, 5], "recipient OK");
                } else if tx.recipients.len() >= settings.max_recipients {
                    io.reply(
                        452,
                        [4, 5, 3],
                        format_args!(
                            "too many recipients; at most {} per message",
                            settings.max_recipients
                        ),
                    );
                } else {
                    tx.recipients.push(address);
                    io.reply(250, [2, 1, 5], "recipient OK");
                }
            }
            Request::Data => return self.data(io).await,
            Request::Rset => {
                self.tx = None;
                io.reply(250, [2, 0, 0], "OK");
            }
            Request::Noop { .. } => io.reply(250, [2, 0, 0], "OK"),
            Request::Quit => {
                io.reply(221, [2, 0, 0], "bye");
                return Ok(Step::Quit);
            }
            Request::Vrfy { .. } => io.reply(252, [2, 5, 0], "cannot VRFY; send the message"),
            Request::Help { .. } => io.reply(
                214,
                [2, 0, 0],
                "EHLO, STARTTLS, AUTH (password: an API key), MAIL, RCPT, DATA, RSET, QUIT",
            ),
            Request::Lhlo { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Bdat { .. } => {
                io.reply(502, [5, 5, 1], "command not implemented");
                return Ok(Step::Error);
            }
        }
        Ok(Step::Continue)
    }

    async fn data(&mut self, io: &mut Io) -> Result<Step, End> {
        if !self.authorized() {
            io.reply(530, [5, 7, 0], "authentication required");
            return Ok(Step::Error);
        }
        let Some(tx) = self.tx.take() else {
            io.reply(503, [5, 5, 1], "send MAIL first");
            return Ok(Step::Error);
        };
        if tx.recipients.is_empty() {
            self.tx = Some(tx);
            io.reply(554, [5, 5, 1], "no valid recipients");
            return Ok(Step::Error);
        }
        io.write_line(format_args!("354 end data with <CR><LF>.<CR><LF>"));
        let max = self.shared.settings.max_message_bytes;
        // If the session ends while the data arrives, the transaction is simply dropped:
        // nothing was committed and the client was never told otherwise.
        // The CRLF before the final "." ends the last line and belongs to the message
        // (RFC 5321 §4.1.1.4): it is scanned and stored with the rest.
        let Some(data) = io.data(max).await? else {
            io.reply(
                552,
                [5, 3, 4],
                format_args!("message size exceeds the limit of {max} bytes"),
            );
            return Ok(Step::Continue);
        };
        self.accept(io, tx, data).await;
        Ok(Step::Continue)
    }

    /// Commits one message; the 250 comes only once it is durable.
    async fn accept(&self, io: &mut Io, tx: Transaction, data: Vec<u8>) {
        match &self.shared.role {
            Role::Submission {
                submissions,
                limiter,
                ..
            } => {
                self.submit(io, tx, data, submissions, limiter.as_deref())
                    .await
            }
            Role::Inbound { inbox, .. } => self.hand_in(io, tx, data, inbox).await,
        }
    }

    /// Inbound mail, stored as received for the inbound runner to process.
    async fn hand_in(&self, io: &mut Io, tx: Transaction, data: Vec<u8>, inbox: &Inbox) {
        let from = tx.from.as_ref().map_or("", |f| f.as_str());
        let rcpts: Vec<String> = tx
            .recipients
            .iter()
            .map(|r| r.as_str().to_string())
            .collect();
        match inbox.store(self.ip, from, &rcpts, &data).await {
            Ok(id) => {
                tracing::info!(%id, peer = %self.ip, "inbound mail accepted");
                io.reply(250, [2, 0, 0], format_args!("accepted as {id}"));
            }
            Err(e) => {
                tracing::error!(error = %e, "inbound SMTP: could not store a message");
                io.reply(
                    451,
                    [4, 3, 0],
                    "temporary failure storing the message; try again later",
                );
            }
        }
    }

    /// Checks, limits and commits one submitted message.
    async fn submit(
        &self,
        io: &mut Io,
        tx: Transaction,
        data: Vec<u8>,
        submissions: &SubmissionCore,
        limiter: Option<&dyn SubmissionLimiter>,
    ) {
        let shared = self.shared;
        // MAIL refuses the null return path on this role.
        let Some(from) = tx.from else {
            io.reply(553, [5, 1, 7], "a sender address is required");
            return;
        };
        let prepared = match message::prepare(from, tx.recipients, &data) {
            Ok(prepared) => prepared,
            Err(e) => {
                io.reply(554, [5, 6, 0], e);
                return;
            }
        };
        let (project_id, key) = match (&self.auth, shared.settings.trusted_project) {
            (Some(key), _) => (key.project_id, Some(key)),
            (None, Some(project)) if self.trusted => (project, None),
            // Unreachable while MAIL and RCPT check `authorized`; refused all the same.
            _ => {
                io.reply(530, [5, 7, 0], "authentication required");
                return;
            }
        };
        // The rate limiter plugs in here (see `limit`): one unit per message, taken after
        // the message proved valid and before anything is stored.
        if let Some(limiter) = limiter {
            let who = Client {
                project_id,
                api_key_id: key.map(|k| k.id),
                limits: key.map(|k| k.limits).unwrap_or_default(),
            };
            if let Admission::Limited { retry_after } = limiter.acquire(who).await {
                io.reply(
                    451,
                    [4, 7, 1],
                    format_args!(
                        "rate limit exceeded; try again in {} s",
                        retry_after.as_secs().max(1)
                    ),
                );
                return;
            }
        }
        let limit = shared.settings.max_message_bytes;
        match submissions
            .commit_raw(project_id, key, prepared, limit)
            .await
        {
            Ok(accepted) => {
                tracing::info!(
                    id = %accepted.id,
                    peer = %self.ip,
                    recipients = accepted.recipients.len(),
                    "accepted over SMTP"
                );
                let held = if accepted.status == MessageStatus::Held {
                    " (held by the content policy)"
                } else {
                    ""
                };
                io.reply(
                    250,
                    [2, 0, 0],
                    format_args!("queued as {}{held}", accepted.id),
                );
            }
            Err(SubmissionError::ContentRejected { detail, virus }) => {
                // Refused for good: the client must not retry the same content.
                let code = if virus { 550 } else { 554 };
                io.reply(
                    code,
                    [5, 7, 1],
                    format_args!("rejected by content policy: {detail}"),
                );
            }
            Err(SubmissionError::TooLarge(detail)) => {
                // Too large once tracked, or too large to scan: the same bytes will not fit
                // next time either.
                io.reply(552, [5, 3, 4], format_args!("message too large: {detail}"));
            }
            Err(SubmissionError::Validation(errors)) => {
                // E.g. X-Mailgate-Unsubscribe on a server without tracking.base_url: the
                // same message will be refused again.
                let detail: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                io.reply(554, [5, 6, 0], detail.join("; "));
            }
            Err(e @ SubmissionError::DomainNotVerified(_)) => {
                // Policy, not trouble: the same From is refused until the domain verifies.
                io.reply(550, [5, 7, 1], e.to_string());
            }
            Err(SubmissionError::ScanUnavailable(_)) => {
                io.reply(
                    451,
                    [4, 7, 0],
                    "content scanner unavailable; try again later",
                );
            }
            Err(e) => {
                // The client keeps the message and retries; nothing was acknowledged.
                tracing::error!(error = %e, "SMTP: could not store a message");
                io.reply(
                    451,
                    [4, 3, 0],
                    "temporary failure storing the message; try again later",
                );
            }
        }
    }
}
