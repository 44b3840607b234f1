//! Relay URLs (`smtp://…`, `smtps://…`): parsing, with the credentials kept out of logs, and
//! the TLS parameters a URL asks for.

use anyhow::{Context, bail};
use lettre::transport::smtp::client::TlsParameters;

use crate::config::RelayConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TlsMode {
    None,
    Opportunistic,
    Required,
    Implicit,
}

#[derive(Clone, PartialEq, Eq)]
pub(super) struct RelayUrl {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) tls: TlsMode,
    pub(super) credentials: Option<(String, String)>,
}

// By hand, so that a logged relay never shows its password.
impl std::fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

/// `smtp://[user:pass@]host[:port][?tls=none|opportunistic|required]` (default opportunistic)
/// or `smtps://[user:pass@]host[:port]` (implicit TLS, port 465).
pub(super) fn parse_url(url: &str) -> anyhow::Result<RelayUrl> {
    let (scheme, rest) = url
        .split_once("://")
        .context("relay URL needs a scheme (smtp:// or smtps://)")?;
    let (authority, query) = match rest.split_once('?') {
        // A `?` in the user name or password cut the URL short: what follows would be
        // read, and quoted back, as parameters.
        Some((_, q)) if q.contains('@') => bail!(
            "relay URL: a `?` in the user name or password must be percent-encoded as %3F (the password is not shown)"
        ),
        Some((a, q)) => (a.trim_end_matches('/'), Some(q)),
        None => (rest.trim_end_matches('/'), None),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    // The errors name what is wrong, never the characters: they are the password's.
    let credentials = userinfo
        .map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let user = percent_decode(user).context(
                "relay URL: the user name is not valid percent-encoding (each % must start a %XX escape of UTF-8)",
            )?;
            let pass = percent_decode(pass).context(
                "relay URL: the password is not valid percent-encoding (each % must start a %XX escape of UTF-8, e.g. %25 for % itself); the password is not shown",
            )?;
            Ok::<_, anyhow::Error>((user, pass))
        })
        .transpose()?;
    let mut tls = match scheme {
        "smtp" => TlsMode::Opportunistic,
        "smtps" => TlsMode::Implicit,
        other => bail!("unsupported relay scheme `{other}` (use smtp or smtps)"),
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("tls", value)) if tls != TlsMode::Implicit => {
                tls = match value {
                    "none" => TlsMode::None,
                    "opportunistic" => TlsMode::Opportunistic,
                    "required" | "starttls" => TlsMode::Required,
                    other => bail!("unknown tls mode `{other}` (none, opportunistic, required)"),
                }
            }
            _ => bail!("unknown relay URL parameter `{pair}`"),
        }
    }
    let default_port = if tls == TlsMode::Implicit { 465 } else { 25 };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
            h.to_string(),
            p.parse().with_context(|| format!("bad port `{p}`"))?,
        ),
        _ => (hostport.to_string(), default_port),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        bail!("relay URL has no host");
    }
    Ok(RelayUrl {
        host,
        port,
        tls,
        credentials,
    })
}

/// `%XX` escapes decoded; `None` for a bad escape or bytes that are not UTF-8. No error
/// detail: the text may be a password.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            let (high, low) = (hex(bytes[i + 1])?, hex(bytes[i + 2])?);
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// TLS for this relay; `tls_insecure` accepts any certificate (self-signed test relays only).
pub(super) fn tls_parameters(
    url: &RelayUrl,
    config: &RelayConfig,
) -> anyhow::Result<TlsParameters> {
    TlsParameters::builder(url.host.clone())
        .dangerous_accept_invalid_certs(config.tls_insecure)
        .dangerous_accept_invalid_hostnames(config.tls_insecure)
        .build_rustls()
        .context("TLS parameters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relay_urls() {
        let u = parse_url("smtp://bob:p%40ss@mx.example.com:587?tls=required").unwrap();
        assert_eq!(u.host, "mx.example.com");
        assert_eq!(u.port, 587);
        assert_eq!(u.tls, TlsMode::Required);
        assert_eq!(u.credentials, Some(("bob".into(), "p@ss".into())));
        let u = parse_url("smtps://mx.example.com").unwrap();
        assert_eq!((u.port, u.tls), (465, TlsMode::Implicit));
        let u = parse_url("smtp://127.0.0.1:2526?tls=none").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("127.0.0.1", 2526, TlsMode::None)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("smtp://x?tls=maybe").is_err());
    }

    /// A malformed password is refused without a character of it in the message.
    #[test]
    fn errors_never_quote_the_password() {
        for url in [
            "smtp://bob:s3cr%ZZet@mx.example.com:587",
            "smtp://bob:s3cr%e9et@mx.example.com:587",
            "smtp://bob:s3cr?ZZet@mx.example.com:587",
        ] {
            let err = format!("{:#}", parse_url(url).unwrap_err());
            for part in ["s3cr", "ZZ", "et@", "e9"] {
                assert!(!err.contains(part), "{err}");
            }
            assert!(
                err.contains("password") || err.contains("user name"),
                "{err}"
            );
        }
    }
}
