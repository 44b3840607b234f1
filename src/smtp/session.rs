//! One SMTP session, from greeting to QUIT: the protocol state machine.
//!
//! smtp-proto parses each command line, un-stuffs DATA and writes the replies; this file keeps
//! the state (greeting, TLS, AUTH, the open transaction) and decides what each command may do.
//! Framing is ours only as far as cutting input into lines: a command is parsed once its line
//! is complete, so a malformed line can never leave the parser out of step with the client.

use std::{
    fmt::Display,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use ipnet::IpNet;
use sqlx::PgPool;
use uuid::Uuid;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, EXT_8BIT_MIME, EXT_AUTH, EXT_ENHANCED_STATUS_CODES, EXT_PIPELINING,
    EXT_SIZE, EXT_START_TLS, EhloResponse, Error as ParseError, MAIL_BODY_BINARYMIME,
    MAIL_SMTPUTF8, Request, Response, request::receiver::DataReceiver,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    time::{Instant, timeout, timeout_at},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::sync::CancellationToken;

use super::{
    limit::{Decision, SubmissionLimiter, Submitter},
    message,
    throttle::AuthThrottle,
};
use crate::{
    domain::{ApiKeySecret, EmailAddress, Scope},
    store::api_keys::{self, AuthenticatedKey},
    submission::SubmissionCore,
};

/// Longest command or AUTH response line, CRLF included (RFC 4954 allows 12288 for AUTH).
const MAX_LINE: usize = 12_288;
/// Errors a client may make before it is disconnected.
const MAX_ERRORS: u32 = 20;
/// How long a closing 421 may take to write.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Where API keys are looked up.
    pub pool: PgPool,
    pub submissions: SubmissionCore,
    pub settings: Settings,
    pub tls: TlsAcceptor,
    pub throttle: AuthThrottle,
    pub limiter: Option<Arc<dyn SubmissionLimiter>>,
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
    let mut io = Io {
        stream: Stream::Plain(tcp),
        input: Vec::new(),
        output: Vec::new(),
        idle: settings.idle_timeout,
        deadline: later(settings.session_timeout),
        cancel,
    };
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

/// Why a session ends other than by QUIT.
#[derive(Debug)]
enum End {
    /// The client went away or the connection broke.
    Closed,
    Idle,
    TimeUp,
    Shutdown,
    TooManyErrors,
}

/// The open mail transaction: MAIL FROM given, recipients so far.
struct Transaction {
    from: EmailAddress,
    recipients: Vec<EmailAddress>,
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

/// What an AUTH exchange gave.
enum Sasl {
    Password(String),
    Cancelled,
    Malformed,
}

impl Session<'_> {
    fn authorized(&self) -> bool {
        self.auth.is_some() || self.trusted
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
                // Passwords only travel encrypted, unless the network is trusted.
                if self.tls || self.trusted {
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
                if from.flags & (MAIL_SMTPUTF8 | MAIL_BODY_BINARYMIME) != 0 {
                    io.reply(555, [5, 5, 4], "SMTPUTF8 and BINARYMIME are not supported");
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
                if from.address.is_empty() {
                    io.reply(553, [5, 1, 7], "a sender address is required");
                    return Ok(Step::Continue);
                }
                match EmailAddress::parse(&from.address) {
                    Ok(from) => {
                        self.tx = Some(Transaction {
                            from,
                            recipients: Vec::new(),
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
                let Ok(address) = EmailAddress::parse(&to.address) else {
                    io.reply(553, [5, 1, 3], "recipient address is not valid");
                    return Ok(Step::Continue);
                };
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

    async fn auth(&mut self, io: &mut Io, mechanism: u64, initial: &str) -> Result<Step, End> {
        if self.auth.is_some() {
            io.reply(503, [5, 5, 1], "already authenticated");
            return Ok(Step::Error);
        }
        if self.tx.is_some() {
            io.reply(
                503,
                [5, 5, 1],
                "AUTH is not allowed during a mail transaction",
            );
            return Ok(Step::Error);
        }
        if !self.tls && !self.trusted {
            io.reply(538, [5, 7, 11], "encryption required: send STARTTLS first");
            return Ok(Step::Error);
        }
        if mechanism != AUTH_PLAIN && mechanism != AUTH_LOGIN {
            io.reply(504, [5, 5, 4], "use AUTH PLAIN or AUTH LOGIN");
            return Ok(Step::Error);
        }
        // A locked-out address learns nothing, not even whether this password was right.
        if let Err(wait) = self.shared.throttle.check(self.ip) {
            io.reply(
                454,
                [4, 7, 0],
                format_args!(
                    "too many failed logins from your address; try again in {} s",
                    wait.as_secs().max(1)
                ),
            );
            return Ok(Step::Continue);
        }
        let password = match sasl(io, mechanism, initial).await? {
            Sasl::Password(password) => password,
            Sasl::Cancelled => {
                io.reply(501, [5, 7, 0], "authentication cancelled");
                return Ok(Step::Continue);
            }
            Sasl::Malformed => {
                io.reply(501, [5, 5, 2], "cannot decode the AUTH response");
                return Ok(Step::Error);
            }
        };
        let found = match ApiKeySecret::parse(password.trim()) {
            Some(secret) => api_keys::find_active(&self.shared.pool, &secret).await,
            None => Ok(None),
        };
        match found {
            Ok(Some(key)) if key.scopes.contains(&Scope::Send) => {
                tracing::debug!(peer = %self.ip, key = %key.id, "SMTP AUTH succeeded");
                self.auth = Some(key);
                io.reply(235, [2, 7, 0], "authentication successful");
            }
            Ok(Some(_)) => {
                io.reply(535, [5, 7, 8], "this API key lacks the send scope");
            }
            Ok(None) => {
                self.shared.throttle.failed(self.ip);
                tracing::info!(peer = %self.ip, "SMTP AUTH failed: unknown or revoked key");
                io.reply(535, [5, 7, 8], "authentication credentials invalid");
            }
            Err(e) => {
                tracing::warn!(error = %e, "SMTP AUTH: key lookup failed");
                io.reply(
                    454,
                    [4, 7, 0],
                    "temporary authentication failure; try again later",
                );
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
        let Some(mut data) = io.data(max).await? else {
            io.reply(
                552,
                [5, 3, 4],
                format_args!("message size exceeds the limit of {max} bytes"),
            );
            return Ok(Step::Continue);
        };
        // The CRLF before the final "." ends the last line. It is not stored: relaying
        // (lettre's send_raw) appends CRLF.CRLF, which gives it back, so the upstream
        // receives exactly the lines the client sent.
        if data.ends_with(b"\r\n") {
            data.truncate(data.len() - 2);
        }
        self.accept(io, tx, data).await;
        Ok(Step::Continue)
    }

    /// Checks, limits and commits one message; the 250 comes only once it is durable.
    async fn accept(&self, io: &mut Io, tx: Transaction, data: Vec<u8>) {
        let shared = self.shared;
        let prepared = match message::prepare(tx.from, tx.recipients, &data) {
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
        if let Some(limiter) = &shared.limiter {
            let who = Submitter {
                project_id,
                api_key_id: key.map(|k| k.id),
                limits: key.map(|k| k.limits).unwrap_or_default(),
            };
            if let Decision::Limited { retry_after } = limiter.acquire(who).await {
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
        match shared
            .submissions
            .commit_raw(project_id, key, prepared)
            .await
        {
            Ok(accepted) => {
                tracing::info!(
                    id = %accepted.id,
                    peer = %self.ip,
                    recipients = accepted.recipients.len(),
                    "accepted over SMTP"
                );
                io.reply(250, [2, 0, 0], format_args!("queued as {}", accepted.id));
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

/// Runs the PLAIN or LOGIN exchange and returns the password; the user name is not used.
async fn sasl(io: &mut Io, mechanism: u64, initial: &str) -> Result<Sasl, End> {
    let first = if initial.is_empty() {
        // LOGIN asks for the user name, PLAIN for everything at once.
        let prompt = if mechanism == AUTH_LOGIN {
            "VXNlcm5hbWU6"
        } else {
            ""
        };
        match io.challenge(prompt).await? {
            Some(answer) => answer,
            None => return Ok(Sasl::Malformed),
        }
    } else {
        initial.to_string()
    };
    let first = match decode(&first) {
        Ok(bytes) => bytes,
        Err(outcome) => return Ok(outcome),
    };
    let password = if mechanism == AUTH_PLAIN {
        // authzid NUL authcid NUL password
        let mut fields = first.splitn(3, |b| *b == 0);
        match (fields.next(), fields.next(), fields.next()) {
            (Some(_), Some(_), Some(password)) => password.to_vec(),
            _ => return Ok(Sasl::Malformed),
        }
    } else {
        let Some(answer) = io.challenge("UGFzc3dvcmQ6").await? else {
            return Ok(Sasl::Malformed);
        };
        match decode(&answer) {
            Ok(bytes) => bytes,
            Err(outcome) => return Ok(outcome),
        }
    };
    Ok(match String::from_utf8(password) {
        Ok(password) => Sasl::Password(password),
        Err(_) => Sasl::Malformed,
    })
}

fn decode(answer: &str) -> Result<Vec<u8>, Sasl> {
    match answer.trim() {
        "*" => Err(Sasl::Cancelled),
        // RFC 4954: "=" is an empty initial response.
        "=" => Ok(Vec::new()),
        other => B64.decode(other).map_err(|_| Sasl::Malformed),
    }
}

/// The connection, plain or after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Buffered input and output with the session's clocks. Replies collect in `output` and
/// are sent when the session would wait for input: pipelined commands get their replies in
/// one write, and a client waiting for a reply always gets it.
struct Io {
    stream: Stream,
    input: Vec<u8>,
    output: Vec<u8>,
    idle: Duration,
    deadline: Instant,
    cancel: CancellationToken,
}

impl Io {
    /// A reply with an enhanced status code (RFC 2034). Text from clients (header names in
    /// errors) is made printable, so it can never break the reply framing.
    fn reply(&mut self, code: u16, esc: [u8; 3], text: impl Display) {
        let message: String = text
            .to_string()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        // Writing into a Vec cannot fail.
        let _ = Response { code, esc, message }.write(&mut self.output);
    }

    /// A reply without an enhanced code: the greeting, HELO, 354 and 334 have none.
    fn write_line(&mut self, line: impl Display) {
        self.output
            .extend_from_slice(format!("{line}\r\n").as_bytes());
    }

    fn ehlo(&mut self, ehlo: &EhloResponse<&str>) {
        let _ = ehlo.write(&mut self.output);
    }

    /// Waits for more input, sending pending replies first.
    async fn fill(&mut self) -> Result<(), End> {
        self.flush().await?;
        let wait = later(self.idle).min(self.deadline);
        self.input.reserve(16 * 1024);
        let read = tokio::select! {
            _ = self.cancel.cancelled() => return Err(End::Shutdown),
            read = timeout_at(wait, self.stream.read_buf(&mut self.input)) => read,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => Err(End::Closed),
            Ok(Ok(_)) => Ok(()),
            Err(_) if Instant::now() >= self.deadline => Err(End::TimeUp),
            Err(_) => Err(End::Idle),
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        if self.output.is_empty() {
            return Ok(());
        }
        let wait = later(self.idle).min(self.deadline);
        let (stream, output) = (&mut self.stream, &self.output);
        let written = timeout_at(wait, async {
            stream.write_all(output).await?;
            stream.flush().await
        })
        .await;
        self.output.clear();
        match written {
            Ok(Ok(())) => Ok(()),
            // A client that does not read its replies is as good as gone.
            _ => Err(End::Closed),
        }
    }

    /// The next line, CRLF included; `None` if it was longer than `max` (it is skipped).
    async fn line(&mut self, max: usize) -> Result<Option<Vec<u8>>, End> {
        let mut too_long = false;
        loop {
            if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.input.drain(..=end).collect();
                return Ok((!too_long && line.len() <= max).then_some(line));
            }
            if self.input.len() > max {
                too_long = true;
                self.input.clear();
            }
            self.fill().await?;
        }
    }

    /// Sends a 334 challenge and returns the answer line, trimmed; `None` if it was too long.
    async fn challenge(&mut self, prompt: &str) -> Result<Option<String>, End> {
        self.write_line(format_args!("334 {prompt}"));
        let Some(line) = self.line(MAX_LINE).await? else {
            return Ok(None);
        };
        Ok(Some(String::from_utf8_lossy(&line).trim().to_string()))
    }

    /// Reads DATA up to the terminating CRLF.CRLF, dot-stuffing undone; `None` if it grew
    /// past `max` (the rest is read and dropped, so the session stays in step).
    async fn data(&mut self, max: usize) -> Result<Option<Vec<u8>>, End> {
        let mut reader = DataReader::new(max);
        loop {
            let (consumed, done) = reader.feed(&self.input);
            self.input.drain(..consumed);
            if done {
                return Ok(reader.finish());
            }
            self.fill().await?;
        }
    }

    /// Sends pending output, then the handshake. Plaintext the client pipelined after
    /// STARTTLS is dropped, never read as if it came encrypted (CVE-2011-0411).
    async fn start_tls(mut self, acceptor: &TlsAcceptor) -> Result<Io, End> {
        self.flush().await?;
        self.input.clear();
        let Stream::Plain(tcp) = self.stream else {
            return Err(End::Closed);
        };
        let wait = later(self.idle).min(self.deadline);
        match timeout_at(wait, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                self.stream = Stream::Tls(Box::new(tls));
                Ok(self)
            }
            _ => Err(End::Closed),
        }
    }

    /// Says why the session ends (when the client is still there to hear it) and hangs up.
    async fn close(mut self, end: End) {
        let goodbye = match end {
            End::Closed => None,
            End::Idle => Some(([4, 4, 2], "idle too long; closing the connection")),
            End::TimeUp => Some((
                [4, 4, 2],
                "session time limit reached; closing the connection",
            )),
            End::Shutdown => Some(([4, 3, 2], "shutting down; try again later")),
            End::TooManyErrors => Some(([4, 7, 0], "too many errors; closing the connection")),
        };
        if let Some((esc, text)) = goodbye {
            self.reply(421, esc, text);
        }
        let _ = timeout(GOODBYE_TIMEOUT, async {
            self.stream.write_all(&self.output).await?;
            self.stream.shutdown().await
        })
        .await;
    }
}

/// `now + after`, saturating: absurd configured timeouts must not overflow the clock.
fn later(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// DATA content as it arrives: smtp-proto's receiver (un-stuffing, the terminator) with a
/// size cap, kept apart from the socket so it can be tested on its own.
struct DataReader {
    receiver: DataReceiver,
    message: Vec<u8>,
    max: usize,
    too_large: bool,
}

impl DataReader {
    fn new(max: usize) -> Self {
        let mut receiver = DataReceiver::new();
        // The data starts right after the CRLF of the DATA command, so a first line "."
        // ends an empty message and a first line ".." is unstuffed. The receiver only knows
        // a line start once it has seen a CRLF, so it is shown one (into a scratch buffer).
        receiver.ingest(&mut b"\r\n".iter(), &mut Vec::new());
        Self {
            receiver,
            message: Vec::new(),
            max,
            too_large: false,
        }
    }

    /// Takes what it can from `input`: how many bytes it used, and whether the message ended.
    /// Bytes after the terminator (pipelined commands) are left for the caller.
    fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut bytes = input.iter();
        let done = self.receiver.ingest(&mut bytes, &mut self.message);
        // +2 for the CRLF that ends the last line, which is not part of the size.
        if self.message.len() > self.max + 2 {
            self.too_large = true;
            self.message = Vec::new();
        }
        (input.len() - bytes.as_slice().len(), done)
    }

    /// The message, ending with the CRLF of its last line; `None` if it was too large.
    fn finish(self) -> Option<Vec<u8>> {
        (!self.too_large).then_some(self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]], max: usize) -> (Option<Vec<u8>>, Vec<u8>) {
        let mut reader = DataReader::new(max);
        let mut pending = Vec::new();
        for chunk in chunks {
            pending.extend_from_slice(chunk);
            let (consumed, done) = reader.feed(&pending);
            pending.drain(..consumed);
            if done {
                return (reader.finish(), pending);
            }
        }
        panic!("no terminator in {chunks:?}");
    }

    #[test]
    fn data_is_unstuffed_from_the_first_line_on() {
        let (message, rest) = read_all(&[b"..first\r\nSubject: x\r\n\r\n..dot\r\n.\r\n"], 100);
        assert_eq!(message.unwrap(), b".first\r\nSubject: x\r\n\r\n.dot\r\n");
        assert!(rest.is_empty());
        let (message, _) = read_all(&[b".\r\n"], 100);
        assert_eq!(message.unwrap(), b"");
    }

    #[test]
    fn the_terminator_may_be_split_and_pipelined_commands_stay() {
        let (message, rest) = read_all(&[b"a: b\r\n\r\nbody\r", b"\n.", b"\r\nQUIT\r\n"], 100);
        assert_eq!(message.unwrap(), b"a: b\r\n\r\nbody\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn a_bare_lf_dot_does_not_end_the_message() {
        let (message, _) = read_all(&[b"a: b\r\n\nx\n.\nMAIL FROM:<e@vil>\r\n.\r\n"], 100);
        assert_eq!(message.unwrap(), b"a: b\r\n\nx\n.\nMAIL FROM:<e@vil>\r\n");
    }

    #[test]
    fn oversize_data_is_read_to_the_end_and_dropped() {
        let big = vec![b'x'; 50];
        let (message, rest) = read_all(&[b"a: b\r\n\r\n", &big, b"\r\n.\r\nNOOP\r\n"], 20);
        assert!(message.is_none());
        assert_eq!(rest, b"NOOP\r\n");
        let (message, _) = read_all(&[b"0123456789\r\n.\r\n"], 10);
        assert_eq!(message.unwrap().len(), 12);
    }

    #[test]
    fn sasl_answers_decode() {
        assert!(matches!(decode("*"), Err(Sasl::Cancelled)));
        assert!(matches!(decode("!!"), Err(Sasl::Malformed)));
        assert_eq!(decode("=").ok(), Some(Vec::new()));
        assert_eq!(decode(" dXNlcg== ").ok(), Some(b"user".to_vec()));
    }
}
