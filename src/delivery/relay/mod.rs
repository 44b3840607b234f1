//! Upstream relays: named, with pooled connections, built from URLs, paced.
//!
//! Each relay keeps its own small pool of lettre connections. Plain and STARTTLS ones are on
//! sockets with `TCP_NODELAY`: lettre writes the DATA terminator as a separate write, which
//! on a Nagle socket waits for the peer's delayed ACK (~40 ms a message).
//!
//! A relay with `max_rate_per_sec` or `max_connections` is paced through the
//! [`RelayPacer`](crate::ratelimit::pace::RelayPacer) (shared by every process through
//! Redis): a send first asks the schedule for a moment ([`Relay::admit`]), and a new
//! connection first takes a slot. Both wait at most [`HORIZON`]; beyond it the relay is "not
//! now" and the job goes back to the queue without counting an attempt.
//!
//! The files: `upstream` (one configured relay: its pacing and health), `url` (relay URLs
//! and their TLS), `pool` (its connections: checkout, send, checkin, slots), `transaction`
//! (one SMTP transaction, pipelined when offered), `diagnose`
//! (`mailgate doctor`'s step-by-step session) and `registry` (every relay and pool by name).

mod diagnose;
mod pool;
mod registry;
mod transaction;
mod upstream;
mod url;

pub use pool::RelayError;
pub use registry::Relays;
pub use upstream::{HORIZON, Pacing, Relay, RelayHealth};
