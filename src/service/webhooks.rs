//! A project's webhook endpoints: create (the secret returned once), change, delete, rotate
//! the secret, queue a test event, replay a delivery.

use chrono::Utc;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    AppState,
    error::{Conflict, FieldError, ServiceError, ServiceResult},
};
use crate::{
    domain::WebhookFormat,
    store::webhooks::{
        self as store, DeliveryRow, EndpointChanges, EndpointRow, NewEndpoint, Replay,
    },
    webhooks::{EventType, TEST_EVENT, WebhookSecret, guard},
};

/// The project's public key for `sendgrid` deliveries, made on first use.
async fn ensure_signing_key(state: &AppState, project_id: Uuid) -> ServiceResult<String> {
    if let Some(public) = store::signing_public_key(&state.pool, project_id).await? {
        return Ok(public);
    }
    let (private, public) = crate::webhooks::formats::sendgrid::generate()?;
    Ok(store::save_signing_key(&state.pool, project_id, &private, &public).await?)
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

const DESCRIPTION_MAX: usize = 500;

/// `"all"`/null → every type (`None`); a list → those types, each known, without repeats.
fn parse_events(value: &Value) -> Result<Option<Vec<String>>, FieldError> {
    let expected = || {
        format!(
            "must be \"all\" or a non-empty list of event types ({})",
            EventType::names().collect::<Vec<_>>().join(", ")
        )
    };
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s == "all" => Ok(None),
        Value::Array(items) if !items.is_empty() => {
            let mut types: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(t) if EventType::parse(t).is_some() => {
                        if !types.iter().any(|k| k == t) {
                            types.push(t.to_string());
                        }
                    }
                    _ => {
                        return Err(FieldError::new(
                            format!("events[{i}]"),
                            format!(
                                "must be one of {}",
                                EventType::names().collect::<Vec<_>>().join(", ")
                            ),
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

/// Checks a new endpoint (each bad field named) and creates it with a new secret, returned
/// to be shown once.
pub async fn create(
    state: &AppState,
    project_id: Uuid,
    body: &CreateWebhook,
) -> ServiceResult<(EndpointRow, WebhookSecret)> {
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
        return Err(ServiceError::Validation(errors));
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
            format: body.format.unwrap_or(WebhookFormat::Standard),
            enabled: body.enabled.unwrap_or(true),
            secret: secret.expose(),
        },
    )
    .await?;
    Ok((row, secret))
}

/// Gives an endpoint a new secret, the old one signing alongside for the overlap. The secret is returned to be shown once.
pub async fn rotate(
    state: &AppState,
    project_id: Uuid,
    id: Uuid,
) -> ServiceResult<(EndpointRow, WebhookSecret)> {
    let secret = WebhookSecret::generate();
    let overlap = state.config.webhooks.rotation_overlap_secs as f64;
    let row = store::rotate_secret(&state.pool, project_id, id, secret.expose(), overlap)
        .await?
        .ok_or(ServiceError::NotFound("webhook"))?;
    Ok((row, secret))
}

/// Queues a `webhook.test` event for an enabled endpoint.
pub async fn queue_test(state: &AppState, endpoint: &EndpointRow) -> ServiceResult<DeliveryRow> {
    require_enabled(endpoint)?;
    let payload = json!({
        "type": TEST_EVENT,
        "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": {
            "webhook_id": endpoint.id,
            "message": "a test event from mailgate, sent on request",
        },
    });
    let row = store::enqueue(&state.pool, endpoint.id, TEST_EVENT, &payload).await?;
    state.waker.webhooks.wake();
    Ok(row)
}

fn require_enabled(endpoint: &EndpointRow) -> ServiceResult<()> {
    if endpoint.enabled {
        return Ok(());
    }
    Err(ServiceError::Conflict {
        kind: Conflict::WebhookDisabled,
        detail: format!(
            "the endpoint is disabled ({}); enable it with PATCH first",
            endpoint
                .disabled_reason
                .as_deref()
                .unwrap_or("no reason given")
        ),
    })
}

/// Sends a delivery of an enabled endpoint again now.
pub async fn replay(
    state: &AppState,
    endpoint: &EndpointRow,
    delivery_id: Uuid,
) -> ServiceResult<DeliveryRow> {
    require_enabled(endpoint)?;
    match store::replay(&state.pool, endpoint.id, delivery_id).await? {
        Replay::Queued(row) => {
            state.waker.webhooks.wake();
            Ok(*row)
        }
        Replay::InProgress => Err(ServiceError::Conflict {
            kind: Conflict::DeliveryInProgress,
            detail: "an attempt of this delivery is running; try again when it is done".into(),
        }),
        Replay::NotFound => Err(ServiceError::NotFound("delivery")),
    }
}

pub fn parse_id(raw: &str) -> ServiceResult<Uuid> {
    // An id that cannot exist is simply not found, like another project's.
    Uuid::parse_str(raw).map_err(|_| ServiceError::NotFound("webhook"))
}

/// The project's endpoint with this id (another project's reads as absent).
pub async fn endpoint(
    state: &AppState,
    project_id: Uuid,
    raw_id: &str,
) -> ServiceResult<EndpointRow> {
    store::find(&state.pool, project_id, parse_id(raw_id)?)
        .await?
        .ok_or(ServiceError::NotFound("webhook"))
}

/// Changes the fields given of an endpoint (each bad one named); disabling it fails the
/// deliveries still waiting for it.
pub async fn update(
    state: &AppState,
    project_id: Uuid,
    raw_id: &str,
    body: &UpdateWebhook,
) -> ServiceResult<EndpointRow> {
    let current = endpoint(state, project_id, raw_id).await?;
    let id = current.id;
    let mut errors = Vec::new();
    // The format the endpoint will have: it decides whether its URL may hold credentials.
    let format = match body.format {
        Some(format) => format,
        None => current.format,
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
        match check_url(state, raw, format).await {
            Ok(checked) => url = Some(checked),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    if body.format == Some(WebhookFormat::Sendgrid) {
        ensure_signing_key(state, project_id).await?;
    }
    let changes = EndpointChanges {
        url: url.as_deref(),
        description: body.description.as_ref().map(|d| d.as_deref()),
        event_types: events.as_ref().map(|t| t.as_deref()),
        format: body.format,
        enabled: body.enabled,
    };
    store::update(&state.pool, project_id, id, &changes)
        .await?
        .ok_or(ServiceError::NotFound("webhook"))
}

/// Deletes an endpoint and its delivery log.
pub async fn remove(state: &AppState, project_id: Uuid, raw_id: &str) -> ServiceResult<()> {
    if store::delete(&state.pool, project_id, parse_id(raw_id)?).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound("webhook"))
    }
}

/// The project's public key for `sendgrid` deliveries, made on first use.
pub async fn signing_key(state: &AppState, project_id: Uuid) -> ServiceResult<String> {
    ensure_signing_key(state, project_id).await
}

/// The project's endpoints, oldest first (never their secrets).
pub async fn list(state: &AppState, project_id: Uuid) -> ServiceResult<Vec<EndpointRow>> {
    Ok(store::list(&state.pool, project_id).await?)
}

/// An endpoint's deliveries, newest first: those with `status` if given, before the cursor's
/// `(created_at, id)` if given, at most `limit`.
pub async fn deliveries(
    state: &AppState,
    endpoint: &EndpointRow,
    status: Option<&str>,
    before: Option<(chrono::DateTime<Utc>, Uuid)>,
    limit: i64,
) -> ServiceResult<Vec<DeliveryRow>> {
    Ok(store::deliveries(&state.pool, endpoint.id, status, before, limit).await?)
}

/// Enables or disables an endpoint; disabling fails the deliveries still waiting for it.
pub async fn set_enabled(
    state: &AppState,
    project_id: Uuid,
    id: Uuid,
    enabled: bool,
) -> ServiceResult<EndpointRow> {
    let changes = EndpointChanges {
        url: None,
        description: None,
        event_types: None,
        format: None,
        enabled: Some(enabled),
    };
    store::update(&state.pool, project_id, id, &changes)
        .await?
        .ok_or(ServiceError::NotFound("webhook"))
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
