//! What the submission core answers when it does not accept a message. Transports turn it
//! into their own replies: the HTTP surface into problem+json (`api::error`), the SMTP
//! listener into a temporary failure.

use crate::{domain::FieldError, templates::TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    /// Fields of the request are wrong; each is named.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// The request names a template its project does not have.
    #[error("no template named `{0}` in this project")]
    TemplateNotFound(String),
    /// The template did not render with the request's variables.
    #[error("{}: {}", .0.field, .0.message)]
    TemplateRender(FieldError),
    /// The rendered message is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The request's messages together render to more than allowed: the whole request is
    /// refused, not only the message that crossed the bound.
    #[error(
        "the messages of this request render to more than {limit} bytes in all (http.max_request_bytes_rendered): send fewer or smaller messages per request"
    )]
    RequestTooLarge { limit: usize },
    /// The content policy refused it (spam or a virus); nothing was stored.
    #[error("{detail}")]
    ContentRejected { detail: String, virus: bool },
    /// A content scanner could not answer and the policy fails closed: try again later.
    #[error("the content scanner is unavailable: {0}")]
    ScanUnavailable(String),
    /// The From domain is not a verified sending domain of the project, and
    /// `domains.require_verified` is on: nothing was stored.
    #[error(
        "the From domain {0} is not a verified sending domain of this project (domains.require_verified): add it at /v1/domains and verify it"
    )]
    DomainNotVerified(String),
    /// The database refused the commit or could not be reached: nothing was stored.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl SubmissionError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        SubmissionError::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<TemplateError> for SubmissionError {
    fn from(err: TemplateError) -> Self {
        match err {
            TemplateError::NotFound(name) => SubmissionError::TemplateNotFound(name),
            TemplateError::Invalid(errors) => SubmissionError::Validation(errors),
            TemplateError::Render(error) => SubmissionError::TemplateRender(error),
            TemplateError::Database(e) => SubmissionError::Database(e),
            TemplateError::Internal(e) => SubmissionError::Internal(e),
            // Rendering never saves, so never finds a name taken.
            exists @ TemplateError::Exists(_) => SubmissionError::Internal(exists.into()),
        }
    }
}
