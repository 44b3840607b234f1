//! Opens and clicks, recorded as events of the message (and so as webhooks, by the events
//! trigger). One insert each: the recipient is the message's only one, or none.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// Records `opened` or `clicked` for message `id` with `data` (user agent, IP, URL). An open
/// also says whether it is the message's first. Returns false when the message is gone.
pub async fn record(pool: &PgPool, id: Uuid, kind: &str, data: &Value) -> sqlx::Result<bool> {
    let done = sqlx::query(
        r#"
        INSERT INTO events (message_id, recipient_id, recipient, type, data)
        SELECT m.id, r.id, coalesce(r.email, ''), $2,
               CASE WHEN $2 = 'opened'
                    THEN $3 || jsonb_build_object('first_open', NOT EXISTS (
                             SELECT 1 FROM events e WHERE e.message_id = m.id AND e.type = 'opened'))
                    ELSE $3 END
        FROM messages m
        LEFT JOIN LATERAL (
            SELECT CASE WHEN count(*) = 1 THEN min(id) END AS id,
                   CASE WHEN count(*) = 1 THEN min(email) END AS email
            FROM recipients WHERE message_id = m.id
        ) r ON true
        WHERE m.id = $1
        "#,
    )
    .bind(id)
    .bind(kind)
    .bind(data)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
