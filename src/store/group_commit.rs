//! Group commit of accepted messages: sends that arrive together are committed together.
//!
//! Were every accept its own statement, a burst of N sends would be N transactions contending
//! for the CPU and N WAL flushes, and the last of them would wait for all the others. Here
//! sends queue for a few committer tasks; a committer takes every send waiting at that moment
//! (up to a cap) and commits them in one statement (`messages::insert`). Under light load a
//! group is one send and nothing waits; under a burst the groups grow and the cost per
//! message falls. Each send is answered only after its group's commit returned.

use std::{collections::HashMap, sync::Arc, time::Instant};

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::messages::{self, AcceptedMessage, RecipientState};

/// Most messages one group commits; a larger single batch still goes alone, whole.
const MAX_GROUP: usize = 256;
/// MIME bytes after which a group takes no more sends, to keep statements a sane size.
const MAX_GROUP_BYTES: usize = 16 << 20;
/// Sends that may wait for a committer before `commit` itself waits (back-pressure).
const QUEUE: usize = 4096;

type Answer = sqlx::Result<Vec<RecipientState>>;

struct Job {
    messages: Vec<AcceptedMessage>,
    reply: oneshot::Sender<Answer>,
    /// When the send joined the queue: it waits no longer than the pool's acquire timeout
    /// from here, as it would without group commit, however long the queue was.
    queued: Instant,
}

struct Queue {
    rx: mpsc::Receiver<Job>,
    /// A send taken from the channel that did not fit the last group; it starts the next.
    carry: Option<Job>,
}

/// The handle sends commit through; cheap to clone. Committers stop when every handle is gone.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts `committers` tasks on `pool`: at most that many statements in flight at once.
    pub fn start(pool: PgPool, committers: usize) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(Queue { rx, carry: None }));
        for _ in 0..committers.max(1) {
            tokio::spawn(committer(pool.clone(), queue.clone()));
        }
        Self { tx }
    }

    /// Commits `messages` (one send: one message, or a batch that must commit whole), perhaps
    /// in one statement with other sends. Returns its recipients in input order.
    pub async fn commit(&self, messages: Vec<AcceptedMessage>) -> Answer {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job {
                messages,
                reply,
                queued: Instant::now(),
            })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn committer(pool: PgPool, queue: Arc<Mutex<Queue>>) {
    while let Some(group) = next_group(&queue).await {
        commit_group(&pool, group).await;
    }
}

/// Waits for one send, then takes every other one already waiting, up to the caps.
async fn next_group(queue: &Mutex<Queue>) -> Option<Vec<Job>> {
    let mut q = queue.lock().await;
    let first = match q.carry.take() {
        Some(job) => job,
        None => q.rx.recv().await?,
    };
    let (mut count, mut bytes) = (first.messages.len(), mime_bytes(&first));
    let mut group = vec![first];
    while count < MAX_GROUP && bytes < MAX_GROUP_BYTES {
        let Ok(job) = q.rx.try_recv() else { break };
        let (n, b) = (job.messages.len(), mime_bytes(&job));
        if count + n > MAX_GROUP || bytes + b > MAX_GROUP_BYTES {
            q.carry = Some(job);
            break;
        }
        count += n;
        bytes += b;
        group.push(job);
    }
    Some(group)
}

fn mime_bytes(job: &Job) -> usize {
    job.messages.iter().map(|m| m.mime.len()).sum()
}

async fn commit_group(pool: &PgPool, group: Vec<Job>) {
    // During an outage every committer may be stuck connecting; a send that queued behind
    // them is refused (503) within the acquire timeout of its arrival, not a multiple of it.
    let oldest = group
        .iter()
        .map(|j| j.queued)
        .min()
        .expect("a group is never empty");
    let deadline = oldest + pool.options().get_acquire_timeout();
    let mut conn = match tokio::time::timeout_at(deadline.into(), pool.acquire()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => return fail(group.into_iter().map(|j| j.reply), &err),
        Err(_) => {
            return fail(
                group.into_iter().map(|j| j.reply),
                &sqlx::Error::PoolTimedOut,
            );
        }
    };
    if group.len() == 1 {
        let job = group.into_iter().next().expect("one job");
        let answer = messages::insert(&mut conn, &job.messages).await;
        let _ = job.reply.send(answer);
        return;
    }
    metrics::histogram!("mailgate_commit_group_sends").record(group.len() as f64);
    let mut sizes = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    let mut all = Vec::new();
    for job in group {
        sizes.push(job.messages.len());
        replies.push(job.reply);
        all.extend(job.messages);
    }
    match messages::insert(&mut conn, &all).await {
        Ok(rows) => {
            // Hand each send the rows of its own messages; they stay in input order.
            let mut owner = HashMap::with_capacity(all.len());
            let mut i = 0;
            for (job, size) in sizes.iter().enumerate() {
                for m in &all[i..i + size] {
                    owner.insert(m.id, job);
                }
                i += size;
            }
            let mut answers: Vec<Vec<RecipientState>> = sizes.iter().map(|_| Vec::new()).collect();
            for row in rows {
                if let Some(&job) = owner.get(&row.message_id) {
                    answers[job].push(row);
                }
            }
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        // The statement itself was refused: one send's data may be to blame, so no other
        // send fails with it. Each commits alone and gets its own answer.
        Err(err @ sqlx::Error::Database(_)) if !super::is_outage(&err) => {
            let mut rest = all.into_iter();
            for (reply, size) in replies.into_iter().zip(sizes) {
                let mine: Vec<AcceptedMessage> = rest.by_ref().take(size).collect();
                let _ = reply.send(messages::insert(&mut conn, &mine).await);
            }
        }
        // The database went away mid-statement: the same is true for every send of the group.
        Err(err) => fail(replies, &err),
    }
}

fn fail(replies: impl IntoIterator<Item = oneshot::Sender<Answer>>, err: &sqlx::Error) {
    for reply in replies {
        let _ = reply.send(Err(same_error(err)));
    }
}

/// `sqlx::Error` is not `Clone`; an equivalent that maps to the same API answer (an outage
/// stays an outage: 503).
fn same_error(err: &sqlx::Error) -> sqlx::Error {
    match err {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other if super::is_outage(other) => sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            other.to_string(),
        )),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}
