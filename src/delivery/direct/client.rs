//! The outbound SMTP client for direct delivery: one session to one address of one MX host,
//! from one source address. It opens (greeting, EHLO, opportunistic STARTTLS, EHLO again)
//! and runs transactions of one sender and many recipients, pipelined when the server
//! offers PIPELINING (RFC 2920), with every RCPT reply kept for its own recipient.
//!
//! lettre's client sends one recipient list and keeps one reply for all of them, cannot
//! pipeline and cannot bind a source address: direct delivery needs all three.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use crate::delivery::tls_policy::TlsInfo;
use crate::delivery::tls_policy::tlsrpt::Failure;

/// The longest reply line and the most lines of one reply taken from a server.
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 256;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One SMTP reply: its code and its lines' text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// `code text…` on one line, as recorded on events.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

/// What the server offered after EHLO.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    pub pipelining: bool,
    pub starttls: bool,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    /// `SIZE n`; `Some(0)` means no stated limit.
    pub size: Option<u64>,
}

/// A failure before the transaction started: the caller tries the next address or MX.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct OpenError {
    pub stage: &'static str,
    pub message: String,
    pub reply: Option<Reply>,
}

impl OpenError {
    fn new(stage: &'static str, message: impl Into<String>) -> Self {
        Self {
            stage,
            message: message.into(),
            reply: None,
        }
    }

    fn reply(stage: &'static str, reply: Reply) -> Self {
        Self {
            stage,
            message: reply.text(),
            reply: Some(reply),
        }
    }
}

/// The connection broke, or stopped answering, during a transaction.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Broken(pub String);

/// An open session to one MX address.
pub struct Session {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    timeout: Duration,
    pub ext: Extensions,
    pub tls: Option<TlsInfo>,
    pub peer: SocketAddr,
    /// The source address the connection was made from.
    pub local: SocketAddr,
    pub helo: String,
    /// Transactions completed on this connection.
    pub deliveries: u32,
    /// Whether the last transaction sent its commands pipelined.
    pub pipelined: bool,
    broken: bool,
}

impl Session {
    /// Connects from `source` (or wherever the OS picks), reads the greeting, says EHLO
    /// `helo` and upgrades to TLS when offered, checking the certificate with `verifier`
    /// (the verdict is recorded, not enforced). Each step is bounded by `timeout`.
    pub async fn open(
        peer: SocketAddr,
        source: Option<IpAddr>,
        host: &str,
        helo: &str,
        timeout: Duration,
        verifier: Arc<dyn ServerCertVerifier>,
    ) -> Result<Self, OpenError> {
        let socket = if peer.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|e| OpenError::new("connect", e.to_string()))?;
        if let Some(source) = source {
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|e| OpenError::new("connect", format!("binding to {source}: {e}")))?;
        }
        let tcp = match tokio::time::timeout(timeout, socket.connect(peer)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(OpenError::new("connect", e.to_string())),
            Err(_) => {
                return Err(OpenError::new(
                    "connect",
                    format!("no answer in {timeout:?}"),
                ));
            }
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp
            .local_addr()
            .map_err(|e| OpenError::new("connect", e.to_string()))?;
        let mut session = Self {
            io: Box::new(tcp),
            buf: Vec::new(),
            timeout,
            ext: Extensions::default(),
            tls: None,
            peer,
            local,
            helo: helo.to_string(),
            deliveries: 0,
            pipelined: false,
            broken: false,
        };
        let greeting = session
            .read_reply()
            .await
            .map_err(|e| OpenError::new("greeting", e.0))?;
        if greeting.code != 220 {
            return Err(OpenError::reply("greeting", greeting));
        }
        session.hello().await?;
        if session.ext.starttls {
            session.starttls(host, verifier).await?;
            session.hello().await?;
        }
        Ok(session)
    }

    /// EHLO, or HELO for a server that refuses EHLO (RFC 5321 §3.2).
    async fn hello(&mut self) -> Result<(), OpenError> {
        let ehlo = self
            .command(&format!("EHLO {}", self.helo))
            .await
            .map_err(|e| OpenError::new("ehlo", e.0))?;
        if ehlo.code == 250 {
            self.ext = Extensions::default();
            for line in ehlo.lines.iter().skip(1) {
                let mut words = line.split_ascii_whitespace();
                let keyword = words.next().unwrap_or("").to_ascii_uppercase();
                match keyword.as_str() {
                    "PIPELINING" => self.ext.pipelining = true,
                    "STARTTLS" => self.ext.starttls = true,
                    "8BITMIME" => self.ext.eightbitmime = true,
                    "SMTPUTF8" => self.ext.smtputf8 = true,
                    "SIZE" => {
                        self.ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0))
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        if ehlo.is_permanent() {
            let helo = self
                .command(&format!("HELO {}", self.helo))
                .await
                .map_err(|e| OpenError::new("helo", e.0))?;
            if helo.code == 250 {
                self.ext = Extensions::default();
                return Ok(());
            }
            return Err(OpenError::reply("helo", helo));
        }
        Err(OpenError::reply("ehlo", ehlo))
    }

    /// STARTTLS with a certificate check that records its verdict instead of refusing: an
    /// MX with a certificate that does not verify is still better encrypted than not.
    async fn starttls(
        &mut self,
        host: &str,
        verifier: Arc<dyn ServerCertVerifier>,
    ) -> Result<(), OpenError> {
        let reply = self
            .command("STARTTLS")
            .await
            .map_err(|e| OpenError::new("starttls", e.0))?;
        if reply.code != 220 {
            return Err(OpenError::reply("starttls", reply));
        }
        if !self.buf.is_empty() {
            return Err(OpenError::new(
                "starttls",
                "the server sent data before the TLS handshake",
            ));
        }
        let verdict: Verdict = Arc::new(Mutex::new(Ok(())));
        let verifier = Arc::new(Recording {
            inner: verifier,
            verdict: verdict.clone(),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OpenError::new("starttls", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_string())
            .unwrap_or_else(|_| ServerName::IpAddress(self.peer.ip().into()));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let io = std::mem::replace(&mut self.io, Box::new(tokio::io::duplex(1).0));
        let tls = match tokio::time::timeout(self.timeout, connector.connect(name, io)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                let why = crate::tls::explain(&e).unwrap_or_else(|| e.to_string());
                return Err(OpenError::new("starttls", format!("TLS handshake: {why}")));
            }
            Err(_) => {
                return Err(OpenError::new(
                    "starttls",
                    format!("TLS handshake took over {:?}", self.timeout),
                ));
            }
        };
        let (_, conn) = tls.get_ref();
        let verdict = verdict.lock().expect("not poisoned").clone();
        self.tls = Some(TlsInfo {
            version: conn
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("TLS")
                .replace('_', "."),
            cipher: conn
                .negotiated_cipher_suite()
                .and_then(|c| c.suite().as_str())
                .unwrap_or("unknown")
                .to_string(),
            verified: verdict.clone().map_err(|(why, _)| why),
            verify_failure: verdict.err().map(|(_, failure)| failure),
        });
        self.io = Box::new(tls);
        Ok(())
    }

    /// Whether the session can take another transaction.
    pub fn is_usable(&self) -> bool {
        !self.broken
    }

    /// RSET on a pooled session before its next transaction: it also tells whether the
    /// server still answers.
    pub async fn reset(&mut self) -> bool {
        matches!(self.command("RSET").await, Ok(r) if r.code == 250)
    }

    /// QUIT, without waiting long for the answer.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.command("QUIT")).await;
    }

    /// One transaction: MAIL FROM `from` (with `params`), RCPT TO each of `rcpts`, and DATA
    /// when any was accepted. Returns each recipient's final reply in order: its RCPT
    /// refusal, or MAIL's refusal, or DATA's answer.
    pub async fn transaction(
        &mut self,
        from: &str,
        params: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Result<Vec<Reply>, Broken> {
        let mail = format!("MAIL FROM:<{from}>{params}");
        let result = if self.ext.pipelining {
            self.pipelined = true;
            self.pipelined_transaction(&mail, rcpts, message).await
        } else {
            self.pipelined = false;
            self.stepwise_transaction(&mail, rcpts, message).await
        };
        if result.is_err() {
            self.broken = true;
        } else {
            self.deliveries += 1;
        }
        result
    }

    async fn stepwise_transaction(
        &mut self,
        mail: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Result<Vec<Reply>, Broken> {
        let mail_reply = self.command(mail).await?;
        if !mail_reply.is_positive() {
            self.command("RSET").await?;
            return Ok(vec![mail_reply; rcpts.len()]);
        }
        let mut replies = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            replies.push(self.command(&format!("RCPT TO:<{rcpt}>")).await?);
        }
        if !replies.iter().any(Reply::is_positive) {
            self.command("RSET").await?;
            return Ok(replies);
        }
        let data = self.command("DATA").await?;
        if data.code != 354 {
            self.command("RSET").await?;
            return Ok(accepted_get(replies, &data));
        }
        self.send(&dot_stuffed(message)).await?;
        let done = self.read_reply().await?;
        Ok(accepted_get(replies, &done))
    }

    /// MAIL, every RCPT and DATA in one write, then their replies in order (RFC 2920).
    async fn pipelined_transaction(
        &mut self,
        mail: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Result<Vec<Reply>, Broken> {
        let mut batch = format!("{mail}\r\n");
        for rcpt in rcpts {
            batch.push_str(&format!("RCPT TO:<{rcpt}>\r\n"));
        }
        batch.push_str("DATA\r\n");
        self.send(batch.as_bytes()).await?;
        let mail_reply = self.read_reply().await?;
        let mut replies = Vec::with_capacity(rcpts.len());
        for _ in rcpts {
            replies.push(self.read_reply().await?);
        }
        let data = self.read_reply().await?;
        let any = mail_reply.is_positive() && replies.iter().any(Reply::is_positive);
        if data.code == 354 {
            if !any {
                // RFC 2920 §3.1: DATA accepted with no recipient; end it empty.
                self.send(b".\r\n").await?;
                self.read_reply().await?;
            } else {
                self.send(&dot_stuffed(message)).await?;
                let done = self.read_reply().await?;
                return Ok(accepted_get(replies, &done));
            }
        }
        self.command("RSET").await?;
        if !mail_reply.is_positive() {
            return Ok(vec![mail_reply; rcpts.len()]);
        }
        if !any {
            return Ok(replies);
        }
        Ok(accepted_get(replies, &data))
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Broken> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply().await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Broken> {
        let write = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Broken(format!("connection lost: {e}"))),
            Err(_) => Err(Broken(format!("no progress in {:?}", self.timeout))),
        }
    }

    async fn read_reply(&mut self) -> Result<Reply, Broken> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| Broken(format!("not an SMTP reply: {line:?}")))?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_LINES {
                return Err(Broken("reply too long".into()));
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, Broken> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                return Ok(line.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() > MAX_LINE {
                return Err(Broken("reply line too long".into()));
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
                Ok(Ok(0)) => return Err(Broken("the server closed the connection".into())),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(Broken(format!("connection lost: {e}"))),
                Err(_) => return Err(Broken(format!("no reply in {:?}", self.timeout))),
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Each accepted recipient gets `reply` (DATA's answer); refused ones keep their refusal.
fn accepted_get(rcpt_replies: Vec<Reply>, reply: &Reply) -> Vec<Reply> {
    rcpt_replies
        .into_iter()
        .map(|r| if r.is_positive() { reply.clone() } else { r })
        .collect()
}

/// The message with every line that starts with `.` doubled (RFC 5321 §4.5.2), ending in
/// CRLF, and the terminating `.` line.
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Verifies like `inner` but accepts what fails, remembering why: the handshake signature is
/// still checked, so the session is encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    verdict: Verdict,
}

/// Whether the certificate verified; when not, why and what that is for TLS-RPT.
type Verdict = Arc<Mutex<Result<(), (String, Failure)>>>;

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Err(err) = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            *self.verdict.lock().expect("not poisoned") =
                Err((err.to_string(), Failure::of_certificate(&err)));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_the_data() {
        assert_eq!(
            dot_stuffed(b".hidden\r\nline\r\n..two\r\n"),
            b"..hidden\r\nline\r\n...two\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b"no newline"), b"no newline\r\n.\r\n");
    }
}
