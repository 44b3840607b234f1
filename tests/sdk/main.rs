//! The providers' official SDKs (Python from PyPI, Node from npm, installed by `scripts/sdks`
//! outside the repository) driven against a real mailgate relaying to a real SMTP sink: each
//! SDK runs one client script (`clients/`) through its scenarios, and the test checks what
//! the SDK returned or raised and the mail as it arrived.

#[path = "../support/mod.rs"]
mod support;

mod clients;
mod mail;
mod mailgun;
mod postmark;
mod resend;
mod sendgrid;
mod webhooks;
