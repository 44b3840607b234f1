//! When to try a failed delivery again: the configured schedule with jitter, never sooner
//! than the receiver's `Retry-After` (capped).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::config::WebhooksConfig;

/// The delay before the attempt after `attempt` (1-based) failed, or `None` when the
/// schedule is exhausted.
pub fn retry_delay(
    config: &WebhooksConfig,
    attempt: i32,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let base = *config
        .retry_schedule_secs
        .get(usize::try_from(attempt - 1).ok()?)?;
    let jitter = config.retry_jitter.clamp(0.0, 0.99);
    let factor = if jitter > 0.0 {
        rand::rng().random_range(1.0 - jitter..=1.0 + jitter)
    } else {
        1.0
    };
    let mut delay = Duration::from_secs_f64((base * factor).max(0.0));
    if let Some(asked) = retry_after {
        delay = delay.max(asked.min(Duration::from_secs_f64(config.max_retry_after_secs)));
    }
    Some(delay)
}

/// A `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(schedule: &[f64]) -> WebhooksConfig {
        WebhooksConfig {
            retry_schedule_secs: schedule.to_vec(),
            ..WebhooksConfig::default()
        }
    }

    #[test]
    fn follows_the_schedule_with_jitter_then_stops() {
        let c = config(&[5.0, 300.0]);
        let first = retry_delay(&c, 1, None).unwrap().as_secs_f64();
        assert!((4.0..=6.0).contains(&first), "{first}");
        let second = retry_delay(&c, 2, None).unwrap().as_secs_f64();
        assert!((240.0..=360.0).contains(&second), "{second}");
        assert_eq!(retry_delay(&c, 3, None), None);
    }

    #[test]
    fn retry_after_delays_but_is_capped() {
        let mut c = config(&[1.0]);
        c.retry_jitter = 0.0;
        let asked = Some(Duration::from_secs(60));
        assert_eq!(retry_delay(&c, 1, asked), Some(Duration::from_secs(60)));
        c.max_retry_after_secs = 10.0;
        assert_eq!(retry_delay(&c, 1, asked), Some(Duration::from_secs(10)));
        // A shorter Retry-After does not hurry the schedule.
        c.retry_schedule_secs = vec![30.0];
        assert_eq!(
            retry_delay(&c, 1, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
