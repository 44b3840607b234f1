//! Running mailgate in production: relay rates shared by every process, and rolling
//! restarts that lose nothing.

#[path = "../support/mod.rs"]
mod support;

mod memory;
mod pacing;
mod rolling;
