//! The application layer: every operation a caller can ask for, below all transports. The
//! native API, the providers' routes, the console, SMTP submission and the CLI translate
//! their input into these calls, and a [`ServiceError`]'s kind into their own reply; none of
//! them imports another.
//!
//! - `state`: what the operations work with ([`AppState`]), built by `app`.
//! - `gate`: who is calling, the failed-authentication throttle, the rate-limit charge.
//! - `client_addr`: the client's address behind the proxies the operator trusts.
//! - `error`: the one error type, with kinds.
//! - `paging`: list queries (limit, filters, cursors) and the "one more row" page split.
//! - one file per resource: `emails` (send, batch, read, list, cancel, release, discard),
//!   `templates`, `webhooks`, `suppressions`, `keys`, `projects`, `relays`, `destinations`
//!   (where waiting mail is headed); `tracking`, the
//!   anonymous opens and clicks of tracked mail and what they may cost; `unsubscribe`, the
//!   anonymous one-click unsubscribe (RFC 8058); `domains`, sending domains (records,
//!   checks, DKIM keys).
//! - `grant`: what a key may give when it creates or changes keys (no more than it holds).

pub mod client_addr;
pub mod destinations;
pub mod domains;
pub mod emails;
pub mod error;
pub mod gate;
pub mod grant;
pub mod keys;
pub mod paging;
pub mod projects;
pub mod relays;
pub mod state;
pub mod suppressions;
pub mod templates;
pub mod tlsrpt;
pub mod tracking;
pub mod unsubscribe;
pub mod webhooks;

pub use error::{ServiceError, ServiceResult};
pub use gate::{Caller, Gate};
pub use state::AppState;
