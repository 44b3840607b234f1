//! The web console in a real headless Chromium (Debian's `chromium` and `chromium-driver`)
//! against a real mailgate, Postgres and Redis: what a person signing in would see and do.
//! Screenshots of each page at 1280 and 390 pixels go to the folder the run prints.

#[path = "../support/mod.rs"]
mod support;

mod access;
mod domains;
mod forms;
mod keys;
mod messages;
mod operator;
mod security;
mod sign_in;
mod suppressions;
mod templates;
mod webhooks;
