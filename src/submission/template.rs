//! Sending with a template: render at accept time and fill the request's subject and bodies,
//! so a missing variable is the caller's 422 now, never a failed message later.

use serde_json::Value;
use uuid::Uuid;

use super::{Draft, SubmissionCore, SubmissionError};
use crate::{domain::FieldError, templates::render_stored};

/// Fills `subject`, `html` and `text` from the request's `template` and `variables`.
/// A request without a template is left as it is.
pub(super) async fn expand(
    core: &SubmissionCore,
    project_id: Uuid,
    request: &mut impl Draft,
) -> Result<(), SubmissionError> {
    let Some(name) = request.template().map(str::to_string) else {
        if request.has_variables() {
            return Err(SubmissionError::validation(
                "variables",
                "is only used together with `template`",
            ));
        }
        return Ok(());
    };
    let given: Vec<FieldError> = request
        .content_given()
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
        return Err(SubmissionError::Validation(given));
    }
    let variables = request
        .take_variables()
        .unwrap_or_else(|| Value::Object(Default::default()));
    // On a send, an unknown template is a bad field of the request (`TemplateNotFound`),
    // not a missing route.
    let rendered = render_stored(
        &core.templates,
        &core.pool,
        project_id,
        &name,
        variables,
        core.max_message_bytes,
    )
    .await?;
    if rendered.subject.is_none() {
        return Err(SubmissionError::validation(
            "template",
            format!("template `{name}` has no subject; give it one to send with it"),
        ));
    }
    request.fill(rendered.subject, rendered.html, rendered.text);
    Ok(())
}
