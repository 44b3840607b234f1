//! A scriptable SMTP server for integration tests, listening on a real
//! loopback socket so the gateway's SMTP client (lettre) is exercised end to
//! end: greeting, EHLO, STARTTLS, AUTH, pipelining and pooled reuse.
//!
//! Failure behaviour (per-recipient rejections, DATA replies, slow replies,
//! dropped connections) is scripted through methods on [`TestSmtpServer`].

// Each test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::eventually;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Host name used in the greeting and the certificate.
const SERVER_NAME: &str = "localhost";
/// Advertised with `SIZE`; not enforced.
const MAX_SIZE: usize = 52_428_800;
/// Upper bound for one command line, so a broken client cannot grow memory
/// without limit.
const MAX_COMMAND_LINE: u64 = 64 * 1024;

/// One message accepted with a 2xx reply after DATA.
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    /// Reverse path without the angle brackets (empty for the null sender `<>`).
    pub mail_from: String,
    /// The parameters after the reverse path, upper-cased (`SMTPUTF8`, `BODY=8BITMIME`).
    pub mail_params: Vec<String>,
    /// Only the recipients that were answered with a 2xx, in order.
    pub rcpt_to: Vec<String>,
    /// Message bytes exactly as the client gave them: dot-stuffing undone, and
    /// without the `CRLF . CRLF` terminator. For lettre this equals the bytes
    /// passed to `send_raw`.
    pub data: Vec<u8>,
    /// Whether the transaction ran over STARTTLS.
    pub tls: bool,
    /// `(username, password)` from a successful AUTH on this connection.
    pub auth: Option<(String, String)>,
    /// When the server took it (before its reply), for rates measured at the sink.
    pub received_at: std::time::Instant,
    /// The client's address (its source address and port).
    pub peer: SocketAddr,
    /// The name the client gave in EHLO (or HELO) on this connection.
    pub ehlo: Option<String>,
    /// Whether the client sent RCPT or DATA before the reply to MAIL (RFC 2920).
    pub pipelined: bool,
}

impl ReceivedMessage {
    /// `data` as (lossy) UTF-8, for `contains` checks on headers and body.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Clone, Debug, Default)]
pub struct SmtpServerOptions {
    /// `(username, password)`. When set the server behaves like a submission
    /// server: STARTTLS first, then AUTH with exactly these credentials, and
    /// only then MAIL.
    pub require_tls_and_auth: Option<(String, String)>,
    /// Offer `SMTPUTF8` (RFC 6531) in the EHLO reply. Without it, a UTF-8 address in MAIL
    /// or RCPT is refused with `553 5.6.7`, as RFC 6531 servers do.
    pub smtputf8: bool,
    /// The TLS server configuration for STARTTLS (e.g. a certificate from a test CA for the
    /// MX host name) instead of a self-signed one for `localhost`.
    pub tls_config: Option<Arc<rustls::ServerConfig>>,
}

/// Scripted reply to RCPT TO for one address.
struct RcptRule {
    /// Lower-cased address, for case-insensitive matching.
    addr: String,
    code: u16,
    text: String,
    /// `None` = forever.
    remaining: Option<usize>,
}

/// Scripted reply after DATA, consumed one transaction at a time.
struct DataRule {
    code: u16,
    text: String,
    remaining: usize,
}

#[derive(Default)]
struct Script {
    received: Vec<ReceivedMessage>,
    rcpt_rules: Vec<RcptRule>,
    data_rules: VecDeque<DataRule>,
    data_delay: Duration,
    drop_after_data: usize,
    /// Close the connection right after the reply to this many messages (a relay whose
    /// idle timeout ran out): the client learns it at its next command.
    close_after_message: usize,
    /// Answer this many MAIL commands with `421` and close.
    mail_421: usize,
    /// NOOP commands received.
    noops: usize,
    connections: usize,
    /// Transactions whose message was read in full, before any delay or reply.
    data_read: usize,
    /// Connections open now (by the client's address), and the most that were open at once.
    /// A connection stops counting when its client says QUIT, before the `221`: the client
    /// may take the answer as the end of the session, and then open another.
    open: HashSet<SocketAddr>,
    max_open: usize,
    /// Leave PIPELINING out of the EHLO reply.
    no_pipelining: bool,
    /// Advertise this `SIZE` instead of the default.
    size: Option<usize>,
    /// Greet with this reply (and close) instead of 220.
    greeting: Option<String>,
    /// Answer STARTTLS with this reply instead of starting TLS.
    starttls_reply: Option<String>,
    /// Leave STARTTLS out of the EHLO reply.
    no_starttls: bool,
    /// MAIL commands received, whatever was answered.
    mail_commands: usize,
}

struct Shared {
    opts: SmtpServerOptions,
    acceptor: TlsAcceptor,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    script: Mutex<Script>,
}

impl Shared {
    /// A panicking test thread must not turn every later lock into a panic
    /// inside connection tasks, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct TestSmtpServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    /// Accept loop; it owns the listener and (through a JoinSet) every
    /// connection task, so aborting it shuts the whole server down.
    task: Option<JoinHandle<()>>,
}

impl TestSmtpServer {
    /// Binds 127.0.0.1 on an ephemeral port and accepts everything.
    pub async fn start() -> Self {
        Self::start_with(SmtpServerOptions::default()).await
    }

    pub async fn start_with(opts: SmtpServerOptions) -> Self {
        let (mut acceptor, cert_pem, cert_der) = make_tls();
        if let Some(config) = &opts.tls_config {
            acceptor = TlsAcceptor::from(config.clone());
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test SMTP server");
        let addr = listener
            .local_addr()
            .expect("local addr of test SMTP server");
        let shared = Arc::new(Shared {
            opts,
            acceptor,
            cert_pem,
            cert_der,
            script: Mutex::new(Script::default()),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        TestSmtpServer {
            addr,
            shared,
            task: Some(task),
        }
    }

    /// Listens on exactly `addr` (e.g. `127.0.0.2:25`, as an MX host; root binds port 25),
    /// accepting everything.
    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::start_on_with(addr, SmtpServerOptions::default()).await
    }

    /// `start_on` with options (e.g. `smtputf8`).
    pub async fn start_on_with(addr: SocketAddr, opts: SmtpServerOptions) -> Self {
        let (mut acceptor, cert_pem, cert_der) = make_tls();
        if let Some(config) = &opts.tls_config {
            acceptor = TlsAcceptor::from(config.clone());
        }
        let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
            panic!("bind test SMTP server on {addr} (needs root for port 25): {e}")
        });
        let shared = Arc::new(Shared {
            opts,
            acceptor,
            cert_pem,
            cert_der,
            script: Mutex::new(Script::default()),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        TestSmtpServer {
            addr,
            shared,
            task: Some(task),
        }
    }

    /// Greet every connection with `reply` (e.g. `554 5.7.1 go away`) and close it.
    pub fn set_greeting(&self, reply: &str) {
        self.shared.lock().greeting = Some(reply.to_string());
    }

    /// Answer STARTTLS with `reply` (e.g. `454 4.7.0 TLS not available`), staying plain.
    pub fn set_starttls_reply(&self, reply: &str) {
        self.shared.lock().starttls_reply = Some(reply.to_string());
    }

    /// Offer STARTTLS in EHLO (the default) or not.
    pub fn set_starttls(&self, offered: bool) {
        self.shared.lock().no_starttls = !offered;
    }

    /// MAIL commands received so far (accepted or not).
    pub fn mail_commands(&self) -> usize {
        self.shared.lock().mail_commands
    }

    /// Advertise `SIZE bytes` in EHLO (not enforced).
    pub fn set_size(&self, bytes: usize) {
        self.shared.lock().size = Some(bytes);
    }

    /// Transactions whose message was read in full, whatever was answered.
    pub fn messages_read(&self) -> usize {
        self.shared.lock().data_read
    }

    /// Offer PIPELINING in EHLO (the default) or not.
    pub fn set_pipelining(&self, offered: bool) {
        self.shared.lock().no_pipelining = !offered;
    }

    /// Port the server listens on (convenience for config building).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// PEM of the self-signed certificate (SANs `localhost`, `127.0.0.1`),
    /// for clients that want to trust it instead of skipping verification.
    pub fn cert_pem(&self) -> String {
        self.shared.cert_pem.clone()
    }

    /// DER of the same certificate.
    pub fn cert_der(&self) -> Vec<u8> {
        self.shared.cert_der.as_ref().to_vec()
    }

    /// Reply `code text` to RCPT TO for this exact address (case-insensitive),
    /// `times` times (`None` = forever), then 250 again. A later call for the
    /// same address replaces the earlier rule.
    pub fn rcpt_reply(&self, rcpt: &str, code: u16, text: &str, times: Option<usize>) {
        let addr = rcpt
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_ascii_lowercase();
        let mut s = self.shared.lock();
        s.rcpt_rules.retain(|r| r.addr != addr);
        s.rcpt_rules.push(RcptRule {
            addr,
            code,
            text: text.to_string(),
            remaining: times,
        });
    }

    /// Reply `code text` after the DATA terminator for the next `times`
    /// transactions, then 250 again. Calls queue up behind each other.
    pub fn data_reply(&self, code: u16, text: &str, times: usize) {
        if times == 0 {
            return;
        }
        self.shared.lock().data_rules.push_back(DataRule {
            code,
            text: text.to_string(),
            remaining: times,
        });
    }

    /// Wait `delay` before the final reply to DATA, for every transaction until
    /// set back to `Duration::ZERO`. A client that disconnects during the wait
    /// never saw an answer, so its message is not recorded.
    pub fn set_data_delay(&self, delay: Duration) {
        self.shared.lock().data_delay = delay;
    }

    /// For the next `times` transactions, read the whole DATA and then close
    /// the connection without replying. Such messages are not recorded.
    pub fn drop_after_data(&self, times: usize) {
        self.shared.lock().drop_after_data += times;
    }

    /// For the next `times` messages, close the connection right after the reply to DATA,
    /// without a word: as a relay whose idle timeout ran out, the client finds out at its
    /// next command.
    pub fn close_after_message(&self, times: usize) {
        self.shared.lock().close_after_message += times;
    }

    /// Answer the next `times` MAIL commands with `421 4.4.2` and close, as a relay does
    /// that timed the idle connection out.
    pub fn mail_421(&self, times: usize) {
        self.shared.lock().mail_421 += times;
    }

    /// How many NOOP commands clients sent.
    pub fn noops(&self) -> usize {
        self.shared.lock().noops
    }

    /// Everything accepted with a 2xx after DATA, in order.
    pub fn received(&self) -> Vec<ReceivedMessage> {
        self.shared.lock().received.clone()
    }

    /// Polls until at least `n` messages were received; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        eventually(
            format_args!("test SMTP server: at least {n} message(s)"),
            timeout,
            async || {
                let got = self.received();
                if got.len() >= n {
                    Ok(got)
                } else {
                    Err(format!(
                        "{} arrived: {:?}",
                        got.len(),
                        got.iter()
                            .map(|m| (&m.mail_from, &m.rcpt_to))
                            .collect::<Vec<_>>()
                    ))
                }
            },
        )
        .await
    }

    /// Polls until at least `n` messages were read in full (whatever was answered, if
    /// anything yet): with `set_data_delay`, the client is then waiting for the reply.
    pub async fn wait_for_data(&self, n: usize, timeout: Duration) {
        eventually(
            format_args!("test SMTP server: {n} message(s) read"),
            timeout,
            async || self.shared.lock().data_read >= n,
        )
        .await;
    }

    /// Total number of TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// The most connections that were open at the same time.
    pub fn max_open_connections(&self) -> usize {
        self.shared.lock().max_open
    }

    /// Like `stop`, but the server keeps what it received and its script, so
    /// `up` can bring it back on the same port: an upstream relay that flaps.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port after `down`.
    pub async fn up(&mut self) {
        assert!(self.task.is_none(), "already up");
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind test SMTP server on its port");
        self.task = Some(tokio::spawn(accept_loop(listener, self.shared.clone())));
    }

    /// Stops listening and cuts every open connection; when this returns the
    /// port refuses new connections. Dropping the server does the same, but
    /// without waiting.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for TestSmtpServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Self-signed certificate for `localhost` and `127.0.0.1`, made once per
/// server. The ring provider is passed explicitly so no process-wide rustls
/// provider has to be installed.
fn make_tls() -> (TlsAcceptor, String, CertificateDer<'static>) {
    let ck =
        rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string(), "127.0.0.1".to_string()])
            .expect("generate test certificate");
    let cert_der = ck.cert.der().clone();
    let cert_pem = ck.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("rustls protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert_der.clone()], key)
    .expect("rustls server config");
    (TlsAcceptor::from(Arc::new(config)), cert_pem, cert_der)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in this set so that aborting the accept loop
    // (dropping this future) aborts them too.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    // Transient accept errors (e.g. out of fds) must not kill the server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                {
                    let mut script = shared.lock();
                    script.connections += 1;
                    script.open.insert(peer);
                    script.max_open = script.max_open.max(script.open.len());
                }
                let shared = shared.clone();
                conns.spawn(async move {
                    // Errors only mean the client went away; nothing to report.
                    let _ = serve_connection(stream, peer, shared.clone()).await;
                    shared.lock().open.remove(&peer);
                });
            }
            // Reap finished tasks so the set does not grow for ever.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// What ended a session on one stream.
enum SessionEnd {
    /// QUIT, EOF, or a deliberate drop: close the connection.
    Close,
    /// STARTTLS was accepted: upgrade the stream and start over.
    StartTls,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let greeting = shared.lock().greeting.clone();
    if let Some(greeting) = greeting {
        send(&mut reader, &format!("{greeting}\r\n")).await?;
        return Ok(());
    }
    send(
        &mut reader,
        &format!("220 {SERVER_NAME} ESMTP mailgate-test-smtp\r\n"),
    )
    .await?;
    let mut ehlo = None;
    match session(&mut reader, &shared, false, peer, &mut ehlo).await? {
        SessionEnd::Close => return Ok(()),
        SessionEnd::StartTls => {}
    }
    // Bytes buffered after STARTTLS were sent in plaintext before the
    // handshake; RFC 3207 says to discard them, so into_inner() drops them.
    let tls = shared.acceptor.accept(reader.into_inner()).await?;
    let mut reader = BufReader::new(tls);
    match session(&mut reader, &shared, true, peer, &mut ehlo).await? {
        SessionEnd::Close | SessionEnd::StartTls => {}
    }
    // Best-effort close_notify so the client sees a clean TLS EOF.
    let _ = reader.get_mut().shutdown().await;
    Ok(())
}

/// Per-connection SMTP state; rebuilt from scratch after STARTTLS.
struct Session<'a> {
    shared: &'a Shared,
    tls: bool,
    greeted: bool,
    auth: Option<(String, String)>,
    tx: Option<Transaction>,
}

struct Transaction {
    mail_from: String,
    mail_params: Vec<String>,
    rcpt_to: Vec<String>,
    pipelined: bool,
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, reply: &str) -> std::io::Result<()> {
    stream.write_all(reply.as_bytes()).await?;
    stream.flush().await
}

/// Reads one line including its `\n`. `None` on EOF (or on an unterminated
/// final fragment, which means the client went away mid-line).
async fn read_line<S: AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
    limit: u64,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut line)
        .await?;
    if line.last() == Some(&b'\n') {
        Ok(Some(line))
    } else if line.len() as u64 >= limit {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "SMTP line too long",
        ))
    } else {
        Ok(None)
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses `FROM:<addr> params` / `TO:<addr> params` (keyword case-insensitive,
/// parameters ignored). Returns the address without angle brackets.
fn parse_path(args: &str, keyword: &str) -> Option<String> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(inner[..end].to_string())
    } else {
        // Be lenient with clients that omit the brackets.
        let addr = rest.split_whitespace().next()?;
        Some(addr.to_string())
    }
}

/// The parameters after the path in `FROM:<addr> SMTPUTF8 BODY=8BITMIME`, upper-cased.
fn path_params(args: &str) -> Vec<String> {
    let rest = match args.find('>') {
        Some(end) => &args[end + 1..],
        None => args.split_once(' ').map_or("", |(_, r)| r),
    };
    rest.split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect()
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    shared: &Shared,
    tls: bool,
    peer: SocketAddr,
    ehlo: &mut Option<String>,
) -> std::io::Result<SessionEnd> {
    let mut s = Session {
        shared,
        tls,
        greeted: false,
        auth: None,
        tx: None,
    };
    let required = shared.opts.require_tls_and_auth.clone();
    loop {
        let Some(raw) = read_line(reader, MAX_COMMAND_LINE).await? else {
            return Ok(SessionEnd::Close);
        };
        let line = String::from_utf8_lossy(trim_eol(&raw)).into_owned();
        let (verb, args) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" => {
                if args.is_empty() {
                    send(reader, "501 5.5.4 EHLO requires a domain\r\n").await?;
                    continue;
                }
                s.greeted = true;
                s.tx = None;
                *ehlo = Some(args.to_string());
                let mut lines = vec![format!("{SERVER_NAME} greets {args}")];
                if !s.shared.lock().no_pipelining {
                    lines.push("PIPELINING".to_string());
                }
                let size = s.shared.lock().size.unwrap_or(MAX_SIZE);
                lines.extend([
                    "8BITMIME".to_string(),
                    "ENHANCEDSTATUSCODES".to_string(),
                    format!("SIZE {size}"),
                ]);
                if s.shared.opts.smtputf8 {
                    lines.push("SMTPUTF8".to_string());
                }
                if !s.tls && !s.shared.lock().no_starttls {
                    lines.push("STARTTLS".to_string());
                }
                // In submission mode AUTH is only offered once encrypted, as
                // real servers do; lettre then must STARTTLS before AUTH.
                if required.is_none() || s.tls {
                    lines.push("AUTH PLAIN LOGIN".to_string());
                }
                let last = lines.len() - 1;
                let mut reply = String::new();
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    reply.push_str(&format!("250{sep}{l}\r\n"));
                }
                send(reader, &reply).await?;
            }
            "HELO" => {
                if args.is_empty() {
                    send(reader, "501 5.5.4 HELO requires a domain\r\n").await?;
                    continue;
                }
                s.greeted = true;
                s.tx = None;
                *ehlo = Some(args.to_string());
                send(reader, &format!("250 {SERVER_NAME}\r\n")).await?;
            }
            "STARTTLS" => {
                let refusal = s.shared.lock().starttls_reply.clone();
                if s.tls {
                    send(reader, "503 5.5.1 TLS already active\r\n").await?;
                } else if !args.is_empty() {
                    send(reader, "501 5.5.4 STARTTLS takes no parameters\r\n").await?;
                } else if let Some(reply) = refusal {
                    send(reader, &format!("{reply}\r\n")).await?;
                } else {
                    send(reader, "220 2.0.0 Ready to start TLS\r\n").await?;
                    return Ok(SessionEnd::StartTls);
                }
            }
            "AUTH" => {
                if s.auth.is_some() {
                    send(reader, "503 5.5.1 Already authenticated\r\n").await?;
                } else if s.tx.is_some() {
                    send(
                        reader,
                        "503 5.5.1 AUTH not allowed during a mail transaction\r\n",
                    )
                    .await?;
                } else if required.is_some() && !s.tls {
                    send(reader, "530 5.7.0 Must issue a STARTTLS command first\r\n").await?;
                } else {
                    match read_auth(reader, args).await? {
                        AuthOutcome::Credentials(user, pass) => {
                            let ok = match &required {
                                Some((u, p)) => *u == user && *p == pass,
                                None => true,
                            };
                            if ok {
                                s.auth = Some((user, pass));
                                send(reader, "235 2.7.0 Authentication successful\r\n").await?;
                            } else {
                                send(reader, "535 5.7.8 Authentication credentials invalid\r\n")
                                    .await?;
                            }
                        }
                        AuthOutcome::Reply(reply) => send(reader, reply).await?,
                        AuthOutcome::Eof => return Ok(SessionEnd::Close),
                    }
                }
            }
            "MAIL" => {
                s.shared.lock().mail_commands += 1;
                let timed_out = {
                    let mut script = s.shared.lock();
                    let due = script.mail_421 > 0;
                    script.mail_421 = script.mail_421.saturating_sub(1);
                    due
                };
                if timed_out {
                    send(reader, "421 4.4.2 idle too long; closing\r\n").await?;
                    return Ok(SessionEnd::Close);
                }
                let reply = if !s.greeted {
                    "503 5.5.1 Send EHLO/HELO first\r\n"
                } else if required.is_some() && !s.tls {
                    "530 5.7.0 Must issue a STARTTLS command first\r\n"
                } else if required.is_some() && s.auth.is_none() {
                    "530 5.7.0 Authentication required\r\n"
                } else if s.tx.is_some() {
                    "503 5.5.1 Nested MAIL command\r\n"
                } else if let Some(from) = parse_path(args, "FROM:") {
                    let mail_params = path_params(args);
                    if !from.is_ascii() && !mail_params.iter().any(|p| p == "SMTPUTF8") {
                        "553 5.6.7 UTF-8 address without SMTPUTF8\r\n"
                    } else {
                        s.tx = Some(Transaction {
                            mail_from: from,
                            mail_params,
                            rcpt_to: Vec::new(),
                            // More commands already waiting: the client did not wait for
                            // this reply.
                            pipelined: !reader.buffer().is_empty(),
                        });
                        "250 2.1.0 OK\r\n"
                    }
                } else {
                    "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
                };
                send(reader, reply).await?;
            }
            "RCPT" => {
                let reply = match (&mut s.tx, parse_path(args, "TO:")) {
                    (None, _) => "503 5.5.1 Need MAIL before RCPT\r\n".to_string(),
                    (Some(_), None) => "501 5.5.4 Syntax: RCPT TO:<address>\r\n".to_string(),
                    (Some(tx), Some(to))
                        if !to.is_ascii() && !tx.mail_params.iter().any(|p| p == "SMTPUTF8") =>
                    {
                        "553 5.6.7 UTF-8 address without SMTPUTF8\r\n".to_string()
                    }
                    (Some(tx), Some(to)) => {
                        let (code, text) = rcpt_decision(s.shared, &to);
                        if (200..300).contains(&code) {
                            tx.rcpt_to.push(to);
                        }
                        format!("{code} {text}\r\n")
                    }
                };
                send(reader, &reply).await?;
            }
            "DATA" => {
                if !args.is_empty() {
                    send(reader, "501 5.5.4 DATA takes no parameters\r\n").await?;
                    continue;
                }
                let Some(tx) = s.tx.as_ref() else {
                    send(reader, "503 5.5.1 Need MAIL before DATA\r\n").await?;
                    continue;
                };
                if tx.rcpt_to.is_empty() {
                    send(reader, "554 5.5.1 No valid recipients\r\n").await?;
                    continue;
                }
                send(reader, "354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let Some(data) = read_data(reader).await? else {
                    return Ok(SessionEnd::Close);
                };
                // The transaction is over whatever we answer.
                let Some(tx) = s.tx.take() else {
                    return Ok(SessionEnd::Close);
                };
                let delay = {
                    let mut script = s.shared.lock();
                    script.data_read += 1;
                    script.data_delay
                };
                if !delay.is_zero() && !wait_unless_client_leaves(reader, delay).await {
                    return Ok(SessionEnd::Close);
                }
                let reply = {
                    let mut script = s.shared.lock();
                    if script.drop_after_data > 0 {
                        script.drop_after_data -= 1;
                        None
                    } else {
                        let (code, text) = next_data_reply(&mut script);
                        if (200..300).contains(&code) {
                            // Recorded before the reply is written, so a client
                            // that saw the 250 always finds the message here.
                            script.received.push(ReceivedMessage {
                                mail_from: tx.mail_from,
                                mail_params: tx.mail_params,
                                rcpt_to: tx.rcpt_to,
                                data,
                                tls: s.tls,
                                auth: s.auth.clone(),
                                received_at: std::time::Instant::now(),
                                peer,
                                ehlo: ehlo.clone(),
                                pipelined: tx.pipelined,
                            });
                        }
                        Some(format!("{code} {text}\r\n"))
                    }
                };
                match reply {
                    Some(reply) => {
                        send(reader, &reply).await?;
                        let mut script = s.shared.lock();
                        if script.close_after_message > 0 {
                            script.close_after_message -= 1;
                            return Ok(SessionEnd::Close);
                        }
                    }
                    // Simulates a server crash mid-transaction: no reply, just close.
                    None => return Ok(SessionEnd::Close),
                }
            }
            "RSET" => {
                s.tx = None;
                send(reader, "250 2.0.0 OK\r\n").await?;
            }
            "NOOP" => {
                s.shared.lock().noops += 1;
                send(reader, "250 2.0.0 OK\r\n").await?
            }
            "QUIT" => {
                s.shared.lock().open.remove(&peer);
                send(reader, "221 2.0.0 Bye\r\n").await?;
                return Ok(SessionEnd::Close);
            }
            _ => send(reader, "500 5.5.2 Command not recognized\r\n").await?,
        }
    }
}

/// Applies (and consumes) the scripted RCPT rule for `to`, if any.
fn rcpt_decision(shared: &Shared, to: &str) -> (u16, String) {
    let lower = to.to_ascii_lowercase();
    let mut script = shared.lock();
    if let Some(rule) = script
        .rcpt_rules
        .iter_mut()
        .find(|r| r.addr == lower && r.remaining != Some(0))
    {
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        return (rule.code, rule.text.clone());
    }
    (250, "2.1.5 OK".to_string())
}

fn next_data_reply(script: &mut Script) -> (u16, String) {
    if let Some(rule) = script.data_rules.front_mut() {
        let reply = (rule.code, rule.text.clone());
        rule.remaining -= 1;
        if rule.remaining == 0 {
            script.data_rules.pop_front();
        }
        return reply;
    }
    (250, "2.0.0 OK: queued".to_string())
}

/// Reads DATA up to the `.` line, undoing dot-stuffing. Returns `None` if the
/// client disconnects first. The CRLF that precedes the `.` line ends the last
/// line and belongs to the message (RFC 5321 §4.1.1.4), so it is kept.
async fn read_data<S: AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    loop {
        // Message lines are not length-limited here (only whole-message size
        // matters to the tests), so the limit is the advertised SIZE.
        let Some(line) = read_line(reader, MAX_SIZE as u64 + 2).await? else {
            return Ok(None);
        };
        if trim_eol(&line) == b"." {
            break;
        }
        let unstuffed = if line.first() == Some(&b'.') {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(unstuffed);
        if data.len() > MAX_SIZE + 2 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "message larger than advertised SIZE",
            ));
        }
    }
    Ok(Some(data))
}

/// Sleeps for `delay`, but notices if the client hangs up meanwhile (the
/// usual reaction of a client whose timeout fired). Returns false in that case.
async fn wait_unless_client_leaves<S: AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
    delay: Duration,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    tokio::select! {
        _ = &mut sleep => true,
        // fill_buf only peeks, so early pipelined bytes stay buffered.
        peeked = reader.fill_buf() => match peeked {
            Ok([]) | Err(_) => false,
            Ok(_) => {
                // Data arrived early; nothing more to watch, just finish waiting.
                sleep.await;
                true
            }
        },
    }
}

enum AuthOutcome {
    Credentials(String, String),
    /// Protocol-level failure to send back, e.g. bad base64 or cancel.
    Reply(&'static str),
    Eof,
}

/// Runs the AUTH exchange for PLAIN (inline or after `334`) and LOGIN.
async fn read_auth<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    args: &str,
) -> std::io::Result<AuthOutcome> {
    let mut parts = args.split_whitespace();
    let mech = parts.next().unwrap_or("").to_ascii_uppercase();
    let initial = parts.next().map(str::to_string);
    match mech.as_str() {
        "PLAIN" => {
            let resp = match initial {
                Some(r) => r,
                None => match challenge(reader, "").await? {
                    Some(r) => r,
                    None => return Ok(AuthOutcome::Eof),
                },
            };
            if resp == "*" {
                return Ok(AuthOutcome::Reply("501 5.0.0 Authentication cancelled\r\n"));
            }
            // "=" is the RFC 4954 spelling of an empty initial response.
            let decoded = if resp == "=" {
                Ok(Vec::new())
            } else {
                B64.decode(resp.as_bytes())
            };
            let Ok(decoded) = decoded else {
                return Ok(AuthOutcome::Reply("501 5.5.2 Cannot decode response\r\n"));
            };
            // authzid NUL authcid NUL passwd
            let mut fields = decoded.split(|b| *b == 0);
            match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some(_authzid), Some(user), Some(pass), None) => Ok(AuthOutcome::Credentials(
                    String::from_utf8_lossy(user).into_owned(),
                    String::from_utf8_lossy(pass).into_owned(),
                )),
                _ => Ok(AuthOutcome::Reply("501 5.5.2 Malformed PLAIN response\r\n")),
            }
        }
        "LOGIN" => {
            let user_b64 = match initial {
                Some(r) => r,
                // base64("Username:")
                None => match challenge(reader, "VXNlcm5hbWU6").await? {
                    Some(r) => r,
                    None => return Ok(AuthOutcome::Eof),
                },
            };
            if user_b64 == "*" {
                return Ok(AuthOutcome::Reply("501 5.0.0 Authentication cancelled\r\n"));
            }
            // base64("Password:")
            let Some(pass_b64) = challenge(reader, "UGFzc3dvcmQ6").await? else {
                return Ok(AuthOutcome::Eof);
            };
            if pass_b64 == "*" {
                return Ok(AuthOutcome::Reply("501 5.0.0 Authentication cancelled\r\n"));
            }
            match (
                B64.decode(user_b64.as_bytes()),
                B64.decode(pass_b64.as_bytes()),
            ) {
                (Ok(u), Ok(p)) => Ok(AuthOutcome::Credentials(
                    String::from_utf8_lossy(&u).into_owned(),
                    String::from_utf8_lossy(&p).into_owned(),
                )),
                _ => Ok(AuthOutcome::Reply("501 5.5.2 Cannot decode response\r\n")),
            }
        }
        _ => Ok(AuthOutcome::Reply(
            "504 5.5.4 Unrecognized authentication type\r\n",
        )),
    }
}

/// Sends a `334` challenge and returns the client's trimmed answer line.
async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    prompt: &str,
) -> std::io::Result<Option<String>> {
    send(reader, &format!("334 {prompt}\r\n")).await?;
    let Some(line) = read_line(reader, MAX_COMMAND_LINE).await? else {
        return Ok(None);
    };
    Ok(Some(
        String::from_utf8_lossy(trim_eol(&line)).trim().to_string(),
    ))
}
