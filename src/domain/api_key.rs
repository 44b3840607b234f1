//! API keys: `mg_live_…` relays, `mg_test_…` is sandboxed. Only a SHA-256 of a key is stored.

use std::{fmt, str::FromStr};

use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const LIVE_PREFIX: &str = "mg_live_";
const TEST_PREFIX: &str = "mg_test_";
const SECRET_LEN: usize = 40;

/// A key scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ScopeName)]
pub enum Scope {
    Send,
    Templates,
    Messages,
    Webhooks,
    Suppressions,
    Keys,
    Domains,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Send,
        Scope::Templates,
        Scope::Messages,
        Scope::Webhooks,
        Scope::Suppressions,
        Scope::Keys,
        Scope::Domains,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Templates => "templates",
            Scope::Messages => "messages",
            Scope::Webhooks => "webhooks",
            Scope::Suppressions => "suppressions",
            Scope::Keys => "keys",
            Scope::Domains => "domains",
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
            .ok_or_else(|| {
                format!("unknown scope `{s}` (expected send, templates, messages, webhooks, suppressions, keys or domains)")
            })
    }
}

/// Parses `send,messages` into scopes, refusing unknown names and an empty list.
pub fn parse_scopes(list: &[String]) -> Result<Vec<Scope>, String> {
    let mut scopes = Vec::new();
    for item in list.iter().flat_map(|s| s.split(',')) {
        if item.trim().is_empty() {
            continue;
        }
        let scope: Scope = item.parse()?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err("at least one scope is required".into());
    }
    Ok(scopes)
}

/// A key's own send limits; `None` means the configured default (`ratelimit.send.*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyLimits {
    pub rate_per_sec: Option<f64>,
    pub burst: Option<u32>,
    pub daily_quota: Option<u64>,
}

/// The bounds keep the GCRA arithmetic (microseconds in a Lua double) exact and the
/// settings meaningful: at least one message per 1000 s, at most a million per second.
pub const MIN_RATE: f64 = 0.001;
pub const MAX_RATE: f64 = 1_000_000.0;
pub const MAX_BURST: i64 = 1_000_000;
pub const MAX_DAILY_QUOTA: i64 = 1_000_000_000;

pub fn check_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "must be a number of messages per second from {MIN_RATE} to {MAX_RATE}"
        ))
    }
}

pub fn check_burst(burst: i64) -> Result<u32, String> {
    match u32::try_from(burst) {
        Ok(b) if (1..=MAX_BURST).contains(&burst) => Ok(b),
        _ => Err(format!("must be a whole number from 1 to {MAX_BURST}")),
    }
}

pub fn check_daily_quota(quota: i64) -> Result<u64, String> {
    match u64::try_from(quota) {
        Ok(q) if (1..=MAX_DAILY_QUOTA).contains(&quota) => Ok(q),
        _ => Err(format!(
            "must be a whole number from 1 to {MAX_DAILY_QUOTA}"
        )),
    }
}

/// A key in clear, as shown to its owner exactly once.
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    pub fn generate(test_mode: bool) -> Self {
        let body: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(SECRET_LEN)
            .map(char::from)
            .collect();
        let prefix = if test_mode { TEST_PREFIX } else { LIVE_PREFIX };
        Self(format!("{prefix}{body}"))
    }

    /// Accepts only the shape mailgate issues, so junk never reaches the database.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw
            .strip_prefix(LIVE_PREFIX)
            .or_else(|| raw.strip_prefix(TEST_PREFIX))?;
        (body.len() == SECRET_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_test(&self) -> bool {
        self.0.starts_with(TEST_PREFIX)
    }

    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }

    /// The first characters, enough for a person to recognise the key in a list.
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(LIVE_PREFIX.len() + 6).collect()
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…)", self.display_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash_stably() {
        let key = ApiKeySecret::generate(true);
        assert!(key.expose().starts_with("mg_test_"));
        let again = ApiKeySecret::parse(key.expose()).unwrap();
        assert_eq!(key.hash(), again.hash());
        assert!(!format!("{key:?}").contains(&key.expose()[14..]));
        assert!(ApiKeySecret::parse("mg_live_short").is_none());
    }

    #[test]
    fn limits_are_bounded() {
        assert!(check_rate(0.0).is_err());
        assert!(check_rate(f64::NAN).is_err());
        assert_eq!(check_rate(2.5), Ok(2.5));
        assert!(check_burst(0).is_err());
        assert!(check_burst(-3).is_err());
        assert_eq!(check_burst(20), Ok(20));
        assert!(check_daily_quota(MAX_DAILY_QUOTA + 1).is_err());
        assert_eq!(check_daily_quota(10_000), Ok(10_000));
    }

    #[test]
    fn scopes_parse_from_comma_lists() {
        let scopes = parse_scopes(&["send,messages".into()]).unwrap();
        assert_eq!(scopes, vec![Scope::Send, Scope::Messages]);
        assert!(parse_scopes(&["send,nope".into()]).is_err());
        assert!(parse_scopes(&[]).is_err());
    }
}
