//! Endpoints: create, list, read, change and delete them; rotate their signing secret.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{endpoint, parse_id};
use crate::{
    api::{
        AppState,
        auth::ProjectKey,
        error::{ApiError, ApiResult, FieldError},
        extract::AppJson,
        openapi::ProblemResponses,
    },
    domain::Scope,
    store::webhooks::{self as store, EndpointChanges, EndpointRow, NewEndpoint},
    webhooks::{EMAIL_EVENTS, WebhookSecret, guard},
};

/// An event type an endpoint can subscribe to.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub enum EventType {
    #[serde(rename = "email.queued")]
    Queued,
    #[serde(rename = "email.delivered")]
    Delivered,
    #[serde(rename = "email.deferred")]
    Deferred,
    #[serde(rename = "email.bounced")]
    Bounced,
    #[serde(rename = "email.failed")]
    Failed,
    #[serde(rename = "email.suppressed")]
    Suppressed,
    #[serde(rename = "email.cancelled")]
    Cancelled,
    #[serde(rename = "email.complained")]
    Complained,
    #[serde(rename = "email.delayed")]
    Delayed,
    #[serde(rename = "email.opened")]
    Opened,
    #[serde(rename = "email.clicked")]
    Clicked,
    #[serde(rename = "email.received")]
    Received,
    #[serde(rename = "email.held")]
    Held,
}

/// Every event type, including ones added later.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub enum AllEvents {
    #[serde(rename = "all")]
    All,
}

/// `"all"` or a list of event types.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Events {
    All(AllEvents),
    Some(EventList),
}

/// One or more event types.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[schema(min_items = 1)]
#[allow(dead_code)]
pub struct EventList(Vec<EventType>);

/// How an endpoint's deliveries are shaped and signed: `standard` (mailgate's body,
/// `webhook-*` Standard Webhooks headers), `resend` (Resend's event body, `svix-*` headers,
/// the same signature), `postmark` (Postmark's records) or `sendgrid` (SendGrid's event array, signed with the project's ECDSA
/// key: see `GET /v1/webhooks/signing-key`), for a handler written for that provider.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Standard,
    Resend,
    /// One Postmark `RecordType` object per POST, unsigned: authenticate with Basic
    /// credentials in the URL (`https://user:pass@host/…`), allowed for this format only.
    Postmark,
    Sendgrid,
}

impl WebhookFormat {
    fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Standard => "standard",
            WebhookFormat::Resend => "resend",
            WebhookFormat::Postmark => "postmark",
            WebhookFormat::Sendgrid => "sendgrid",
        }
    }
}

/// The project's public key for `sendgrid` deliveries, made on first use.
async fn ensure_signing_key(state: &AppState, project_id: Uuid) -> ApiResult<String> {
    if let Some(public) = store::signing_public_key(&state.pool, project_id).await? {
        return Ok(public);
    }
    let (private, public) = crate::webhooks::formats::sendgrid::generate()?;
    Ok(store::save_signing_key(&state.pool, project_id, &private, &public).await?)
}

/// The project's event signing key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SigningKey {
    /// Base64 DER (SubjectPublicKeyInfo) of the ECDSA P-256 key that signs `sendgrid`
    /// deliveries: give it to SendGrid's `EventWebhook` verifier as SendGrid's own.
    pub sendgrid_public_key: String,
}

/// The project's webhook signing key (made on first request).
///
/// `sendgrid` deliveries carry `X-Twilio-Email-Event-Webhook-Signature`, an ECDSA P-256
/// signature of the timestamp and body; verify it with this public key.
#[utoipa::path(get, path = "/v1/webhooks/signing-key", operation_id = "show_webhook_signing_key", tag = "webhooks",
    responses((status = 200, description = "The public key", body = SigningKey), ProblemResponses),
    security(("api_key" = [])))]
pub async fn signing_key(
    State(state): State<AppState>,
    key: ProjectKey,
) -> ApiResult<Json<SigningKey>> {
    let key = key.require(Scope::Webhooks)?;
    Ok(Json(SigningKey {
        sendgrid_public_key: ensure_signing_key(&state, key.project_id).await?,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    #[schema(value_type = Events)]
    pub events: Value,
    #[schema(value_type = WebhookFormat)]
    pub format: String,
    pub enabled: bool,
    /// Why the endpoint is disabled (by its owner, a 410, or failing for too long).
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// First failure since the last success; the endpoint is disabled when this gets too old.
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// After a rotation, until when the previous secret also signs.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<EndpointRow> for WebhookEndpoint {
    fn from(r: EndpointRow) -> Self {
        Self {
            id: r.id,
            url: redacted(&r.url),
            description: r.description,
            events: match r.event_types {
                None => json!("all"),
                Some(types) => json!(types),
            },
            format: r.format,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            disabled_at: r.disabled_at,
            failing_since: r.failing_since,
            last_success_at: r.last_success_at,
            previous_secret_expires_at: r.previous_secret_until,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// An endpoint with its signing secret: shown in this answer only.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// `whsec_<base64>`: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// A public http(s) URL, without credentials (except for the `postmark` format); its host must resolve to public addresses
    /// only (unless the operator allows private targets). Redirects are not followed.
    #[schema(
        format = "uri",
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://([^@/?#]+@)?[^@/?#]+([/?#].*)?$"
    )]
    pub url: String,
    /// Default `"all"`.
    #[serde(default)]
    #[schema(value_type = Option<Events>)]
    pub events: Option<Value>,
    /// At most 500 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub description: Option<String>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default `standard`.
    #[serde(default)]
    pub format: Option<WebhookFormat>,
}

/// Deserializes a present field, `null` included, as `Some`; an absent one stays `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Only the fields given change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// As at creation: a public http(s) URL.
    #[serde(default)]
    #[schema(
        format = "uri",
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://([^@/?#]+@)?[^@/?#]+([/?#].*)?$"
    )]
    pub url: Option<String>,
    /// `null` or `"all"`: every event type.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Events>)]
    pub events: Option<Value>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub description: Option<Option<String>>,
    /// `true` re-enables a disabled endpoint and clears its failure streak.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub format: Option<WebhookFormat>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookEndpoint>,
}

const DESCRIPTION_MAX: usize = 500;

/// `"all"`/null → every type (`None`); a list → those types, each known, without repeats.
fn parse_events(value: &Value) -> Result<Option<Vec<String>>, FieldError> {
    let expected = || {
        format!(
            "must be \"all\" or a non-empty list of event types ({})",
            EMAIL_EVENTS.join(", ")
        )
    };
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s == "all" => Ok(None),
        Value::Array(items) if !items.is_empty() => {
            let mut types: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(t) if EMAIL_EVENTS.contains(&t) => {
                        if !types.iter().any(|k| k == t) {
                            types.push(t.to_string());
                        }
                    }
                    _ => {
                        return Err(FieldError::new(
                            format!("events[{i}]"),
                            format!("must be one of {}", EMAIL_EVENTS.join(", ")),
                        ));
                    }
                }
            }
            Ok(Some(types))
        }
        _ => Err(FieldError::new("events", expected())),
    }
}

fn check_description(d: &str) -> Result<(), FieldError> {
    if d.chars().count() > DESCRIPTION_MAX || d.chars().any(char::is_control) {
        return Err(FieldError::new(
            "description",
            format!("at most {DESCRIPTION_MAX} characters, no control characters"),
        ));
    }
    Ok(())
}

/// Checks the URL's shape and, unless the operator allows private targets, that every
/// address it resolves to is public.
/// The URL to store. Basic credentials in it are kept only for the `postmark` format, whose
/// receivers authenticate with them; the rest of the URL is checked as for any endpoint.
async fn check_url(
    state: &AppState,
    raw: &str,
    format: WebhookFormat,
) -> Result<String, FieldError> {
    let (target, credentials) = guard::split_credentials(raw);
    if credentials.is_some() && format != WebhookFormat::Postmark {
        return Err(FieldError::new(
            "url",
            "must not contain a user name or password (only the postmark format sends them)",
        ));
    }
    let mut url = guard::check_url(&target, state.config.webhooks.allow_private_targets)
        .await
        .map_err(|e| FieldError::new("url", e.to_string()))?;
    if let Some((user, password)) = credentials {
        let kept = url.set_username(&user).is_ok() && url.set_password(Some(&password)).is_ok();
        if !kept {
            return Err(FieldError::new("url", "cannot hold these credentials"));
        }
    }
    Ok(url.to_string())
}

/// A stored URL as shown: a password is never shown.
fn redacted(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_string(),
    }
}

/// Create an endpoint; the signing secret is in the answer, once.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, description = "Created", body = WebhookWithSecret), ProblemResponses),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    key: ProjectKey,
    AppJson(body): AppJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecret>)> {
    let key = key.require(Scope::Webhooks)?;
    let (row, secret) = create_in(&state, key.project_id, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret {
            endpoint: row.into(),
            secret: secret.expose().to_string(),
        }),
    ))
}

/// Checks a new endpoint (each bad field named) and creates it with a new secret, returned
/// to be shown once (the console creates endpoints through here too).
pub async fn create_in(
    state: &AppState,
    project_id: Uuid,
    body: &CreateWebhook,
) -> ApiResult<(EndpointRow, WebhookSecret)> {
    let mut errors = Vec::new();
    let events = parse_events(body.events.as_ref().unwrap_or(&Value::Null))
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    if let Some(d) = &body.description
        && let Err(e) = check_description(d)
    {
        errors.push(e);
    }
    // The address check resolves the host: do it only for an otherwise valid request.
    let mut url = String::new();
    if errors.is_empty() {
        let format = body.format.unwrap_or(WebhookFormat::Standard);
        match check_url(state, &body.url, format).await {
            Ok(checked) => url = checked,
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if body.format == Some(WebhookFormat::Sendgrid) {
        ensure_signing_key(state, project_id).await?;
    }
    let secret = WebhookSecret::generate();
    let row = store::create(
        &state.pool,
        project_id,
        &NewEndpoint {
            url: &url,
            description: body.description.as_deref(),
            event_types: events.as_deref(),
            format: body.format.unwrap_or(WebhookFormat::Standard).as_str(),
            enabled: body.enabled.unwrap_or(true),
            secret: secret.expose(),
        },
    )
    .await?;
    Ok((row, secret))
}

/// List the project's endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks",
    responses((status = 200, description = "Endpoints, oldest first", body = WebhookList), ProblemResponses),
    security(("api_key" = [])))]
pub async fn list(State(state): State<AppState>, key: ProjectKey) -> ApiResult<Json<WebhookList>> {
    let key = key.require(Scope::Webhooks)?;
    let rows = store::list(&state.pool, key.project_id).await?;
    Ok(Json(WebhookList {
        data: rows.into_iter().map(Into::into).collect(),
    }))
}

/// An endpoint, with its health: disabled and why, failing since when.
#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "show_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, description = "The endpoint", body = WebhookEndpoint), ProblemResponses),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookEndpoint>> {
    let key = key.require(Scope::Webhooks)?;
    Ok(Json(endpoint(&state, key.project_id, &id).await?.into()))
}

/// Change an endpoint's URL, events, description, or enable or disable it.
///
/// Disabling fails the deliveries still waiting for it; they can be replayed.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", operation_id = "update_webhook", tag = "webhooks", request_body = UpdateWebhook,
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, description = "The endpoint after the change", body = WebhookEndpoint), ProblemResponses),
    security(("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateWebhook>,
) -> ApiResult<Json<WebhookEndpoint>> {
    let key = key.require(Scope::Webhooks)?;
    let current = endpoint(&state, key.project_id, &id).await?;
    let id = current.id;
    let mut errors = Vec::new();
    // The format the endpoint will have: it decides whether its URL may hold credentials.
    let format = match body.format {
        Some(format) => format,
        None if current.format == "postmark" => WebhookFormat::Postmark,
        None => WebhookFormat::Standard,
    };
    if body.url.is_none()
        && format != WebhookFormat::Postmark
        && guard::split_credentials(&current.url).1.is_some()
    {
        errors.push(FieldError::new(
            "url",
            "holds credentials, which only the postmark format sends: give a URL without them",
        ));
    }
    let events = match &body.events {
        None => None,
        Some(v) => match parse_events(v) {
            Ok(types) => Some(types),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    if let Some(Some(d)) = &body.description
        && let Err(e) = check_description(d)
    {
        errors.push(e);
    }
    let mut url = None;
    if errors.is_empty()
        && let Some(raw) = &body.url
    {
        match check_url(&state, raw, format).await {
            Ok(checked) => url = Some(checked),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if body.format == Some(WebhookFormat::Sendgrid) {
        ensure_signing_key(&state, key.project_id).await?;
    }
    let changes = EndpointChanges {
        url: url.as_deref(),
        description: body.description.as_ref().map(|d| d.as_deref()),
        event_types: events.as_ref().map(|t| t.as_deref()),
        format: body.format.map(WebhookFormat::as_str),
        enabled: body.enabled,
    };
    let row = store::update(&state.pool, key.project_id, id, &changes)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(Json(row.into()))
}

/// Delete an endpoint and its delivery log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "remove_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 204, description = "Deleted"), ProblemResponses),
    security(("api_key" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = key.require(Scope::Webhooks)?;
    if store::delete(&state.pool, key.project_id, parse_id(&id)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("webhook"))
    }
}

/// Issue a new signing secret, shown once.
///
/// The previous secret keeps signing alongside it (two signatures in `webhook-signature`)
/// for `webhooks.rotation_overlap_secs`, so receivers can switch without losing events.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", operation_id = "rotate_webhook_secret", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, description = "The endpoint with its new secret", body = WebhookWithSecret), ProblemResponses),
    security(("api_key" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    key: ProjectKey,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookWithSecret>> {
    let key = key.require(Scope::Webhooks)?;
    let (row, secret) = rotate(&state, key.project_id, parse_id(&id)?).await?;
    Ok(Json(WebhookWithSecret {
        endpoint: row.into(),
        secret: secret.expose().to_string(),
    }))
}

/// Gives an endpoint a new secret, the old one signing alongside for the overlap (the
/// console's rotate button too). The secret is returned to be shown once.
pub async fn rotate(
    state: &AppState,
    project_id: Uuid,
    id: Uuid,
) -> ApiResult<(EndpointRow, WebhookSecret)> {
    let secret = WebhookSecret::generate();
    let overlap = state.config.webhooks.rotation_overlap_secs as f64;
    let row = store::rotate_secret(&state.pool, project_id, id, secret.expose(), overlap)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok((row, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_all_or_known_types() {
        assert_eq!(parse_events(&json!("all")).unwrap(), None);
        assert_eq!(parse_events(&Value::Null).unwrap(), None);
        assert_eq!(
            parse_events(&json!(["email.bounced", "email.bounced", "email.failed"])).unwrap(),
            Some(vec![
                "email.bounced".to_string(),
                "email.failed".to_string()
            ])
        );
        assert_eq!(
            parse_events(&json!(["email.bounced", "email.sent"]))
                .unwrap_err()
                .field,
            "events[1]"
        );
        for bad in [json!([]), json!("some"), json!(3)] {
            assert_eq!(parse_events(&bad).unwrap_err().field, "events");
        }
    }
}
