//! Where waiting mail is headed (the operator's view, `GET /v1/destinations` and the
//! console's destinations page): each destination site with mail queued or deferred, its
//! domains, the counts, the last reply, and per egress address its pause, back-off and open
//! connections. What Postal users ask for when mail "stays queued".

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AppState, ServiceResult};
use crate::{
    delivery::direct::shaping::{LaneState, Limits, SiteTls},
    store::destinations::{self, WaitingDomain},
};

/// Waiting recipients read at most, soonest due first.
pub const SCAN_CAP: i64 = 50_000;
/// Domains listed at most (those with the most waiting).
pub const DOMAIN_CAP: i64 = 100;
/// How long one domain's MX lookup may take here (the resolver's cache usually answers).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Destination {
    /// The shaping entry that governs the site (`default` for a site no entry claims);
    /// null when no direct relay is configured or the domain's MX could not be looked up.
    pub shaping: Option<String>,
    /// The site's MX hosts (empty when unknown).
    pub mx: Vec<String>,
    /// The recipient domains with mail waiting that go to this site.
    pub domains: Vec<String>,
    /// Recipients waiting for their first attempt.
    pub queued: i64,
    /// Recipients waiting for a retry.
    pub deferred: i64,
    /// The newest reply recorded on a waiting recipient (a deferral's).
    pub last_reply: Option<String>,
    pub last_reply_at: Option<DateTime<Utc>>,
    /// When the soonest waiting recipient is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The site's limits per egress address.
    pub limits: Option<Limits>,
    /// Per egress address: pause, back-off, throttling replies and open connections.
    pub egress: Vec<LaneState>,
    /// The TLS policy the site's mail went under lately and its last TLS failure, as the
    /// answering instance saw them; null before any attempt there.
    pub tls: Option<SiteTls>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DestinationList {
    /// Sites with the most waiting recipients first.
    pub data: Vec<Destination>,
    /// Waiting recipients read (at most 50,000, soonest due first).
    pub scanned: i64,
    /// More recipients wait than were read, or more domains than are listed (100).
    pub truncated: bool,
}

/// Every destination with mail waiting, grouped by site when a direct relay resolves them.
pub async fn list(state: &AppState) -> ServiceResult<DestinationList> {
    let (rows, scanned) = destinations::waiting(&state.pool, SCAN_CAP, DOMAIN_CAP).await?;
    let truncated = scanned >= SCAN_CAP || rows.len() as i64 >= DOMAIN_CAP;
    let direct = state
        .relays
        .direct(None)
        .or_else(|| state.relays.all_direct().next());
    let sites = match direct {
        Some(direct) => {
            futures_util::future::join_all(
                rows.iter()
                    .map(|row| direct.site_of(&row.domain, LOOKUP_TIMEOUT)),
            )
            .await
        }
        None => vec![None; rows.len()],
    };
    let mut by_site: BTreeMap<String, Destination> = BTreeMap::new();
    for (row, site) in rows.into_iter().zip(sites) {
        let key = match &site {
            Some(site) => format!("site:{}", site.key),
            None => format!("domain:{}", row.domain),
        };
        let entry = by_site.entry(key).or_insert_with(|| Destination {
            shaping: site.as_ref().map(|s| s.shaping.clone()),
            mx: site.as_ref().map(|s| s.mx.clone()).unwrap_or_default(),
            domains: Vec::new(),
            queued: 0,
            deferred: 0,
            last_reply: None,
            last_reply_at: None,
            next_attempt_at: None,
            limits: site.as_ref().map(|s| s.limits),
            egress: Vec::new(),
            tls: None,
        });
        add(entry, row);
        if let (Some(direct), Some(site)) = (direct, &site)
            && entry.egress.is_empty()
        {
            for egress in direct.egress_names() {
                entry.egress.push(direct.lane_state(site, &egress).await);
            }
            entry.tls = direct.site_tls(site);
        }
    }
    let mut data: Vec<Destination> = by_site.into_values().collect();
    data.sort_by_key(|d| std::cmp::Reverse(d.queued + d.deferred));
    Ok(DestinationList {
        data,
        scanned,
        truncated,
    })
}

fn add(entry: &mut Destination, row: WaitingDomain) {
    entry.domains.push(row.domain);
    entry.queued += row.queued;
    entry.deferred += row.deferred;
    if row.last_reply_at > entry.last_reply_at {
        entry.last_reply = row.last_reply;
        entry.last_reply_at = row.last_reply_at;
    }
    entry.next_attempt_at = match (entry.next_attempt_at, row.next_attempt_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}
