//! Retention: drops whole day partitions of messages once they are all past `retention.days`
//! and finished, and keeps partitions made a week ahead; deletes the finished messages of
//! days that could not be dropped, old webhook deliveries, processed inbound mail and expired
//! idempotency keys in bounded batches, on every instance (batches use SKIP LOCKED, so
//! instances do not collide).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    config::RetentionConfig,
    store::{idempotency, inbound, messages, partitions, webhooks},
};

/// Days of partitions kept ready ahead of today, so a late clean-up never leaves new mail to
/// the default partition.
const PARTITION_DAYS_AHEAD: i32 = 7;

/// Makes the coming days' partitions and drops the days wholly past `days` whose mail is all
/// finished; returns the days dropped.
pub async fn maintain_partitions(pool: &PgPool, days: i64) -> sqlx::Result<Vec<NaiveDate>> {
    partitions::create_ahead(pool, PARTITION_DAYS_AHEAD).await?;
    let mut dropped = Vec::new();
    for day in partitions::days_before(pool, days as f64 * 86400.0).await? {
        if partitions::drop_day_if_finished(pool, day).await? {
            dropped.push(day);
        }
    }
    if !dropped.is_empty() {
        tracing::info!(days = ?dropped, "retention: dropped old day partitions");
    }
    Ok(dropped)
}

/// Cancels held mail whose hold outlived `scan.hold_hours`, in batches; returns how many
/// messages. Run with the clean-up, on every instance.
pub async fn expire_held(pool: &PgPool, hours: u64, batch: i64) -> sqlx::Result<u64> {
    let mut expired = 0;
    loop {
        let n = messages::expire_held(pool, hours, batch).await?;
        expired += n;
        if n == 0 {
            break;
        }
    }
    if expired > 0 {
        tracing::info!(messages = expired, "held mail expired and was cancelled");
    }
    Ok(expired)
}

/// Runs `step` (one batch of at most `batch` rows) until a batch comes back short; returns
/// the rows in all.
async fn in_batches<F: Future<Output = sqlx::Result<u64>>>(
    batch: i64,
    mut step: impl FnMut() -> F,
) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let n = step().await?;
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
    }
}

/// Where the row-by-row purge stops: the start of the UTC day that `days` ago falls in, the
/// oldest day whose partitions are not yet wholly past retention.
pub fn row_by_row_before(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    let edge = now - chrono::Duration::days(days);
    edge.date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(edge, |start| start.and_utc())
}

/// One full pass; returns (messages, idempotency keys) deleted row by row (whole days dropped
/// as partitions are logged, not counted).
pub async fn purge_once(pool: &PgPool, config: &RetentionConfig) -> sqlx::Result<(u64, u64)> {
    let (days, batch) = (config.days, config.batch);
    maintain_partitions(pool, days).await?;
    // What the partitions did not take: days kept for mail still waiting, and the default
    // partition. Only what lies before the oldest day still open: deleting that day's finished
    // mail row by row as it ages would leave the drop an empty day (every row paid in WAL and
    // vacuum, what the partitions are there to spare). So mail stays up to a day longer than
    // `retention.days`, and then goes with its day.
    let messages_deleted = in_batches(batch, || {
        messages::purge_finished(pool, row_by_row_before(Utc::now(), days), batch)
    })
    .await?;
    // Bodies may go sooner than the rest (`retention.body_days`).
    let body_secs = config.body_days.unwrap_or(days) as f64 * 86400.0;
    let bodies_deleted =
        in_batches(batch, || messages::purge_bodies(pool, body_secs, batch)).await?;
    let keys_deleted = in_batches(batch, || {
        idempotency::purge(pool, config.idempotency_hours, batch)
    })
    .await?;
    // Webhook deliveries follow the messages they report on.
    let deliveries_deleted =
        in_batches(batch, || webhooks::purge_finished(pool, days, batch)).await?;
    // The inbound log (processed bounces, complaints, received mail) is kept as long.
    let inbound_deleted = in_batches(batch, || inbound::purge_processed(pool, days, batch)).await?;
    if bodies_deleted > 0 {
        tracing::info!(
            bodies = bodies_deleted,
            "retention: deleted the MIME of old messages"
        );
    }
    if inbound_deleted > 0 {
        tracing::info!(
            inbound_messages = inbound_deleted,
            "retention: deleted old inbound mail"
        );
    }
    if deliveries_deleted > 0 {
        tracing::info!(
            webhook_deliveries = deliveries_deleted,
            "retention: deleted old webhook deliveries"
        );
    }
    Ok((messages_deleted, keys_deleted))
}

/// The clean-up, every `retention.interval_secs`; held mail expires on the same beat.
pub async fn run(
    pool: PgPool,
    config: RetentionConfig,
    hold_hours: u64,
    cancel: CancellationToken,
) {
    let every = Duration::from_secs(config.interval_secs.max(1));
    loop {
        if let Err(err) = expire_held(&pool, hold_hours, config.batch).await {
            tracing::warn!(error = %err, "expiring held mail failed; will retry");
        }
        match purge_once(&pool, &config).await {
            Ok((0, 0)) => {}
            Ok((m, k)) => tracing::info!(
                messages = m,
                idempotency_keys = k,
                "retention: deleted old rows"
            ),
            Err(err) => tracing::warn!(error = %err, "retention pass failed; will retry"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_by_row_purge_stops_at_the_start_of_the_day_retention_reaches() {
        let now = "2026-12-07T11:30:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            row_by_row_before(now, 30),
            "2026-11-07T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let midnight = "2026-12-07T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            row_by_row_before(midnight, 1),
            "2026-12-06T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
