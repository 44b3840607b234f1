//! The command line: `serve`, `migrate`, `projects`, `keys`, `templates`, `queue`, `doctor`, `token`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::{
    Application, Config,
    domain::{
        ApiKeySecret,
        api_key::{KeyLimits, check_burst, check_daily_quota, check_rate, parse_scopes},
    },
    service::{gate::mint_operator_token, projects::check_project_name},
    store::{self, api_keys, projects, templates as template_rows},
    telemetry,
    templates::{SaveMode, TemplateError, disk, save},
};

#[derive(Parser)]
#[command(
    name = "mailgate",
    version,
    about = "HTTP-to-SMTP transactional email gateway"
)]
pub struct Cli {
    /// TOML config file (also MAILGATE_CONFIG); environment variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the delivery workers (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage projects.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Copy templates between folders and a project (see templates/README.md for the format).
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Print the OpenAPI document (JSON) of the HTTP API.
    Openapi,
    /// Check Postgres, migrations, Redis and every relay (connect, EHLO, STARTTLS, AUTH).
    Doctor {
        /// Check the configuration only, with no connection and no file read: print it as
        /// resolved (file, then environment; secrets redacted) and check relays and pools.
        #[arg(long)]
        offline: bool,
    },
    /// Inspect and act on the delivery queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// TLS reporting (RFC 8460).
    #[command(subcommand)]
    Tlsrpt(TlsrptCommand),
    /// Print an operator JWT for /v1/projects and /v1/api-keys.
    Token {
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// Create or update the project's templates from DIR/<name>/ folders. Checks every
    /// template first and writes nothing if one is invalid; unchanged ones keep their version.
    Push {
        dir: PathBuf,
        #[arg(long)]
        project: String,
    },
    /// Write every template of the project to DIR/<name>/ folders.
    Pull {
        dir: PathBuf,
        #[arg(long)]
        project: String,
    },
}

#[derive(Subcommand)]
enum TlsrptCommand {
    /// Send one UTC day's TLS-RPT reports now (those not sent or given up already), from
    /// the session counts the serving instances have stored; reports by mail are queued
    /// for them to deliver. Needs `tlsrpt.enabled`.
    Send {
        /// The day, YYYY-MM-DD (UTC).
        #[arg(long)]
        day: chrono::NaiveDate,
    },
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Recipients by status, and the age of the oldest waiting one.
    Stats,
    /// Retry now: deferred recipients are made due; failed ones are queued again.
    Retry {
        /// deferred or failed.
        #[arg(long, default_value = "deferred")]
        status: String,
        /// Only this project's mail.
        #[arg(long)]
        project: Option<String>,
    },
    /// Delete finished messages (with recipients and events) older than a duration like 7d, 12h.
    Purge {
        #[arg(long)]
        older_than: String,
    },
}

#[derive(Subcommand)]
enum ProjectsCommand {
    /// Create a project (no-op if it exists).
    Create {
        name: String,
        /// Relay or pool for this project's mail when a send names none.
        #[arg(long)]
        relay: Option<String>,
    },
    /// Change a project's default relay or pool (`--relay ''` clears it).
    Update {
        name: String,
        #[arg(long)]
        relay: String,
    },
    /// List projects.
    List,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; the key alone is printed on the last line of stdout.
    Create {
        /// Project name; created if it does not exist.
        #[arg(long)]
        project: String,
        /// Comma-separated: send, templates, messages, webhooks, suppressions, keys.
        #[arg(long, default_value = "send,messages")]
        scopes: String,
        /// A sandbox key (mg_test_…): mail is processed and reported, never relayed.
        #[arg(long)]
        test: bool,
        /// A label to recognise the key by.
        #[arg(long)]
        name: Option<String>,
        /// Messages per second (default: ratelimit.send.rate_per_sec).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<f64>,
        /// Messages at once (default: ratelimit.send.burst).
        #[arg(long, value_parser = parse_burst)]
        burst: Option<u32>,
        /// Messages per UTC day (default: ratelimit.send.daily_quota).
        #[arg(long, value_parser = parse_quota)]
        daily_quota: Option<u64>,
    },
    /// Change a key's send limits; `default` returns a setting to the configured default.
    Update {
        id: uuid::Uuid,
        /// Messages per second, or `default`.
        #[arg(long, value_parser = setting(parse_rate))]
        rate: Option<Setting<f64>>,
        /// Messages at once, or `default`.
        #[arg(long, value_parser = setting(parse_burst))]
        burst: Option<Setting<u32>>,
        /// Messages per UTC day, or `default`.
        #[arg(long, value_parser = setting(parse_quota))]
        daily_quota: Option<Setting<u64>>,
    },
    /// List keys (prefix, scopes, state), never the keys themselves.
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke a key by id.
    Revoke { id: uuid::Uuid },
}

fn parse_rate(s: &str) -> Result<f64, String> {
    check_rate(s.parse().map_err(|_| format!("`{s}` is not a number"))?)
}

fn parse_burst(s: &str) -> Result<u32, String> {
    check_burst(
        s.parse()
            .map_err(|_| format!("`{s}` is not a whole number"))?,
    )
}

fn parse_quota(s: &str) -> Result<u64, String> {
    check_daily_quota(
        s.parse()
            .map_err(|_| format!("`{s}` is not a whole number"))?,
    )
}

/// A new value for a limit, or `None` for "back to the configured default".
#[derive(Debug, Clone, Copy)]
struct Setting<T>(Option<T>);

fn setting<T>(
    parse: fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<Setting<T>, String> + Clone {
    move |s| {
        if s.eq_ignore_ascii_case("default") {
            Ok(Setting(None))
        } else {
            parse(s).map(|v| Setting(Some(v)))
        }
    }
}

fn describe_limits(k: &api_keys::ApiKeyInfo) -> String {
    let mut parts = Vec::new();
    if let Some(rate) = k.rate_per_sec {
        parts.push(format!("rate={rate}/s"));
    }
    if let Some(burst) = k.burst {
        parts.push(format!("burst={burst}"));
    }
    if let Some(quota) = k.daily_quota {
        parts.push(format!("daily_quota={quota}"));
    }
    if parts.is_empty() {
        "default-limits".into()
    } else {
        parts.join(",")
    }
}

pub async fn main() -> ExitCode {
    // Before anything builds a TLS client (Postgres, Redis, relays, webhooks).
    crate::tls::install_provider();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Needs no configuration or database: CI diffs it against the committed file.
    if let Command::Openapi = cli.command {
        print!("{}", crate::api::openapi::json());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    telemetry::init_with_format(&config.log, config.log_format);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Openapi => unreachable!("handled before loading the configuration"),
        Command::Migrate => {
            let pool = store::connect(config.database_url.expose(), 2).await?;
            store::migrate(&pool).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Projects(cmd) => {
            let pool = store::connect(config.database_url.expose(), 2).await?;
            store::migrate(&pool).await?;
            match cmd {
                ProjectsCommand::Create { name, relay } => {
                    check_project_name(&name).map_err(anyhow::Error::msg)?;
                    let (mut p, created) = projects::ensure(&pool, &name).await?;
                    if let Some(relay) = relay {
                        check_relay(&config, &relay)?;
                        p = projects::set_default_relay(&pool, &name, Some(&relay))
                            .await?
                            .unwrap_or(p);
                    }
                    println!(
                        "{}\t{}\t{}",
                        p.id,
                        p.name,
                        if created { "created" } else { "exists" }
                    );
                }
                ProjectsCommand::Update { name, relay } => {
                    let relay = Some(relay.as_str()).filter(|r| !r.is_empty());
                    if let Some(r) = relay {
                        check_relay(&config, r)?;
                    }
                    let p = projects::set_default_relay(&pool, &name, relay)
                        .await?
                        .context("no such project")?;
                    println!(
                        "{}\t{}\t{}",
                        p.id,
                        p.name,
                        p.default_relay.as_deref().unwrap_or("-")
                    );
                }
                ProjectsCommand::List => {
                    for p in projects::list(&pool).await? {
                        println!("{}\t{}\t{}", p.id, p.name, p.created_at.to_rfc3339());
                    }
                }
            }
            Ok(())
        }
        Command::Keys(cmd) => keys(config, cmd).await,
        Command::Templates(cmd) => templates(config, cmd).await,
        Command::Doctor { offline } => {
            let checks = if offline {
                print!("{}", crate::doctor::resolved(&config)?);
                crate::doctor::offline(&config)
            } else {
                crate::doctor::run(&config).await
            };
            print!("{}", crate::doctor::report(&checks));
            if checks.iter().any(|c| !c.ok) {
                bail!("doctor found problems");
            }
            Ok(())
        }
        Command::Queue(cmd) => queue_command(config, cmd).await,
        Command::Tlsrpt(TlsrptCommand::Send { day }) => {
            if !config.tlsrpt.enabled {
                anyhow::bail!("tlsrpt.enabled is false: no reports are kept or sent");
            }
            let reporter = crate::service::tlsrpt::Reporter::standalone(&config).await?;
            let attempts = reporter.send_day(day).await?;
            if attempts.is_empty() {
                println!(
                    "{day}: no report to send (none counted, or each sent, given up or waiting for its retry)"
                );
            }
            for a in attempts {
                println!(
                    "{} {} report {}: {}",
                    a.day, a.domain, a.report_id, a.status
                );
                if let Some(why) = &a.error {
                    println!("  {why}");
                }
                for (rua, result) in a.tried {
                    match result {
                        Ok(id) if id.is_empty() => println!("  {rua}: sent"),
                        Ok(id) => println!("  {rua}: queued as {id}"),
                        Err(why) => println!("  {rua}: {why}"),
                    }
                }
            }
            Ok(())
        }
        Command::Token { ttl } => {
            let secret = config
                .jwt_secret
                .as_ref()
                .context("set MAILGATE_JWT_SECRET (or jwt_secret in the config file) to mint operator tokens")?;
            println!("{}", mint_operator_token(secret, Duration::from_secs(ttl))?);
            Ok(())
        }
    }
}

async fn keys(config: Config, cmd: KeysCommand) -> anyhow::Result<()> {
    let pool = store::connect(config.database_url.expose(), 2).await?;
    store::migrate(&pool).await?;
    match cmd {
        KeysCommand::Create {
            project,
            scopes,
            test,
            name,
            rate,
            burst,
            daily_quota,
        } => {
            check_project_name(&project).map_err(anyhow::Error::msg)?;
            let scopes = parse_scopes(&[scopes]).map_err(anyhow::Error::msg)?;
            let (p, created) = projects::ensure(&pool, &project).await?;
            if created {
                eprintln!("created project {}", p.name);
            }
            let secret = ApiKeySecret::generate(test);
            let limits = KeyLimits {
                rate_per_sec: rate,
                burst,
                daily_quota,
            };
            let info = api_keys::create_with_limits(
                &pool,
                p.id,
                name.as_deref(),
                &scopes,
                &secret,
                &limits,
            )
            .await?;
            eprintln!(
                "created {} key {} for project {} with scopes {}, {} (shown once; store it now)",
                if test { "test (sandbox)" } else { "live" },
                info.id,
                p.name,
                info.scopes.join(","),
                describe_limits(&info)
            );
            // Alone on the last line so scripts can capture it with `tail -n1`.
            println!("{}", secret.expose());
        }
        KeysCommand::List { project } => {
            let project_id = match project {
                Some(name) => Some(
                    projects::find_by_name(&pool, &name)
                        .await?
                        .context("no such project")?
                        .id,
                ),
                None => None,
            };
            for k in api_keys::list(&pool, project_id).await? {
                println!(
                    "{}\t{}…\t{}\t{}\t{}\t{}",
                    k.id,
                    k.prefix,
                    k.scopes.join(","),
                    if k.test_mode { "test" } else { "live" },
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    describe_limits(&k)
                );
            }
        }
        KeysCommand::Update {
            id,
            rate,
            burst,
            daily_quota,
        } => {
            let change = api_keys::LimitsChange {
                rate_per_sec: rate.map(|s| s.0),
                burst: burst.map(|s| s.0),
                daily_quota: daily_quota.map(|s| s.0),
            };
            let info = api_keys::update_limits(&pool, id, None, &change)
                .await?
                .with_context(|| format!("no key with id {id}"))?;
            // Running processes pick it up within http.key_cache_secs.
            eprintln!("updated {id}: {}", describe_limits(&info));
        }
        KeysCommand::Revoke { id } => {
            if api_keys::revoke(&pool, id, None).await?.is_none() {
                bail!("no key with id {id}");
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

async fn templates(config: Config, cmd: TemplatesCommand) -> anyhow::Result<()> {
    let pool = store::connect(config.database_url.expose(), 2).await?;
    store::migrate(&pool).await?;
    let (TemplatesCommand::Push { project, .. } | TemplatesCommand::Pull { project, .. }) = &cmd;
    let project = projects::find_by_name(&pool, project)
        .await?
        .with_context(|| format!("no project named `{project}`"))?;
    match cmd {
        TemplatesCommand::Push { dir, .. } => {
            let (found, skipped) = disk::read_all(&dir)?;
            for path in skipped {
                eprintln!("skipping {}: no {}", path.display(), disk::MANIFEST_FILE);
            }
            if found.is_empty() {
                bail!(
                    "no templates in {} (a template is a folder with a {})",
                    dir.display(),
                    disk::MANIFEST_FILE
                );
            }
            let mut checked = Vec::new();
            let mut problems = Vec::new();
            for folder in &found {
                match save::check(&folder.name, folder.draft.clone()) {
                    Ok(template) => checked.push((folder, template)),
                    Err(errors) => problems.extend(errors.into_iter().map(|e| {
                        format!("{}: {}", folder.file_for(&e.field).display(), e.message)
                    })),
                }
            }
            // Layouts do not nest, so saving those without a layout first satisfies every reference.
            checked.sort_by_key(|(_, t)| t.layout.is_some());
            let mut tx = pool.begin().await?;
            let mut report = Vec::new();
            if problems.is_empty() {
                for (folder, template) in &checked {
                    match save::save(&mut tx, project.id, template, SaveMode::Upsert).await {
                        Ok((row, saved)) => report.push(format!(
                            "{}\t{}\tversion {}",
                            row.name,
                            saved.as_str(),
                            row.version
                        )),
                        Err(TemplateError::Invalid(errors)) => {
                            problems.extend(errors.into_iter().map(|e| {
                                format!("{}: {}", folder.file_for(&e.field).display(), e.message)
                            }));
                            break;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if !problems.is_empty() {
                for problem in &problems {
                    eprintln!("{problem}");
                }
                bail!("{} problem(s) found; nothing was pushed", problems.len());
            }
            tx.commit().await?;
            report.sort();
            for line in report {
                println!("{line}");
            }
        }
        TemplatesCommand::Pull { dir, .. } => {
            let rows = template_rows::list_full(&pool, project.id).await?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
            for row in &rows {
                disk::write_one(&dir, row)?;
                println!("{}\tversion {}", row.name, row.version);
            }
            eprintln!(
                "wrote {} template(s) of project {} to {}",
                rows.len(),
                project.name,
                dir.display()
            );
        }
    }
    Ok(())
}

/// A relay or pool name must exist in this configuration.
fn check_relay(config: &Config, name: &str) -> anyhow::Result<()> {
    if config.relay_map().contains_key(name) || config.pools.contains_key(name) {
        Ok(())
    } else {
        bail!("no relay or pool named `{name}` in the configuration")
    }
}

async fn queue_command(config: Config, cmd: QueueCommand) -> anyhow::Result<()> {
    let pool = store::connect(config.database_url.expose(), 2).await?;
    store::migrate(&pool).await?;
    match cmd {
        QueueCommand::Stats => {
            let stats = crate::queue::mail::stats(&pool).await?;
            for (status, count) in &stats.by_status {
                println!("{status:<12} {count}");
            }
            match stats.oldest_waiting_secs {
                Some(secs) => println!("oldest waiting recipient: {secs:.0} s"),
                None => println!("nothing waiting"),
            }
        }
        QueueCommand::Retry { status, project } => {
            let project_id = match project {
                Some(name) => Some(
                    projects::find_by_name(&pool, &name)
                        .await?
                        .context("no such project")?
                        .id,
                ),
                None => None,
            };
            let n = crate::queue::mail::retry_now(&pool, &status, project_id)
                .await
                .map_err(anyhow::Error::msg)?;
            println!("{n} recipient(s) due now");
        }
        QueueCommand::Purge { older_than } => {
            let age = parse_age(&older_than).map_err(anyhow::Error::msg)?;
            let before = chrono::Utc::now()
                - chrono::TimeDelta::from_std(age).context("--older-than is too long")?;
            let mut total = 0;
            loop {
                let n = store::messages::purge_finished(&pool, before, 1000).await?;
                total += n;
                if n < 1000 {
                    break;
                }
            }
            println!("{total} finished message(s) deleted");
        }
    }
    Ok(())
}

/// `30m`, `12h`, `7d` (or plain seconds).
fn parse_age(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (num, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration like 7d, 12h or 30m"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("`{raw}`: unknown unit `{unit}` (s, m, h, d)")),
    };
    Ok(Duration::from_secs(secs))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    tracing::info!("mailgate serving: {}", app.describe());
    let cancel = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(cancel.clone()));
    app.run(cancel).await?;
    tracing::info!("mailgate stopped");
    Ok(())
}

/// SIGTERM or Ctrl-C: drain, stop taking work, finish what is in flight, exit. A second
/// signal exits at once: nothing accepted is lost (it is committed), work in flight is
/// taken again by the next process when its lease runs out.
async fn shutdown_on_signal(cancel: CancellationToken) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(not(unix))]
    let mut term = None;
    stop_signal(&mut term).await;
    tracing::info!(
        "shutting down: no new work; finishing deliveries in flight (a second signal stops at once)"
    );
    cancel.cancel();
    stop_signal(&mut term).await;
    tracing::warn!("second signal: stopping now; work in flight is retried after its lease");
    std::process::exit(130);
}

#[cfg(unix)]
type TermSignal = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type TermSignal = ();

/// The next Ctrl-C or SIGTERM.
async fn stop_signal(term: &mut Option<TermSignal>) {
    #[cfg(unix)]
    let term = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = {
        let _ = term;
        std::future::pending::<()>()
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
