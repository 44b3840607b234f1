//! The message list (the API's filters and cursor paging) and one message: recipients with
//! their SMTP replies, the event timeline, the MIME source, its parts and cancelling.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tera::Context;

use super::{
    error::{ConsoleError, ConsoleResult, encode_component},
    mime_view,
    session::{CsrfForm, Viewer},
    view,
};
use crate::{
    domain::{
        Scope,
        status::{MessageStatus, RecipientStatus},
    },
    service::{
        AppState,
        emails::{self, encode_cursor, list_filter, parse_id},
        error::ServiceError,
        paging,
    },
    store::messages::{self, Settle},
};

/// Longest MIME source shown in the page; longer messages are cut, with a note.
const SOURCE_SHOWN: usize = 512 * 1024;

/// The filter form's fields, in order, with their labels.
const FILTERS: [(&str, &str); 6] = [
    ("status", "Status"),
    ("tag", "Tag"),
    ("recipient", "Recipient"),
    ("from", "From"),
    ("since", "Created since (UTC)"),
    ("until", "Created before (UTC)"),
];

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[derive(Serialize)]
struct Row {
    id: String,
    status: String,
    from: String,
    subject: String,
    tags: Vec<String>,
    recipients: i64,
    created: String,
}

/// Form fields arrive empty when not filled in, and date inputs give `2026-11-28T10:00`:
/// the API's parser takes neither, so empty fields are dropped and such times read as UTC.
fn query_from_form(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| {
            let v = v.trim().to_string();
            let local_time = (k == "since" || k == "until")
                && DateTime::parse_from_rfc3339(&v).is_err()
                && chrono::NaiveDateTime::parse_from_str(&v, "%Y-%m-%dT%H:%M").is_ok();
            if local_time {
                (k, format!("{v}:00Z"))
            } else {
                (k, v)
            }
        })
        .collect()
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Messages)?;
    let q = query_from_form(pairs);
    let mut context = Context::new();
    context.insert("section", "messages");
    let filters: Vec<(&str, &str, String)> = FILTERS
        .iter()
        .map(|(name, label)| {
            let value = q.get(*name).cloned().unwrap_or_default();
            // A date input shows `2026-11-28T10:00`; the query may hold RFC 3339.
            let value = if *name == "since" || *name == "until" {
                DateTime::parse_from_rfc3339(&value)
                    .map(|t| t.with_timezone(&Utc).format("%Y-%m-%dT%H:%M").to_string())
                    .unwrap_or(value)
            } else {
                value
            };
            (*name, *label, value)
        })
        .collect();
    context.insert("filters", &filters);
    context.insert("statuses", &MessageStatus::ALL.map(MessageStatus::as_str));
    let (filter, limit) = match list_filter(&q) {
        Ok(parsed) => parsed,
        Err(ServiceError::Validation(errors)) => {
            let errors: Vec<(String, String)> =
                errors.into_iter().map(|e| (e.field, e.message)).collect();
            context.insert("errors", &errors);
            context.insert("rows", &Vec::<Row>::new());
            context.insert("next", &None::<String>);
            let mut response = view::page(Some(&viewer), "messages.html", "Messages", context);
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(response);
        }
        Err(other) => return Err(other.into()),
    };
    let found = messages::list(&state.pool, project, &filter, limit + 1).await?;
    let (found, next_cursor, _) = paging::split(found, limit, |m| encode_cursor(m.id));
    let rows: Vec<Row> = found
        .into_iter()
        .map(|m| Row {
            id: m.id.to_string(),
            status: m.status,
            from: m.from_addr,
            subject: m.subject,
            tags: m.tags,
            recipients: m.recipients,
            created: when(m.created_at),
        })
        .collect();
    // The next page keeps the filters.
    let next = next_cursor.map(|cursor| {
        let mut params: Vec<String> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "cursor")
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        params.sort();
        params.push(format!("cursor={cursor}"));
        format!("/console/messages?{}", params.join("&"))
    });
    context.insert("errors", &Vec::<(String, String)>::new());
    context.insert("rows", &rows);
    context.insert("next", &next);
    context.insert("filtered", &(q.keys().any(|k| k != "cursor")));
    Ok(view::page(
        Some(&viewer),
        "messages.html",
        "Messages",
        context,
    ))
}

#[derive(Serialize)]
struct RecipientView {
    email: String,
    kind: String,
    status: String,
    attempts: i32,
    reply: String,
    relay_host: String,
    next_attempt: String,
}

#[derive(Serialize)]
struct EventView {
    at: String,
    kind: String,
    recipient: String,
    attempt: String,
    reply: String,
    relay_host: String,
    detail: String,
    /// The attempt's TLS and the policy that applied, in one line (direct delivery).
    tls: String,
}

/// `250 2.0.0 Ok: queued`, from the code, enhanced code and text as recorded.
fn reply(code: Option<i32>, enhanced: Option<&str>, text: Option<&str>) -> String {
    [
        code.map(|c| c.to_string()),
        enhanced.map(str::to_string),
        text.map(str::to_string),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
}

/// An attempt's `tls` in words: `TLSv1.3 TLS13_AES_128_GCM_SHA256, verified; MTA-STS
/// enforce (policy 2026a)`, and what the policy found wrong.
fn tls_summary(tls: &serde_json::Value) -> String {
    let text = |key: &str| tls.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let mut out = match (text("version"), tls.get("verified") == Some(&true.into())) {
        ("", _) => "no TLS".to_string(),
        (version, verified) => format!(
            "{version} {}, {}",
            text("cipher"),
            if verified { "verified" } else { "not verified" }
        ),
    };
    match text("policy") {
        "mta-sts" => out.push_str(&format!(
            "; MTA-STS {} (policy {})",
            text("mode"),
            text("policy_id")
        )),
        "" => {}
        other => out.push_str(&format!("; {other}")),
    }
    let failures: Vec<&str> = tls
        .get("failures")
        .and_then(|f| f.as_array())
        .map(|f| f.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if !failures.is_empty() {
        out.push_str(&format!("; failed: {}", failures.join("; ")));
    }
    out
}

/// The message's MIME as stored (and relayed), if it is this project's; empty once retention
/// deleted it (the page says so).
async fn stored_source(
    state: &AppState,
    project: uuid::Uuid,
    id: uuid::Uuid,
) -> ConsoleResult<Vec<u8>> {
    Ok(messages::source(&state.pool, project, id)
        .await?
        .ok_or(ConsoleError::NotFound("message"))?
        .unwrap_or_default())
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Messages)?;
    let id = parse_id(&id)?;
    let email = emails::detail(&state, project, id).await?;
    let source = stored_source(&state, project, id).await?;
    let parts = mime_view::read(&source);
    let shown = &source[..source.len().min(SOURCE_SHOWN)];
    let cancellable = email.recipients.iter().any(|r| {
        r.status.parse::<RecipientStatus>().is_ok_and(|s| {
            matches!(
                s,
                RecipientStatus::Queued
                    | RecipientStatus::Scheduled
                    | RecipientStatus::Deferred
                    | RecipientStatus::Held
            )
        })
    });
    let held = email
        .recipients
        .iter()
        .any(|r| r.status == RecipientStatus::Held.as_str());
    let recipients: Vec<RecipientView> = email
        .recipients
        .iter()
        .map(|r| RecipientView {
            email: r.email.clone(),
            kind: r.kind.clone(),
            status: r.status.clone(),
            attempts: r.attempts,
            reply: reply(
                r.smtp_code,
                r.enhanced_code.as_deref(),
                r.smtp_response.as_deref(),
            ),
            relay_host: r.relay_host.clone().unwrap_or_default(),
            next_attempt: r.next_attempt_at.map(when).unwrap_or_default(),
        })
        .collect();
    let events: Vec<EventView> = email
        .events
        .iter()
        .map(|e| EventView {
            at: when(e.at),
            kind: e.kind.clone(),
            recipient: e.recipient.clone(),
            attempt: e.attempt.map(|a| a.to_string()).unwrap_or_default(),
            reply: reply(
                e.smtp_code,
                e.enhanced_code.as_deref(),
                e.smtp_response.as_deref(),
            ),
            relay_host: e.relay_host.clone().unwrap_or_default(),
            detail: e.detail.clone().unwrap_or_default(),
            tls: e
                .data
                .as_ref()
                .and_then(|d| d.get("tls"))
                .map(tls_summary)
                .unwrap_or_default(),
        })
        .collect();
    let m = &email.message;
    let mut context = Context::new();
    context.insert("section", "messages");
    context.insert("id", &m.id.to_string());
    context.insert("subject", &m.subject);
    context.insert("status", &m.status);
    context.insert("from", &m.from_addr);
    context.insert("message_id", &m.message_id);
    context.insert("tags", &m.tags);
    context.insert(
        "metadata",
        &serde_json::to_string_pretty(&m.metadata).unwrap_or_default(),
    );
    context.insert(
        "has_metadata",
        &m.metadata.as_object().is_some_and(|o| !o.is_empty()),
    );
    context.insert("relay", &m.relay);
    context.insert("sandbox", &m.sandbox);
    context.insert("created", &when(m.created_at));
    context.insert("send_at", &m.send_at.map(when));
    context.insert("recipients", &recipients);
    context.insert("events", &events);
    context.insert("has_html", &parts.html.is_some());
    context.insert("text", &parts.text);
    context.insert("attachments", &parts.attachments);
    context.insert("body_purged", &m.body_purged_at.map(when));
    context.insert("source", &String::from_utf8_lossy(shown));
    context.insert("source_bytes", &source.len());
    context.insert("source_cut", &(source.len() > SOURCE_SHOWN));
    context.insert("can_cancel", &(cancellable && viewer.may(Scope::Send)));
    context.insert("can_settle", &(held && viewer.may(Scope::Send)));
    let title = format!("Message {}", m.id);
    Ok(view::page(Some(&viewer), "message.html", &title, context))
}

/// What the HTML preview frame may do: nothing but show the HTML with its inline styles and
/// embedded (`data:`) images. No script, no request to any server (remote images and
/// tracking pixels stay unloaded), and `sandbox` makes it an origin of its own.
const PREVIEW_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
    font-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox";

/// The message's HTML part, for the sandboxed preview frame of its page only.
pub async fn html_part(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    let project = viewer.project_for(Scope::Messages)?;
    let id = parse_id(&id)?;
    let source = stored_source(&state, project, id).await?;
    let html = mime_view::read(&source)
        .html
        .ok_or(ConsoleError::NotFound("HTML part"))?;
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PREVIEW_CSP),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    Ok(response)
}

pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Send)?;
    let id = parse_id(&id)?;
    emails::cancel(&state, project, id).await?;
    Ok(Redirect::to(&format!("/console/messages/{id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_become_api_query_values() {
        let q = query_from_form(vec![
            ("status".into(), "".into()),
            ("tag".into(), " welcome ".into()),
            ("since".into(), "2026-11-28T10:00".into()),
            ("until".into(), "2026-11-29T00:00:00+01:00".into()),
        ]);
        assert!(!q.contains_key("status"));
        assert_eq!(q["tag"], "welcome");
        assert_eq!(q["since"], "2026-11-28T10:00:00Z");
        assert_eq!(q["until"], "2026-11-29T00:00:00+01:00");
    }

    #[test]
    fn an_attempts_tls_reads_in_one_line() {
        let tls = serde_json::json!({
            "version": "TLSv1.3", "cipher": "TLS13_AES_256_GCM_SHA384", "verified": false,
            "policy": "mta-sts", "mode": "testing", "policy_id": "2026a",
            "failures": ["the certificate of mx.example.net did not verify: <unknown issuer>"],
        });
        assert_eq!(
            tls_summary(&tls),
            "TLSv1.3 TLS13_AES_256_GCM_SHA384, not verified; MTA-STS testing (policy 2026a); \
             failed: the certificate of mx.example.net did not verify: <unknown issuer>"
        );
        let none = serde_json::json!({"version": null, "verified": false, "policy": "none"});
        assert_eq!(tls_summary(&none), "no TLS; none");
    }
}

/// Sends a held message: its recipients are queued as if just accepted.
pub async fn release(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Send)?;
    let id = parse_id(&id)?;
    emails::settle_in(&state, Some(project), id, Settle::Release).await?;
    Ok(Redirect::to(&format!("/console/messages/{id}")).into_response())
}

#[derive(serde::Deserialize)]
pub struct DiscardForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// Cancels a held message with a reason; nothing is sent.
pub async fn discard(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<DiscardForm>,
) -> ConsoleResult<Response> {
    let project = viewer.may_change(&form.csrf, Scope::Send)?;
    let id = parse_id(&id)?;
    let reason = emails::discard_reason(Some(form.reason))?;
    emails::settle_in(&state, Some(project), id, Settle::Discard(reason)).await?;
    Ok(Redirect::to(&format!("/console/messages/{id}")).into_response())
}
