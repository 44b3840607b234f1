//! Sending domains: a project's domains, the DNS records each must publish, their checks
//! and their DKIM keys. The native routes, Resend's `/domains` and the console call these.
//!
//! - `records`: the records asked for, and the last check's findings per record.
//! - `check`: looking them up and what that makes of the domain's status.
//!
//! A domain's keys are made here (RSA-2048, and on request an Ed25519 one that signs beside
//! it, each under a dated selector), sealed under `MAILGATE_SECRET_KEY` before they are
//! stored, and opened only to sign ([`refresh_signing`] hands the verified domains' keys to
//! the DKIM signer, and their return paths to delivery).

pub mod check;
pub mod records;

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use self::{
    check::{Finding, Schedule},
    records::{Record, Subject, Wanted},
};
use super::{
    AppState,
    error::{Conflict, FieldError, ServiceError, ServiceResult},
    paging,
};
use crate::{
    config::DkimAlgorithm,
    delivery::dkim::{ResourceKey, generate_ed25519, generate_rsa},
    secrets::SecretBox,
    store::domains::{self as store, DomainRow, KeyRow, NewDomain, NewKey},
};

/// A domain as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Domain {
    pub id: Uuid,
    /// Lower-case, in A-labels.
    pub name: String,
    /// `not_started`, `pending`, `verified`, `failed` or `temporary_failure`.
    pub status: String,
    /// The records to publish, each with what the last check found.
    pub records: Vec<Record>,
    pub dkim: DkimKeys,
    /// Where the recommended DMARC record sends reports.
    pub dmarc_rua: Option<String>,
    /// The return-path subdomain (`bounces.example.com`): once its MX record is published,
    /// mail from the domain uses `b-<token>@` it as envelope sender, so bounces come back to
    /// mailgate and SPF aligns with the From domain.
    pub return_path: String,
    pub created_at: DateTime<Utc>,
    pub last_checked_at: Option<DateTime<Utc>>,
}

/// The domain's DKIM keys by selector.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DkimKeys {
    /// The selector mail is signed under (the RSA key's).
    pub selector: String,
    /// After `rotate-dkim`: the selector of the next key, which signs once its record is
    /// seen in DNS.
    pub pending_selector: Option<String>,
    /// The Ed25519 key's selector, when the domain signs with one beside the RSA key.
    pub ed25519_selector: Option<String>,
    /// After `rotate-dkim`, the next Ed25519 key's selector.
    pub ed25519_pending_selector: Option<String>,
    /// Records of keys no longer used: they may be removed from DNS.
    pub removable: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DomainList {
    pub data: Vec<Domain>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

const LIST_DEFAULT: i64 = 50;
const LIST_MAX: i64 = 100;
const RUA_MAX: usize = 320;

/// The sealing box, or why domains cannot be added.
pub fn secret_box(state: &AppState) -> ServiceResult<SecretBox> {
    let Some(secret) = &state.config.secret_key else {
        return Err(ServiceError::Unavailable(
            "sending domains need a server key to seal their DKIM keys: set MAILGATE_SECRET_KEY (`openssl rand -base64 32`)".into(),
        ));
    };
    Ok(SecretBox::new(secret.expose_secret())?)
}

fn is_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A host name of two labels or more (`NAME_PATTERN` without the dot and the length).
fn is_host(name: &str) -> bool {
    name.contains('.') && name.split('.').all(is_label)
}

/// A domain name as stored. The API takes ASCII labels of letters, digits and inner hyphens
/// (an IDN in its `xn--` form), two at least, an optional trailing dot, 253 characters at
/// most; the spec states the same rule as a pattern (`api::domains::CreateDomain`).
pub fn parse_name(raw: &str) -> Result<String, String> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if raw.len() > 253 || !is_host(name) {
        return Err(
            "must be a domain name like example.com: two labels or more of letters, digits and inner hyphens, 253 characters at most (an IDN in its xn-- form)".into(),
        );
    }
    Ok(name.to_ascii_lowercase())
}

/// A DMARC `rua`: one `mailto:` address (the spec's pattern says the same).
pub fn parse_rua(raw: &str) -> Result<String, String> {
    let ok = raw.len() <= RUA_MAX
        && raw
            .strip_prefix("mailto:")
            .and_then(|addr| addr.rsplit_once('@'))
            .is_some_and(|(local, domain)| {
                (1..=64).contains(&local.len())
                    && local
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
                    && is_host(domain)
            });
    if ok {
        Ok(raw.to_string())
    } else {
        Err("must be one `mailto:` address, e.g. mailto:dmarc@example.com".into())
    }
}

/// `mg20261207` (`mg20261207ed` for an Ed25519 key), or with `b`, `c`… after it when that
/// one is taken.
fn new_selector(state: &AppState, taken: &[&str], algorithm: DkimAlgorithm) -> String {
    let base = format!(
        "{}{}{}",
        state.config.domains.selector_prefix,
        Utc::now().format("%Y%m%d"),
        match algorithm {
            DkimAlgorithm::RsaSha256 => "",
            DkimAlgorithm::Ed25519Sha256 => "ed",
        }
    );
    let mut selector = base.clone();
    for suffix in 'b'..='z' {
        if !taken.contains(&selector.as_str()) {
            break;
        }
        selector = format!("{base}{suffix}");
    }
    selector
}

/// Fresh keys, one per algorithm, each under a selector not among `taken`, sealed for
/// their rows.
async fn new_keys(
    state: &AppState,
    secrets: &SecretBox,
    taken: &[KeyRow],
    algorithms: &[DkimAlgorithm],
) -> ServiceResult<Vec<NewKey>> {
    let mut selectors: Vec<String> = taken.iter().map(|k| k.selector.clone()).collect();
    let mut out = Vec::with_capacity(algorithms.len());
    for &algorithm in algorithms {
        let selector = new_selector(
            state,
            &selectors.iter().map(String::as_str).collect::<Vec<_>>(),
            algorithm,
        );
        selectors.push(selector.clone());
        let (pkcs8, public_key) = match algorithm {
            DkimAlgorithm::RsaSha256 => tokio::task::spawn_blocking(generate_rsa)
                .await
                .map_err(anyhow::Error::from)??,
            DkimAlgorithm::Ed25519Sha256 => generate_ed25519()?,
        };
        let id = Uuid::now_v7();
        let sealed_private_key = secrets.seal(&context(id), &pkcs8)?;
        out.push(NewKey {
            id,
            algorithm: algorithm.as_str(),
            selector,
            public_key,
            sealed_private_key,
        });
    }
    Ok(out)
}

/// What a key's sealing is bound to: its own row.
fn context(key_id: Uuid) -> String {
    format!("domain-key:{key_id}")
}

/// What a new domain is made with, beside its name.
#[derive(Debug, Default)]
pub struct NewOptions<'a> {
    pub dmarc_rua: Option<&'a str>,
    /// Sign with an Ed25519 key as well as the RSA one (RFC 8463).
    pub ed25519: bool,
    /// The label of the return-path subdomain; `None`: `domains.return_path`.
    pub return_path: Option<&'a str>,
}

/// The key algorithms a domain signs with, RSA first.
fn algorithms(ed25519: bool) -> Vec<DkimAlgorithm> {
    let mut out = vec![DkimAlgorithm::RsaSha256];
    if ed25519 {
        out.push(DkimAlgorithm::Ed25519Sha256);
    }
    out
}

/// Adds a domain to the project with new DKIM keys; the answer lists its records.
pub async fn create(
    state: &AppState,
    project_id: Uuid,
    name: &str,
    options: NewOptions<'_>,
) -> ServiceResult<Domain> {
    let mut errors = Vec::new();
    let name = parse_name(name)
        .map_err(|m| errors.push(FieldError::new("name", m)))
        .ok();
    let rua = options
        .dmarc_rua
        .map(parse_rua)
        .transpose()
        .map_err(|m| errors.push(FieldError::new("dmarc_rua", m)))
        .ok()
        .flatten();
    let return_path = options
        .return_path
        .unwrap_or(&state.config.domains.return_path)
        .to_string();
    if let Err(why) = crate::config::check_label(&return_path) {
        errors.push(FieldError::new("return_path", why));
    }
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Err(ServiceError::Validation(errors));
    };
    let secrets = secret_box(state)?;
    let keys = new_keys(state, &secrets, &[], &algorithms(options.ed25519)).await?;
    let row = store::insert(
        &state.pool,
        &NewDomain {
            id: Uuid::now_v7(),
            project_id,
            name: &name,
            dmarc_rua: rua.as_deref(),
            return_path: &return_path,
        },
        &keys,
    )
    .await?
    .ok_or_else(|| {
        ServiceError::conflict(
            Conflict::DomainExists,
            format!("this project has the domain {name} already"),
        )
    })?;
    view(state, row).await
}

async fn find_row(state: &AppState, project_id: Uuid, id: Uuid) -> ServiceResult<DomainRow> {
    store::find(&state.pool, project_id, id)
        .await?
        .ok_or(ServiceError::NotFound("domain"))
}

pub async fn get(state: &AppState, project_id: Uuid, id: Uuid) -> ServiceResult<Domain> {
    view(state, find_row(state, project_id, id).await?).await
}

/// A domain id from a path; anything else is simply not found.
pub fn parse_id(raw: &str) -> ServiceResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ServiceError::NotFound("domain"))
}

fn encode_cursor(d: &Domain) -> String {
    let mut out = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(d.created_at.timestamp_micros().to_be_bytes());
    out.push_str(&d.id.simple().to_string());
    out
}

fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (time, id) = (raw.get(..11)?, raw.get(11..)?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(time)
        .ok()?;
    let micros = i64::from_be_bytes(bytes.try_into().ok()?);
    if micros < 0 {
        return None;
    }
    Some((
        DateTime::from_timestamp_micros(micros)?,
        Uuid::try_parse(id).ok()?,
    ))
}

/// One page of the project's domains, newest first.
pub async fn list(
    state: &AppState,
    project_id: Uuid,
    q: &HashMap<String, String>,
) -> ServiceResult<DomainList> {
    let mut errors = Vec::new();
    let limit = paging::limit(q, LIST_DEFAULT, LIST_MAX, &mut errors);
    let before = paging::cursor(q, decode_cursor, &mut errors);
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    let rows = store::list(&state.pool, project_id, before, limit + 1).await?;
    let views = views(state, rows).await?;
    let (data, next_cursor, has_more) = paging::split(views, limit, encode_cursor);
    Ok(DomainList {
        data,
        next_cursor,
        has_more,
    })
}

/// Changes the DMARC report address (`Some(None)`: back to the default).
pub async fn update(
    state: &AppState,
    project_id: Uuid,
    id: Uuid,
    dmarc_rua: Option<Option<&str>>,
) -> ServiceResult<Domain> {
    let rua = match dmarc_rua {
        Some(Some(raw)) => Some(Some(
            parse_rua(raw).map_err(|m| ServiceError::validation("dmarc_rua", m))?,
        )),
        Some(None) => Some(None),
        None => None,
    };
    let row = store::update(
        &state.pool,
        project_id,
        id,
        rua.as_ref().map(|r| r.as_deref()),
    )
    .await?
    .ok_or(ServiceError::NotFound("domain"))?;
    view(state, row).await
}

/// Removes a domain and its keys: its mail is no longer signed with them.
pub async fn remove(state: &AppState, project_id: Uuid, id: Uuid) -> ServiceResult<()> {
    if !store::delete(&state.pool, project_id, id).await? {
        return Err(ServiceError::NotFound("domain"));
    }
    changed(state, project_id).await;
    Ok(())
}

/// Checks the domain's records now (and restarts a failed or not-started domain).
pub async fn verify(state: &AppState, project_id: Uuid, id: Uuid) -> ServiceResult<Domain> {
    let row = find_row(state, project_id, id).await?;
    let row = run_check(state, row, true).await?;
    view(state, row).await
}

/// Makes a new key for each algorithm the domain signs with, under new selectors, pending:
/// the current keys sign until every new record is seen in DNS, then the new ones do and the
/// old records may be removed.
pub async fn rotate(state: &AppState, project_id: Uuid, id: Uuid) -> ServiceResult<Domain> {
    let row = find_row(state, project_id, id).await?;
    let secrets = secret_box(state)?;
    let keys = store::keys(&state.pool, &[row.id]).await?;
    let ed25519 = keys
        .iter()
        .any(|k| k.state == "active" && k.algorithm == DkimAlgorithm::Ed25519Sha256.as_str());
    let fresh = new_keys(state, &secrets, &keys, &algorithms(ed25519)).await?;
    if !store::insert_pending_keys(&state.pool, row.id, &fresh).await? {
        return Err(ServiceError::conflict(
            Conflict::RotationPending,
            "a rotation is under way: its key signs once its record is published and seen (POST …/verify checks now)",
        ));
    }
    // Looked for soon, not at the verified domain's daily check.
    let soon = Utc::now() + schedule(state).check_every;
    store::check_by(&state.pool, row.id, soon).await?;
    view(state, row).await
}

fn schedule(state: &AppState) -> Schedule {
    let c = &state.config.domains;
    Schedule {
        check_every: chrono::Duration::seconds(c.check_interval_secs as i64),
        verified_every: chrono::Duration::seconds(c.verified_interval_secs as i64),
        grace: chrono::Duration::hours(c.grace_hours as i64),
    }
}

/// Whether the project tracks opens or clicks by default (then a tracking CNAME is asked).
async fn tracks(state: &AppState, project_id: Uuid) -> ServiceResult<bool> {
    Ok(crate::store::projects::find(&state.pool, project_id)
        .await?
        .is_some_and(|p| p.track_opens || p.track_clicks))
}

fn wanted(config: &crate::Config, row: &DomainRow, keys: &[KeyRow], tracks: bool) -> Vec<Wanted> {
    records::wanted(
        config,
        &Subject {
            name: &row.name,
            keys,
            dmarc_rua: row.dmarc_rua.as_deref(),
            return_path: &row.return_path,
            tracks,
            checks: &row.checks.0,
        },
    )
}

/// Looks up the domain's records, saves what they make of it (sending its event), switches
/// to a pending key whose record is there, and tells the signer.
async fn run_check(state: &AppState, row: DomainRow, asked: bool) -> ServiceResult<DomainRow> {
    let keys = store::keys(&state.pool, &[row.id]).await?;
    let wanted = wanted(
        &state.config,
        &row,
        &keys,
        tracks(state, row.project_id).await?,
    );
    let mut findings = Vec::with_capacity(wanted.len());
    for w in &wanted {
        findings.push(match &state.dns {
            Some(dns) => check::look(dns, w).await,
            None => Finding::Unknown("no DNS resolver could be built ([dns])".into()),
        });
    }
    let verdict = check::judge(
        &row,
        &wanted,
        &findings,
        &schedule(state),
        Utc::now(),
        asked,
    );
    // Pending keys sign from now on once every one of their records is published (an RSA
    // and an Ed25519 key switch together).
    let pending: Vec<&KeyRow> = keys.iter().filter(|k| k.state == "pending").collect();
    let pending_seen = !pending.is_empty()
        && pending.iter().all(|k| {
            wanted.iter().zip(&findings).any(|(w, f)| {
                w.record
                    .name
                    .starts_with(&format!("{}._domainkey.", k.selector))
                    && matches!(f, Finding::Matches { .. })
            })
        });
    // The return path's MX record coming or going changes delivery's envelope senders.
    let return_path_changed = {
        let key = |checks: &serde_json::Value| {
            checks[records::check_key(
                "RETURN_PATH",
                &records::return_path_name(&row.return_path, &row.name),
            )]["status"]
                .as_str()
                .map(|s| s == "verified")
                .unwrap_or(false)
        };
        key(&row.checks.0) != key(&verdict.checks)
    };
    let event = match verdict.event {
        Some(kind) => {
            let records: Vec<Record> = wanted.iter().map(|w| w.record.clone()).collect();
            Some((
                kind,
                json!({"id": row.id, "name": row.name, "status": verdict.status, "records": records, "checks": verdict.checks}),
            ))
        }
        None => None,
    };
    let saved = store::save_check(
        &state.pool,
        &row,
        &verdict.outcome(),
        event.as_ref().map(|(k, d)| (*k, d)),
    )
    .await?;
    if event.is_some() {
        state.waker.webhooks.wake();
        tracing::info!(domain = %row.name, status = verdict.status, "sending domain status changed");
    }
    if pending_seen && store::activate_pending(&state.pool, row.id).await? {
        tracing::info!(domain = %row.name, "DKIM key rotated: the new key signs");
    }
    if event.is_some() || pending_seen || return_path_changed {
        changed(state, row.project_id).await;
    }
    Ok(saved)
}

/// A domain's status or keys changed: the sender check and the signer learn it at once here
/// (other processes within their refresh).
async fn changed(state: &AppState, project_id: Uuid) {
    state.submissions.sender_domains_changed(project_id);
    if let Err(err) = refresh_signing(state).await {
        tracing::warn!(error = %format!("{err:#}"), "reloading sending domains' DKIM keys failed");
    }
}

/// Hands the active keys of every verified domain, opened, to the DKIM signer, and the
/// return paths in use to delivery.
pub async fn refresh_signing(state: &AppState) -> anyhow::Result<()> {
    let paths = store::return_paths(&state.pool).await?;
    state.return_paths.set(
        paths
            .into_iter()
            .map(|r| {
                (
                    r.project_id,
                    r.name.clone(),
                    records::return_path_name(&r.return_path, &r.name),
                )
            })
            .collect(),
    );
    let rows = store::signing_keys(&state.pool).await?;
    if rows.is_empty() {
        state.dkim.set_resource_keys(Vec::new());
        return Ok(());
    }
    let secrets = match secret_box(state) {
        Ok(s) => s,
        Err(err) => anyhow::bail!("{err}"),
    };
    let mut keys = Vec::with_capacity(rows.len());
    for (project, domain, key) in rows {
        match secrets.open(&context(key.id), &key.private_key) {
            Ok(pkcs8) => keys.push(ResourceKey {
                project,
                domain,
                algorithm: DkimAlgorithm::parse(&key.algorithm),
                selector: key.selector,
                pkcs8,
            }),
            Err(err) => {
                tracing::error!(domain = %domain, error = %format!("{err:#}"), "a sending domain's DKIM key does not open; its mail is not signed with it");
            }
        }
    }
    state.dkim.set_resource_keys(keys);
    Ok(())
}

async fn views(state: &AppState, rows: Vec<DomainRow>) -> ServiceResult<Vec<Domain>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let all_keys = store::keys(&state.pool, &ids).await?;
    let mut tracks_by: HashMap<Uuid, bool> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let t = match tracks_by.get(&row.project_id) {
            Some(t) => *t,
            None => {
                let t = tracks(state, row.project_id).await?;
                tracks_by.insert(row.project_id, t);
                t
            }
        };
        let keys: Vec<KeyRow> = all_keys
            .iter()
            .filter(|k| k.domain_id == row.id)
            .cloned()
            .collect();
        out.push(shape(state, row, &keys, t));
    }
    Ok(out)
}

async fn view(state: &AppState, row: DomainRow) -> ServiceResult<Domain> {
    Ok(views(state, vec![row]).await?.remove(0))
}

fn shape(state: &AppState, row: DomainRow, keys: &[KeyRow], tracks: bool) -> Domain {
    let records = wanted(&state.config, &row, keys, tracks)
        .into_iter()
        .map(|w| w.record)
        .collect();
    let selector_of = |state: &str, algorithm: DkimAlgorithm| {
        keys.iter()
            .find(|k| k.state == state && k.algorithm == algorithm.as_str())
            .map(|k| k.selector.clone())
    };
    let (rsa, ed) = (DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256);
    Domain {
        id: row.id,
        records,
        dkim: DkimKeys {
            selector: selector_of("active", rsa).unwrap_or_default(),
            pending_selector: selector_of("pending", rsa),
            ed25519_selector: selector_of("active", ed),
            ed25519_pending_selector: selector_of("pending", ed),
            removable: keys
                .iter()
                .filter(|k| k.state == "retired")
                .map(|k| format!("{}._domainkey.{}", k.selector, row.name))
                .collect(),
        },
        return_path: records::return_path_name(&row.return_path, &row.name),
        name: row.name,
        status: row.status,
        dmarc_rua: row.dmarc_rua,
        created_at: row.created_at,
        last_checked_at: row.last_checked_at,
    }
}

/// The background checker: due domains are claimed (any instance may take them) and
/// checked; the signer's keys are reloaded as often, so every process signs with what the
/// others verified.
pub async fn run(state: AppState, cancel: tokio_util::sync::CancellationToken) {
    let every =
        std::time::Duration::from_secs(state.config.domains.check_interval_secs.clamp(1, 30));
    let lease = (state.config.domains.check_interval_secs as i64).max(60);
    loop {
        if let Err(err) = refresh_signing(&state).await {
            tracing::warn!(error = %format!("{err:#}"), "reloading sending domains' DKIM keys failed");
        }
        match store::claim_due(&state.pool, 20, lease).await {
            Ok(due) => {
                for row in due {
                    let name = row.name.clone();
                    if let Err(err) = run_check(&state, row, false).await {
                        tracing::warn!(domain = %name, error = %err, "checking a sending domain failed");
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "claiming sending domains to check failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One line of `mailgate doctor` about sending domains: its name, what it found, and
/// whether that is a failure (`Err`) or only worth a look (`warning`).
pub struct Diagnosis {
    pub name: String,
    pub result: Result<String, String>,
    pub warning: bool,
}

/// For `mailgate doctor`: whether the server key opens every domain's DKIM key, and each
/// domain's required records as DNS has them now.
pub async fn diagnose(config: &crate::Config, pool: &sqlx::PgPool) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    let rows = match store::all(pool, 1000).await {
        Ok(rows) => rows,
        Err(e) => {
            out.push(Diagnosis {
                name: "domains".into(),
                result: Err(e.to_string()),
                warning: false,
            });
            return out;
        }
    };
    if rows.is_empty() {
        return out;
    }
    let sealing = match &config.secret_key {
        None => Err(format!(
            "{} sending domain(s) but MAILGATE_SECRET_KEY is not set: their DKIM keys cannot be opened (mail from them goes out unsigned) and no domain can be added",
            rows.len()
        )),
        Some(secret) => match SecretBox::new(secret.expose_secret()) {
            Err(e) => Err(e.to_string()),
            Ok(secrets) => match store::sealed_keys(pool).await {
                Err(e) => Err(e.to_string()),
                Ok(keys) => {
                    let closed: Vec<String> = keys
                        .iter()
                        .filter(|(id, sealed)| secrets.open(&context(*id), sealed).is_err())
                        .map(|(_, sealed)| {
                            crate::secrets::key_id(sealed).unwrap_or("?").to_string()
                        })
                        .collect();
                    if closed.is_empty() {
                        Ok(format!(
                            "{} DKIM key(s) open with MAILGATE_SECRET_KEY (sealing key {})",
                            keys.len(),
                            secrets.current_id()
                        ))
                    } else {
                        Err(format!(
                            "{} DKIM key(s) do not open: sealed under key id(s) {} that MAILGATE_SECRET_KEY does not hold (keep the old key after the new one: new,old)",
                            closed.len(),
                            closed.join(", ")
                        ))
                    }
                }
            },
        },
    };
    out.push(Diagnosis {
        name: "domain keys".into(),
        result: sealing,
        warning: false,
    });
    let dns = match crate::delivery::dns::Dns::build_uncached(&config.dns) {
        Ok(dns) => dns,
        Err(e) => {
            out.push(Diagnosis {
                name: "domains".into(),
                result: Err(format!("no DNS resolver: {e:#}")),
                warning: false,
            });
            return out;
        }
    };
    let all_keys = store::keys(pool, &rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .await
        .unwrap_or_default();
    for row in rows {
        let keys: Vec<KeyRow> = all_keys
            .iter()
            .filter(|k| k.domain_id == row.id)
            .cloned()
            .collect();
        let wanted = wanted(config, &row, &keys, false);
        let mut problems = Vec::new();
        for w in wanted.iter().filter(|w| w.record.required) {
            match check::look(&dns, w).await {
                Finding::Matches { .. } => {}
                Finding::Wrong { problem, .. } => problems.push(format!(
                    "{} {} {}: {problem}",
                    w.record.record, w.record.kind, w.record.name
                )),
                Finding::Unknown(why) => problems.push(format!(
                    "{} {}: DNS did not answer ({why})",
                    w.record.record, w.record.name
                )),
            }
        }
        out.push(Diagnosis {
            name: format!("domain {}", row.name),
            warning: !problems.is_empty(),
            result: Ok(if problems.is_empty() {
                format!("{}: every required record is published", row.status)
            } else {
                format!("{}: {}", row.status, problems.join("; "))
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_report_addresses_follow_their_patterns() {
        for ok in [
            "example.com",
            "Shop.Test.",
            "xn--bcher-kva.example",
            "a-b.c1.d",
        ] {
            assert!(parse_name(ok).is_ok(), "{ok}");
        }
        assert_eq!(parse_name("Shop.Test.").unwrap(), "shop.test");
        for bad in [
            "localhost",
            " example.com",
            "-a.com",
            "a-.com",
            "a..com",
            "bücher.example",
            "a.com..",
            "",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
        assert!(parse_name(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(parse_rua("mailto:dmarc@example.com").is_ok());
        for bad in [
            "dmarc@example.com",
            "mailto:a@b",
            "mailto:a b@example.com",
            "mailto:a@example.com,mailto:b@example.com",
        ] {
            assert!(parse_rua(bad).is_err(), "{bad}");
        }
    }
}
