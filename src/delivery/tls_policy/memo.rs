//! Per-domain answers kept in memory for a short while. Every delivery asks for its domain's
//! policy, and at hundreds of deliveries a second to the same few domains, asking Postgres
//! (the MTA-STS cache) and the validating resolver (DANE's DNSSEC proof of the MX records)
//! each time cost more CPU than the delivery itself. A policy or a DNSSEC proof changes on
//! the scale of hours; [`TTL`] bounds how late a change is seen here.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long an answer is kept.
pub const TTL: Duration = Duration::from_secs(60);
/// Domains kept at most; past this, expired entries are dropped, and if that is not enough,
/// all (a burst to many new domains must not grow memory without bound).
const MAX_ENTRIES: usize = 10_000;

pub struct Memo<V> {
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
        }
    }
}

impl<V: Clone> Memo<V> {
    /// The answer for `domain` kept less than [`TTL`] ago.
    pub fn get(&self, domain: &str) -> Option<V> {
        let entries = self.entries.lock().expect("not poisoned");
        entries
            .get(domain)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, domain: &str, value: V) {
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(domain.to_string(), (Instant::now(), value));
    }

    pub fn forget(&self, domain: &str) {
        self.entries.lock().expect("not poisoned").remove(domain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_answers_and_stays_bounded() {
        let memo = Memo::default();
        memo.put("a.example", 1);
        assert_eq!(memo.get("a.example"), Some(1));
        memo.forget("a.example");
        assert_eq!(memo.get("a.example"), None);
        for i in 0..MAX_ENTRIES + 5 {
            memo.put(&format!("d{i}.example"), i);
        }
        assert!(memo.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert_eq!(
            memo.get(&format!("d{}.example", MAX_ENTRIES + 4)),
            Some(MAX_ENTRIES + 4)
        );
    }
}
