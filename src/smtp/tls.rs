//! The listener's TLS: the configured certificate, or a self-signed one made at start for
//! development (clients must then skip verification, as a dev client would).

use std::{path::Path, sync::Arc};

use anyhow::Context;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
    },
};

use crate::config::SmtpConfig;

/// Where the certificate came from, for the start-up line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    Files,
    SelfSigned,
}

pub fn acceptor(config: &SmtpConfig) -> anyhow::Result<(TlsAcceptor, CertSource)> {
    let (chain, key, source) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let (chain, key) = load(cert, key)?;
            (chain, key, CertSource::Files)
        }
        _ => {
            let (chain, key) = self_signed(&config.hostname)?;
            (chain, key, CertSource::SelfSigned)
        }
    };
    // The provider is named rather than taken from a process default, which is only
    // set when exactly one provider is compiled in.
    let server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the SMTP TLS certificate and key do not form a usable pair")?;
    Ok((TlsAcceptor::from(Arc::new(server)), source))
}

fn load(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a private key from {}", key.display()))?;
    Ok((chain, key))
}

fn self_signed(
    hostname: &str,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let mut names = vec![hostname.to_string()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    let generated =
        rcgen::generate_simple_self_signed(names).context("cannot generate a certificate")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    Ok((vec![generated.cert.der().clone()], key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_by_default_and_files_when_configured() {
        let config = SmtpConfig::default();
        let (_, source) = acceptor(&config).unwrap();
        assert_eq!(source, CertSource::SelfSigned);

        let generated = rcgen::generate_simple_self_signed(vec!["mx.example.com".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("mailgate-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        let config = SmtpConfig {
            tls_cert: Some(cert.clone()),
            tls_key: Some(key),
            ..SmtpConfig::default()
        };
        let (_, source) = acceptor(&config).unwrap();
        assert_eq!(source, CertSource::Files);

        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(acceptor(&config).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
