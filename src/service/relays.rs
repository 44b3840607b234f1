//! The configured relays, with their pools and the health this instance saw (the operator's
//! view).

use serde::Serialize;

use super::AppState;
use crate::{
    delivery::relay::{Pacing, RelayHealth},
    ratelimit::pace::PaceStatus,
};

#[derive(Serialize, utoipa::ToSchema)]
pub struct RelayStatus {
    pub name: String,
    pub host: String,
    /// Pools listing this relay, in which it is tried by priority.
    pub pools: Vec<String>,
    pub health: RelayHealth,
    /// Its rate and connection caps, and the back-off its throttling replies caused.
    pub pacing: Pacing,
}

/// Every configured relay with its pools and the health this instance saw; a direct relay
/// (`mx = true`) has `host` "MX of each domain" and no pacing.
pub fn statuses(state: &AppState) -> Vec<RelayStatus> {
    let upstream = state.relays.all().map(|r| RelayStatus {
        name: r.name.clone(),
        host: r.host.clone(),
        pools: state.relays.pools_of(&r.name),
        health: r.health(),
        pacing: r.pacing(),
    });
    let direct = state.relays.all_direct().map(|d| RelayStatus {
        name: d.name.clone(),
        host: d.describe(),
        pools: state.relays.pools_of(&d.name),
        health: d.health(),
        pacing: Pacing {
            max_rate_per_sec: None,
            burst: None,
            max_connections: None,
            state: PaceStatus {
                paused_until: None,
                backoff_ms: 0,
                slowed_until: None,
                throttles: 0,
                scope: "local",
            },
        },
    });
    upstream.chain(direct).collect()
}
