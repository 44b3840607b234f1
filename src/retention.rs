//! Retention: deletes finished messages, old webhook deliveries, processed inbound mail and
//! expired idempotency keys in bounded batches, on every instance (batches use SKIP LOCKED,
//! so instances do not collide).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    config::RetentionConfig,
    store::{idempotency, inbound, messages, webhooks},
};

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

/// One full pass; returns (messages, idempotency keys) deleted.
pub async fn purge_once(pool: &PgPool, config: &RetentionConfig) -> sqlx::Result<(u64, u64)> {
    let mut messages_deleted = 0;
    loop {
        let n = messages::purge_finished(pool, config.days as f64 * 86400.0, config.batch).await?;
        messages_deleted += n;
        if n < config.batch as u64 {
            break;
        }
    }
    let mut keys_deleted = 0;
    loop {
        let n = idempotency::purge(pool, config.idempotency_hours, config.batch).await?;
        keys_deleted += n;
        if n < config.batch as u64 {
            break;
        }
    }
    // Webhook deliveries follow the messages they report on.
    let mut deliveries_deleted = 0;
    loop {
        let n = webhooks::purge_finished(pool, config.days, config.batch).await?;
        deliveries_deleted += n;
        if n < config.batch as u64 {
            break;
        }
    }
    // The inbound log (processed bounces, complaints, received mail) is kept as long.
    let mut inbound_deleted = 0;
    loop {
        let n = inbound::purge_processed(pool, config.days, config.batch).await?;
        inbound_deleted += n;
        if n < config.batch as u64 {
            break;
        }
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
