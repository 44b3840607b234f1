//! `[retention]`: how long finished messages and idempotency keys are kept.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Finished messages (with recipients and events) older than this are deleted.
    pub days: i64,
    /// The MIME of finished messages older than this is deleted (status, recipients and
    /// events stay until `days`); unset: `days`.
    pub body_days: Option<i64>,
    /// Idempotency keys are kept at least this long.
    pub idempotency_hours: i64,
    /// How often each instance runs the clean-up.
    pub interval_secs: u64,
    /// Rows deleted per statement, so clean-up never holds long locks.
    pub batch: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            days: 30,
            body_days: None,
            idempotency_hours: 24,
            interval_secs: 3600,
            batch: 1000,
        }
    }
}
