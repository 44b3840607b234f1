//! Console sessions: who is signed in to the web console. The cookie's token is stored only
//! as a SHA-256, like API keys.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A live session, as a console request finds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub csrf_token: String,
    /// The key it was signed in with; `None` for the operator.
    pub api_key_id: Option<Uuid>,
    pub operator: bool,
    /// The project an operator chose to look at.
    pub project_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    /// An operator session's fingerprint of the JWT secret it signed in under.
    pub operator_secret: Option<Vec<u8>>,
}

/// Who a new session is for.
pub enum SignedIn {
    Key(Uuid),
    /// The operator, with the fingerprint of the JWT secret its token was checked with.
    Operator {
        secret: Vec<u8>,
    },
}

pub async fn create(
    pool: &PgPool,
    token_hash: &[u8],
    csrf_token: &str,
    who: SignedIn,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    // Sessions long over are dropped here, at sign-in: the table stays as small as the
    // number of people signed in, without a job of its own.
    sqlx::query("DELETE FROM console_sessions WHERE expires_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    let (key, operator, secret) = match who {
        SignedIn::Key(id) => (Some(id), false, None),
        SignedIn::Operator { secret } => (None, true, Some(secret)),
    };
    sqlx::query_scalar(
        "INSERT INTO console_sessions
             (id, token_hash, csrf_token, api_key_id, operator, expires_at, operator_secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(token_hash)
    .bind(csrf_token)
    .bind(key)
    .bind(operator)
    .bind(expires_at)
    .bind(secret)
    .fetch_one(pool)
    .await
}

/// The session with this token, unless it expired, was signed out, or its key was revoked.
/// An operator session's secret is the caller's to compare (`Session::operator_secret`).
pub async fn find_live(pool: &PgPool, token_hash: &[u8]) -> sqlx::Result<Option<Session>> {
    sqlx::query_as(
        "SELECT s.id, s.csrf_token, s.api_key_id, s.operator, s.project_id, s.expires_at,
                s.operator_secret
         FROM console_sessions s LEFT JOIN api_keys k ON k.id = s.api_key_id
         WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
           AND (s.operator OR k.revoked_at IS NULL)",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

/// Signs a session out; later requests with its cookie are sent to sign in.
pub async fn revoke(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE console_sessions SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The project an operator's session shows from now on.
pub async fn choose_project(pool: &PgPool, id: Uuid, project_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE console_sessions SET project_id = $2 WHERE id = $1 AND operator")
        .bind(id)
        .bind(project_id)
        .execute(pool)
        .await?;
    Ok(())
}
