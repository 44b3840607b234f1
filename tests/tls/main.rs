//! TLS to Postgres and Redis against real servers started by each test with TLS on: a
//! private PostgreSQL cluster (`ssl = on`, a certificate the test's own CA signs) and a
//! private `redis-server` on a `tls-port`. Needs PostgreSQL's server binaries
//! (`/usr/lib/postgresql/*/bin`) and a `redis-server` built with TLS (Debian's is).

#[path = "../support/mod.rs"]
mod support;

mod pki;
mod postgres;
mod redis;
mod servers;
mod start;
