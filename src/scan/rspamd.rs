//! rspamd's HTTP protocol: the message is POSTed to `/checkv2` with its envelope in headers;
//! the answer is JSON with an action, a score and the symbols that matched.

use std::time::Duration;

use serde::Deserialize;

pub struct Rspamd {
    base: String,
    http: reqwest::Client,
}

/// rspamd's answer, as much of it as mailgate keeps.
#[derive(Debug, Clone, Deserialize)]
pub struct RspamdVerdict {
    /// `no action`, `greylist`, `add header`, `rewrite subject`, `soft reject`, `reject`.
    pub action: String,
    pub score: f64,
    #[serde(default)]
    pub required_score: f64,
    #[serde(default)]
    pub symbols: std::collections::BTreeMap<String, serde_json::Value>,
}

impl RspamdVerdict {
    /// The symbol names, highest scores first (as far as rspamd reports scores).
    pub fn symbol_names(&self) -> Vec<String> {
        let mut named: Vec<(f64, &String)> = self
            .symbols
            .iter()
            .map(|(name, s)| (s["score"].as_f64().unwrap_or(0.0), name))
            .collect();
        named.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        named.into_iter().map(|(_, n)| n.clone()).collect()
    }
}

impl Rspamd {
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        // rspamd is plain HTTP, but reqwest (built with `rustls-no-provider`) refuses to build
        // any client before a TLS provider is installed.
        crate::tls::install_provider();
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .build()?,
        })
    }

    pub async fn check(
        &self,
        mime: &[u8],
        from: &str,
        rcpts: &[&str],
        queue_id: &str,
    ) -> Result<RspamdVerdict, String> {
        let mut request = self
            .http
            .post(format!("{}/checkv2", self.base))
            .header("Queue-Id", queue_id)
            .body(mime.to_vec());
        if !from.is_empty() {
            request = request.header("From", from);
        }
        for rcpt in rcpts {
            request = request.header("Rcpt", *rcpt);
        }
        let response = request.send().await.map_err(|e| describe(&e))?;
        if !response.status().is_success() {
            return Err(format!("rspamd answered {}", response.status()));
        }
        // reqwest is built without its `json` feature; serde_json reads the body.
        let body = response.bytes().await.map_err(|e| describe(&e))?;
        serde_json::from_slice::<RspamdVerdict>(&body)
            .map_err(|e| format!("rspamd's answer is not a verdict: {e}"))
    }

    /// `GET /ping` → `pong`, for `mailgate doctor`.
    pub async fn ping(&self) -> Result<(), String> {
        let response = self
            .http
            .get(format!("{}/ping", self.base))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let text = response.text().await.map_err(|e| describe(&e))?;
        if text.trim() == "pong" {
            Ok(())
        } else {
            Err(format!("rspamd answered {text:?} to /ping"))
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "rspamd did not answer in time".into()
    } else if e.is_connect() {
        "cannot connect to rspamd".into()
    } else {
        format!("rspamd: {e}")
    }
}
