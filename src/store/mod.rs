//! SQL access, one file per table group. Nothing outside this folder and `queue/` writes SQL.

pub mod api_keys;
pub mod console_sessions;
pub mod destinations;
pub mod domains;
pub mod group_commit;
pub mod idempotency;
pub mod inbound;
pub mod messages;
pub mod mta_sts;
pub mod overview;
pub mod partitions;
pub mod projects;
pub mod server_keys;
pub mod suppressions;
pub mod templates;
pub mod tlsrpt;
pub mod tracking;
pub mod webhooks;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions, PgSslMode},
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool on `url`, which carries the TLS settings as libpq reads them (`sslmode`,
/// `sslrootcert`, `sslcert`, `sslkey`; or the `PGSSL*` variables). Connects once, so a wrong
/// URL or an untrusted certificate is an error here, at start, rather than on the first send.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let at = || {
        format!(
            "could not connect to Postgres at {}",
            crate::config::redact_url(url)
        )
    };
    let options = connect_options(url).with_context(at)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        // Short acquire timeout: during an outage requests fail fast with 503 instead of piling up.
        .acquire_timeout(Duration::from_secs(5))
        // No JIT: mailgate's statements are short, but over a month of day partitions the
        // planner's cost estimates pass PostgreSQL's JIT thresholds, and compiling a
        // statement's 900 expressions took 4.4 s where running it took 64 ms (recording
        // outcomes, 5 M messages; bench/RESULTS.md). A SET after connecting, not a startup
        // `options` parameter, which PgBouncer refuses.
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "SET jit = off").await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|err| match crate::tls::explain(&err) {
            Some(why) => anyhow::anyhow!("{}: TLS: {why}{}", at(), tls_settings(url)),
            None => anyhow::Error::new(err).context(at()),
        })
}

/// `url` parsed as libpq reads it. libpq: "if a root CA file exists, sslmode=require behaves
/// like verify-ca"; sqlx's `require` checks nothing, so a CA given with it would be ignored.
fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(&for_sqlx(url))?;
    Ok(
        if matches!(options.get_ssl_mode(), PgSslMode::Require)
            && url_setting(url, "sslrootcert", "PGSSLROOTCERT").is_some()
        {
            options.ssl_mode(PgSslMode::VerifyCa)
        } else {
            options
        },
    )
}

/// `url` without the password parameters sqlx does not read: it ignores an unknown
/// parameter with a warning that prints its value, so libpq's `sslpassword` (the passphrase
/// of an encrypted `sslkey`, which sqlx cannot use) would be logged in clear. Each one dropped
/// is named in a warning of ours, without its value. `password` itself sqlx reads.
fn for_sqlx(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((base, query)) = url.split_once('?') else {
        return url.into();
    };
    let key_of = |pair: &str| {
        url::form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default()
    };
    let (kept, dropped): (Vec<&str>, Vec<&str>) = query.split('&').partition(|pair| {
        let key = key_of(pair);
        key == "password" || !crate::config::is_password_param(&key)
    });
    if dropped.is_empty() {
        return url.into();
    }
    for pair in dropped {
        tracing::warn!(
            "database_url: `{}` is ignored: mailgate's Postgres client cannot read an encrypted client key (sslkey); give it a key without a passphrase, readable only by mailgate",
            key_of(pair)
        );
    }
    if kept.is_empty() {
        base.into()
    } else {
        format!("{base}?{}", kept.join("&")).into()
    }
}

/// What `url` asks for, checked without connecting (`doctor --offline`): e.g.
/// `db.example.com:5432, database mailgate, sslmode verify-full`. Errs on a malformed URL or
/// an unknown `sslmode`.
pub fn describe_url(url: &str) -> anyhow::Result<String> {
    let options = connect_options(url)
        .with_context(|| format!("invalid database_url {}", crate::config::redact_url(url)))?;
    let mode = match options.get_ssl_mode() {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    };
    Ok(format!(
        "{}:{}, database {}, sslmode {mode}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(the user's)"),
    ))
}

/// A connection setting from the URL's query, else from the `PG…` variable sqlx falls back on.
fn url_setting(url: &str, key: &str, var: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        })
        .or_else(|| std::env::var(var).ok())
}

/// The TLS settings a failed handshake used, e.g. ` (sslmode=verify-full, sslrootcert=/etc/…)`.
fn tls_settings(url: &str) -> String {
    let settings: Vec<String> = [
        ("sslmode", "PGSSLMODE"),
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
    ]
    .iter()
    .filter_map(|(key, var)| Some(format!("{key}={}", url_setting(url, key, var)?)))
    .collect();
    if settings.is_empty() {
        String::new()
    } else {
        format!(" ({})", settings.join(", "))
    }
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("failed to apply database migrations")
}

/// Whether `err` means the database is unreachable or going away (an outage, answered 503 so
/// clients retry) rather than a refused statement: no connection, a dead socket, or Postgres
/// saying it is shutting down, restarting or not yet accepting connections (SQLSTATE classes
/// 08 and 57, e.g. `57P01` when `pg_ctl stop -m fast` ends a busy connection).
pub fn is_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
        _ => false,
    }
}
