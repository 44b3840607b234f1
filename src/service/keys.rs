//! API keys: the operator manages any project's keys; a key with the `keys` scope manages
//! its own project's, within what it holds itself (`grant`). A key is shown in clear once,
//! when it is created.

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::{
    AppState, Caller,
    error::{FieldError, ServiceError, ServiceResult},
    grant::Grantor,
};
use crate::{
    domain::{
        ApiKeySecret, Scope,
        api_key::{KeyLimits, check_burst, check_daily_quota, check_rate, parse_scopes},
    },
    store::{
        api_keys::{self, ApiKeyInfo, AuthenticatedKey, LimitsChange},
        projects,
    },
};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Project name; required for the operator, implied for a project key.
    #[serde(default)]
    pub project: Option<String>,
    /// Scope names; an item may also list several, comma-separated.
    #[schema(min_items = 1, value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub test: bool,
    /// At most 100 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub name: Option<String>,
    /// Messages per second; unset: `ratelimit.send.rate_per_sec`.
    #[serde(default)]
    #[schema(minimum = 0.001, maximum = 1000000)]
    pub rate_per_sec: Option<f64>,
    /// Messages at once; unset: `ratelimit.send.burst`.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub burst: Option<i64>,
    /// Messages per UTC day; unset: `ratelimit.send.daily_quota`.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1000000000)]
    pub daily_quota: Option<i64>,
}

/// A `PATCH`: an absent field stays as it is, `null` returns it to the configured default.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// Messages per second; `null` returns to the configured default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, nullable, minimum = 0.001, maximum = 1000000)]
    pub rate_per_sec: Option<Option<f64>>,
    /// Messages at once; `null` returns to the configured default.
    #[serde(default, deserialize_with = "present_whole_number")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 1000000)]
    pub burst: Option<Option<i64>>,
    /// Messages per day; `null` returns to the configured default.
    #[serde(default, deserialize_with = "present_whole_number")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 1000000000)]
    pub daily_quota: Option<Option<i64>>,
}

/// Tells `"field": null` (Some(None)) from a missing field (None, by `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON number with no fraction, `5.0` included: JSON Schema's `integer`. A fraction or a
/// number beyond `i64` is refused (the range checks then name the allowed bounds).
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(Some(f as i64)),
                Some(f) if f.fract() == 0.0 => Ok(Some(if f > 0.0 { i64::MAX } else { i64::MIN })),
                _ => Err(D::Error::custom(format!(
                    "expected a whole number, got {n}"
                ))),
            }
        }
    }
}

fn present_whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    whole_number(d).map(Some)
}

/// Checks each given limit, reporting every bad field at once.
fn check_limits(
    rate: Option<f64>,
    burst: Option<i64>,
    quota: Option<i64>,
) -> ServiceResult<KeyLimits> {
    fn field<T>(errors: &mut Vec<FieldError>, name: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| errors.push(FieldError::new(name, m))).ok()
    }
    let mut errors = Vec::new();
    let limits = KeyLimits {
        rate_per_sec: rate.and_then(|r| field(&mut errors, "rate_per_sec", check_rate(r))),
        burst: burst.and_then(|b| field(&mut errors, "burst", check_burst(b))),
        daily_quota: quota.and_then(|q| field(&mut errors, "daily_quota", check_daily_quota(q))),
    };
    if errors.is_empty() {
        Ok(limits)
    } else {
        Err(ServiceError::Validation(errors))
    }
}

impl UpdateKey {
    /// The change, each limit checked against its bounds (every bad one named).
    pub fn change(&self) -> ServiceResult<LimitsChange> {
        let limits = check_limits(
            self.rate_per_sec.flatten(),
            self.burst.flatten(),
            self.daily_quota.flatten(),
        )?;
        Ok(LimitsChange {
            rate_per_sec: self.rate_per_sec.map(|_| limits.rate_per_sec),
            burst: self.burst.map(|_| limits.burst),
            daily_quota: self.daily_quota.map(|_| limits.daily_quota),
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The key in clear: shown this once, stored only as a hash.
    pub key: String,
}

/// The project a request may act on: its own for a key, the named one for the operator.
pub async fn target_project(
    state: &AppState,
    who: &Caller,
    named: Option<&str>,
) -> ServiceResult<Uuid> {
    match who {
        Caller::Key(key) => {
            if !key.scopes.contains(&Scope::Keys) {
                return Err(ServiceError::ForbiddenScope(Scope::Keys));
            }
            if let Some(name) = named {
                // Naming another tenant reads as "no such project".
                let project = projects::find_by_name(&state.pool, name).await?;
                if project.map(|p| p.id) != Some(key.project_id) {
                    return Err(ServiceError::NotFound("project"));
                }
            }
            Ok(key.project_id)
        }
        Caller::Operator => {
            let name = named.ok_or_else(|| ServiceError::validation("project", "is required"))?;
            let project = projects::find_by_name(&state.pool, name)
                .await?
                .ok_or(ServiceError::NotFound("project"))?;
            Ok(project.id)
        }
    }
}

/// Checks a new key's scopes, name and limits and creates it in `project_id`; the answer
/// holds the key in clear, once. A key creating one gives no more than it holds.
pub async fn create(
    state: &AppState,
    who: &Caller,
    project_id: Uuid,
    body: &CreateKey,
) -> ServiceResult<CreatedKey> {
    let scopes = parse_scopes(&body.scopes).map_err(|m| ServiceError::validation("scopes", m))?;
    if let Some(name) = &body.name
        && (name.len() > 100 || name.chars().any(char::is_control))
    {
        return Err(ServiceError::validation(
            "name",
            "at most 100 characters, no control characters",
        ));
    }
    let mut limits = check_limits(body.rate_per_sec, body.burst, body.daily_quota)?;
    if let Caller::Key(key) = who {
        let grantor = Grantor::new(key, &state.config.ratelimit.send);
        grantor.scopes(&scopes)?;
        grantor.test_mode(body.test)?;
        limits = grantor.new_limits(&limits)?;
    }
    let secret = ApiKeySecret::generate(body.test);
    let info = api_keys::create_with_limits(
        &state.pool,
        project_id,
        body.name.as_deref(),
        &scopes,
        &secret,
        &limits,
    )
    .await?;
    Ok(CreatedKey {
        info,
        key: secret.expose().to_string(),
    })
}

/// Revokes a key (of `project` only, when given) and forgets this process's cached copy.
pub async fn revoke(
    state: &AppState,
    who: &Caller,
    id: Uuid,
    project: Option<Uuid>,
) -> ServiceResult<ApiKeyInfo> {
    if let Caller::Key(key) = who {
        let target = managed(state, id, project).await?;
        Grantor::new(key, &state.config.ratelimit.send).manages(&target)?;
    }
    let info = api_keys::revoke(&state.pool, id, project)
        .await?
        .ok_or(ServiceError::NotFound("api key"))?;
    state.gate.forget(id);
    Ok(info)
}

/// Applies a checked change of limits to a key (of `project` only, when given). A key
/// changes only keys within its scopes, and no limit beyond what it may give.
pub async fn update(
    state: &AppState,
    who: &Caller,
    id: Uuid,
    project: Option<Uuid>,
    change: &LimitsChange,
) -> ServiceResult<ApiKeyInfo> {
    if let Caller::Key(key) = who {
        let target = managed(state, id, project).await?;
        let grantor = Grantor::new(key, &state.config.ratelimit.send);
        grantor.manages(&target)?;
        grantor.change(&target, change)?;
    }
    let info = api_keys::update_limits(&state.pool, id, project, change)
        .await?
        .ok_or(ServiceError::NotFound("api key"))?;
    // This process applies the change at once; others when their cached copy expires.
    state.gate.forget(id);
    Ok(info)
}

/// The key a caller wants to change or revoke, revoked or not (of `project` only, when
/// given).
async fn managed(
    state: &AppState,
    id: Uuid,
    project: Option<Uuid>,
) -> ServiceResult<AuthenticatedKey> {
    api_keys::find(&state.pool, id, project)
        .await?
        .ok_or(ServiceError::NotFound("api key"))
}

/// The keys of one project, or of every project (the operator without a project named).
pub async fn list(
    state: &AppState,
    who: &Caller,
    project: Option<&str>,
) -> ServiceResult<Vec<ApiKeyInfo>> {
    let project_id = match (who, project) {
        (Caller::Operator, None) => None,
        _ => Some(target_project(state, who, project).await?),
    };
    Ok(api_keys::list(&state.pool, project_id).await?)
}

/// The project a caller's change of a key is confined to: none for the operator.
pub async fn confine(state: &AppState, who: &Caller) -> ServiceResult<Option<Uuid>> {
    match who {
        Caller::Operator => Ok(None),
        Caller::Key(_) => Ok(Some(target_project(state, who, None).await?)),
    }
}
