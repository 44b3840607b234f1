//! Keys the server signs its own tokens with (`tokens`), made once and shared by every
//! instance through the database.

use rand::RngCore;
use sqlx::PgPool;

/// The key named `name`, made (32 random bytes) by whichever instance asks first.
pub async fn load_or_create(pool: &PgPool, name: &str) -> sqlx::Result<Vec<u8>> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    sqlx::query(
        "INSERT INTO server_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(&fresh[..])
    .execute(pool)
    .await?;
    sqlx::query_scalar("SELECT key FROM server_keys WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
}
