//! Delivery workers: claim due recipients, relay each through its upstream pool, record
//! what the upstream said. One SMTP transaction per recipient keeps every outcome exact.

pub mod classify;
pub mod dkim;
pub mod relay;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use lettre::address::Envelope;
use sqlx::PgPool;
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    config::DeliveryConfig,
    domain::RecipientStatus,
    queue::{self, Job, Outcome, wake::Waker},
};
pub use dkim::DkimKeys;
pub use relay::Relays;

#[derive(Clone)]
pub struct Worker {
    pool: PgPool,
    relays: Arc<Relays>,
    config: DeliveryConfig,
    /// Fences this process's leases.
    owner: Uuid,
    waker: Waker,
    dkim: Arc<DkimKeys>,
}

type InFlight = Arc<Mutex<HashSet<i64>>>;

impl Worker {
    pub fn new(pool: PgPool, relays: Arc<Relays>, config: DeliveryConfig, waker: Waker) -> Self {
        Self {
            pool,
            relays,
            config,
            owner: Uuid::now_v7(),
            waker,
            dkim: Arc::default(),
        }
    }

    /// Signs relayed mail with these keys (none by default).
    pub fn with_dkim(mut self, keys: Arc<DkimKeys>) -> Self {
        self.dkim = keys;
        self
    }

    fn lease_secs(&self) -> f64 {
        self.config.lease().as_secs_f64()
    }

    /// Claims one batch, delivers it and records the outcomes; returns how many were handled.
    /// Tests use it to drive the queue step by step.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let jobs = queue::claim(
            &self.pool,
            self.owner,
            self.config.claim_batch,
            self.lease_secs(),
        )
        .await?;
        let outcomes =
            futures_util::future::join_all(jobs.into_iter().map(|job| self.deliver(job))).await;
        queue::complete(&self.pool, self.owner, &outcomes).await?;
        Ok(outcomes.len())
    }

    /// Runs until `cancel`, then stops claiming, lets in-flight deliveries finish for the
    /// grace period, and hands back whatever is left.
    pub async fn run(self, cancel: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        let in_flight: InFlight = Arc::default();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Outcome>();
        // Helpers live in JoinSets, so dropping this future (a killed worker in tests)
        // aborts them too, exactly like a process that died.
        let mut completer = JoinSet::new();
        completer.spawn(self.clone().record_outcomes(done_rx, in_flight.clone()));
        let housekeeping_stop = CancellationToken::new();
        let mut housekeeping = JoinSet::new();
        housekeeping.spawn(
            self.clone()
                .housekeeping(in_flight.clone(), housekeeping_stop.clone()),
        );
        let mut tasks = JoinSet::new();

        let mut db_backoff = Duration::from_millis(200);
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => break,
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            while tasks.try_join_next().is_some() {}
            let want = (permits.available_permits() as i64 + 1).min(self.config.claim_batch);
            let jobs = match queue::claim(&self.pool, self.owner, want, self.lease_secs()).await {
                Ok(jobs) => {
                    db_backoff = Duration::from_millis(200);
                    jobs
                }
                Err(err) => {
                    tracing::warn!(error = %err, "claim failed; retrying");
                    drop(first);
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(db_backoff) => {}
                    }
                    db_backoff = (db_backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if jobs.is_empty() {
                drop(first);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = self.waker.notified() => {}
                    _ = tokio::time::sleep(self.config.poll_interval()) => {}
                }
                continue;
            }
            let mut first = Some(first);
            for job in jobs {
                let permit = match first.take() {
                    Some(p) => p,
                    None => permits
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore never closed"),
                };
                in_flight
                    .lock()
                    .expect("not poisoned")
                    .insert(job.recipient_id);
                let worker = self.clone();
                let done = done_tx.clone();
                tasks.spawn(async move {
                    let outcome = worker.deliver(job).await;
                    let _ = done.send(outcome);
                    drop(permit);
                });
            }
        }

        // Shutdown: no new claims; give in-flight work its grace period.
        let grace = Duration::from_secs(self.config.shutdown_grace_secs);
        let all = self.config.concurrency as u32;
        if tokio::time::timeout(grace, permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; abandoning in-flight deliveries");
            tasks.abort_all();
        }
        while tasks.join_next().await.is_some() {}
        drop(done_tx);
        while completer.join_next().await.is_some() {}
        housekeeping_stop.cancel();
        while housekeeping.join_next().await.is_some() {}
        let left: Vec<i64> = in_flight
            .lock()
            .expect("not poisoned")
            .iter()
            .copied()
            .collect();
        match queue::release(&self.pool, self.owner, &left).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "handed back unfinished deliveries"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not release leases; they will expire"),
        }
    }

    /// Writes outcomes in batches; a database outage delays them but never drops them.
    async fn record_outcomes(self, mut rx: mpsc::UnboundedReceiver<Outcome>, in_flight: InFlight) {
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < 512 {
                match rx.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            let mut wait = Duration::from_millis(100);
            loop {
                match queue::complete(&self.pool, self.owner, &batch).await {
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, pending = batch.len(), "could not record outcomes; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
            let mut set = in_flight.lock().expect("not poisoned");
            for o in batch.drain(..) {
                set.remove(&o.recipient_id);
            }
        }
    }

    /// Extends our leases while slow sends run, and puts back jobs of dead workers.
    async fn housekeeping(self, in_flight: InFlight, stop: CancellationToken) {
        let every = (self.config.lease() / 3)
            .min(self.config.poll_interval().max(Duration::from_millis(500)));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let ids: Vec<i64> = in_flight
                .lock()
                .expect("not poisoned")
                .iter()
                .copied()
                .collect();
            if let Err(err) =
                queue::extend_leases(&self.pool, self.owner, &ids, self.lease_secs()).await
            {
                tracing::warn!(error = %err, "could not extend leases");
            }
            match queue::reclaim_expired(&self.pool, 1000).await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::warn!(
                        messages = ids.len(),
                        "reclaimed deliveries whose worker stopped"
                    );
                    self.waker.wake();
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "reclaim failed"),
            }
        }
    }

    /// One attempt for one recipient, counted by outcome, relay and project.
    pub async fn deliver(&self, job: Job) -> Outcome {
        let relay = match (job.sandbox || self.relays.is_sandbox(), &job.relay) {
            (true, _) => "sandbox".to_string(),
            (false, Some(name)) => name.clone(),
            (false, None) => self
                .relays
                .pick(None)
                .map_or("none".into(), |r| r.name.clone()),
        };
        let project = job.project_id.to_string();
        // Every log line of this attempt carries the message id (an info span, so the default
        // filter keeps it; instrumented rather than entered, as the attempt awaits).
        let span =
            tracing::info_span!("deliver", message_id = %job.message_id, attempt = job.attempts);
        let outcome = self.attempt(job).instrument(span).await;
        metrics::counter!("mailgate_deliveries_total",
            "outcome" => outcome.status.as_str(), "relay" => relay, "project" => project)
        .increment(1);
        outcome
    }

    async fn attempt(&self, job: Job) -> Outcome {
        if job.sandbox || self.relays.is_sandbox() {
            return classify::sandbox(&job, self.relays.is_sandbox());
        }
        let Some(chain) = self.relays.chain(job.relay.as_deref()) else {
            let detail = format!(
                "relay `{}` is not configured",
                job.relay.as_deref().unwrap_or("default")
            );
            return self.retry_or_fail(&job, classify::Reply::transient(None, None, detail, None));
        };
        let envelope = match (job.from_addr.parse(), job.email.parse()) {
            (Ok(from), Ok(to)) => Envelope::new(Some(from), vec![to]).ok(),
            _ => None,
        };
        let Some(envelope) = envelope else {
            return classify::terminal(
                &job,
                RecipientStatus::Failed,
                "invalid envelope addresses".into(),
            );
        };
        // Failover: a relay that cannot take the message now (no answer, TLS trouble, a 4xx)
        // hands it to the next in the pool; only when all have failed is the recipient deferred.
        let signed = self.dkim.sign(&job.mime);
        let mime = signed.as_deref().unwrap_or(&job.mime);
        let mut tried = Vec::new();
        let mut last = None;
        for relay in chain {
            let started = std::time::Instant::now();
            let result = relay.send(&envelope, mime).await;
            let elapsed = started.elapsed();
            metrics::histogram!("mailgate_smtp_send_seconds", "relay" => relay.name.clone())
                .record(elapsed.as_secs_f64());
            let reply = classify::classify(result, &relay.host);
            if reply.status != RecipientStatus::Deferred {
                relay.record(elapsed, None);
                let mut reply = reply;
                if !tried.is_empty() {
                    reply.detail = Some(format!(
                        "after failover from {}{}",
                        tried.join(", "),
                        reply.detail.map(|d| format!("; {d}")).unwrap_or_default()
                    ));
                }
                return reply.into_outcome(&job, None);
            }
            let why = reply.detail.clone().unwrap_or_else(|| "deferred".into());
            relay.record(elapsed, Some(&why));
            tried.push(format!("{} ({why})", relay.name));
            last = Some(reply);
        }
        let mut reply = last.expect("a chain has at least one relay");
        if tried.len() > 1 {
            reply.detail = Some(format!("every relay failed: {}", tried.join("; ")));
        }
        self.retry_or_fail(&job, reply)
    }

    /// A transient failure is retried with exponential backoff and jitter until the
    /// attempts or the age run out; then the recipient has failed.
    fn retry_or_fail(&self, job: &Job, reply: classify::Reply) -> Outcome {
        let age = Utc::now() - job.accepted_at;
        let out_of_attempts = job.attempts >= self.config.max_attempts;
        let too_old = age.num_seconds() >= self.config.max_age_secs as i64;
        if out_of_attempts || too_old {
            let why = if out_of_attempts {
                format!("gave up after {} attempts", job.attempts)
            } else {
                format!("gave up after {} s in the queue", age.num_seconds())
            };
            let mut reply = reply;
            reply.status = RecipientStatus::Failed;
            reply.detail = Some(match reply.detail {
                Some(d) => format!("{why}; last error: {d}"),
                None => why,
            });
            return reply.into_outcome(job, None);
        }
        let delay = backoff(&self.config, job.attempts);
        let next =
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
        reply.into_outcome(job, Some(next))
    }
}

/// `base · 2^(attempt-1)`, capped, ±20 % jitter so retries from a burst do not align.
pub fn backoff(config: &DeliveryConfig, attempt: i32) -> Duration {
    use rand::Rng;
    let exp = config.retry_base_secs * 2f64.powi((attempt - 1).clamp(0, 30));
    let capped = exp.min(config.retry_max_secs);
    let jitter = rand::rng().random_range(0.8..=1.2);
    Duration::from_secs_f64((capped * jitter).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let c = DeliveryConfig {
            retry_base_secs: 10.0,
            retry_max_secs: 100.0,
            ..DeliveryConfig::default()
        };
        let first = backoff(&c, 1).as_secs_f64();
        assert!((8.0..=12.0).contains(&first), "{first}");
        let third = backoff(&c, 3).as_secs_f64();
        assert!((32.0..=48.0).contains(&third), "{third}");
        let late = backoff(&c, 20).as_secs_f64();
        assert!((80.0..=120.0).contains(&late), "{late}");
    }
}
