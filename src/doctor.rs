//! `mailgate doctor`: the first command to run when mail does not go out. Checks the
//! configuration, Postgres (reachable, migrations current), Redis, each relay step by step,
//! and the queue, and prints a plain report. `--offline` checks the configuration alone (for
//! a config file written on one machine and deployed to another, and for CI).

use std::{fmt::Write as _, time::Duration};

use crate::{
    config::Config,
    delivery::{DkimKeys, Relays, dns::Dns, egress},
    queue, store,
};

const NO_REDIS: &str = "not configured: rate limits are per process";

#[derive(Debug)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Works, but likely not as the operator means it to: reported, never a failure.
    pub warning: bool,
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, result: Result<String, String>) -> Self {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        Self {
            name: name.into(),
            ok,
            warning: false,
            detail,
        }
    }

    fn warning(name: impl Into<String>, detail: String) -> Self {
        Self {
            warning: true,
            ..Self::new(name, Ok(detail))
        }
    }
}

/// With scanning on, whether every message the listeners accept fits `scan.max_bytes`: a
/// larger one is not scanned, and `scan.oversize` decides what becomes of it.
fn scan_limits(config: &Config) -> Option<Check> {
    if !config.scan.enabled() {
        return None;
    }
    let max = config.scan.max_bytes;
    let oversize = config
        .scan
        .oversize
        .unwrap_or(config.scan.on_error)
        .as_str();
    let larger: Vec<String> = [
        ("http.max_message_bytes", config.http.max_message_bytes),
        ("smtp.max_message_bytes", config.smtp_max_message_bytes()),
    ]
    .into_iter()
    .filter(|(_, limit)| *limit > max)
    .map(|(key, limit)| format!("{key} ({limit})"))
    .collect();
    Some(if larger.is_empty() {
        Check::new(
            "scan limits",
            Ok(format!(
                "every accepted message fits scan.max_bytes ({max})"
            )),
        )
    } else {
        Check::warning(
            "scan limits",
            format!(
                "scan.max_bytes ({max}) is below {}: larger messages are not scanned (scan.oversize: {oversize})",
                larger.join(" and ")
            ),
        )
    })
}

pub async fn run(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(Check::new(
        "config",
        Ok(format!(
            "http {} · database {} · {} relay(s)",
            config.http_addr,
            config.database_url,
            config.relay_map().len()
        )),
    ));

    match store::connect(config.database_url.expose(), 2).await {
        Err(e) => checks.push(Check::new("postgres", Err(format!("{e:#}")))),
        Ok(pool) => {
            checks.push(Check::new("postgres", Ok("reachable".into())));
            checks.push(Check::new("migrations", migrations(&pool).await));
            checks.push(Check::new(
                "queue",
                match queue::mail::depth(&pool).await.map(|d| d.by_status) {
                    Ok(d) if d.is_empty() => Ok("empty".into()),
                    Ok(d) => Ok(d
                        .iter()
                        .map(|(s, n)| format!("{s} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")),
                    Err(e) => Err(e.to_string()),
                },
            ));
            // Sending domains: the server key opens their keys; their records are published.
            for d in crate::service::domains::diagnose(config, &pool).await {
                checks.push(if d.warning {
                    Check::warning(d.name, d.result.unwrap_or_else(|e| e))
                } else {
                    Check::new(d.name, d.result)
                });
            }
        }
    }

    // Each configured content scanner answers its ping.
    let timeout = Duration::from_millis(config.scan.timeout_ms);
    if let Some(url) = &config.scan.rspamd_url {
        let result = match crate::scan::rspamd::Rspamd::new(url.expose(), timeout) {
            Ok(r) => r.ping().await.map(|()| format!("{url} answers /ping")),
            Err(e) => Err(e.to_string()),
        };
        checks.push(Check::new("rspamd", result));
    }
    if let Some(addr) = &config.scan.clamd_addr {
        let result = crate::scan::clamd::Clamd::new(addr, timeout)
            .ping()
            .await
            .map(|()| format!("{addr} answers PING"));
        checks.push(Check::new("clamd", result));
    }
    checks.extend(scan_limits(config));

    checks.push(Check::new(
        "redis",
        match &config.redis_url {
            None => Ok(NO_REDIS.into()),
            Some(url) => {
                crate::ratelimit::check_redis(url.expose(), &config.redis, Duration::from_secs(3))
                    .await
                    .map(|()| format!("{url} answers PING"))
                    .map_err(|e| format!("{url}: {e}"))
            }
        },
    ));

    match Relays::build(
        &config.relay_map(),
        &config.pools,
        &config.dns,
        config.delivery.smtp_timeout(),
    ) {
        Err(e) => checks.push(Check::new("relays", Err(format!("{e:#}")))),
        Ok(relays) if relays.is_sandbox() => checks.push(Check::new(
            "relays",
            Ok("none configured: sandbox delivery, nothing leaves this machine".into()),
        )),
        Ok(relays) => {
            for relay in relays.all() {
                for (step, result) in relay.diagnose().await {
                    checks.push(Check::new(format!("relay {} · {step}", relay.name), result));
                }
            }
            for relay in relays.all_direct() {
                for (step, result) in relay.diagnose() {
                    checks.push(Check::new(format!("relay {} · {step}", relay.name), result));
                }
            }
            checks.extend(egress_dns(config).await);
        }
    }

    if config.dkim.is_empty() {
        checks.push(Check::new(
            "dkim",
            Ok("no keys: mail goes out unsigned".into()),
        ));
    }
    // One check per key, so a bad file names itself and the others still report.
    for key in &config.dkim {
        checks.push(Check::new(
            format!("dkim {}", key.domain),
            DkimKeys::load(std::slice::from_ref(key))
                .map(|k| format!("{} · key loads", k.domains().join(", ")))
                .map_err(|e| format!("{e:#}")),
        ));
    }
    checks
}

/// What receivers look up about each egress address (PTR, forward confirmation, the EHLO
/// name), asked through `[dns]` as delivery asks. What falls short is a warning naming the
/// records to publish: mail still goes, but many receivers refuse or junk it.
async fn egress_dns(config: &Config) -> Vec<Check> {
    let relays = config.relay_map();
    if !relays.values().any(|r| r.mx || !r.egress.is_empty()) {
        return Vec::new();
    }
    let dns = match Dns::build(&config.dns) {
        Ok(dns) => dns,
        Err(e) => return vec![Check::new("dns", Err(format!("{e:#}")))],
    };
    let mut checks = Vec::new();
    for (name, relay) in &relays {
        if relay.egress.is_empty() {
            if relay.mx {
                checks.push(Check::new(
                    format!("relay {name} · PTR"),
                    Ok("not checked: no egress addresses, and this host's outbound address is unknown here".into()),
                ));
            }
            continue;
        }
        // Each address's lookups at once: a slow resolver costs one timeout, not one per address.
        let results = futures_util::future::join_all(
            relay
                .egress
                .iter()
                .map(|e| egress::check(&dns, name, e.addr, &e.helo)),
        )
        .await;
        for (e, result) in relay.egress.iter().zip(results) {
            let check = format!("relay {name} · egress {} PTR", e.addr);
            checks.push(match result {
                Ok(detail) => Check::new(check, Ok(detail)),
                Err(detail) => Check::warning(check, detail),
            });
        }
    }
    checks
}

/// `doctor --offline`: what can be checked without a connection or the files a config names
/// (those exist only on the host it is written for). Loading it already refused unknown keys
/// and broken rules.
pub fn offline(config: &Config) -> Vec<Check> {
    let mut checks = vec![Check::new(
        "config",
        Ok(format!(
            "valid · http {} · metrics {} · smtp {} · inbound {}",
            config.http_addr,
            if config.metrics.enabled {
                config.metrics.addr.to_string()
            } else {
                "off".to_string()
            },
            config.smtp_addr,
            config
                .inbound
                .addr
                .map_or("off".to_string(), |a| a.to_string()),
        )),
    )];
    checks.push(Check::new(
        "postgres",
        store::describe_url(config.database_url.expose()).map_err(|e| format!("{e:#}")),
    ));
    checks.push(Check::new(
        "redis",
        match &config.redis_url {
            None => Ok(NO_REDIS.into()),
            Some(url) => redis::Client::open(url.expose())
                .map(|_| url.redacted())
                .map_err(|e| format!("invalid redis_url {url}: {e}")),
        },
    ));
    checks.push(Check::new(
        "relays",
        Relays::build(
            &config.relay_map(),
            &config.pools,
            &config.dns,
            config.delivery.smtp_timeout(),
        )
        .map(|relays| relays.describe())
        .map_err(|e| format!("{e:#}")),
    ));
    checks.extend(scan_limits(config));
    let files: Vec<String> = [
        ("smtp.tls_cert", config.smtp.tls_cert.as_ref()),
        ("smtp.tls_key", config.smtp.tls_key.as_ref()),
        ("inbound.tls_cert", config.inbound.tls_cert.as_ref()),
        ("inbound.tls_key", config.inbound.tls_key.as_ref()),
        ("redis.ca_file", config.redis.ca_file.as_ref()),
        ("redis.client_cert", config.redis.client_cert.as_ref()),
        ("redis.client_key", config.redis.client_key.as_ref()),
    ]
    .into_iter()
    .filter_map(|(key, path)| Some(format!("{key}={}", path?.display())))
    .chain(
        config
            .dkim
            .iter()
            .map(|k| format!("dkim {}={}", k.domain, k.private_key_file.display())),
    )
    .collect();
    checks.push(Check::new(
        "files",
        Ok(if files.is_empty() {
            "none named".into()
        } else {
            format!("not read offline: {}", files.join(", "))
        }),
    ));
    checks
}

/// The configuration as loaded (defaults, file, environment), as TOML with every secret
/// redacted.
pub fn resolved(config: &Config) -> anyhow::Result<String> {
    Ok(format!(
        "# resolved configuration (secrets redacted)\n{}\n",
        toml::to_string(config)?
    ))
}

async fn migrations(pool: &sqlx::PgPool) -> Result<String, String> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(|e| format!("cannot read _sqlx_migrations ({e}); run `mailgate migrate`"))?;
    let pending: Vec<String> = store::MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if pending.is_empty() {
        Ok(format!("{} applied, none pending", applied.len()))
    } else {
        Err(format!(
            "pending: {} (run `mailgate migrate`)",
            pending.join(", ")
        ))
    }
}

/// The report as printed: one line per check, then a verdict.
pub fn report(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let _ = writeln!(
            out,
            "{:4}  {:<32} {}",
            match (c.ok, c.warning) {
                (false, _) => "FAIL",
                (true, true) => "WARN",
                (true, false) => "ok",
            },
            c.name,
            c.detail
        );
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    let warned = checks.iter().filter(|c| c.ok && c.warning).count();
    let warnings = match warned {
        0 => String::new(),
        n => format!(" ({n} warning(s))"),
    };
    if failed == 0 {
        let _ = writeln!(out, "\nall checks passed{warnings}");
    } else {
        let _ = writeln!(out, "\n{failed} check(s) failed{warnings}");
    }
    out
}
