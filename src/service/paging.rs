//! Query parameters shared by the list endpoints: `limit`, enumerated filters and opaque
//! cursors, each checked with a per-field error, and the "one more row" page split.

use std::collections::HashMap;

use super::error::FieldError;

/// `limit` from 1 to `max`, `default` when absent.
pub fn limit(
    q: &HashMap<String, String>,
    default: i64,
    max: i64,
    errors: &mut Vec<FieldError>,
) -> i64 {
    match q.get("limit").map(|raw| raw.parse::<i64>()) {
        None => default,
        Some(Ok(n)) if (1..=max).contains(&n) => n,
        Some(_) => {
            errors.push(FieldError::new(
                "limit",
                format!("must be a whole number from 1 to {max}"),
            ));
            default
        }
    }
}

/// A filter that must be one of `allowed`.
pub fn one_of<'q>(
    q: &'q HashMap<String, String>,
    field: &str,
    allowed: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<&'q str> {
    let value = q.get(field).map(String::as_str)?;
    if !allowed.contains(&value) {
        errors.push(FieldError::new(
            field,
            format!("must be one of {}", allowed.join(", ")),
        ));
    }
    Some(value)
}

/// The `cursor` parameter, decoded by the resource's own format.
pub fn cursor<T>(
    q: &HashMap<String, String>,
    decode: impl Fn(&str) -> Option<T>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let raw = q.get("cursor")?;
    let decoded = decode(raw);
    if decoded.is_none() {
        errors.push(FieldError::new(
            "cursor",
            "is not a cursor returned by this API",
        ));
    }
    decoded
}

/// Rows were fetched with `limit + 1`: keep `limit`, and say whether more follow and the
/// cursor for the next page.
pub fn split<T>(
    mut rows: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>, bool) {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if has_more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    (rows, next, has_more)
}
