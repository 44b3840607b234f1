//! Validated domain types. Requests become these at the edge, so the core never re-checks.

pub mod address;
pub mod api_key;
pub mod email;
pub mod field_checks;
pub mod field_error;
pub mod status;
mod stored;
pub mod template_name;
pub mod track;
pub mod webhook_format;

pub use address::{EmailAddress, EnvelopeAddress, Mailbox};
pub use api_key::{ApiKeySecret, Scope};
pub use email::{Attachment, NewEmail, RecipientKind};
pub use field_error::FieldError;
pub use status::RecipientStatus;
pub use template_name::TemplateName;
pub use track::Track;
pub use webhook_format::WebhookFormat;

/// True when a header value would let a caller inject headers or break the message.
pub fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}
