//! Connection URLs that may carry a password (Postgres, Redis, SMTP relays). They print with
//! the password replaced, whichever way they are printed; the code that connects asks for the
//! real one by name.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A URL whose password never prints: `Debug`, `Display` and `Serialize` give
/// `scheme://user:***@host…`. [`SecretUrl::expose`] gives the real URL, for connecting only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password: hand it to the client that connects, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced, for logs (the same as `Display`).
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self(url.to_string())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Redacted too: the configuration is serialized only to be shown.
impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// A URL with its password replaced, for logs: in the user info (`user:***@`) and in any
/// query parameter named for a password: `password=` and libpq's `sslpassword=` (the client
/// key's passphrase) in Postgres URLs.
pub fn redact_url(url: &str) -> String {
    let url = match (url.find("://"), url.rfind('@')) {
        // Only a password is hidden; `user@host` (the password elsewhere, e.g. PGPASSWORD)
        // prints as it is, so the log does not suggest one in the URL.
        (Some(scheme_end), Some(at))
            if at > scheme_end && url[scheme_end + 3..at].contains(':') =>
        {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_string(),
    };
    match url.split_once('?') {
        Some((base, query)) => {
            let query = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_password_param(k) => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect::<Vec<_>>()
                .join("&");
            format!("{base}?{query}")
        }
        None => url,
    }
}

/// Whether a URL query parameter carries a password (`password`, `sslpassword`, …).
pub fn is_password_param(key: &str) -> bool {
    key.to_ascii_lowercase().ends_with("password")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact_url("smtp://bob:hunter2@mx.example.com:587"),
            "smtp://bob:***@mx.example.com:587"
        );
        assert_eq!(redact_url("smtp://127.0.0.1:25"), "smtp://127.0.0.1:25");
        assert_eq!(
            redact_url("postgres://mailgate@db.example.com/mailgate?sslmode=verify-full"),
            "postgres://mailgate@db.example.com/mailgate?sslmode=verify-full"
        );
        assert_eq!(
            redact_url("postgres://db.example.com/mailgate?sslmode=require&password=hunter2"),
            "postgres://db.example.com/mailgate?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url(
                "postgres://db.example.com/mailgate?sslkey=/k.pem&sslpassword=hunter2&sslmode=verify-full"
            ),
            "postgres://db.example.com/mailgate?sslkey=/k.pem&sslpassword=***&sslmode=verify-full"
        );
    }

    #[test]
    fn a_secret_url_prints_redacted_and_exposes_on_request() {
        let url = SecretUrl::from("redis://:hunter2@127.0.0.1:6379/0");
        assert_eq!(url.to_string(), "redis://:***@127.0.0.1:6379/0");
        assert_eq!(format!("{url:?}"), "\"redis://:***@127.0.0.1:6379/0\"");
        assert_eq!(
            serde_json::to_string(&url).unwrap(),
            "\"redis://:***@127.0.0.1:6379/0\""
        );
        assert_eq!(url.expose(), "redis://:hunter2@127.0.0.1:6379/0");
    }
}
