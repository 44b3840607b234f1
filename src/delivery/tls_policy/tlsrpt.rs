//! What each direct-delivery TLS session came to, in TLS-RPT's terms (RFC 8460 §4.3): a
//! success, or one of the RFC's failure types, counted per recipient (policy) domain, policy
//! and UTC day. Delivery only adds to counts in memory ([`SessionLog::record`]); the counts
//! reach Postgres in one transaction every few seconds ([`SessionLog::flush`]), so no
//! delivery waits on the table. Counts not flushed when a process dies are lost: a report
//! is a sample of a day, not a ledger. The daily reports are built and sent by
//! `service::tlsrpt`.

use std::{collections::HashMap, net::IpAddr, sync::Mutex};

use chrono::{NaiveDate, Utc};
use rustls::CertificateError;
use sqlx::PgPool;

use crate::store::tlsrpt::{self as store, SessionCount};

/// RFC 8460 §4.3's failure result types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::StarttlsNotSupported => "starttls-not-supported",
            Failure::CertificateHostMismatch => "certificate-host-mismatch",
            Failure::CertificateExpired => "certificate-expired",
            Failure::CertificateNotTrusted => "certificate-not-trusted",
            Failure::ValidationFailure => "validation-failure",
            Failure::StsPolicyFetchError => "sts-policy-fetch-error",
            Failure::StsPolicyInvalid => "sts-policy-invalid",
            Failure::StsWebpkiInvalid => "sts-webpki-invalid",
            Failure::TlsaInvalid => "tlsa-invalid",
            Failure::DnssecInvalid => "dnssec-invalid",
            Failure::DaneRequired => "dane-required",
        }
    }

    /// The failure a certificate check's error stands for.
    pub fn of_certificate(err: &rustls::Error) -> Self {
        match err {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    Failure::CertificateHostMismatch
                }
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => Failure::CertificateExpired,
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    Failure::CertificateNotTrusted
                }
                _ => Failure::ValidationFailure,
            },
            _ => Failure::ValidationFailure,
        }
    }
}

/// The policy a session was judged by, as a report names it (RFC 8460 §4.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyRef {
    /// `sts`, `tlsa` or `no-policy-found`.
    pub kind: &'static str,
    /// Tells one policy of the domain from another: the MTA-STS id, the MX host and its
    /// TLSA records; empty for none.
    pub key: String,
    pub strings: Vec<String>,
    pub mx_hosts: Vec<String>,
}

impl PolicyRef {
    pub fn none() -> Self {
        Self {
            kind: "no-policy-found",
            key: String::new(),
            strings: Vec::new(),
            mx_hosts: Vec::new(),
        }
    }
}

/// One session's outcome.
pub struct Session<'a> {
    pub domain: &'a str,
    pub policy: PolicyRef,
    /// `None`: the session negotiated TLS as the policy asks.
    pub failure: Option<(Failure, String)>,
    pub mx: &'a str,
    pub ip: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    day: NaiveDate,
    domain: String,
    policy: PolicyRef,
    result: &'static str,
    mx: String,
    ip: String,
}

/// Session counts of this process not yet in Postgres.
#[derive(Default)]
pub struct SessionLog {
    pending: Mutex<HashMap<Key, (i64, Option<String>)>>,
}

/// Most characters of a failure's words kept for the report's `additional-information`.
const MAX_DETAIL: usize = 300;

impl SessionLog {
    /// Counts one session (in memory only).
    pub fn record(&self, session: Session<'_>) {
        let (result, detail, mx, ip) = match session.failure {
            None => ("success", None, String::new(), String::new()),
            Some((failure, why)) => (
                failure.as_str(),
                Some(why.chars().take(MAX_DETAIL).collect::<String>()),
                session.mx.to_ascii_lowercase(),
                session.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            ),
        };
        let key = Key {
            day: Utc::now().date_naive(),
            domain: session.domain.trim_end_matches('.').to_ascii_lowercase(),
            policy: session.policy,
            result,
            mx,
            ip,
        };
        let mut pending = self.pending.lock().expect("not poisoned");
        let entry = pending.entry(key).or_insert((0, None));
        entry.0 += 1;
        if detail.is_some() {
            entry.1 = detail;
        }
    }

    /// Adds the counts so far to `tlsrpt_sessions`; on failure they are kept for the next
    /// flush. Returns the rows written.
    pub async fn flush(&self, pool: &PgPool) -> sqlx::Result<usize> {
        let taken: Vec<(Key, (i64, Option<String>))> =
            self.pending.lock().expect("not poisoned").drain().collect();
        if taken.is_empty() {
            return Ok(0);
        }
        let counts: Vec<SessionCount> = taken
            .iter()
            .map(|(k, (n, detail))| SessionCount {
                day: k.day,
                policy_domain: k.domain.clone(),
                policy_type: k.policy.kind,
                policy_key: k.policy.key.clone(),
                policy_strings: k.policy.strings.clone(),
                mx_hosts: k.policy.mx_hosts.clone(),
                result: k.result,
                receiving_mx: k.mx.clone(),
                receiving_ip: k.ip.clone(),
                detail: detail.clone(),
                sessions: *n,
            })
            .collect();
        match store::add_sessions(pool, &counts).await {
            Ok(()) => Ok(counts.len()),
            Err(err) => {
                let mut pending = self.pending.lock().expect("not poisoned");
                for (key, (n, detail)) in taken {
                    let entry = pending.entry(key).or_insert((0, None));
                    entry.0 += n;
                    if entry.1.is_none() {
                        entry.1 = detail;
                    }
                }
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_map_to_result_types() {
        for (err, want) in [
            (
                CertificateError::NotValidForName,
                "certificate-host-mismatch",
            ),
            (CertificateError::Expired, "certificate-expired"),
            (CertificateError::UnknownIssuer, "certificate-not-trusted"),
            (CertificateError::Revoked, "validation-failure"),
        ] {
            let got = Failure::of_certificate(&rustls::Error::InvalidCertificate(err));
            assert_eq!(got.as_str(), want);
        }
    }

    #[test]
    fn sessions_are_summed_per_key() {
        let log = SessionLog::default();
        for failure in [
            None,
            None,
            Some((Failure::StarttlsNotSupported, "no".into())),
        ] {
            log.record(Session {
                domain: "Example.COM.",
                policy: PolicyRef::none(),
                failure,
                mx: "MX.example.com",
                ip: None,
            });
        }
        let pending = log.pending.lock().unwrap();
        assert_eq!(pending.len(), 2);
        let success = pending.iter().find(|(k, _)| k.result == "success").unwrap();
        assert_eq!(success.0.domain, "example.com");
        assert_eq!(success.0.mx, "", "successes are not split by host");
        assert_eq!(success.1.0, 2);
    }
}
