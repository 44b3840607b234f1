//! Integration tests of SMTP submission: real clients (Python's smtplib, swaks, raw TCP)
//! against a real mailgate, Postgres and upstream SMTP server.

#[path = "../support/mod.rs"]
mod support;

mod client;

mod auth;
mod dkim;
mod domains;
mod intl;
mod limits;
mod submission;
