//! Webhook delivery: the handler the queue runner gives each due delivery. It sends one
//! signed POST and says what the endpoint answered and when to try again.
//!
//! Its runner has its own request slots, apart from mail delivery, and every request has a
//! hard timeout; the claim caps what one endpoint may have in flight. So a slow or dead
//! endpoint delays neither mail nor the other endpoints.

use std::{
    error::Error as _,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::Utc;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tracing::Instrument;

use super::{
    formats,
    guard::{self, GuardedResolver},
    queue::WebhookQueue,
    schedule,
    signing::WebhookSecret,
};
use crate::{
    config::WebhooksConfig,
    queue::Handler,
    store::webhooks::{DeliveryJob, Next, Outcome},
};

/// How much of a response body is kept for the delivery log.
const SNIPPET_BYTES: usize = 256;

/// Sends one attempt of one delivery.
pub struct Sender {
    client: reqwest::Client,
    config: WebhooksConfig,
}

impl Handler<WebhookQueue> for Sender {
    async fn handle(&self, job: DeliveryJob) -> Outcome {
        self.attempt(job).await
    }
}

/// Makes ring the process's rustls provider ([`crate::tls::install_provider`]). reqwest is
/// built without a provider of its own (ring is what lettre uses too), so any
/// `reqwest::Client` built with default settings, in tests for one, needs this first.
pub fn install_tls_provider() {
    crate::tls::install_provider();
}

/// The HTTP client for every endpoint: HTTP/1.1, rustls (ring, webpki roots), no proxy, no
/// redirects (a redirect could lead anywhere, past the SSRF check), the guarded resolver.
fn http_client(config: &WebhooksConfig) -> anyhow::Result<reqwest::Client> {
    install_tls_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS set-up for webhooks")?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .dns_resolver(GuardedResolver::shared(config.allow_private_targets))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(config.timeout())
        .connect_timeout(config.timeout())
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("mailgate-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the webhook HTTP client")
}

/// What the endpoint said, or why nothing was said.
struct Response {
    status: Option<u16>,
    retry_after: Option<Duration>,
    error: Option<String>,
    /// The endpoint's format has nothing for this event: done, without a request.
    skipped: bool,
}

impl Sender {
    pub fn new(config: WebhooksConfig) -> anyhow::Result<Self> {
        Ok(Self {
            client: http_client(&config)?,
            config,
        })
    }

    /// One attempt of one delivery, and what follows from it.
    pub async fn attempt(&self, job: DeliveryJob) -> Outcome {
        let span = tracing::debug_span!("webhook", delivery = %job.id, attempt = job.attempts, event = %job.event_type);
        let attempt = self.attempt_inner(job).instrument(span).await;
        let outcome = match &attempt.next {
            Next::Succeeded => "succeeded",
            Next::RetryAt(_) => "retrying",
            _ => "failed",
        };
        metrics::counter!("mailgate_webhook_attempts_total", "outcome" => outcome).increment(1);
        metrics::histogram!("mailgate_webhook_latency_seconds")
            .record(f64::from(attempt.latency_ms) / 1000.0);
        attempt
    }

    async fn attempt_inner(&self, job: DeliveryJob) -> Outcome {
        let started_at = Utc::now();
        let clock = Instant::now();
        // The client's own timeout bounds the request; this also bounds anything around it.
        let response = tokio::time::timeout(
            self.config.timeout() + Duration::from_secs(1),
            self.send(&job),
        )
        .await
        .unwrap_or_else(|_| Response {
            status: None,
            retry_after: None,
            error: Some(format!("timed out after {} s", self.config.timeout_secs)),
            skipped: false,
        });
        let latency_ms = i32::try_from(clock.elapsed().as_millis()).unwrap_or(i32::MAX);
        let next = match response.status {
            _ if response.skipped => Next::Succeeded,
            Some(s) if (200..300).contains(&s) => Next::Succeeded,
            Some(410) => Next::Gone,
            _ => match schedule::retry_delay(&self.config, job.attempts, response.retry_after) {
                Some(delay) => Next::RetryAt(
                    Utc::now()
                        + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(10)),
                ),
                None => Next::Failed,
            },
        };
        tracing::debug!(status = ?response.status, error = ?response.error, ?next, "webhook attempt");
        Outcome {
            delivery_id: job.id,
            attempt: job.attempts,
            started_at,
            response_status: response.status.map(i32::from),
            latency_ms,
            error: response.error,
            next,
        }
    }

    async fn send(&self, job: &DeliveryJob) -> Response {
        let failed = |error: String| Response {
            status: None,
            retry_after: None,
            error: Some(error),
            skipped: false,
        };
        // Only `postmark` endpoints may keep Basic credentials in their URL (Postmark's way to
        // authenticate webhooks); they go in the Authorization header, never in the URL.
        let (target, credentials) = guard::split_credentials(&job.url);
        let url = match guard::parse_url(&target) {
            Ok(url) => url,
            Err(e) => return failed(format!("refused: the URL {e}")),
        };
        // IP literals never reach the resolver, which checks every name.
        if let Err(e) = guard::check_literal(&url, self.config.allow_private_targets) {
            return failed(format!("refused: {e}"));
        }
        let Some(secret) = WebhookSecret::parse(&job.secret) else {
            return failed("the endpoint's secret is unusable; rotate it".into());
        };
        let previous = job
            .previous_secret
            .as_deref()
            .and_then(WebhookSecret::parse);
        let mut secrets = vec![&secret];
        secrets.extend(previous.as_ref());
        // The id is the delivery's, the same on every attempt; the timestamp is this attempt's.
        let id = job.id.to_string();
        let timestamp = Utc::now().timestamp();
        let rendered = formats::render(
            job.format,
            &job.body,
            &id,
            timestamp,
            &secrets,
            job.signing_key.as_deref(),
        );
        let outgoing = match rendered {
            Ok(Some(outgoing)) => outgoing,
            Ok(None) => {
                return Response {
                    status: None,
                    retry_after: None,
                    error: Some(format!(
                        "not sent: the {} format has no record for {}",
                        job.format, job.event_type
                    )),
                    skipped: true,
                };
            }
            Err(e) => return failed(e),
        };
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in outgoing.headers {
            request = request.header(name, value);
        }
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let request = request.body(outgoing.body);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return failed(describe(&e, &self.config)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| schedule::parse_retry_after(v, Utc::now()));
        if status.is_success() {
            // The answer is in; its body is not needed.
            return Response {
                status: Some(status.as_u16()),
                retry_after: None,
                error: None,
                skipped: false,
            };
        }
        let mut body = Vec::new();
        while body.len() < SNIPPET_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(SNIPPET_BYTES);
        let text = printable(&String::from_utf8_lossy(&body));
        let mut error = if status.is_redirection() {
            format!("answered {status}; redirects are not followed")
        } else {
            format!("answered {status}")
        };
        if !text.is_empty() {
            error.push_str(": ");
            error.push_str(&text);
        }
        Response {
            status: Some(status.as_u16()),
            retry_after,
            error: Some(error),
            skipped: false,
        }
    }
}

/// A request error with its causes, without the URL (it may carry tokens).
fn describe(err: &reqwest::Error, config: &WebhooksConfig) -> String {
    if err.is_timeout() {
        return format!("timed out after {} s", config.timeout_secs);
    }
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    // The innermost causes are the informative ones ("connection refused", a refused address).
    parts.dedup();
    let what = if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    if parts.is_empty() {
        what.to_string()
    } else {
        printable(&format!("{what}: {}", parts.join(": ")))
    }
}

/// Text safe to store and show: no control characters (Postgres refuses NUL), one line.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}
