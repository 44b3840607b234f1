//! Endpoints: create, list, read, change and delete them; rotate their signing secret.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    api::{
        AppState, auth::ProjectKey, error::ProblemResponses, error::ServiceResult, extract::AppJson,
    },
    domain::Scope,
    domain::WebhookFormat,
    service::webhooks::{self, CreateWebhook, Events, UpdateWebhook},
    store::webhooks::EndpointRow,
};

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
) -> ServiceResult<Json<SigningKey>> {
    let key = key.require(Scope::Webhooks)?;
    Ok(Json(SigningKey {
        sendgrid_public_key: webhooks::signing_key(&state, key.project_id).await?,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    #[schema(value_type = Events)]
    pub events: Value,
    pub format: WebhookFormat,
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookEndpoint>,
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
) -> ServiceResult<(StatusCode, Json<WebhookWithSecret>)> {
    let key = key.require(Scope::Webhooks)?;
    let (row, secret) = webhooks::create(&state, key.project_id, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret {
            endpoint: row.into(),
            secret: secret.expose().to_string(),
        }),
    ))
}

/// List the project's endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks",
    responses((status = 200, description = "Endpoints, oldest first", body = WebhookList), ProblemResponses),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    key: ProjectKey,
) -> ServiceResult<Json<WebhookList>> {
    let key = key.require(Scope::Webhooks)?;
    let rows = webhooks::list(&state, key.project_id).await?;
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
) -> ServiceResult<Json<WebhookEndpoint>> {
    let key = key.require(Scope::Webhooks)?;
    Ok(Json(
        webhooks::endpoint(&state, key.project_id, &id)
            .await?
            .into(),
    ))
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
) -> ServiceResult<Json<WebhookEndpoint>> {
    let key = key.require(Scope::Webhooks)?;
    let row = webhooks::update(&state, key.project_id, &id, &body).await?;
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
) -> ServiceResult<StatusCode> {
    let key = key.require(Scope::Webhooks)?;
    webhooks::remove(&state, key.project_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
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
) -> ServiceResult<Json<WebhookWithSecret>> {
    let key = key.require(Scope::Webhooks)?;
    let (row, secret) = webhooks::rotate(&state, key.project_id, webhooks::parse_id(&id)?).await?;
    Ok(Json(WebhookWithSecret {
        endpoint: row.into(),
        secret: secret.expose().to_string(),
    }))
}
