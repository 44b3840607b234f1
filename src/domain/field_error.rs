//! A problem with one field of an input, named by its path: what every check in `domain`
//! reports, and what the API answers in a problem's `errors`.

use serde::Serialize;

/// One invalid field of a request, named by its JSON path (`to[1]`, `headers.X-Foo`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
