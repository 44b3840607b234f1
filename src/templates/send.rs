//! Sending with a template: render at accept time and fill the request's subject and bodies,
//! so a missing variable is the caller's 422 now, never a failed message later.

use serde_json::Value;
use uuid::Uuid;

use super::{TemplateError, render_stored};
use crate::api::{
    AppState,
    email_request::SendRequest,
    error::{ApiError, FieldError},
};

/// Fills `subject`, `html` and `text` from the request's `template` and `variables`.
/// A request without a template is left as it is.
pub async fn expand(
    state: &AppState,
    project_id: Uuid,
    request: &mut SendRequest,
) -> Result<(), ApiError> {
    let Some(name) = request.template.clone() else {
        if request.variables.is_some() {
            return Err(ApiError::validation(
                "variables",
                "is only used together with `template`",
            ));
        }
        return Ok(());
    };
    let given: Vec<FieldError> = [
        ("subject", request.subject.is_some()),
        ("html", request.html.is_some()),
        ("text", request.text.is_some()),
    ]
    .into_iter()
    .filter(|(_, given)| *given)
    .map(|(field, _)| {
        FieldError::new(
            field,
            "cannot be combined with `template`: the template provides it",
        )
    })
    .collect();
    if !given.is_empty() {
        return Err(ApiError::Validation(given));
    }
    let variables = request
        .variables
        .take()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let rendered = render_stored(
        &state.templates,
        &state.pool,
        project_id,
        &name,
        variables,
        state.config.http.max_message_bytes,
    )
    .await
    .map_err(|e| match e {
        // On a send, an unknown template is a bad field of the request, not a missing route.
        TemplateError::NotFound(name) => ApiError::unprocessable(
            "template_not_found",
            vec![FieldError::new(
                "template",
                format!("no template named `{name}` in this project"),
            )],
        ),
        other => other.into(),
    })?;
    if rendered.subject.is_none() {
        return Err(ApiError::validation(
            "template",
            format!("template `{name}` has no subject; give it one to send with it"),
        ));
    }
    request.subject = rendered.subject;
    request.html = rendered.html;
    request.text = rendered.text;
    Ok(())
}
