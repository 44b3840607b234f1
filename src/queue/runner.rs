//! One runner for every queue of leased work (mail delivery, webhook delivery, inbound
//! processing, and whatever comes next): it claims due jobs in batches, hands each to a
//! `Handler` under a concurrency limit, records the outcomes in batches, keeps its leases
//! alive with a heartbeat, puts back the work of dead processes, and shuts down gracefully,
//! as its `RunnerSettings` (a queue's config section) say.
//!
//! A queue says how to claim and complete (`LeasedQueue`, each one SQL statement or close);
//! extending, releasing and reclaiming leases are its table's (`lease::LeaseTable`); a
//! handler says what one attempt does (`Handler`). Leases are
//! short and renewed while an attempt runs, so a process that dies loses its work to the
//! others within one lease, however long a single attempt may take.

use std::{
    collections::HashSet,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sqlx::PgPool;
use tokio::{
    sync::{Notify, Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    holder::Holder,
    lease::{LeaseId, LeaseTable},
    wake::Waker,
};
use crate::config::RunnerSettings;

/// Storage of one queue. Every write is fenced by the owner (and the queue's own attempt
/// counter), so a runner that lost a lease cannot overwrite the newer attempt. Claiming and
/// recording outcomes are the queue's own; the lease work is its table's (`TABLE`), unless
/// the queue adds to it.
pub trait LeasedQueue: Send + Sync + 'static {
    type Id: LeaseId;
    type Job: Send + 'static;
    type Outcome: Send + Sync + 'static;

    /// For logs and metrics: `delivery`, `webhooks`, `inbound`.
    const NAME: &'static str;
    /// The table its jobs are rows of.
    const TABLE: &'static LeaseTable;

    fn pool(&self) -> &PgPool;

    fn job_id(job: &Self::Job) -> Self::Id;
    fn outcome_id(outcome: &Self::Outcome) -> Self::Id;

    /// Takes up to `limit` due jobs, leased to `owner` for `lease`.
    fn claim(
        &self,
        owner: Uuid,
        limit: i64,
        lease: Duration,
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Job>>> + Send;
    /// Records outcomes of jobs this owner still holds; outcomes of lost leases are ignored.
    fn complete(
        &self,
        owner: Uuid,
        outcomes: &[Self::Outcome],
    ) -> impl Future<Output = sqlx::Result<()>> + Send;
    /// The heartbeat: keeps these jobs ours for another `lease`.
    fn extend(
        &self,
        owner: Uuid,
        ids: &[Self::Id],
        lease: Duration,
    ) -> impl Future<Output = sqlx::Result<u64>> + Send {
        Self::TABLE.extend(self.pool(), owner, ids, lease)
    }
    /// Hands back jobs this owner claimed and will not finish (shutdown): no attempt counted.
    fn release(
        &self,
        owner: Uuid,
        ids: &[Self::Id],
    ) -> impl Future<Output = sqlx::Result<u64>> + Send {
        Self::TABLE.release(self.pool(), owner, ids)
    }
    /// Puts back jobs whose lease ran out (their process died); returns how many.
    fn reclaim_expired(&self, limit: i64) -> impl Future<Output = sqlx::Result<u64>> + Send {
        async move {
            let mut conn = self.pool().acquire().await?;
            let ids: Vec<Self::Id> = Self::TABLE.reclaim_expired(&mut conn, limit).await?;
            Ok(ids.len() as u64)
        }
    }
    /// Whether anything is claimed or due: what `Runner::drain` waits out.
    fn busy(&self) -> impl Future<Output = sqlx::Result<bool>> + Send {
        Self::TABLE.busy(self.pool())
    }
}

/// What one attempt of one job does. It never fails: every error is an outcome.
pub trait Handler<Q: LeasedQueue>: Send + Sync + 'static {
    fn handle(&self, job: Q::Job) -> impl Future<Output = Q::Outcome> + Send;
}

/// Most outcomes recorded in one `complete`.
const COMPLETE_BATCH: usize = 512;
/// Most expired leases put back per pass.
const RECLAIM_BATCH: i64 = 1000;
/// Most jobs claimed but not yet recorded, beyond those running: when recording outcomes
/// falls behind (handlers that take no time, a slow `complete` on a big table), claiming
/// waits for it instead of piling up leases the heartbeat must renew (bench/scale.sh saw
/// 318,865 and a renewal that ran for minutes).
const MAX_UNRECORDED: usize = 2 * COMPLETE_BATCH;

/// Works one queue with one handler. Cheap to clone: clones share the queue, the handler and
/// the lease owner, so `run_once` from a test fences like the running loop.
pub struct Runner<Q: LeasedQueue, H: Handler<Q>> {
    queue: Arc<Q>,
    handler: Arc<H>,
    waker: Waker,
    settings: RunnerSettings,
    /// Fences this runner's leases.
    owner: Uuid,
    /// This process as a lease holder: no claims while its beats do not go through.
    holder: Option<Holder>,
}

impl<Q: LeasedQueue, H: Handler<Q>> Clone for Runner<Q, H> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            handler: self.handler.clone(),
            waker: self.waker.clone(),
            settings: self.settings.clone(),
            owner: self.owner,
            holder: self.holder.clone(),
        }
    }
}

/// Jobs claimed and not yet recorded: the heartbeat extends them, shutdown releases them.
struct InFlight<Id> {
    ids: Mutex<HashSet<Id>>,
    /// Told when outcomes were recorded, for a claim loop waiting on [`MAX_UNRECORDED`].
    shrunk: Notify,
}

impl<Id: Copy + Eq + Hash> InFlight<Id> {
    fn new() -> Self {
        Self {
            ids: Mutex::default(),
            shrunk: Notify::new(),
        }
    }
    fn insert(&self, id: Id) {
        self.ids.lock().expect("not poisoned").insert(id);
    }
    fn remove_all(&self, ids: impl Iterator<Item = Id>) {
        let mut set = self.ids.lock().expect("not poisoned");
        for id in ids {
            set.remove(&id);
        }
        drop(set);
        self.shrunk.notify_one();
    }
    fn len(&self) -> usize {
        self.ids.lock().expect("not poisoned").len()
    }
    fn snapshot(&self) -> Vec<Id> {
        self.ids
            .lock()
            .expect("not poisoned")
            .iter()
            .copied()
            .collect()
    }
}

impl<Q: LeasedQueue, H: Handler<Q>> Runner<Q, H> {
    pub fn new(queue: Q, handler: H, waker: Waker, settings: RunnerSettings) -> Self {
        Self {
            queue: Arc::new(queue),
            handler: Arc::new(handler),
            waker,
            settings,
            owner: Uuid::now_v7(),
            holder: None,
        }
    }

    /// Leases under this process's holder id (`holder::Holder`), so they are taken back
    /// as soon as the process stops beating, not when each lease runs out; and claims
    /// nothing while the holder's beats do not go through.
    pub fn held_by(mut self, holder: &Holder) -> Self {
        self.owner = holder.id();
        self.holder = Some(holder.clone());
        self
    }

    pub fn settings(&self) -> &RunnerSettings {
        &self.settings
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Claims one batch, handles it and records the outcomes; returns how many jobs it took.
    /// Tests drive a queue step by step with it.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let jobs = self
            .queue
            .claim(
                self.owner,
                self.settings.claim_batch(),
                self.settings.lease(),
            )
            .await?;
        let outcomes =
            futures_util::future::join_all(jobs.into_iter().map(|job| self.handler.handle(job)))
                .await;
        self.queue.complete(self.owner, &outcomes).await?;
        Ok(outcomes.len())
    }

    /// Runs batches until nothing is due and nothing is claimed anywhere (another runner of
    /// the same queue may hold jobs: their outcomes are waited for), or `limit` passes.
    /// Returns how many jobs this call handled. For tests: drain, then assert.
    pub async fn drain(&self, limit: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + limit;
        let mut handled = 0;
        loop {
            let n = self.run_once().await?;
            handled += n;
            if n == 0 {
                if !self.queue.busy().await? {
                    return Ok(handled);
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the {} queue still had work after {limit:?}",
                    Q::NAME
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Runs until `cancel`, then stops claiming, lets running attempts finish for the grace
    /// period, records what they came to and hands back whatever is left.
    pub async fn run(self, cancel: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let in_flight = Arc::new(InFlight::new());
        let max_in_flight = self.settings.concurrency + MAX_UNRECORDED;
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Q::Outcome>();
        // Helpers live in JoinSets, so dropping this future (a killed worker in tests) aborts
        // them too, exactly like a process that died.
        let mut completer = JoinSet::new();
        completer.spawn(self.clone().record_outcomes(done_rx, in_flight.clone()));
        let heartbeat_stop = CancellationToken::new();
        let mut heartbeat = JoinSet::new();
        heartbeat.spawn(
            self.clone()
                .heartbeat(in_flight.clone(), heartbeat_stop.clone()),
        );
        let mut tasks = JoinSet::new();
        let mut db_backoff = Duration::from_millis(200);
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => break,
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            while tasks.try_join_next().is_some() {}
            if self.holder.as_ref().is_some_and(|h| !h.may_claim()) {
                drop(first);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(self.settings.poll_interval()) => {}
                }
                continue;
            }
            let room = max_in_flight.saturating_sub(in_flight.len());
            if room == 0 {
                drop(first);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = in_flight.shrunk.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll_interval()) => {}
                }
                continue;
            }
            // One more than the free permits: the one in hand plus those free now.
            let want = (permits.available_permits() as i64 + 1)
                .min(self.settings.claim_batch())
                .min(room as i64);
            let jobs = match self
                .queue
                .claim(self.owner, want, self.settings.lease())
                .await
            {
                Ok(jobs) => {
                    db_backoff = Duration::from_millis(200);
                    jobs
                }
                Err(err) => {
                    tracing::warn!(queue = Q::NAME, error = %err, "claim failed; retrying");
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
                    _ = tokio::time::sleep(self.settings.poll_interval()) => {}
                }
                continue;
            }
            let mut first = Some(first);
            for job in jobs {
                // At most one more job than free permits was claimed, so this never waits long.
                let permit = match first.take() {
                    Some(p) => p,
                    None => permits
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore never closed"),
                };
                in_flight.insert(Q::job_id(&job));
                let handler = self.handler.clone();
                let done = done_tx.clone();
                tasks.spawn(async move {
                    let outcome = handler.handle(job).await;
                    let _ = done.send(outcome);
                    drop(permit);
                });
            }
        }

        // Shutdown: no new claims; running attempts get the grace period.
        let all = self.settings.concurrency as u32;
        if tokio::time::timeout(self.settings.shutdown_grace(), permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                queue = Q::NAME,
                "shutdown grace period over; abandoning running attempts"
            );
            tasks.abort_all();
        }
        while tasks.join_next().await.is_some() {}
        drop(done_tx);
        while completer.join_next().await.is_some() {}
        heartbeat_stop.cancel();
        while heartbeat.join_next().await.is_some() {}
        let left = in_flight.snapshot();
        match self.queue.release(self.owner, &left).await {
            Ok(n) if n > 0 => {
                tracing::info!(queue = Q::NAME, released = n, "handed back unfinished work")
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(queue = Q::NAME, error = %err, "could not release leases; they will expire")
            }
        }
    }

    /// Records outcomes in batches; a database outage delays them but never drops them, and
    /// the heartbeat keeps their leases ours meanwhile.
    async fn record_outcomes(
        self,
        mut rx: mpsc::UnboundedReceiver<Q::Outcome>,
        in_flight: Arc<InFlight<Q::Id>>,
    ) {
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < COMPLETE_BATCH {
                match rx.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            let mut wait = Duration::from_millis(100);
            while let Err(err) = self.queue.complete(self.owner, &batch).await {
                tracing::warn!(queue = Q::NAME, error = %err, pending = batch.len(), "could not record outcomes; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            in_flight.remove_all(batch.drain(..).map(|o| Q::outcome_id(&o)));
        }
    }

    /// Renews the leases of our running work every third of a lease, and puts back the work
    /// of runners that stopped renewing (looked for at the poll interval, at least every
    /// half second and at most every third of a lease).
    async fn heartbeat(self, in_flight: Arc<InFlight<Q::Id>>, stop: CancellationToken) {
        let renew_every = self.settings.lease() / 3;
        let reclaim_every = self.settings.poll_interval().clamp(
            Duration::from_millis(500),
            renew_every.max(Duration::from_millis(500)),
        );
        let mut last_renewal = Instant::now();
        // The first pass at once: a restarted process takes back its predecessor's work as
        // soon as the predecessor counts as dead.
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(reclaim_every) => {}
                }
            }
            first = false;
            if last_renewal.elapsed() + reclaim_every / 2 >= renew_every {
                last_renewal = Instant::now();
                let ids = in_flight.snapshot();
                if let Err(err) = self
                    .queue
                    .extend(self.owner, &ids, self.settings.lease())
                    .await
                {
                    tracing::warn!(queue = Q::NAME, error = %err, "could not renew leases");
                }
            }
            match self.queue.reclaim_expired(RECLAIM_BATCH).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(
                        queue = Q::NAME,
                        jobs = n,
                        "took back work whose process stopped"
                    );
                    self.waker.wake();
                }
                Err(err) => tracing::debug!(queue = Q::NAME, error = %err, "reclaim failed"),
            }
        }
    }
}
