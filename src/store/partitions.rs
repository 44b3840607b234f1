//! Day partitions of messages, recipients, events and opens (migration 0031): made ahead of
//! the mail that fills them, dropped whole once retention has passed them.

use chrono::NaiveDate;
use sqlx::PgPool;

/// Creates the partitions for today and the next `days_ahead` UTC days where missing;
/// returns how many tables were created.
pub async fn create_ahead(pool: &PgPool, days_ahead: i32) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(mailgate_create_day_partitions((now() AT TIME ZONE 'UTC')::date + n)), 0)::int8
         FROM generate_series(0, $1) n",
    )
    .bind(days_ahead)
    .fetch_one(pool)
    .await
}

/// Days whose partitions lie wholly before `now - older_than_secs`, oldest first.
pub async fn days_before(pool: &PgPool, older_than_secs: f64) -> sqlx::Result<Vec<NaiveDate>> {
    sqlx::query_scalar(
        "SELECT day FROM (
             SELECT to_date(substr(c.relname, 11), 'YYYYMMDD') AS day
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'messages'::regclass AND c.relname ~ '^messages_p[0-9]{8}$') d
         WHERE (day + 1)::timestamp AT TIME ZONE 'UTC' <= now() - make_interval(secs => $1)
         ORDER BY day",
    )
    .bind(older_than_secs)
    .fetch_all(pool)
    .await
}

/// Drops one day's partitions unless a recipient in it is still waiting to be sent (that day
/// then stays until its mail is done; the row-by-row purge takes what is finished), or the
/// four tables stayed too busy to lock for a few seconds (the drop gives way to the sends
/// rather than deadlock with them, migration 0035; the next pass tries again).
/// Returns whether the day was dropped.
pub async fn drop_day_if_finished(pool: &PgPool, day: NaiveDate) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT mailgate_drop_day_partitions($1)")
        .bind(day)
        .fetch_one(pool)
        .await
}
