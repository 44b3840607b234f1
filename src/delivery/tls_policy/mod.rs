//! Recipient domains' published TLS policies for direct delivery, and what each attempt's TLS
//! was: DANE (RFC 7672, `dane`) for MX hosts with TLSA records under DNSSEC, else MTA-STS
//! (RFC 8461, `mta_sts`), or opportunistic STARTTLS when a domain publishes neither.
//!
//! Before connecting, direct delivery asks [`TlsPolicies::for_domain`] for the domain's
//! [`DomainPolicy`]; it then asks the policy about each MX host ([`DomainPolicy::host`]) and
//! each session's TLS ([`DomainPolicy::session`]). Under `enforce` an MX outside the policy,
//! or a session without STARTTLS or with a certificate that does not verify for the MX name,
//! is refused before MAIL FROM; under `testing` the failure is only recorded. Before opening a
//! session, [`TlsPolicies::host_verifier`] looks up the host's TLSA records: where they are
//! usable, TLS with a matching certificate is required whatever MTA-STS says (RFC 8461 §2),
//! and a bogus DNSSEC answer keeps the host from being used. Every attempt
//! event carries the verdict as `data.tls` ([`DomainPolicy::describe`]).

pub mod dane;
mod memo;
pub mod mta_sts;
pub mod tlsrpt;

use std::{net::IpAddr, sync::Arc};

use anyhow::Context;
use rustls::{
    RootCertStore,
    client::danger::ServerCertVerifier,
    pki_types::{CertificateDer, pem::PemObject},
};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{
    dns::{Dns, MxHost},
    reply::Reply,
};
use crate::config::TlsPolicyConfig;
pub use mta_sts::{Mode, StsPolicy};
use tlsrpt::{Failure, PolicyRef, SessionLog};

/// The TLS a session runs over.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    /// Whether the certificate verified for the MX host name; when not, why (the session
    /// is encrypted all the same: opportunistic TLS, RFC 3207 §4.1).
    pub verified: Result<(), String>,
    /// What a certificate that did not verify means in TLS-RPT's terms.
    pub verify_failure: Option<Failure>,
}

impl std::fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.version, self.cipher)?;
        match &self.verified {
            Ok(()) => write!(f, ", certificate verified"),
            Err(why) => write!(f, ", certificate not verified ({why})"),
        }
    }
}

/// The trust and the policy sources direct delivery uses, shared by every direct relay.
pub struct TlsPolicies {
    verifier: Arc<dyn ServerCertVerifier>,
    sts: Option<mta_sts::Source>,
    /// The resolver DANE's DNSSEC-validated lookups go through, unless `tls_policy.dane` is off.
    dane: Option<Arc<Dns>>,
    /// Per domain: whether DNSSEC proved its MX records, lately.
    mx_secure: memo::Memo<bool>,
    /// Where sessions are counted for TLS-RPT, when `tlsrpt.enabled`.
    sessions: Option<Arc<SessionLog>>,
}

impl TlsPolicies {
    /// Web PKI roots (plus `tls_policy.ca_file`), and MTA-STS through `pool` and `dns`
    /// unless `tls_policy.mta_sts` is off.
    pub fn new(
        config: &TlsPolicyConfig,
        pool: PgPool,
        dns: Arc<Dns>,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let roots = Arc::new(roots(config)?);
        let dane = config.dane.then(|| dns.clone());
        let sts = config
            .mta_sts
            .then(|| mta_sts::Source::new(pool, dns, roots.clone(), timeout));
        Ok(Self {
            verifier: verifier(roots),
            sts,
            dane,
            mx_secure: Default::default(),
            sessions: None,
        })
    }

    /// Counts every session's outcome in `log`, for TLS-RPT reports.
    pub fn with_session_log(mut self, log: Option<Arc<SessionLog>>) -> Self {
        self.sessions = log;
        self
    }

    /// Counts the session (or the refusal before one) with `host` just judged by `policy`,
    /// when TLS-RPT is on: a success unless the policy found something wrong with this host.
    pub fn record(&self, domain: &str, policy: &DomainPolicy, host: &str, ip: Option<IpAddr>) {
        let Some(log) = &self.sessions else {
            return;
        };
        log.record(tlsrpt::Session {
            domain,
            policy: policy.reported(host),
            failure: policy.host_failure.clone(),
            mx: host,
            ip,
        });
    }

    /// Opportunistic TLS with the web PKI roots only: no policy is looked up.
    pub fn opportunistic() -> Self {
        Self {
            verifier: verifier(Arc::new(webpki())),
            sts: None,
            dane: None,
            mx_secure: Default::default(),
            sessions: None,
        }
    }

    /// How MX certificates are checked (the web PKI and `tls_policy.ca_file`).
    pub fn verifier(&self) -> Arc<dyn ServerCertVerifier> {
        self.verifier.clone()
    }

    /// `domain`'s policy for this attempt. `allow_private` lets the policy host resolve
    /// into private space (as `relays.NAME.allow_private_mx` does for MX hosts).
    pub async fn for_domain(&self, domain: &str, allow_private: bool) -> DomainPolicy {
        let mx_secure = match &self.dane {
            Some(_) if let Some(known) = self.mx_secure.get(domain) => known,
            Some(dns) => {
                let secure = dane::mx_secure(dns, domain).await;
                self.mx_secure.put(domain, secure);
                secure
            }
            None => false,
        };
        let Some(sts) = &self.sts else {
            return DomainPolicy {
                mx_secure,
                ..DomainPolicy::default()
            };
        };
        let found = sts.policy(domain, allow_private).await;
        if let Some(error) = &found.error {
            tracing::warn!(domain, error, "MTA-STS policy fetch failed");
            metrics::counter!("mailgate_mta_sts_fetch_failures_total").increment(1);
        }
        DomainPolicy {
            sts: found.policy.filter(|p| p.mode != Mode::None),
            fetch_failure: found.failure.zip(found.error.clone()),
            fetch_error: found.error,
            mx_secure,
            ..DomainPolicy::default()
        }
    }

    /// How to check the certificate of `host` (one of the domain's MX hosts): against its
    /// TLSA records when DANE applies (recorded in `policy.dane`), else the web PKI. `Err`
    /// (why) when DNSSEC forbids using the host now (bogus answers, failed TLSA lookup).
    pub async fn host_verifier(
        &self,
        policy: &mut DomainPolicy,
        host: &MxHost,
    ) -> Result<Arc<dyn ServerCertVerifier>, String> {
        policy.dane = None;
        if let Some(dns) = &self.dane
            && policy.mx_secure
            && !host.implicit
        {
            match dane::host(dns, host).await {
                dane::HostDane::None => {}
                dane::HostDane::Required(set) => {
                    policy.dane = Some(set.clone());
                    return Ok(Arc::new(dane::DaneVerifier::new(set)));
                }
                dane::HostDane::Refused(why) => {
                    let why = format!("DANE: {} not used: {why}", host.name);
                    metrics::counter!("mailgate_tls_sessions_total", "policy" => "dane", "result" => "refused")
                        .increment(1);
                    policy.failures.push(why.clone());
                    policy.dane_refused = true;
                    policy.host_failure = Some((Failure::DnssecInvalid, why.clone()));
                    return Err(why);
                }
            }
        }
        Ok(self.verifier())
    }
}

/// One domain's policy during one attempt, and the failures it saw.
#[derive(Debug, Clone, Default)]
pub struct DomainPolicy {
    /// An MTA-STS policy in `enforce` or `testing` mode.
    pub sts: Option<Arc<StsPolicy>>,
    /// Why the policy could not be fetched this time (a cached one may still apply).
    pub fetch_error: Option<String>,
    /// What the policy found wrong, in the order seen (kept in `testing`, refused in
    /// `enforce`).
    pub failures: Vec<String>,
    /// DNSSEC proves the domain's MX records: its hosts' TLSA records count.
    pub mx_secure: bool,
    /// The usable TLSA records of the MX host being tried, when DANE applies to it.
    pub dane: Option<Arc<dane::TlsaSet>>,
    /// DANE kept a host from carrying the mail (bogus DNS, no STARTTLS, no TLSA match): the
    /// attempt is deferred rather than sent in clear.
    pub dane_refused: bool,
    /// The policy could not be fetched, in TLS-RPT's terms, and why.
    pub fetch_failure: Option<(Failure, String)>,
    /// What went wrong with the MX host being tried, in TLS-RPT's terms: the first failure
    /// since [`begin_host`](Self::begin_host).
    pub host_failure: Option<(Failure, String)>,
    /// The shaping entry whose `tls = "required"` covers the destination's site: STARTTLS
    /// with a certificate valid for the MX name, where the domain publishes no policy.
    pub required_by: Option<String>,
}

impl DomainPolicy {
    /// Starts judging another MX host: its TLS-RPT failure starts empty (or as the failed
    /// policy fetch, which every session without a policy reports).
    pub fn begin_host(&mut self) {
        self.host_failure = match (&self.sts, &self.fetch_failure) {
            (None, Some(failed)) => Some(failed.clone()),
            _ => None,
        };
    }

    /// Notes a TLS-RPT failure of the MX host being tried (only the first one counts).
    pub fn host_failed(&mut self, failure: Failure, why: &str) {
        if self.host_failure.is_none() {
            self.host_failure = Some((failure, why.to_string()));
        }
    }

    /// The policy a TLS-RPT report counts `host`'s session under (RFC 8460 §4.4): the host's
    /// TLSA records, else the MTA-STS policy (or a failed fetch of one), else none.
    pub fn reported(&self, host: &str) -> PolicyRef {
        if let Some(set) = &self.dane {
            let strings: Vec<String> = set.records.iter().map(ToString::to_string).collect();
            return PolicyRef {
                kind: "tlsa",
                key: format!("{} {}", set.host, set.id()),
                strings,
                mx_hosts: vec![set.host.clone()],
            };
        }
        if matches!(&self.host_failure, Some((Failure::DnssecInvalid, _))) {
            return PolicyRef {
                kind: "tlsa",
                key: host.to_ascii_lowercase(),
                strings: Vec::new(),
                mx_hosts: vec![host.to_ascii_lowercase()],
            };
        }
        if let Some(p) = &self.sts {
            return PolicyRef {
                kind: "sts",
                key: p.id.clone(),
                strings: p.lines(),
                mx_hosts: p.mx.clone(),
            };
        }
        if self.fetch_failure.is_some() {
            return PolicyRef {
                kind: "sts",
                ..PolicyRef::none()
            };
        }
        PolicyRef::none()
    }

    /// Whether a failure defers the attempt: an MTA-STS policy in `enforce` mode applies,
    /// DANE refused a host, or the site's shaping entry requires TLS.
    pub fn enforced(&self) -> bool {
        self.sts_enforced() || self.dane_refused || self.tls_required()
    }

    /// The operator requires verified TLS for this site (`[shaping.NAME] tls = "required"`);
    /// a host with usable TLSA records is DANE's to judge.
    fn tls_required(&self) -> bool {
        self.required_by.is_some() && self.dane.is_none()
    }

    fn sts_enforced(&self) -> bool {
        self.sts.as_ref().is_some_and(|p| p.mode == Mode::Enforce)
    }

    /// May `host` (an MX host name) be used? `Err` (why) only when the policy is enforced.
    pub fn host(&mut self, host: &str) -> Result<(), String> {
        // DANE takes precedence over MTA-STS for a host with TLSA records (RFC 8461 §2).
        let Some(policy) = self.sts.as_ref().filter(|_| self.dane.is_none()) else {
            return Ok(());
        };
        if policy.matches(host) {
            return Ok(());
        }
        let why = format!(
            "{host} is not an MX host of the MTA-STS policy (id {}, mx {})",
            policy.id,
            policy.mx.join(", ")
        );
        self.failures.push(why.clone());
        self.host_failed(Failure::ValidationFailure, &why);
        if self.sts_enforced() {
            Err(why)
        } else {
            Ok(())
        }
    }

    /// May a session to `host` with this TLS carry the mail? `Err` (why) only when the
    /// policy is enforced: STARTTLS and a certificate valid for `host` are required.
    pub fn session(&mut self, host: &str, tls: Option<&TlsInfo>) -> Result<(), String> {
        if self.dane.is_some() {
            return self.dane_session(host, tls);
        }
        let policy = if self.sts.is_some() {
            "mta-sts"
        } else if self.required_by.is_some() {
            "required"
        } else {
            "opportunistic"
        };
        let result = match tls {
            None => "plaintext",
            Some(TlsInfo {
                verified: Ok(()), ..
            }) => "verified",
            Some(_) => "unverified",
        };
        let problem = match tls {
            _ if self.sts.is_none() && self.required_by.is_none() => None,
            None => Some(format!("{host} did not offer STARTTLS")),
            Some(TlsInfo {
                verified: Err(why), ..
            }) => Some(format!("the certificate of {host} did not verify: {why}")),
            Some(_) => None,
        };
        let Some(why) = problem else {
            if tls.is_none() {
                // No policy asks for TLS, but the report says it was not to be had.
                self.host_failed(
                    Failure::StarttlsNotSupported,
                    &format!("{host} did not offer STARTTLS"),
                );
            }
            metrics::counter!("mailgate_tls_sessions_total", "policy" => policy, "result" => result)
                .increment(1);
            return Ok(());
        };
        self.failures.push(why.clone());
        self.host_failed(
            tls.map_or(Failure::StarttlsNotSupported, |t| {
                t.verify_failure.unwrap_or(Failure::ValidationFailure)
            }),
            &why,
        );
        if self.sts_enforced() || self.tls_required() {
            metrics::counter!("mailgate_tls_sessions_total", "policy" => policy, "result" => "refused")
                .increment(1);
            Err(why)
        } else {
            metrics::counter!("mailgate_tls_sessions_total", "policy" => policy, "result" => result)
                .increment(1);
            Ok(())
        }
    }

    /// A session to a host with TLSA records: STARTTLS and a matching certificate, always
    /// (RFC 7672 §2.2: DANE is never only tested).
    fn dane_session(&mut self, host: &str, tls: Option<&TlsInfo>) -> Result<(), String> {
        let problem = match tls {
            None => Some(format!(
                "{host} did not offer STARTTLS, which its TLSA records require"
            )),
            Some(TlsInfo {
                verified: Err(why), ..
            }) => Some(format!(
                "the certificate of {host} does not match its TLSA records: {why}"
            )),
            Some(_) => None,
        };
        let Some(why) = problem else {
            metrics::counter!("mailgate_tls_sessions_total", "policy" => "dane", "result" => "verified")
                .increment(1);
            return Ok(());
        };
        metrics::counter!("mailgate_tls_sessions_total", "policy" => "dane", "result" => "refused")
            .increment(1);
        self.failures.push(why.clone());
        // A certificate that matches none of the host's TLSA records fails validation
        // (RFC 8460 §4.3.2 keeps `tlsa-invalid` for broken records).
        let failure = match tls {
            None => Failure::StarttlsNotSupported,
            Some(_) => Failure::ValidationFailure,
        };
        self.host_failed(failure, &why);
        self.dane_refused = true;
        Err(why)
    }

    /// The reason an enforced policy left no MX to deliver to, for the deferral.
    pub fn refusal(&self, domain: &str) -> String {
        if self.dane_refused && !self.sts_enforced() {
            return format!(
                "DANE (RFC 7672) for {domain} allows no MX reached: {}; not sent in clear or to another host",
                self.failures.join("; ")
            );
        }
        if let Some(name) = self.required_by.as_ref().filter(|_| self.tls_required()) {
            return format!(
                "shaping entry {name} requires TLS with a verified certificate for {domain}, and no MX reached gave it: {}; not sent in clear",
                self.failures.join("; ")
            );
        }
        let id = self.sts.as_ref().map(|p| p.id.as_str()).unwrap_or("");
        format!(
            "the MTA-STS policy of {domain} (enforce, id {id}) allows no MX reached: {}; not sent in clear or to another host",
            self.failures.join("; ")
        )
    }

    /// Adds the attempt's `tls` ([`describe`](Self::describe)) to each reply's data, and the
    /// policy to its detail.
    pub fn annotate(&self, replies: &mut [Reply], tls: Option<&TlsInfo>) {
        let described = self.describe(tls);
        let mut note = String::new();
        if let Some(set) = &self.dane {
            note = format!("; DANE (TLSA {})", set.id());
        } else if let Some(p) = &self.sts {
            note = format!("; MTA-STS {} (policy id {})", p.mode.as_str(), p.id);
            if p.mode == Mode::Testing && !self.failures.is_empty() {
                note.push_str(&format!(
                    " failed, delivered as testing asks: {}",
                    self.failures.join("; ")
                ));
            }
        }
        for reply in replies {
            match &mut reply.data {
                Some(Value::Object(data)) => {
                    data.insert("tls".into(), described.clone());
                }
                data => *data = Some(json!({ "tls": described })),
            }
            if let Some(detail) = &mut reply.detail {
                detail.push_str(&note);
            }
        }
    }

    fn judged_by_dane(&self) -> bool {
        self.dane.is_some() || (self.dane_refused && !self.sts_enforced())
    }

    /// The policy that applied (`dane`, `mta-sts`, `required`, `opportunistic`, or `none`
    /// for a session without TLS that nothing asked for) and its id (the TLSA set's, the
    /// MTA-STS policy's).
    pub fn label(&self, tls: Option<&TlsInfo>) -> (&'static str, Option<String>) {
        let dane = self.judged_by_dane();
        let policy = match (&self.sts, tls) {
            _ if dane => "dane",
            (Some(_), _) => "mta-sts",
            (None, _) if self.required_by.is_some() => "required",
            (None, Some(_)) => "opportunistic",
            (None, None) => "none",
        };
        let policy_id = match &self.dane {
            Some(set) => Some(set.id()),
            None if dane => None,
            None => self.sts.as_ref().map(|p| p.id.clone()),
        };
        (policy, policy_id)
    }

    /// The attempt's `tls`: the session's TLS (if any), the policy that applied and what it
    /// found wrong.
    pub fn describe(&self, tls: Option<&TlsInfo>) -> Value {
        let dane = self.judged_by_dane();
        let (policy, policy_id) = self.label(tls);
        let mut out = json!({
            "version": tls.map(|t| t.version.clone()),
            "cipher": tls.map(|t| t.cipher.clone()),
            "verified": tls.is_some_and(|t| t.verified.is_ok()),
            "policy": policy,
            "policy_id": policy_id,
        });
        if let Some(p) = self.sts.as_ref().filter(|_| !dane) {
            out["mode"] = p.mode.as_str().into();
        }
        if let Some(Err(why)) = tls.map(|t| &t.verified) {
            out["verify_error"] = why.clone().into();
        }
        if !self.failures.is_empty() {
            out["failures"] = self.failures.clone().into();
        }
        if let Some(e) = &self.fetch_error {
            out["policy_fetch_error"] = e.clone().into();
        }
        out
    }
}

fn webpki() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The web PKI roots, plus every certificate in `tls_policy.ca_file`.
fn roots(config: &TlsPolicyConfig) -> anyhow::Result<RootCertStore> {
    let mut roots = webpki();
    if let Some(path) = &config.ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read tls_policy.ca_file {}", path.display()))?
        {
            let cert = cert.with_context(|| {
                format!(
                    "tls_policy.ca_file {}: not PEM certificates",
                    path.display()
                )
            })?;
            roots
                .add(cert)
                .with_context(|| format!("tls_policy.ca_file {}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            anyhow::bail!("tls_policy.ca_file {} holds no certificate", path.display());
        }
    }
    Ok(roots)
}

fn verifier(roots: Arc<RootCertStore>) -> Arc<dyn ServerCertVerifier> {
    rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots,
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .expect("the roots make a verifier")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(verified: Result<(), Failure>) -> TlsInfo {
        TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
            verify_failure: verified.err(),
            verified: verified.map_err(|f| f.as_str().to_string()),
        }
    }

    fn sts(mode: Mode) -> Option<Arc<StsPolicy>> {
        Some(Arc::new(StsPolicy {
            id: "p1".into(),
            mode,
            mx: vec!["mx.example.com".into()],
            max_age: 86400,
        }))
    }

    fn result(policy: &DomainPolicy) -> Option<&'static str> {
        policy.host_failure.as_ref().map(|(f, _)| f.as_str())
    }

    /// What each session reports for TLS-RPT (RFC 8460 §4.3), under each kind of policy.
    #[test]
    fn sessions_report_the_rfc_result_types() {
        // MTA-STS enforce: no STARTTLS, then a certificate for another name.
        let mut p = DomainPolicy {
            sts: sts(Mode::Enforce),
            ..DomainPolicy::default()
        };
        p.begin_host();
        assert!(p.session("mx.example.com", None).is_err());
        assert_eq!(result(&p), Some("starttls-not-supported"));
        let reported = p.reported("mx.example.com");
        assert_eq!((reported.kind, reported.key.as_str()), ("sts", "p1"));
        assert!(reported.strings.contains(&"mode: enforce".to_string()));
        p.begin_host();
        let wrong_name = tls(Err(Failure::CertificateHostMismatch));
        assert!(p.session("mx.example.com", Some(&wrong_name)).is_err());
        assert_eq!(result(&p), Some("certificate-host-mismatch"));
        p.begin_host();
        assert!(p.host("mx.elsewhere.com").is_err());
        assert_eq!(result(&p), Some("validation-failure"));
        p.begin_host();
        assert!(p.session("mx.example.com", Some(&tls(Ok(())))).is_ok());
        assert_eq!(result(&p), None, "a success");

        // Testing: delivered, and the failure still reported.
        let mut p = DomainPolicy {
            sts: sts(Mode::Testing),
            ..DomainPolicy::default()
        };
        p.begin_host();
        let expired = tls(Err(Failure::CertificateExpired));
        assert!(p.session("mx.example.com", Some(&expired)).is_ok());
        assert_eq!(result(&p), Some("certificate-expired"));

        // No policy: an unverified certificate is fine; no TLS at all is not.
        let mut p = DomainPolicy::default();
        p.begin_host();
        let untrusted = tls(Err(Failure::CertificateNotTrusted));
        assert!(p.session("mx.example.com", Some(&untrusted)).is_ok());
        assert_eq!(result(&p), None);
        assert_eq!(p.reported("mx.example.com").kind, "no-policy-found");
        p.begin_host();
        assert!(p.session("mx.example.com", None).is_ok());
        assert_eq!(result(&p), Some("starttls-not-supported"));

        // A policy that could not be fetched: every session reports it, under `sts`.
        let mut p = DomainPolicy {
            fetch_failure: Some((Failure::StsWebpkiInvalid, "TLS: untrusted".into())),
            ..DomainPolicy::default()
        };
        p.begin_host();
        assert!(p.session("mx.example.com", Some(&tls(Ok(())))).is_ok());
        assert_eq!(result(&p), Some("sts-webpki-invalid"));
        assert_eq!(p.reported("mx.example.com").kind, "sts");

        // DANE: a certificate matching no TLSA record fails validation, under `tlsa`.
        let set = dane::TlsaSet {
            host: "mx.example.com".into(),
            records: vec![dane::Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![0xab; 32],
            }],
        };
        let mut p = DomainPolicy {
            sts: sts(Mode::Enforce),
            dane: Some(Arc::new(set)),
            ..DomainPolicy::default()
        };
        p.begin_host();
        let mismatch = tls(Err(Failure::CertificateNotTrusted));
        assert!(p.session("mx.example.com", Some(&mismatch)).is_err());
        assert_eq!(result(&p), Some("validation-failure"));
        let reported = p.reported("mx.example.com");
        assert_eq!(reported.kind, "tlsa");
        assert_eq!(reported.mx_hosts, ["mx.example.com"]);
        assert_eq!(reported.strings[0], format!("3 1 1 {}", "ab".repeat(32)));
    }
}
