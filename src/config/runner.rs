//! How a queue runner works its queue: the same keys (`concurrency`, `claim_batch`,
//! `poll_interval_ms`, `lease_secs`, `shutdown_grace_secs`) in each queue's section,
//! `[delivery]`, `[webhooks]` and `[inbound]`, each section with its own defaults.
//!
//! The settings are flattened into their sections. Serde reads a flattened struct from a
//! buffer that has lost the key paths and the sections' defaults, so loading lays each
//! section's defaults under the file and the environment ([`defaults`]) and reads the
//! settings alone first ([`check`]), so that a wrong value is reported with its key and
//! where it was set.

use std::time::Duration;

use anyhow::bail;
use figment::{Figment, providers::Serialized};
use serde::{Deserialize, Serialize};

use super::Config;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RunnerSettings {
    /// Jobs in flight at once per process.
    pub concurrency: usize,
    /// Most jobs taken per claim; unset: `concurrency`.
    #[serde(default)]
    pub claim_batch: Option<i64>,
    /// How often an idle runner looks for due work that no wake-up announced (other
    /// instances' work, retries coming due) and for expired leases.
    pub poll_interval_ms: u64,
    /// A claimed job is someone else's after this long unless renewed; a heartbeat renews it
    /// every third of it while the work runs, so it may be shorter than one attempt.
    pub lease_secs: u64,
    /// How long SIGTERM waits for work in flight before handing it back.
    pub shutdown_grace_secs: u64,
}

impl RunnerSettings {
    pub fn claim_batch(&self) -> i64 {
        self.claim_batch
            .unwrap_or(self.concurrency.try_into().unwrap_or(i64::MAX))
    }
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub(super) fn validate(&self, section: &str) -> anyhow::Result<()> {
        // Leases are renewed by a heartbeat every third of their length while the work runs;
        // below 3 s that leaves the heartbeat no room, and a second runner would take live
        // work.
        if self.lease_secs < 3 {
            bail!(
                "{section}.lease_secs ({}) must be at least 3: a heartbeat renews the lease every third of it while the work runs",
                self.lease_secs
            );
        }
        if self.concurrency == 0 || self.claim_batch() <= 0 {
            bail!("{section}.concurrency and {section}.claim_batch must be positive");
        }
        Ok(())
    }
}

/// The sections that hold runner settings, with their settings in `config`.
fn sections(config: &Config) -> [(&'static str, &RunnerSettings); 3] {
    [
        ("delivery", &config.delivery.runner),
        ("webhooks", &config.webhooks.runner),
        ("inbound", &config.inbound.runner),
    ]
}

/// Each section's default settings, as the first layer of the configuration.
pub(super) fn defaults() -> Figment {
    let config = Config::default();
    sections(&config)
        .into_iter()
        .fold(Figment::new(), |figment, (section, settings)| {
            figment.merge(Serialized::default(section, settings))
        })
}

/// The settings of every section, read alone.
#[derive(Deserialize)]
struct Sections {
    #[serde(rename = "delivery")]
    _delivery: RunnerSettings,
    #[serde(rename = "webhooks")]
    _webhooks: RunnerSettings,
    #[serde(rename = "inbound")]
    _inbound: RunnerSettings,
}

/// Reads the runner settings alone: a wrong value fails here with its key path, which the
/// flattened read would have lost.
pub(super) fn check(figment: &Figment) -> Option<figment::Error> {
    figment.extract::<Sections>().err()
}

/// The known keys of `section`, which serde does not list when it refuses an unknown key in
/// a section with flattened settings.
pub(super) fn section_keys(section: &str) -> Option<Vec<String>> {
    let figment = Figment::from(Serialized::defaults(Config::default()));
    let dict = figment.find_value(section).ok()?.into_dict()?;
    Some(dict.into_keys().collect())
}
