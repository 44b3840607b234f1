//! Projects (tenants): the operator creates them; each holds its keys, templates, webhooks,
//! suppressions and mail.

use super::{
    AppState,
    error::{Conflict, ServiceError, ServiceResult},
};
use crate::store::projects::{self, Project};

/// Project names are slugs so they work unquoted in CLIs and URLs.
pub fn check_project_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("project names are 1 to 64 letters, digits, `-` or `_`".into())
    }
}

/// Creates a project, with the relay or pool its mail takes when a send names none.
pub async fn create(
    state: &AppState,
    name: &str,
    default_relay: Option<&str>,
) -> ServiceResult<Project> {
    check_project_name(name).map_err(|m| ServiceError::validation("name", m))?;
    if let Some(relay) = default_relay
        && !state.relays.contains(relay)
    {
        return Err(ServiceError::validation(
            "default_relay",
            format!("no relay or pool named `{relay}` is configured"),
        ));
    }
    let (mut project, created) = projects::ensure(&state.pool, name).await?;
    if !created {
        return Err(ServiceError::conflict(
            Conflict::ProjectExists,
            format!("a project named `{name}` already exists"),
        ));
    }
    if default_relay.is_some() {
        project = projects::set_default_relay(&state.pool, name, default_relay)
            .await?
            .unwrap_or(project);
    }
    Ok(project)
}
