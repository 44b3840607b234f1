//! SMTP submission: the listener through which apps that only speak SMTP send mail.
//!
//! STARTTLS (or implicit TLS), then AUTH PLAIN or LOGIN with any user name and an API key
//! with the `send` scope as password; clients on `smtp.trusted_networks` may skip AUTH.
//! Accepted mail goes through `submission`, into the same queue, events and limits as HTTP.
//!
//! - `listener`: binds the ports, caps concurrent sessions, owns the session tasks.
//! - `session`: the protocol state machine (parsing and replies through smtp-proto).
//! - `message`: reads submitted MIME (mail-parser) and makes the few permitted header edits.
//! - `tls`: the certificate, configured or self-signed for development.
//! - `limit`: where the per-key rate limiter plugs in.
//!
//! Repeated failed AUTH locks the client's address out for a while, through the same
//! `ratelimit::AuthThrottle` as HTTP authentication (with the `smtp.auth_*` allowance).

pub mod limit;
pub mod listener;
pub mod message;
mod session;
pub mod tls;

pub use listener::SmtpListener;
