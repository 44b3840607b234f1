//! VERP return paths: each recipient's envelope sender names its job, `b-<token>@<domain>`,
//! so a bounce that arrives later by mail says which recipient it is about. The headers
//! (From, and so DKIM) are untouched; only the SMTP envelope changes.
//!
//! The domain is, first match wins: the return-path subdomain of the project's sending
//! domain that covers the From domain, once its MX record is published
//! (`bounces.example.com`: SPF then aligns with the From domain for DMARC); the project's own
//! bounce domain; the server's `bounce.domain`.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use uuid::Uuid;

use crate::{
    delivery::dkim::{nearest, normalize_domain},
    queue::mail::Job,
    tokens::TokenKey,
};

#[derive(Debug, Clone)]
pub struct ReturnPath {
    /// `bounce.domain`; a project's own bounce domain wins over it.
    pub domain: Option<String>,
    pub key: TokenKey,
    /// The sending domains' return paths (`service::domains` keeps them current).
    pub sending: SendingReturnPaths,
}

impl ReturnPath {
    /// The envelope sender for this job, or `None` to keep the message's own.
    pub fn for_job(&self, job: &Job) -> Option<String> {
        let from_domain = job.from_addr.rsplit_once('@').map(|(_, d)| d);
        let sending = from_domain.and_then(|d| self.sending.get(job.project_id, d));
        let domain = sending
            .as_deref()
            .or(job.bounce_domain.as_deref())
            .or(self.domain.as_deref())?;
        Some(format!(
            "{}@{domain}",
            self.key.verp_local(job.recipient_id)
        ))
    }
}

/// The return-path subdomain of each sending domain whose MX record is published, by project
/// and domain; shared, and swapped whole when the domains are reloaded.
#[derive(Debug, Clone, Default)]
pub struct SendingReturnPaths(Arc<RwLock<ReturnPathMap>>);

type ReturnPathMap = HashMap<Uuid, HashMap<String, String>>;

impl SendingReturnPaths {
    /// Replaces every entry with `(project, domain, return-path domain)`.
    pub fn set(&self, entries: Vec<(Uuid, String, String)>) {
        let mut next = ReturnPathMap::new();
        for (project, domain, path) in entries {
            next.entry(project).or_default().insert(domain, path);
        }
        *self.0.write().expect("not poisoned") = next;
    }

    /// The return-path domain for mail from `domain` (or a subdomain of a sending domain:
    /// relaxed alignment holds there too).
    pub fn get(&self, project: Uuid, domain: &str) -> Option<String> {
        let map = self.0.read().expect("not poisoned");
        let by_domain = map.get(&project)?;
        nearest(by_domain, &normalize_domain(domain)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subdomain_uses_its_sending_domains_return_path_and_no_other_projects() {
        let paths = SendingReturnPaths::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        paths.set(vec![(
            a,
            "example.com".into(),
            "bounces.example.com".into(),
        )]);
        assert_eq!(
            paths.get(a, "News.Example.com").as_deref(),
            Some("bounces.example.com")
        );
        assert_eq!(paths.get(a, "example.org"), None);
        assert_eq!(paths.get(b, "example.com"), None);
    }
}
