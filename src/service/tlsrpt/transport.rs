//! Where a report goes (RFC 8460 §5): an `https:` rua gets it by POST, a `mailto:` rua by a
//! mail that mailgate submits to its own queue, like any other message of the
//! `tlsrpt.project` project.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use mail_auth::report::tlsrpt::TlsReport;
use rustls::RootCertStore;
use uuid::Uuid;

use crate::{
    delivery::dns::Dns,
    domain::EmailAddress,
    submission::{RawMessage, SubmissionCore},
    webhooks::guard,
};

/// The largest answer body read from a report endpoint (it is not used, only drained so the
/// connection ends cleanly).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// POSTs reports to `https:` rua URLs: the host resolved through `[dns]`, public addresses
/// only (unless `tlsrpt.allow_private_targets`), verified TLS, no redirects, bounded time.
pub struct Https {
    pub dns: Arc<Dns>,
    pub roots: Arc<RootCertStore>,
    pub timeout: Duration,
    pub allow_private: bool,
}

impl Https {
    pub async fn post(&self, raw_url: &str, gzipped: &[u8]) -> Result<(), String> {
        let url = guard::parse_url(raw_url).map_err(|e| format!("rua {raw_url} {e}"))?;
        if url.scheme() != "https" {
            return Err(format!(
                "rua {raw_url}: only https is allowed (RFC 8460 §3)"
            ));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> =
            match host.trim_start_matches('[').trim_end_matches(']').parse() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => self
                    .dns
                    .addresses(&host)
                    .await
                    .map_err(|e| format!("rua {raw_url}: {e}"))?
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect(),
            };
        if addrs.is_empty() {
            return Err(format!("rua {raw_url}: {host} has no address"));
        }
        if !self.allow_private
            && let Some((ip, kind)) = addrs
                .iter()
                .find_map(|a| guard::non_public_kind(a.ip()).map(|k| (a.ip(), k)))
        {
            return Err(format!(
                "rua {raw_url}: {host} resolves to {ip}, a {kind} address (tlsrpt.allow_private_targets)"
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .resolve_to_addrs(&host, &addrs)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(concat!("mailgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let failed = |e: reqwest::Error| match crate::tls::explain(&e) {
            Some(tls) => format!("POST {raw_url}: TLS: {tls}"),
            None => format!("POST {raw_url}: {e}"),
        };
        let mut response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/tlsrpt+gzip")
            .body(gzipped.to_vec())
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let mut read = 0;
        while read < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {raw_url} answered {status}"))
        }
    }
}

/// Mails reports through mailgate's own queue.
pub struct Mail {
    pub submissions: SubmissionCore,
    pub project_id: Uuid,
    pub from: EmailAddress,
    pub max_bytes: usize,
}

impl Mail {
    /// Submits the report for `domain` to `to` (RFC 8460 §5.3: `multipart/report` with
    /// `report-type="tlsrpt"`, the subject naming the domain, submitter and report id, the
    /// gzipped JSON attached); returns the message's id.
    pub async fn send(
        &self,
        report: &TlsReport,
        domain: &str,
        to: &str,
        gzipped: &[u8],
    ) -> Result<Uuid, String> {
        let rcpt = EmailAddress::parse(to).map_err(|e| format!("rua mailto:{to}: {e}"))?;
        let submitter = self.from.ascii_domain();
        let mut mime = Vec::new();
        report
            .write_rfc5322_from_bytes(
                domain,
                &submitter,
                self.from.as_str(),
                [to].into_iter(),
                gzipped,
                &mut mime,
            )
            .map_err(|e| format!("building the report mail: {e}"))?;
        let parsed = mail_parser::MessageParser::new()
            .parse_headers(&mime)
            .ok_or("the report mail does not parse")?;
        let message_id = format!("<{}>", parsed.message_id().unwrap_or_default());
        let subject = parsed.subject().unwrap_or_default().to_string();
        let raw = RawMessage {
            id: Uuid::now_v7(),
            from: self.from.clone(),
            recipients: vec![(crate::domain::email::RecipientKind::To, rcpt)],
            mime,
            message_id,
            subject,
            tags: vec!["tlsrpt".into()],
            metadata: Default::default(),
            track: None,
            unsubscribe: None,
        };
        let accepted = self
            .submissions
            .commit_raw(self.project_id, None, raw, self.max_bytes)
            .await
            .map_err(|e| format!("submitting the report mail to {to}: {e}"))?;
        Ok(accepted.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_targets_are_refused_unless_allowed() {
        let config = crate::config::DnsConfig {
            nameservers: vec!["127.0.0.1:9".into()],
            ..Default::default()
        };
        let https = Https {
            dns: Dns::build(&config).unwrap(),
            roots: Arc::new(RootCertStore::empty()),
            timeout: Duration::from_secs(2),
            allow_private: false,
        };
        for (url, says) in [
            ("https://127.0.0.1/tlsrpt", "loopback"),
            ("https://10.1.2.3/tlsrpt", "private"),
            ("http://203.0.113.9/tlsrpt", "only https"),
            ("mailto:x@example.com", "http"),
        ] {
            let err = https.post(url, b"x").await.unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
