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
        let domain = address.domain();
        if domain.starts_with('[') {
            return Ok(Self(s.to_string()));
        }
        let ascii = a_label(domain).map_err(|e| {
            format!(
                "`{s}`: the domain `{domain}` is not a valid internationalized domain name ({e})"
            )
        })?;
        if !ascii.contains('.') {
            return Err(format!("`{s}` has no top-level domain"));
        }
        // The envelope carries the A-label form, so that is the one the SMTP limit applies to.
        if address.user().len() + 1 + ascii.len() > 254 {
            return Err("is longer than 254 characters once its domain is in A-labels".into());
        }
        Ok(Self(s.to_string()))
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or("")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain as written, which may be Unicode (`bücher.example`).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// The domain as DNS and SMTP know it: A-labels (`xn--bcher-kva.example`, UTS 46
    /// processing). An ASCII domain is returned as written.
    pub fn ascii_domain(&self) -> String {
        a_label(self.domain()).expect("checked at parse")
    }

    /// Whether the local part is UTF-8 (`josé@…`): such an address can only travel with
    /// SMTPUTF8 (RFC 6531), as no ASCII form of it exists. A Unicode domain alone never needs it.
    pub fn needs_smtputf8(&self) -> bool {
        !self.local_part().is_ascii()
    }

    /// The address as it goes into an SMTP envelope (`MAIL FROM`, `RCPT TO`): the local part
    /// as written and the domain in A-labels, so `ada@bücher.example` goes as
    /// `ada@xn--bcher-kva.example` and needs no SMTPUTF8.
    pub fn to_envelope(&self) -> EnvelopeAddress {
        let address = if self.domain().is_ascii() {
            self.0.clone()
        } else {
            format!("{}@{}", self.local_part(), self.ascii_domain())
        };
        EnvelopeAddress {
            address,
            needs_smtputf8: self.needs_smtputf8(),
        }
    }

    /// The form for headers when the message does not travel with SMTPUTF8: the domain in
    /// A-labels. (With a UTF-8 local part there is no ASCII form; see `to_envelope`.)
    pub fn to_ascii_header(&self) -> String {
        self.to_envelope().address
    }
}

/// An address ready for the SMTP envelope (see [`EmailAddress::to_envelope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeAddress {
    /// `local@a-label.domain`.
    pub address: String,
    /// The local part is UTF-8: the next hop must offer SMTPUTF8.
    pub needs_smtputf8: bool,
}

/// A domain in A-labels. Unicode domains, and ASCII ones with a Punycode label, go through
/// UTS 46 processing with the STD3 rules and DNS lengths checked; other ASCII domains were
/// checked by lettre and are kept as written (case included).
fn a_label(domain: &str) -> Result<String, String> {
    let punycode = domain.split('.').any(|label| {
        label
            .as_bytes()
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"))
    });
    if domain.is_ascii() && !punycode {
        return Ok(domain.to_string());
    }
    idna::domain_to_ascii_strict(domain).map_err(|_| "IDNA/UTS 46 conversion failed".to_string())
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

    /// The mailbox for a header. With an ASCII local part the domain is written in A-labels,
    /// so the header stays ASCII and the message needs no SMTPUTF8 (the display name is
    /// RFC 2047-encoded by lettre). A UTF-8 local part has no ASCII form: the address is
    /// kept as written, Unicode domain included (RFC 6532), and goes only with SMTPUTF8.
    pub fn to_lettre(&self) -> lettre::message::Mailbox {
        let written = if self.email.needs_smtputf8() {
            self.email.as_str().to_string()
        } else {
            self.email.to_ascii_header()
        };
        let address = lettre::Address::from_str(&written).expect("validated at parse");
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
            "a@bü_cher.example",
            "a@xn--zz.example",
            "a@例子",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn internationalized_addresses_go_to_the_envelope_in_a_labels() {
        let cases = [
            ("ada@example.com", "ada@example.com", false),
            ("Ada@Example.COM", "Ada@Example.COM", false),
            ("ada@bücher.example", "ada@xn--bcher-kva.example", false),
            ("josé@bücher.example", "josé@xn--bcher-kva.example", true),
            ("用户@例子.中国", "用户@xn--fsqu00a.xn--fiqs8s", true),
            ("ada@BÜCHER.example", "ada@xn--bcher-kva.example", false),
        ];
        for (input, envelope, utf8) in cases {
            let address = EmailAddress::parse(input).unwrap();
            assert_eq!(address.as_str(), input, "kept as written");
            assert_eq!(
                address.to_envelope(),
                EnvelopeAddress {
                    address: envelope.into(),
                    needs_smtputf8: utf8
                },
                "{input}"
            );
        }
    }
}
