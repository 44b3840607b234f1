//! The configured relays, with their pools and the health this instance saw (the operator's
//! view).

use serde::Serialize;

use super::AppState;
use crate::delivery::relay::{Pacing, RelayHealth};

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

/// Every configured relay with its pools and the health this instance saw.
pub fn statuses(state: &AppState) -> Vec<RelayStatus> {
    state
        .relays
        .all()
        .map(|r| RelayStatus {
            name: r.name.clone(),
            host: r.host.clone(),
            pools: state.relays.pools_of(&r.name),
            health: r.health(),
            pacing: r.pacing(),
        })
        .collect()
}
