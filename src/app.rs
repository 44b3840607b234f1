//! The application: API, metrics listener, SMTP listener, delivery workers and the queue
//! waker of one process, built from config and run until a cancellation token fires (SIGTERM
//! in `serve`, the end of a test).

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use sqlx::PgPool;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    api,
    config::Config,
    delivery::{Deliverer, DeliveryRunner, DkimKeys, Relays, ReturnPath},
    inbound::{Domains, InboundQueue, InboundRunner, Inbox, Processor},
    queue::{holder::Holder, mail::MailQueue, wake::Wakers},
    ratelimit::{AuthThrottle, Limiter, SharedRedis, pace::RelayPacer},
    retention,
    scan::Scanner,
    service::{client_addr::TrustedProxies, gate::Gate, tlsrpt::Reporter},
    smtp::{SmtpListener, limit::SubmissionLimiter},
    store,
    store::{group_commit::GroupCommit, projects::ProjectCache},
    submission::SubmissionCore,
    templates::TemplateCache,
    tokens::TokenKey,
    webhooks,
};

pub use crate::service::AppState;

pub struct Application {
    listener: Option<TcpListener>,
    /// The Prometheus listener (`metrics.addr`), apart from the API's.
    metrics: Option<TcpListener>,
    state: AppState,
    delivery: Option<DeliveryRunner>,
    smtp: Option<SmtpListener>,
    webhooks: Option<webhooks::WebhookRunner>,
    /// The MX-facing listener for bounces, complaints and inbound mail (`inbound.addr`).
    inbound: Option<SmtpListener>,
    inbound_runner: Option<InboundRunner>,
    scanner: Option<Arc<Scanner>>,
    dkim: Arc<DkimKeys>,
    /// This process as the holder of its runners' leases (when workers are on).
    holder: Option<Holder>,
    /// TLS-RPT counts and daily reports (when `tlsrpt.enabled` and workers are on).
    tlsrpt: Option<Reporter>,
}

impl Application {
    /// Connects, migrates, builds the relays and binds the HTTP port (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        crate::telemetry::metrics();
        crate::tls::install_provider();
        let pool = store::connect(config.database_url.expose(), config.database_pool_size).await?;
        store::migrate(&pool).await?;
        // One Redis handle for rate limits and relay pacing: its health is tracked once.
        let redis = SharedRedis::from_config(&config)?;
        // TLS-RPT: direct delivery counts its sessions here, the reporter flushes them.
        let tlsrpt_sessions = config
            .tlsrpt
            .enabled
            .then(|| Arc::new(crate::delivery::tls_policy::tlsrpt::SessionLog::default()));
        // Relays with a rate or a connection cap share it with every process through Redis.
        let relays = Arc::new(
            Relays::build(
                &config.relay_map(),
                &config.pools,
                &config.dns,
                config.delivery.smtp_timeout(),
            )?
            .with_pacer(Arc::new(RelayPacer::new(&config, redis.clone())))
            .with_tls_policies(
                &config.tls_policy,
                pool.clone(),
                config.delivery.smtp_timeout(),
                tlsrpt_sessions.clone(),
            )?
            .with_shaping(Arc::new(crate::delivery::direct::Shaping::new(
                &config.shaping_map(),
            ))),
        );
        let dkim = Arc::new(DkimKeys::load(&config.dkim)?);
        let return_paths = crate::delivery::SendingReturnPaths::default();
        let waker = Wakers::default();
        let tokens = TokenKey::new(
            &store::server_keys::load_or_create(&pool, "tokens")
                .await
                .context("cannot load the server's token key")?,
        );
        let domains = Domains::new(pool.clone(), config.bounce.domain.as_deref());
        let limiter = Limiter::new(&config, redis);
        let auth_throttle = AuthThrottle::per_minute(config.ratelimit.auth_failures_per_minute);
        let listener = if config.api_enabled {
            Some(
                TcpListener::bind(config.http_addr)
                    .await
                    .with_context(|| format!("cannot listen on {}", config.http_addr))?,
            )
        } else {
            None
        };
        // Every process has metrics, API or not (a workers-only process too).
        let metrics = if config.metrics.enabled {
            Some(
                TcpListener::bind(config.metrics.addr)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot listen for metrics on {} (metrics.addr; another process on this host may have it: give each its own, or set metrics.enabled = false)",
                            config.metrics.addr
                        )
                    })?,
            )
        } else {
            None
        };
        // Every lease this process takes names it, so others take its work back as soon
        // as it stops beating (`queue::holder`).
        let holder = if config.workers_enabled {
            let mut listeners = Vec::new();
            if config.api_enabled {
                listeners.push(("http", config.http_addr));
            }
            if config.smtp.enabled {
                listeners.push(("smtp", config.smtp_addr));
            }
            if let Some(addr) = config.inbound.addr {
                listeners.push(("inbound", addr));
            }
            if config.metrics.enabled {
                listeners.push(("metrics", config.metrics.addr));
            }
            let identity = crate::queue::holder::identity(&listeners);
            Some(
                Holder::register(&pool, identity.as_deref())
                    .await
                    .context("cannot register this process as a lease holder")?,
            )
        } else {
            None
        };
        // Runners exist only with workers on, so only with a holder.
        let owner = holder.as_ref();
        let delivery = config.workers_enabled.then(|| {
            DeliveryRunner::new(
                MailQueue::new(pool.clone(), waker.webhooks.clone()),
                Deliverer::new(relays.clone(), config.delivery.clone())
                    .with_dkim(dkim.clone())
                    .with_return_path(Some(ReturnPath {
                        domain: config.bounce.domain.clone(),
                        key: tokens.clone(),
                        sending: return_paths.clone(),
                    })),
                waker.mail.clone(),
                config.delivery.runner.clone(),
            )
            .held_by(owner.expect("workers on: registered"))
        });
        // Webhooks get their own runner and slots, so endpoints never slow mail down.
        let webhooks = if config.workers_enabled && config.webhooks.workers_enabled {
            Some(
                webhooks::WebhookRunner::new(
                    webhooks::WebhookQueue::new(pool.clone(), &config.webhooks),
                    webhooks::Sender::new(config.webhooks.clone())?,
                    waker.webhooks.clone(),
                    config.webhooks.runner.clone(),
                )
                .held_by(owner.expect("workers on: registered")),
            )
        } else {
            None
        };
        // Every instance processes inbound mail, whichever instance's listener took it.
        let inbound_runner = config.workers_enabled.then(|| {
            InboundRunner::new(
                InboundQueue::new(pool.clone(), waker.webhooks.clone()),
                Processor::new(
                    pool.clone(),
                    domains.clone(),
                    tokens.clone(),
                    &config.inbound,
                ),
                waker.inbound.clone(),
                config.inbound.runner.clone(),
            )
            .held_by(owner.expect("workers on: registered"))
        });
        let inbound = match config.inbound.addr {
            Some(_) => Some(
                SmtpListener::bind_inbound(
                    &config,
                    Inbox::new(
                        pool.clone(),
                        domains,
                        tokens.clone(),
                        &config.inbound,
                        waker.inbound.clone(),
                    ),
                )
                .await?,
            ),
            None => None,
        };
        // A quarter of the pool commits sends: enough that a lone send never waits for a
        // committer, few enough that a burst forms groups instead of a queue of statements.
        let committers = (config.database_pool_size as usize / 4).clamp(2, 8);
        let projects = ProjectCache::default();
        let scanner = Scanner::new(&config.scan, pool.clone(), projects.clone())?.map(Arc::new);
        let templates = TemplateCache::default();
        let submissions = SubmissionCore::new(
            pool.clone(),
            GroupCommit::start(pool.clone(), committers),
            templates.clone(),
            relays.clone(),
            waker.mail.clone(),
            config.http.max_message_bytes,
            config.http.max_schedule_days,
        )
        .with_max_request_rendered(config.http.max_request_bytes_rendered)
        .with_required_sender_domains(config.domains.require_verified)
        .with_projects(projects.clone())
        .with_scanner(scanner.clone())
        .with_tracker(config.tracking.base().map(|base| {
            Arc::new(crate::tracking::Tracker::new(
                base,
                tokens.clone(),
                pool.clone(),
                projects.clone(),
            ))
        }));
        let gate = Gate::new(
            pool.clone(),
            limiter,
            auth_throttle,
            config.http.key_cache_secs,
            config.jwt_secret.clone(),
        )
        .with_trusted_proxies(TrustedProxies::new(config.http.trusted_proxies()?));
        // Sending domains are checked without a cache: a record counts once it is published.
        // A resolver that cannot be built (no resolv.conf) fails their checks, not the start.
        let dns = match crate::delivery::dns::Dns::build_uncached(&config.dns) {
            Ok(dns) => Some(dns),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "no DNS resolver: sending domains cannot be checked");
                None
            }
        };
        let state = AppState {
            pool,
            config: Arc::new(config),
            relays,
            waker,
            templates,
            gate,
            submissions,
            tokens,
            dkim: dkim.clone(),
            return_paths,
            dns,
            drain: Default::default(),
        };
        // Mail relayed from the start is signed with the verified domains' keys.
        if let Err(err) = crate::service::domains::refresh_signing(&state).await {
            tracing::warn!(error = %format!("{err:#}"), "sending domains' DKIM keys are not loaded");
        }
        let smtp = if state.config.smtp.enabled {
            let mut listener = SmtpListener::bind(
                &state.config,
                state.pool.clone(),
                state.submissions.clone(),
                state.gate.clone(),
            )
            .await?;
            // SMTP mail counts against the same send buckets as HTTP sends.
            listener.set_limiter(Arc::new(state.gate.clone()));
            Some(listener)
        } else {
            None
        };
        let tlsrpt = match tlsrpt_sessions {
            Some(sessions) if state.config.workers_enabled => Some(Reporter::new(
                &state.config,
                state.pool.clone(),
                sessions,
                state.submissions.clone(),
            )?),
            _ => None,
        };
        // Asks Redis once, so the start-up log warns when it does not answer; that alone is
        // no reason to stay down.
        let limits = state.gate.limiter().status().await;
        if limits.redis == Some("down") {
            explain_redis_down(&state.config).await;
        }
        Ok(Self {
            listener,
            metrics,
            state,
            delivery,
            smtp,
            webhooks,
            inbound,
            inbound_runner,
            scanner,
            dkim,
            holder,
            tlsrpt,
        })
    }

    /// The TLS-RPT reporter (when `tlsrpt.enabled` and workers are on).
    pub fn tlsrpt(&self) -> Option<&Reporter> {
        self.tlsrpt.as_ref()
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where `/metrics` is served, when `metrics.enabled`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The SMTP submission listener's STARTTLS port.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().and_then(SmtpListener::local_addr)
    }

    /// The SMTP listener's implicit-TLS port, when configured.
    pub fn smtp_implicit_tls_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().and_then(SmtpListener::implicit_tls_addr)
    }

    /// The inbound listener's port, when `inbound.addr` is set.
    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        self.inbound.as_ref().and_then(SmtpListener::local_addr)
    }

    /// The inbound queue's runner (when workers are on).
    pub fn inbound_runner(&self) -> Option<&InboundRunner> {
        self.inbound_runner.as_ref()
    }

    /// Rate-limits SMTP submission (one unit per message); see `smtp::limit`.
    pub fn set_smtp_limiter(&mut self, limiter: Arc<dyn SubmissionLimiter>) {
        if let Some(smtp) = &mut self.smtp {
            smtp.set_limiter(limiter);
        }
    }

    /// The mail queue's runner (when workers are on); clones share its lease owner.
    pub fn delivery_runner(&self) -> Option<&DeliveryRunner> {
        self.delivery.as_ref()
    }

    /// The webhook queue's runner (when workers and webhooks are on).
    pub fn webhook_runner(&self) -> Option<&webhooks::WebhookRunner> {
        self.webhooks.as_ref()
    }

    pub fn pool(&self) -> &PgPool {
        &self.state.pool
    }

    /// The limiter the API uses; the SMTP listener and tests charge the same buckets.
    pub fn limiter(&self) -> &Limiter {
        self.state.gate.limiter()
    }

    /// What this process does, in one line for the start-up log.
    pub fn describe(&self) -> String {
        let c = &self.state.config;
        format!(
            "http={} metrics={} smtp={} inbound={} workers={} webhooks={} relay={} database={} rate_limits={} dkim={} scan={}",
            self.http_addr()
                .map_or("off".to_string(), |a| a.to_string()),
            self.metrics_addr()
                .map_or("off".to_string(), |a| a.to_string()),
            self.smtp
                .as_ref()
                .map_or("off".to_string(), SmtpListener::describe),
            self.inbound
                .as_ref()
                .map_or("off".to_string(), SmtpListener::describe),
            self.delivery
                .as_ref()
                .map_or("off".to_string(), |r| format!(
                    "{} in flight",
                    r.settings().concurrency
                )),
            self.webhooks
                .as_ref()
                .map_or("off".to_string(), |r| format!(
                    "{} in flight",
                    r.settings().concurrency
                )),
            self.state.relays.describe(),
            c.database_url,
            self.state.gate.limiter().describe(),
            if self.dkim.is_empty() {
                "off".to_string()
            } else {
                self.dkim.domains().join(",")
            },
            self.scanner
                .as_ref()
                .map_or("off".to_string(), |s| s.describe()),
        )
    }

    /// Runs until `cancel` fires, then drains and shuts down gracefully: `/readyz` answers
    /// 503 for `http.drain_secs` while everything still runs (so a load balancer stops
    /// routing here first), then the listeners close, requests and SMTP sessions in flight
    /// finish and the runners hand back what they have not started. Dropping the future
    /// instead stops everything at once, like a killed process (the tests' crash simulation).
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let drain = self.state.drain.clone();
        let drain_for = std::time::Duration::from_secs(self.state.config.http.drain_secs);
        let draining = {
            let stop = stop.clone();
            async move {
                cancel.cancelled().await;
                drain.start();
                if !drain_for.is_zero() {
                    tracing::info!(
                        drain_secs = drain_for.as_secs(),
                        "shutting down: /readyz answers 503; still serving until the drain ends"
                    );
                    tokio::time::sleep(drain_for).await;
                }
                stop.cancel();
            }
        };
        let mut background = JoinSet::new();
        background.spawn(draining);
        // Everything below stops when the drain ends.
        let cancel = stop;
        background.spawn(
            self.state
                .waker
                .clone()
                .run(self.state.pool.clone(), cancel.child_token()),
        );
        background.spawn(retention::run(
            self.state.pool.clone(),
            self.state.config.retention.clone(),
            self.state.config.scan.hold_hours,
            cancel.child_token(),
        ));
        if let Some(smtp) = self.smtp {
            background.spawn(smtp.run(cancel.child_token()));
        }
        // Sending domains' checks run where the workers run.
        if self.state.config.workers_enabled {
            background.spawn(crate::service::domains::run(
                self.state.clone(),
                cancel.child_token(),
            ));
        }
        if let Some(listener) = self.metrics {
            let router = api::metrics::router(self.state.pool.clone());
            let stop = cancel.child_token();
            background.spawn(async move {
                if let Err(err) = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %err, "the metrics listener failed");
                }
            });
        }
        if let Some(inbound) = self.inbound {
            background.spawn(inbound.run(cancel.child_token()));
        }
        // The holder beats until the runners have finished or handed back their work.
        let holder_stop = CancellationToken::new();
        let mut holder = JoinSet::new();
        if let Some(h) = self.holder {
            holder.spawn(h.run(self.state.pool.clone(), holder_stop.clone()));
        }
        // TLS-RPT stops after the delivery runners, so it flushes their last sessions.
        let tlsrpt_stop = CancellationToken::new();
        if let Some(reporter) = self.tlsrpt {
            background.spawn(reporter.run(tlsrpt_stop.clone()));
        }
        let mut workers = JoinSet::new();
        if let Some(runner) = self.delivery {
            workers.spawn(runner.run(cancel.child_token()));
        }
        if let Some(runner) = self.webhooks {
            workers.spawn(runner.run(cancel.child_token()));
        }
        if let Some(runner) = self.inbound_runner {
            workers.spawn(runner.run(cancel.child_token()));
        }
        if let Some(listener) = self.listener {
            let mut router = api::router(self.state.clone());
            if self.state.config.console.enabled {
                router = router.merge(crate::console::router(self.state.clone()));
            }
            // While draining, every answer closes its connection, so clients holding
            // keep-alive connections open new ones, which the load balancer sends elsewhere.
            let drain = self.state.drain.clone();
            router = router.layer(axum::middleware::map_response(
                move |mut response: axum::response::Response| {
                    let drain = drain.clone();
                    async move {
                        if drain.is_draining() {
                            response.headers_mut().insert(
                                axum::http::header::CONNECTION,
                                axum::http::HeaderValue::from_static("close"),
                            );
                        }
                        response
                    }
                },
            ));
            // Client addresses feed the failed-authentication throttle.
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, service)
                .with_graceful_shutdown(cancel.clone().cancelled_owned())
                .await
                .context("HTTP server failed")?;
        } else {
            cancel.cancelled().await;
        }
        while let Some(result) = workers.join_next().await {
            result.context("a queue runner panicked")?;
        }
        tlsrpt_stop.cancel();
        holder_stop.cancel();
        while holder.join_next().await.is_some() {}
        while background.join_next().await.is_some() {}
        Ok(())
    }
}

/// A Redis that refuses the TLS handshake is a misconfiguration (CA file, certificate), not
/// an outage: it is logged as an error that names the cause. mailgate still starts, and rate
/// limits fall back as for an outage (`ratelimit.on_redis_error`), so a certificate rotated on
/// the Redis side does not take every process down; `mailgate doctor` fails on it.
async fn explain_redis_down(config: &Config) {
    let Some(url) = &config.redis_url else {
        return;
    };
    let check = crate::ratelimit::check_redis(
        url.expose(),
        &config.redis,
        std::time::Duration::from_secs(3),
    )
    .await;
    if let Err(crate::ratelimit::RedisCheck::Tls(why)) = check {
        let meanwhile = match config.ratelimit.on_redis_error {
            crate::config::RedisFailureMode::FailOpen => {
                "rate limits are per process (on_redis_error = fail_open)"
            }
            crate::config::RedisFailureMode::FailClosed => {
                "authenticated requests get 503 (on_redis_error = fail_closed)"
            }
        };
        tracing::error!(
            "could not connect to Redis at {url}: {why}; until this is fixed {meanwhile}"
        );
    }
}
