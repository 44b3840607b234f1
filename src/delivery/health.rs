//! What this process has seen of a relay lately (upstream or direct): attempts, failures,
//! the last error and success, and latency, for `/v1/relays`.

use std::time::Duration;

/// What this process has seen of a relay lately (per instance, not shared).
// Named `Health` in openapi.json as it stands, where it collides with the `/healthz` body;
// kept byte-identical here, to be renamed with the spec.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Health)]
pub struct RelayHealth {
    pub attempts: u64,
    /// Attempts without an SMTP answer, or with a 4xx for the whole transaction.
    pub failures: u64,
    pub consecutive_failures: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_success_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Moving average of attempt latency.
    pub avg_latency_ms: f64,
}

impl RelayHealth {
    /// Counts one attempt: its latency, and its failure if it had one.
    pub fn note(&mut self, latency: Duration, failure: Option<&str>) {
        self.attempts += 1;
        let ms = latency.as_secs_f64() * 1000.0;
        self.avg_latency_ms = if self.attempts == 1 {
            ms
        } else {
            self.avg_latency_ms * 0.9 + ms * 0.1
        };
        match failure {
            None => {
                self.consecutive_failures = 0;
                self.last_success_at = Some(chrono::Utc::now());
            }
            Some(err) => {
                self.failures += 1;
                self.consecutive_failures += 1;
                self.last_error = Some(err.to_string());
                self.last_error_at = Some(chrono::Utc::now());
            }
        }
    }
}
