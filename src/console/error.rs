//! The console's one error type: the application layer's errors shown as a page (same statuses, same
//! messages, internal ones logged once and shown opaque), plus what only a browser needs:
//! a redirect to sign in, a refused form, a project to choose.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};

use super::view;
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: sign in, then come back to `next`.
    #[error("sign in to continue")]
    SignIn { next: String },
    /// A state-changing form without this session's CSRF token.
    #[error(
        "this form did not carry a valid security token (it may be from an old page or another site); reload the page and try again"
    )]
    Csrf,
    /// The operator has not picked the project a page shows.
    #[error("choose a project first")]
    ChooseProject,
    /// A page of the operator's, asked for with a project key.
    #[error("only the operator (signed in with an operator token) can use this page")]
    OperatorOnly,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(err: sqlx::Error) -> Self {
        ConsoleError::Service(err.into())
    }
}

impl From<anyhow::Error> for ConsoleError {
    fn from(err: anyhow::Error) -> Self {
        ConsoleError::Service(ServiceError::Internal(err))
    }
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, detail, fields) = match &self {
            ConsoleError::SignIn { next } => {
                let target = format!("/console/sign-in?next={}", encode_component(next));
                return Redirect::to(&target).into_response();
            }
            ConsoleError::ChooseProject => {
                return Redirect::to("/console/projects").into_response();
            }
            ConsoleError::Csrf | ConsoleError::OperatorOnly => {
                (StatusCode::FORBIDDEN, self.to_string(), Vec::new())
            }
            ConsoleError::NotFound(_) => (StatusCode::NOT_FOUND, self.to_string(), Vec::new()),
            ConsoleError::Service(err) => {
                // `public_detail` logs an internal error once and hides its details.
                let fields = err
                    .field_errors()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| (e.field, e.message))
                    .collect();
                (err.status_code(), err.public_detail(), fields)
            }
        };
        view::error_page(status, &detail, &fields)
    }
}

/// A value for a query string, percent-encoded.
pub fn encode_component(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
