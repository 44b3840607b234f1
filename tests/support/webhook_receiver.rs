//! A webhook receiver for integration tests: a real HTTP server on 127.0.0.1 that records
//! every request and answers as scripted (a status, `Retry-After`, a slow answer), and can go
//! down and come back up on the same port. Signatures are checked with the `standardwebhooks`
//! crate, an implementation independent of mailgate's.

#![allow(dead_code)]

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use super::eventually;
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook bodies are JSON")
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Verifies the signature as a receiver would, with the Standard Webhooks library.
    pub fn verify(&self, secret: &str) -> Result<(), String> {
        let webhook = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?;
        webhook
            .verify(&self.body, &self.headers)
            .map_err(|e| e.to_string())
    }
}

/// How to answer one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

struct Script {
    received: Vec<Received>,
    /// Per path prefix: replies used once each, in order, then the path's default.
    queued: Vec<(String, VecDeque<Reply>)>,
    defaults: Vec<(String, Reply)>,
}

struct Shared {
    script: Mutex<Script>,
}

impl Shared {
    // A panicking test must not poison the server for the others.
    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct WebhookReceiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let reply = {
        let mut script = shared.lock();
        script.received.push(Received {
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
        });
        let queued = script
            .queued
            .iter_mut()
            .find(|(prefix, q)| path.starts_with(prefix.as_str()) && !q.is_empty())
            .and_then(|(_, q)| q.pop_front());
        queued
            .or_else(|| {
                script
                    .defaults
                    .iter()
                    .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                    .map(|(_, r)| r.clone())
            })
            .unwrap_or_else(|| Reply::status(200))
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = StatusCode::from_u16(reply.status)
        .unwrap_or(StatusCode::OK)
        .into_response();
    for (name, value) in &reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

impl WebhookReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                received: Vec::new(),
                queued: Vec::new(),
                defaults: Vec::new(),
            }),
        });
        let mut me = Self {
            addr,
            shared,
            server: None,
        };
        me.serve(listener);
        me
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.server = Some((stop, task));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers the next `times` requests under `path` this way.
    pub fn reply_next(&self, path: &str, reply: Reply, times: usize) {
        let mut script = self.shared.lock();
        let entry = match script.queued.iter_mut().position(|(p, _)| p == path) {
            Some(i) => &mut script.queued[i].1,
            None => {
                script.queued.push((path.to_string(), VecDeque::new()));
                &mut script.queued.last_mut().unwrap().1
            }
        };
        entry.extend(std::iter::repeat_n(reply, times));
    }

    /// Answers every request under `path` this way (after any queued replies).
    pub fn reply_always(&self, path: &str, reply: Reply) {
        let mut script = self.shared.lock();
        script.defaults.retain(|(p, _)| p != path);
        script.defaults.push((path.to_string(), reply));
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `done` holds for what arrived; panics with what did after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        eventually(
            "the webhook receiver got what was expected",
            timeout,
            async || {
                let got = self.received();
                if done(&got) {
                    return Ok(got);
                }
                let types: Vec<String> = got
                    .iter()
                    .map(|r| format!("{} {}", r.path, String::from_utf8_lossy(&r.body)))
                    .collect();
                Err(format!("{types:#?}"))
            },
        )
        .await
    }

    /// Stops listening and closes every connection: requests now fail to connect.
    pub async fn down(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some((_, task)) = self.server.take() {
            task.abort();
        }
    }
}
