//! Mail that comes back: bounces and delay notices (RFC 3464 DSNs) and complaints (ARF) sent
//! to the VERP return paths mailgate relays with, and mail to the projects' inbound domains.
//!
//! The inbound SMTP listener (`smtp`, in its inbound role) asks the [`Inbox`] which domains
//! it takes and commits what it accepts; a queue runner then processes each message with a
//! [`Processor`]: `report` reads what it reports, `received` turns inbound mail into the
//! `email.received` webhook, and `store::inbound` applies the outcome in one transaction.
//!
//! A report changes a recipient only when its return path carries a valid token for that
//! recipient job (`tokens`), at the bounce domain of that job's project, and — when the report
//! names its recipient — about that recipient's address. Anything else is logged and counted,
//! and changes nothing.
//!
//! The files: `domains` (which domains the listener takes mail for, and in which role),
//! `queue` (the listener's [`Inbox`] that commits accepted mail, and the queue the runner
//! works), `process` (the [`Processor`]: what one message means), `report` (reading DSNs and
//! feedback reports) and `received` (the `email.received` payload).

pub mod domains;
pub mod process;
pub mod queue;
pub mod received;
pub mod report;

pub use domains::{DomainRole, Domains};
pub use process::Processor;
pub use queue::{InboundQueue, InboundRunner, Inbox, Rcpt};
