//! Template names: lowercase slugs, so they work unquoted in URLs, folders and CLIs.

use std::fmt;

use serde::Serialize;

const MAX_LEN: usize = 64;

/// Names that collide with routes under `/v1/templates/`.
const RESERVED: &[&str] = &["validate"];

/// `welcome`, `password-reset`, `receipt_v2`. Only `parse` makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TemplateName(String);

impl TemplateName {
    pub fn parse(input: &str) -> Result<Self, String> {
        let valid = !input.is_empty()
            && input.len() <= MAX_LEN
            && input
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && input
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(format!(
                "template names are 1 to {MAX_LEN} lowercase letters, digits, `-` or `_`, starting with a letter or digit"
            ));
        }
        if RESERVED.contains(&input) {
            return Err(format!("`{input}` is reserved"));
        }
        Ok(Self(input.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TemplateName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_slugs_only() {
        for ok in ["welcome", "password-reset", "receipt_v2", "2fa"] {
            assert!(TemplateName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Welcome",
            "-x",
            "a b",
            "../etc",
            "a/b",
            "validate",
            &"x".repeat(65),
        ] {
            assert!(TemplateName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
