//! clamd's `INSTREAM` command: the message goes in chunks, each behind its length (a 32-bit
//! big-endian number), ended by a zero length; clamd answers `stream: OK` or
//! `stream: <signature> FOUND`. Over TCP (`host:port`) or a unix socket (a path).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CHUNK: usize = 64 * 1024;

pub struct Clamd {
    addr: String,
    timeout: Duration,
}

/// What clamd found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdVerdict {
    Clean,
    /// The signature's name, e.g. `Win.Test.EICAR_HDB-1`.
    Virus(String),
}

impl Clamd {
    pub fn new(addr: &str, timeout: Duration) -> Self {
        Self {
            addr: addr.to_string(),
            timeout,
        }
    }

    fn is_unix(&self) -> bool {
        self.addr.starts_with('/')
    }

    pub async fn scan(&self, data: &[u8]) -> Result<ClamdVerdict, String> {
        let reply = self.exchange(b"zINSTREAM\0", Some(data)).await?;
        let reply = reply.trim_end_matches('\0').trim();
        let body = reply.strip_prefix("stream:").unwrap_or(reply).trim();
        if body == "OK" {
            Ok(ClamdVerdict::Clean)
        } else if let Some(name) = body.strip_suffix(" FOUND") {
            Ok(ClamdVerdict::Virus(name.trim().to_string()))
        } else {
            Err(format!("clamd: {body}"))
        }
    }

    /// `PING` → `PONG`, for `mailgate doctor`.
    pub async fn ping(&self) -> Result<(), String> {
        let reply = self.exchange(b"zPING\0", None).await?;
        if reply.trim_end_matches('\0').trim() == "PONG" {
            Ok(())
        } else {
            Err(format!("clamd answered {reply:?} to PING"))
        }
    }

    async fn exchange(&self, command: &[u8], stream: Option<&[u8]>) -> Result<String, String> {
        let work = async {
            if self.is_unix() {
                let conn = tokio::net::UnixStream::connect(&self.addr)
                    .await
                    .map_err(|e| format!("cannot connect to clamd at {}: {e}", self.addr))?;
                talk(conn, command, stream).await
            } else {
                let conn = tokio::net::TcpStream::connect(&self.addr)
                    .await
                    .map_err(|e| format!("cannot connect to clamd at {}: {e}", self.addr))?;
                talk(conn, command, stream).await
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| "clamd did not answer in time".to_string())?
    }
}

async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: S,
    command: &[u8],
    stream: Option<&[u8]>,
) -> Result<String, String> {
    let io = |e: std::io::Error| format!("clamd: {e}");
    conn.write_all(command).await.map_err(io)?;
    if let Some(data) = stream {
        for chunk in data.chunks(CHUNK) {
            conn.write_all(&(chunk.len() as u32).to_be_bytes())
                .await
                .map_err(io)?;
            conn.write_all(chunk).await.map_err(io)?;
        }
        conn.write_all(&0u32.to_be_bytes()).await.map_err(io)?;
    }
    conn.flush().await.map_err(io)?;
    let mut reply = Vec::new();
    // One NUL-terminated line; clamd closes after a z-command.
    let mut buf = [0u8; 512];
    loop {
        let n = conn.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.contains(&0) || reply.len() > 4096 {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}
