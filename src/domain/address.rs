//! Email addresses and mailboxes (`Name <user@domain>`).

use std::{fmt, str::FromStr};

use serde::Serialize;

use super::has_line_break;

/// An addr-spec that lettre can put on the wire. Only `parse` makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("is empty".into());
        }
        if s.len() > 254 {
            return Err("is longer than 254 characters".into());
        }
        if has_line_break(s) || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("must not contain spaces or control characters".into());
        }
        let address = lettre::Address::from_str(s)
            .map_err(|_| format!("`{s}` is not a valid email address"))?;
        if !address.domain().contains('.') && !address.domain().starts_with('[') {
            return Err(format!("`{s}` has no top-level domain"));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub email: EmailAddress,
}

impl Mailbox {
    /// Parses `user@domain` or `Display Name <user@domain>`.
    pub fn parse(input: &str) -> Result<Self, String> {
        if has_line_break(input) {
            return Err("must not contain CR or LF".into());
        }
        let s = input.trim();
        match (s.rfind('<'), s.ends_with('>')) {
            (Some(open), true) => {
                let name = s[..open].trim().trim_matches('"').trim();
                let email = EmailAddress::parse(&s[open + 1..s.len() - 1])?;
                Self::with_name(Some(name), email)
            }
            (None, false) => Ok(Self {
                name: None,
                email: EmailAddress::parse(s)?,
            }),
            _ => Err(format!("`{s}` is not `address` or `Name <address>`")),
        }
    }

    pub fn with_name(name: Option<&str>, email: EmailAddress) -> Result<Self, String> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = name {
            if has_line_break(n) || n.chars().any(char::is_control) {
                return Err("the display name must not contain control characters".into());
            }
            if n.len() > 200 {
                return Err("the display name is longer than 200 characters".into());
            }
        }
        Ok(Self {
            name: name.map(str::to_string),
            email,
        })
    }

    pub fn to_lettre(&self) -> lettre::message::Mailbox {
        let address = lettre::Address::from_str(self.email.as_str()).expect("validated at parse");
        lettre::message::Mailbox::new(self.name.clone(), address)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} <{}>", self.email),
            None => write!(f, "{}", self.email),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_and_address() {
        let m = Mailbox::parse("Ada Lovelace <ada@example.com>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(m.email.as_str(), "ada@example.com");
        let m = Mailbox::parse("\"Quoted\" <q@example.org>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Quoted"));
        assert!(Mailbox::parse("bob@example.com").unwrap().name.is_none());
    }

    #[test]
    fn refuses_bad_addresses() {
        for bad in [
            "",
            "nope",
            "a@",
            "@b.com",
            "a b@c.com",
            "x@y.com\r\nBcc: z@w.com",
            "Name <a@b.com",
            "a@localhost",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
