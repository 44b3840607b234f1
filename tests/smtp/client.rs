//! Clients for the SMTP tests: a raw line client over plain TCP (to see every reply, or to
//! pipeline by hand), Python's smtplib as apps use it, and swaks.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::Command,
};

use crate::support::missing_tool;

const WAIT: Duration = Duration::from_secs(10);

/// Plain SMTP, one reply at a time.
pub struct RawClient {
    stream: BufReader<TcpStream>,
}

impl RawClient {
    /// Connects and returns the client with the greeting.
    pub async fn connect(addr: SocketAddr) -> (Self, String) {
        let tcp = TcpStream::connect(addr).await.expect("connect to SMTP");
        let mut client = Self {
            stream: BufReader::new(tcp),
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Connects, checks the 220 and says EHLO; returns the EHLO reply too.
    pub async fn ehlo(addr: SocketAddr) -> (Self, String) {
        let (mut client, greeting) = Self::connect(addr).await;
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        let ehlo = client.cmd("EHLO client.example.com").await;
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        (client, ehlo)
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// One whole reply (all its lines, joined with `\n`); empty if the server hung up.
    pub async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.stream.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap_or(0);
            if n == 0 {
                return lines.join("\n");
            }
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// True once the server has closed the connection.
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }

    /// MAIL, RCPT for each recipient, DATA, the message (dot-stuffed here) and the final
    /// reply, expecting every step but the last to succeed.
    pub async fn send(&mut self, from: &str, to: &[&str], message: &[u8]) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert!(r.starts_with("250 "), "MAIL: {r}");
        for rcpt in to {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert!(r.starts_with("250 "), "RCPT: {r}");
        }
        let r = self.cmd("DATA").await;
        assert!(r.starts_with("354 "), "DATA: {r}");
        self.write(&dot_stuff(message)).await;
        self.write(b".\r\n").await;
        self.reply().await
    }
}

/// What a client does before DATA: a leading "." doubled; a final CRLF added if missing.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
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
    out
}

/// The id in `250 2.0.0 queued as <id>`.
pub fn queued_id(reply: &str) -> String {
    let id = reply
        .rsplit_once("queued as ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("not a queued reply: {reply}"));
    uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("not a uuid in {reply}"));
    id
}

/// One message for `smtplib_send`.
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [&'a str],
    pub data: &'a [u8],
}

/// How `smtplib_send` connects.
pub enum Connect {
    /// `SMTP` then `starttls()`, as most apps do on port 587.
    StartTls,
    /// `SMTP_SSL`, TLS from the first byte (port 465 style).
    ImplicitTls,
}

/// Python's smtplib as an app uses it: `starttls()` (or SMTP_SSL), `login()`, then
/// `sendmail()` per message, trusting the self-signed certificate as a dev client would.
/// The DATA reply is recorded by wrapping `data()`; `sendmail` itself is used unchanged.
/// Returns one JSON value per step: `{"login": …}` and then per message either
/// `{"reply": "2.0.0 queued as …"}` or `{"code": 5xx, "error": "…"}`.
const SMTPLIB_SCRIPT: &str = r#"
import base64, json, smtplib, ssl, sys

spec = json.loads(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

class App(smtplib.SMTP):
    last_data = None
    def data(self, msg):
        self.last_data = super().data(msg)
        return self.last_data

class AppSSL(smtplib.SMTP_SSL):
    last_data = None
    def data(self, msg):
        self.last_data = super().data(msg)
        return self.last_data

def failure(e):
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        code, msg = next(iter(e.recipients.values()))
        return {"code": code, "error": msg.decode()}
    if isinstance(e, smtplib.SMTPResponseException):
        return {"code": e.smtp_code, "error": e.smtp_error.decode()}
    return {"code": 0, "error": repr(e)}

out = []
try:
    if spec["implicit_tls"]:
        s = AppSSL(spec["host"], spec["port"], timeout=10, context=ctx)
    else:
        s = App(spec["host"], spec["port"], timeout=10)
        s.starttls(context=ctx)
    with s:
        if spec.get("key") is not None:
            try:
                s.login(spec["user"], spec["key"])
                out.append({"login": "ok"})
            except Exception as e:
                out.append({"login": failure(e)})
        for m in spec["messages"]:
            try:
                # As send_message does: SMTPUTF8 when an address is not ASCII (RFC 6531).
                utf8 = not all(a.isascii() for a in [m["from"], *m["to"]])
                opts = ["SMTPUTF8"] if utf8 else []
                s.sendmail(m["from"], m["to"], base64.b64decode(m["data"]), mail_options=opts)
                out.append({"reply": s.last_data[1].decode()})
            except Exception as e:
                out.append(failure(e))
                try:
                    s.rset()
                except Exception:
                    pass
except Exception as e:
    out.append(failure(e))
print(json.dumps(out))
"#;

pub async fn smtplib_send(
    addr: SocketAddr,
    connect: Connect,
    key: Option<&str>,
    messages: &[Mail<'_>],
) -> Vec<Value> {
    let spec = json!({
        "host": addr.ip().to_string(),
        "port": addr.port(),
        "implicit_tls": matches!(connect, Connect::ImplicitTls),
        "user": "any-user-name",
        "key": key,
        "messages": messages.iter().map(|m| json!({
            "from": m.from,
            "to": m.to,
            "data": B64.encode(m.data),
        })).collect::<Vec<_>>(),
    });
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("python3")
            .arg("-c")
            .arg(SMTPLIB_SCRIPT)
            .arg(spec.to_string())
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("python3 finished in time")
    .unwrap_or_else(|e| panic!("{}", missing_tool("python3", "python3", &e)));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python3 failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str::<Vec<Value>>(stdout.trim())
        .unwrap_or_else(|e| panic!("python3 printed {stdout:?}: {e}"))
}

/// Runs swaks with `args`: whether it succeeded, and what it printed.
pub async fn swaks(args: &[&str]) -> (bool, String) {
    let output = Command::new("swaks")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}", missing_tool("swaks", "swaks", &e)));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
