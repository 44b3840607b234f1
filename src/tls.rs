//! TLS as a client, shared by every connection mailgate makes (Postgres, Redis, relays,
//! webhooks, rspamd): one crypto provider, ring, installed once per process before any rustls
//! configuration is built, and failed handshakes told in plain words.
//!
//! Every TLS client in the binary is rustls with ring; some (redis, reqwest) take the
//! process-wide default provider and panic when there is none, so `cli::main` installs it
//! first and `Application::build` again (tests build applications without the CLI).

use std::{error::Error as StdError, sync::Arc};

use rustls::{AlertDescription, CertificateError};

/// Installs ring as the process's rustls provider. Idempotent: an error only means one is
/// installed already.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS failure somewhere in `err`'s chain, in words an operator can act on, e.g.
/// "certificate not trusted (unknown issuer)"; `None` when the error is not about TLS.
pub fn explain(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = rustls_error(e) {
            return Some(describe(tls));
        }
        next = e.source();
    }
    None
}

/// `e` as a rustls error: itself, or the one it wraps where `source()` does not lead to it.
/// tokio-rustls and sqlx return handshake failures as an `io::Error`, whose `source()` skips
/// the error it carries; redis gives its inner error as an `Arc`, which downcasts only as one.
fn rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(shared) = e.downcast_ref::<Arc<dyn StdError + Send + Sync>>() {
        return rustls_error(&**shared);
    }
    e.downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| rustls_error(inner))
}

fn describe(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                "certificate not trusted (signed by an unknown issuer: check the CA file)".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("certificate does not name this host ({err})")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("certificate expired ({err})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("certificate not valid yet ({err})")
            }
            CertificateError::Revoked => "certificate revoked".into(),
            _ => format!("certificate refused ({err})"),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied),
        ) => format!(
            "the server refused our client certificate ({alert:?}): check the client certificate and key"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rustls_error_inside_an_io_error() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let why = explain(&io).expect("a TLS error");
        assert!(why.starts_with("certificate not trusted"), "{why}");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(explain(&plain), None);
        // As redis hands it over: the io::Error behind an Arc.
        let shared: Arc<dyn StdError + Send + Sync> = Arc::new(io);
        assert!(explain(&shared).is_some());
    }

    #[test]
    fn a_refused_client_certificate_says_so() {
        let e = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let why = explain(&e).unwrap();
        assert!(why.contains("refused our client certificate"), "{why}");
    }
}
