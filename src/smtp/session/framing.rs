//! The connection under a session: plain or TLS, buffered, with the idle and session clocks;
//! cutting input into lines, and DATA into a message.

use std::{
    fmt::Display,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use smtp_proto::{EhloResponse, Response, request::receiver::DataReceiver};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    time::{Instant, timeout, timeout_at},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::sync::CancellationToken;

/// Longest command or AUTH response line, CRLF included (RFC 4954 allows 12288 for AUTH).
pub(super) const MAX_LINE: usize = 12_288;
/// How long a closing 421 may take to write.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a session ends other than by QUIT.
#[derive(Debug)]
pub(super) enum End {
    /// The client went away or the connection broke.
    Closed,
    Idle,
    TimeUp,
    Shutdown,
    TooManyErrors,
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
pub(super) struct Io {
    stream: Stream,
    input: Vec<u8>,
    output: Vec<u8>,
    idle: Duration,
    deadline: Instant,
    cancel: CancellationToken,
}

impl Io {
    pub(super) fn new(
        tcp: TcpStream,
        idle: Duration,
        session: Duration,
        cancel: CancellationToken,
    ) -> Self {
        Io {
            stream: Stream::Plain(tcp),
            input: Vec::new(),
            output: Vec::new(),
            idle,
            deadline: later(session),
            cancel,
        }
    }

    /// A reply with an enhanced status code (RFC 2034). Text from clients (header names in
    /// errors) is made printable, so it can never break the reply framing.
    pub(super) fn reply(&mut self, code: u16, esc: [u8; 3], text: impl Display) {
        let message: String = text
            .to_string()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        // Writing into a Vec cannot fail.
        let _ = Response { code, esc, message }.write(&mut self.output);
    }

    /// A reply without an enhanced code: the greeting, HELO, 354 and 334 have none.
    pub(super) fn write_line(&mut self, line: impl Display) {
        self.output
            .extend_from_slice(format!("{line}\r\n").as_bytes());
    }

    pub(super) fn ehlo(&mut self, ehlo: &EhloResponse<&str>) {
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
    pub(super) async fn line(&mut self, max: usize) -> Result<Option<Vec<u8>>, End> {
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
    pub(super) async fn challenge(&mut self, prompt: &str) -> Result<Option<String>, End> {
        self.write_line(format_args!("334 {prompt}"));
        let Some(line) = self.line(MAX_LINE).await? else {
            return Ok(None);
        };
        Ok(Some(String::from_utf8_lossy(&line).trim().to_string()))
    }

    /// Reads DATA up to the terminating CRLF.CRLF, dot-stuffing undone; `None` if it grew
    /// past `max` (the rest is read and dropped, so the session stays in step).
    pub(super) async fn data(&mut self, max: usize) -> Result<Option<Vec<u8>>, End> {
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
    pub(super) async fn start_tls(mut self, acceptor: &TlsAcceptor) -> Result<Io, End> {
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
    pub(super) async fn close(mut self, end: End) {
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
        // The CRLF that ends the last line is part of the message (RFC 5321 §4.1.1.4), and
        // of its size.
        if self.message.len() > self.max {
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
        let (message, _) = read_all(&[b"01234567\r\n.\r\n"], 10);
        assert_eq!(message.unwrap(), b"01234567\r\n");
        let (message, _) = read_all(&[b"012345678\r\n.\r\n"], 10);
        assert!(message.is_none());
    }
}
