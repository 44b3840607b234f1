//! DANE for SMTP (RFC 7672, RFC 6698): an MX host whose MX and address records DNSSEC proves,
//! and which publishes usable TLSA records at `_25._tcp.<host>`, must be reached over TLS with
//! a certificate that matches one of them. DANE-EE (`3 x x`) matches the server's own
//! certificate, with no name or date check (RFC 7672 §3.1.1); DANE-TA (`2 x x`) matches a CA
//! certificate the server sends, and the chain must verify to it for the MX name (§3.1.2).
//! PKIX usages 0 and 1 are unusable for SMTP (§3.1.3): a set of only those is no DANE.

use std::sync::Arc;

use hickory_resolver::proto::rr::{RData, RecordType};
use rustls::{
    DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

use crate::delivery::dns::{Dns, MxHost, Secured};

/// One TLSA record: usage, selector, matching type and the association data (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// DANE-TA or DANE-EE, a selector and a matching type this client knows.
    fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether `cert` is the certificate (or public key) this record names.
    fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let content = match self.selector {
            0 => cert.to_vec(),
            _ => match webpki::EndEntityCert::try_from(cert) {
                Ok(parsed) => parsed.subject_public_key_info().as_ref().to_vec(),
                Err(_) => return false,
            },
        };
        let digest = match self.matching {
            0 => return content == self.data,
            1 => ring::digest::digest(&ring::digest::SHA256, &content),
            _ => ring::digest::digest(&ring::digest::SHA512, &content),
        };
        digest.as_ref() == self.data.as_slice()
    }
}

impl std::fmt::Display for Tlsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        for b in &self.data {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The usable TLSA records of one MX host.
#[derive(Debug, Clone)]
pub struct TlsaSet {
    pub host: String,
    pub records: Vec<Tlsa>,
}

impl TlsaSet {
    /// The attempt's `policy_id`: the records as published, `;`-separated.
    pub fn id(&self) -> String {
        self.records
            .iter()
            .map(Tlsa::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What DANE says about one MX host.
#[derive(Debug, Clone)]
pub enum HostDane {
    /// No DANE: DNSSEC does not prove the host's records, or it has no usable TLSA.
    None,
    /// TLS is required, with a certificate matching one of these.
    Required(Arc<TlsaSet>),
    /// DNSSEC says the answers are forged or broken, or the TLSA lookup failed: the host
    /// must not be used now (RFC 7672 §2.2).
    Refused(String),
}

/// Whether DNSSEC proves `domain`'s MX records (RFC 7672 §2.2.1). Only then may its hosts'
/// TLSA records count. A bogus or failed MX answer is not DANE here: the plain resolver's
/// route is used as before DANE (see [`Dns::secure`] for why).
pub async fn mx_secure(dns: &Dns, domain: &str) -> bool {
    match dns.secure(domain, RecordType::MX).await {
        Ok(Secured::Secure(records)) => !records.is_empty(),
        Ok(Secured::Bogus(why)) => {
            tracing::warn!(domain, why, "DNSSEC: MX answer is bogus; no DANE");
            false
        }
        _ => false,
    }
}

/// `host`'s DANE requirement, for a host of a domain whose MX records are secure.
pub async fn host(dns: &Dns, host: &MxHost) -> HostDane {
    // The address records must be secure too (RFC 7672 §2.2.2); a secure host without an
    // AAAA (or A) record is secure all the same.
    let mut secure_addrs = 0;
    for rtype in [RecordType::A, RecordType::AAAA] {
        match dns.secure(&host.name, rtype).await {
            Ok(Secured::Secure(records)) => secure_addrs += records.len(),
            Ok(Secured::Insecure) => return HostDane::None,
            Ok(Secured::Bogus(why)) => return HostDane::Refused(why),
            Err(err) => return HostDane::Refused(err.to_string()),
        }
    }
    if secure_addrs == 0 {
        return HostDane::None;
    }
    let name = format!("_25._tcp.{}", host.name);
    let records = match dns.secure(&name, RecordType::TLSA).await {
        Ok(Secured::Secure(records)) => records,
        Ok(Secured::Insecure) => return HostDane::None,
        Ok(Secured::Bogus(why)) => return HostDane::Refused(why),
        Err(err) => return HostDane::Refused(err.to_string()),
    };
    let records: Vec<Tlsa> = records
        .into_iter()
        .filter_map(|r| match r {
            RData::TLSA(t) => Some(Tlsa {
                usage: t.cert_usage.into(),
                selector: t.selector.into(),
                matching: t.matching.into(),
                data: t.cert_data,
            }),
            _ => None,
        })
        .filter(Tlsa::usable)
        .collect();
    if records.is_empty() {
        // Only unusable records: opportunistic TLS (RFC 7672 §2.2).
        return HostDane::None;
    }
    HostDane::Required(Arc::new(TlsaSet {
        host: host.name.clone(),
        records,
    }))
}

/// Checks a server's certificate against a host's TLSA records.
#[derive(Debug)]
pub struct DaneVerifier {
    set: Arc<TlsaSet>,
    provider: Arc<CryptoProvider>,
}

impl DaneVerifier {
    pub fn new(set: Arc<TlsaSet>) -> Self {
        Self {
            set,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let records = &self.set.records;
        if records
            .iter()
            .any(|t| t.usage == 3 && t.matches(end_entity))
        {
            return Ok(ServerCertVerified::assertion());
        }
        let mut ta_error = None;
        for ca in intermediates {
            if !records.iter().any(|t| t.usage == 2 && t.matches(ca)) {
                continue;
            }
            let mut roots = RootCertStore::empty();
            if roots.add(ca.clone().into_owned()).is_err() {
                continue;
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                self.provider.clone(),
            )
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
            match verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(ok) => return Ok(ok),
                Err(e) => ta_error = Some(e),
            }
        }
        Err(rustls::Error::General(match ta_error {
            Some(e) => {
                format!("the certificate chain does not verify to the DANE-TA certificate: {e}")
            }
            None => format!(
                "the certificate matches no TLSA record of {} ({})",
                self.set.host,
                self.set.id()
            ),
        }))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
