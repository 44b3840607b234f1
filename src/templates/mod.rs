//! Stored templates: tera sources checked when saved, compiled once per version and cached
//! per process, rendered when a send is accepted so every problem is the caller's 422.
//!
//! `engine` compiles and renders with bounds, `cache` keeps compilations current across
//! instances, `save` checks and writes templates, and `disk` is the folder format of
//! `mailgate templates push|pull`. Filling a send request from a template is the
//! submission core's (`submission::template`).

pub mod cache;
pub mod disk;
pub mod engine;
pub mod save;

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

pub use cache::TemplateCache;
pub use engine::{Compiled, Rendered};
pub use save::{CheckedTemplate, SaveMode, TemplateDraft};

use crate::domain::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template `{0}` not found")]
    NotFound(String),
    #[error("a template named `{0}` already exists")]
    Exists(String),
    /// The template itself is wrong: a part that does not parse, a bad layout.
    #[error("the template has invalid fields")]
    Invalid(Vec<FieldError>),
    /// Rendering failed: a missing variable, a wrong type, a size or time limit.
    #[error("{}: {}", .0.field, .0.message)]
    Render(FieldError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Renders off the async threads: a template with large loops may take a while (up to
/// [`engine::RENDER_TIME_LIMIT`]), and the runtime must keep serving meanwhile.
pub async fn render(
    compiled: Arc<Compiled>,
    variables: serde_json::Value,
    max_bytes: usize,
) -> Result<Rendered, TemplateError> {
    if !variables.is_object() {
        return Err(TemplateError::Invalid(vec![FieldError::new(
            "variables",
            "must be a JSON object",
        )]));
    }
    tokio::task::spawn_blocking(move || compiled.render(&variables, max_bytes))
        .await
        .map_err(|e| anyhow::Error::new(e).context("template render task failed"))?
        .map_err(TemplateError::Render)
}

/// Renders a project's stored template with `variables`.
pub async fn render_stored(
    cache: &TemplateCache,
    pool: &PgPool,
    project_id: Uuid,
    name: &str,
    variables: serde_json::Value,
    max_bytes: usize,
) -> Result<Rendered, TemplateError> {
    let compiled = cache
        .get(pool, project_id, name)
        .await?
        .ok_or_else(|| TemplateError::NotFound(name.to_string()))?;
    render(compiled, variables, max_bytes).await
}
