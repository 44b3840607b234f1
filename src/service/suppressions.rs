//! A project's suppression list: addresses that are never mailed. Bounces and complaints add
//! to it by themselves; people add manual entries, and remove addresses to mail them again.

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{
    AppState,
    error::{FieldError, ServiceError, ServiceResult},
    paging,
};
use crate::{
    domain::EmailAddress,
    store::suppressions::{self as store, Suppression},
};

// The one list of reasons: checks, filters, the spec and the console read it.
/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Bounce,
    Complaint,
    Manual,
    /// A one-click unsubscribe (RFC 8058) of mail sent with `unsubscribe`.
    Unsubscribe,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Bounce,
        Reason::Complaint,
        Reason::Manual,
        Reason::Unsubscribe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Bounce => "bounce",
            Reason::Complaint => "complaint",
            Reason::Manual => "manual",
            Reason::Unsubscribe => "unsubscribe",
        }
    }
}

/// Every reason's name.
pub fn reasons() -> [&'static str; 4] {
    Reason::ALL.map(Reason::as_str)
}

const DETAIL_MAX: usize = 1000;

/// Checks an entry (each bad field named) and adds it; the entry and whether it is new.
pub async fn add(
    state: &AppState,
    project_id: Uuid,
    email: &str,
    reason: Option<&str>,
    detail: Option<&str>,
) -> ServiceResult<(Suppression, bool)> {
    let mut errors = Vec::new();
    let email = EmailAddress::parse(email)
        .map_err(|m| errors.push(FieldError::new("email", m)))
        .ok();
    let reason = reason.unwrap_or("manual");
    if !reasons().contains(&reason) {
        errors.push(FieldError::new(
            "reason",
            format!("must be one of {}", reasons().join(", ")),
        ));
    }
    if let Some(d) = detail
        && (d.chars().count() > DETAIL_MAX || d.chars().any(char::is_control))
    {
        errors.push(FieldError::new(
            "detail",
            format!("at most {DETAIL_MAX} characters, no control characters"),
        ));
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(ServiceError::Validation(errors));
    };
    Ok(store::add(&state.pool, project_id, email.as_str(), reason, detail).await?)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SuppressionList {
    pub data: Vec<Suppression>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

const LIST_DEFAULT: i64 = 50;

const LIST_MAX: i64 = 500;

/// `(created_at, email)` of the last row of a page: the time as 11 characters of base64url,
/// then the address as it is.
fn encode_cursor(entry: &Suppression) -> String {
    let micros = entry.created_at.timestamp_micros().to_be_bytes();
    let mut cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(micros);
    cursor.push_str(&entry.email);
    cursor
}

fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, String)> {
    let (time, email) = (raw.get(..11)?, raw.get(11..)?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(time)
        .ok()?;
    let micros = i64::from_be_bytes(bytes.try_into().ok()?);
    // Entries are created after 1970; an earlier time may be out of Postgres' range.
    if micros < 0 || email.contains('\0') {
        return None;
    }
    Some((DateTime::from_timestamp_micros(micros)?, email.to_string()))
}

/// One page of the list for the query's `reason`, `limit` and `cursor`.
pub async fn list(
    state: &AppState,
    project_id: Uuid,
    q: &HashMap<String, String>,
) -> ServiceResult<SuppressionList> {
    let mut errors = Vec::new();
    let limit = paging::limit(q, LIST_DEFAULT, LIST_MAX, &mut errors);
    let reason = paging::one_of(q, "reason", &reasons(), &mut errors);
    let before = paging::cursor(q, decode_cursor, &mut errors);
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    let rows = store::list(&state.pool, project_id, reason, before, limit + 1).await?;
    let (data, next_cursor, has_more) = paging::split(rows, limit, encode_cursor);
    Ok(SuppressionList {
        data,
        next_cursor,
        has_more,
    })
}

/// An address that cannot be on the list (not storable) is simply not found.
pub fn lookup_key(raw: &str) -> ServiceResult<&str> {
    let email = raw.trim();
    if email.is_empty() || email.len() > 320 || email.contains('\0') {
        return Err(ServiceError::NotFound("suppression"));
    }
    Ok(email)
}

/// The entry of an address, if it is suppressed.
pub async fn find(state: &AppState, project_id: Uuid, email: &str) -> ServiceResult<Suppression> {
    store::find(&state.pool, project_id, lookup_key(email)?)
        .await?
        .ok_or(ServiceError::NotFound("suppression"))
}

/// Takes an address off the list.
pub async fn remove(state: &AppState, project_id: Uuid, email: &str) -> ServiceResult<()> {
    if store::remove(&state.pool, project_id, lookup_key(email)?).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound("suppression"))
    }
}
