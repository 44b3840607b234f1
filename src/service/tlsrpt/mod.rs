//! TLS reporting (RFC 8460): the daily aggregate report of direct delivery's TLS sessions
//! to each recipient domain that publishes a `_smtp._tls` TXT record (`v=TLSRPTv1;
//! rua=…`). Sessions are counted by `delivery::tls_policy::tlsrpt`; this module flushes the
//! counts, and once a day (from `tlsrpt.send_hour`, UTC) sends yesterday's reports.
//!
//! Every instance runs [`Reporter::run`]. A report is a row of `tlsrpt_reports` that one
//! instance at a time claims for a lease, so each (day, domain) report goes out once; a
//! failed send is retried with a doubling wait, to the `rua` URIs that did not take it yet,
//! and given up after `tlsrpt.max_attempts` (logged as an error). `mailgate tlsrpt send
//! --day YYYY-MM-DD` runs one day's reports at once ([`Reporter::send_day`]).
//!
//! - `report`: the report of one domain and day, as mail-auth's types, gzipped JSON.
//! - `transport`: `https:` POST and `mailto:` through mailgate's own queue.

pub mod report;
mod transport;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{NaiveDate, Timelike, Utc};
use mail_auth::{
    common::parse::TxtRecordParser,
    mta_sts::{ReportUri, TlsRpt},
};
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, TlsrptConfig},
    delivery::{dns::Dns, tls_policy::tlsrpt::SessionLog},
    domain::EmailAddress,
    store::{
        self,
        tlsrpt::{ClaimedReport, Settled},
    },
    submission::SubmissionCore,
};

/// How long an instance holds a report it is sending before another may take it.
const LEASE_SECS: f64 = 300.0;
/// The longest wait between two attempts at one report.
const MAX_RETRY_SECS: f64 = 6.0 * 3600.0;

/// What came of one report's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub day: NaiveDate,
    pub domain: String,
    pub report_id: String,
    /// `sent`, `skipped` (no TLS-RPT record), `retry` or `failed`.
    pub status: &'static str,
    /// Why it was not sent (or skipped).
    pub error: Option<String>,
    /// Each `rua` tried this time, and what came of it (`Ok` with the mail's id for
    /// `mailto:`, empty for `https:`).
    pub tried: Vec<(String, Result<String, String>)>,
}

/// Sends the daily reports; cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    config: TlsrptConfig,
    sessions: Arc<SessionLog>,
    dns: Arc<Dns>,
    https: transport::Https,
    submissions: SubmissionCore,
    max_message_bytes: usize,
}

impl Reporter {
    /// A reporter for `config`, counting into `sessions` (the log direct delivery records
    /// in) and mailing reports through `submissions`.
    pub fn new(
        config: &Config,
        pool: PgPool,
        sessions: Arc<SessionLog>,
        submissions: SubmissionCore,
    ) -> anyhow::Result<Self> {
        // Uncached, so a record published a moment ago counts.
        let dns = Dns::build_uncached(&config.dns).context("tlsrpt: the resolver")?;
        let roots = Arc::new(roots(config)?);
        Ok(Self {
            inner: Arc::new(Inner {
                https: transport::Https {
                    dns: dns.clone(),
                    roots,
                    timeout: config.tlsrpt.timeout(),
                    allow_private: config.tlsrpt.allow_private_targets,
                },
                pool,
                config: config.tlsrpt.clone(),
                sessions,
                dns,
                submissions,
                max_message_bytes: config.http.max_message_bytes,
            }),
        })
    }

    /// A reporter for a process that delivers nothing (`mailgate tlsrpt send`): its mail
    /// goes into the queue for the serving instances to deliver.
    pub async fn standalone(config: &Config) -> anyhow::Result<Self> {
        let pool = store::connect(config.database_url.expose(), 4).await?;
        store::migrate(&pool).await?;
        let relays = crate::delivery::Relays::build(
            &config.relay_map(),
            &config.pools,
            &config.dns,
            config.delivery.smtp_timeout(),
        )?;
        let submissions = SubmissionCore::new(
            pool.clone(),
            crate::store::group_commit::GroupCommit::start(pool.clone(), 2),
            crate::templates::TemplateCache::default(),
            Arc::new(relays),
            crate::queue::wake::Wakers::default().mail,
            config.http.max_message_bytes,
            config.http.max_schedule_days,
        );
        Self::new(config, pool, Arc::default(), submissions)
    }

    /// Adds this process's session counts to Postgres now.
    pub async fn flush(&self) -> sqlx::Result<usize> {
        self.inner.sessions.flush(&self.inner.pool).await
    }

    /// Sends `day`'s reports now (those not sent yet, and not given up or waiting for a
    /// retry), after adding this process's counts; returns what came of each.
    pub async fn send_day(&self, day: NaiveDate) -> anyhow::Result<Vec<Attempt>> {
        self.flush().await.context("flushing TLS-RPT counts")?;
        store::tlsrpt::open_reports(&self.inner.pool, day).await?;
        self.send_claimed(Some(day)).await
    }

    /// Sends every report that is due: new ones and retries whose time has come.
    pub async fn send_due(&self) -> anyhow::Result<Vec<Attempt>> {
        self.send_claimed(None).await
    }

    async fn send_claimed(&self, day: Option<NaiveDate>) -> anyhow::Result<Vec<Attempt>> {
        let mut done = Vec::new();
        while let Some(report) = store::tlsrpt::claim(&self.inner.pool, day, LEASE_SECS).await? {
            done.push(self.attempt(report).await?);
        }
        Ok(done)
    }

    /// One attempt at a claimed report: look up the domain's `rua`, build the report, send
    /// it to each `rua` that has not got it, and settle the row.
    async fn attempt(&self, report: ClaimedReport) -> anyhow::Result<Attempt> {
        let inner = &self.inner;
        let domain = report.policy_domain.clone();
        let mut attempt = Attempt {
            day: report.day,
            domain: domain.clone(),
            report_id: report.report_id.clone(),
            status: "sent",
            error: None,
            tried: Vec::new(),
        };
        let rua = match self.rua(&domain).await {
            Ok(Some(rua)) => rua,
            Ok(None) => {
                let why = format!("_smtp._tls.{domain} publishes no TLSRPTv1 record");
                store::tlsrpt::settle(
                    &inner.pool,
                    &report,
                    &report.delivered_to,
                    Settled::Skipped(&why),
                )
                .await?;
                attempt.status = "skipped";
                attempt.error = Some(why);
                return Ok(attempt);
            }
            Err(why) => {
                return self.failed(report, attempt, Vec::new(), why).await;
            }
        };
        let rows = store::tlsrpt::sessions(&inner.pool, report.day, &domain).await?;
        let by = report::Reporter {
            org_name: inner.config.org_name.as_deref().unwrap_or_default(),
            contact: inner.config.contact.as_deref().unwrap_or_default(),
        };
        let built = report::build(&by, &report.report_id, &domain, report.day, &rows);
        let gzipped = report::gzipped_json(&built).context("gzipping the report")?;
        let mut delivered = report.delivered_to.clone();
        let mut errors = Vec::new();
        for uri in rua {
            let (name, transport) = match &uri {
                ReportUri::Http(url) => (url.clone(), "https"),
                ReportUri::Mail(to) => (format!("mailto:{to}"), "mailto"),
            };
            if delivered.contains(&name) {
                continue;
            }
            let result = match &uri {
                ReportUri::Http(url) => inner
                    .https
                    .post(url, &gzipped)
                    .await
                    .map(|()| String::new()),
                ReportUri::Mail(to) => self.mail(&built, &domain, to, &gzipped).await,
            };
            let outcome = if result.is_ok() { "sent" } else { "failed" };
            metrics::counter!("mailgate_tlsrpt_reports_total", "transport" => transport, "result" => outcome)
                .increment(1);
            match &result {
                Ok(_) => delivered.push(name.clone()),
                Err(why) => errors.push(why.clone()),
            }
            attempt.tried.push((name, result));
        }
        if errors.is_empty() {
            store::tlsrpt::settle(&inner.pool, &report, &delivered, Settled::Sent).await?;
            tracing::info!(%domain, day = %report.day, report_id = %report.report_id, "TLS-RPT report sent");
            return Ok(attempt);
        }
        let tried = attempt.tried.clone();
        let mut attempt = self
            .failed(report, attempt, delivered, errors.join("; "))
            .await?;
        attempt.tried = tried;
        Ok(attempt)
    }

    /// Settles a failed attempt: retried later, or given up after `max_attempts`.
    async fn failed(
        &self,
        report: ClaimedReport,
        mut attempt: Attempt,
        delivered: Vec<String>,
        why: String,
    ) -> anyhow::Result<Attempt> {
        let inner = &self.inner;
        attempt.error = Some(why.clone());
        let delivered = if delivered.is_empty() {
            report.delivered_to.clone()
        } else {
            delivered
        };
        if report.attempts >= inner.config.max_attempts {
            tracing::error!(
                domain = %report.policy_domain,
                day = %report.day,
                attempts = report.attempts,
                error = %why,
                "TLS-RPT report given up after tlsrpt.max_attempts"
            );
            store::tlsrpt::settle(&inner.pool, &report, &delivered, Settled::Failed(&why)).await?;
            attempt.status = "failed";
        } else {
            let retry_secs = (inner.config.retry_secs
                * 2f64.powi(report.attempts.saturating_sub(1).min(30)))
            .min(MAX_RETRY_SECS);
            tracing::warn!(
                domain = %report.policy_domain,
                day = %report.day,
                attempt = report.attempts,
                retry_secs,
                error = %why,
                "TLS-RPT report not sent; will retry"
            );
            store::tlsrpt::settle(
                &inner.pool,
                &report,
                &delivered,
                Settled::Retry {
                    retry_secs,
                    error: &why,
                },
            )
            .await?;
            attempt.status = "retry";
        }
        Ok(attempt)
    }

    /// The `rua` of `domain`'s one `v=TLSRPTv1` record; none without one (or with several,
    /// RFC 8460 §3: then there is no valid record).
    async fn rua(&self, domain: &str) -> Result<Option<Vec<ReportUri>>, String> {
        let records = match self.inner.dns.txt(&format!("_smtp._tls.{domain}")).await {
            Ok(records) => records,
            Err(crate::delivery::dns::DnsFailure::NoSuchDomain(_)) => return Ok(None),
            Err(err) => return Err(format!("_smtp._tls.{domain} TXT: {err}")),
        };
        let mut found: Vec<TlsRpt> = records
            .iter()
            .filter(|r| r.starts_with(b"v=TLSRPTv1"))
            .filter_map(|r| TlsRpt::parse(r).ok())
            .collect();
        Ok(match found.len() {
            1 => Some(found.remove(0).rua).filter(|rua| !rua.is_empty()),
            _ => None,
        })
    }

    async fn mail(
        &self,
        report: &mail_auth::report::tlsrpt::TlsReport,
        domain: &str,
        to: &str,
        gzipped: &[u8],
    ) -> Result<String, String> {
        let inner = &self.inner;
        let from = inner
            .config
            .from_address()
            .ok_or("no tlsrpt.from")
            .and_then(|f| EmailAddress::parse(f).map_err(|_| "tlsrpt.from is not an address"))?;
        let (project, _) = store::projects::ensure(&inner.pool, &inner.config.project)
            .await
            .map_err(|e| format!("the tlsrpt.project {}: {e}", inner.config.project))?;
        let mail = transport::Mail {
            submissions: inner.submissions.clone(),
            project_id: project.id,
            from,
            max_bytes: inner.max_message_bytes,
        };
        mail.send(report, domain, to, gzipped)
            .await
            .map(|id| id.to_string())
    }

    /// Every instance's loop: flushes counts every `tlsrpt.flush_secs`; every
    /// `tlsrpt.interval_secs` from `send_hour` on, opens yesterday's reports and sends those
    /// due, and deletes what is older than `keep_days`. Flushes once more when cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        let config = &self.inner.config;
        let mut flush = tokio::time::interval(config.flush_every());
        let mut check = tokio::time::interval(Duration::from_secs(config.interval_secs.max(1)));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = flush.tick() => {
                    if let Err(err) = self.flush().await {
                        tracing::warn!(error = %err, "TLS-RPT: adding session counts failed; kept for the next flush");
                    }
                }
                _ = check.tick() => {
                    if let Err(err) = self.daily().await {
                        tracing::warn!(error = %format!("{err:#}"), "TLS-RPT: sending reports failed; will retry");
                    }
                }
            }
        }
        if let Err(err) = self.flush().await {
            tracing::warn!(error = %err, "TLS-RPT: the last session counts were lost");
        }
    }

    async fn daily(&self) -> anyhow::Result<()> {
        let now = Utc::now();
        let pool = &self.inner.pool;
        if now.hour() >= self.inner.config.send_hour {
            let yesterday = now.date_naive() - chrono::Days::new(1);
            store::tlsrpt::open_reports(pool, yesterday).await?;
        }
        self.send_due().await?;
        let before = now.date_naive() - chrono::Days::new(self.inner.config.keep_days as u64);
        store::tlsrpt::purge_before(pool, before).await?;
        Ok(())
    }
}

/// The web PKI roots, plus `tls_policy.ca_file` and `tlsrpt.ca_file`.
fn roots(config: &Config) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in [&config.tls_policy.ca_file, &config.tlsrpt.ca_file]
        .into_iter()
        .flatten()
    {
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read {}", path.display()))?
        {
            let cert = cert.with_context(|| format!("{}: not PEM certificates", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("{}", path.display()))?;
        }
    }
    Ok(roots)
}
