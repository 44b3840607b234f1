//! What is wrong with one field of a request. Every layer below the transports reports bad
//! input this way; the HTTP surface answers it as the `errors` of a problem body.

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
