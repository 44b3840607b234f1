//! The fault suite (issue 9): mailgate under load while something breaks — the process is
//! killed with SIGKILL while it is accepting, Postgres restarts, Redis restarts, the upstream
//! relay flaps, a webhook receiver is down for most of the run. Each test prints
//! `fault <name>: accepted A, delivered D, lost L, duplicated X` and fails on any loss.
//!
//! Messages are told apart by their recipient (`f<i>@example.com`), so a 202 counts as
//! accepted even when its body never arrived, and a request that got no answer at all is not
//! counted (it may or may not have been committed; either way nothing was promised).
//!
//! The tests run one at a time (a shared lock) and each under a hard time limit, so the file
//! stays bounded on a small CI machine and one test's load does not slow another's clock.

#[path = "support/mod.rs"]
mod support;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{
    app::{TestApp, create_database, http_client, relay_to, test_config},
    eventually, free_port, process,
    smtp_server::TestSmtpServer,
    test_redis::TestRedis,
    webhook_receiver::WebhookReceiver,
    within,
};
use tokio::{
    process::{Child, Command},
    task::JoinHandle,
};

/// Hard limit per fault test, lock wait excluded.
const TEST_LIMIT: Duration = Duration::from_secs(100);
/// How long accepted mail may take to reach a terminal status once the fault is over.
const DRAIN_LIMIT: Duration = Duration::from_secs(45);
/// An API answer during an outage must come at least this fast (a 503, not a hang).
const OUTAGE_ANSWER_LIMIT: Duration = Duration::from_secs(7);

/// One fault at a time: each starts its own processes and load, and two at once on a
/// 2-core machine would make the time bounds meaningless.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn bounded<F: Future<Output = ()>>(name: &str, test: F) {
    let _turn = SERIAL.lock().await;
    if tokio::time::timeout(TEST_LIMIT, test).await.is_err() {
        panic!("fault {name}: did not finish within {TEST_LIMIT:?}");
    }
}

fn report(name: &str, accepted: usize, delivered: usize, lost: usize, duplicated: usize) {
    println!(
        "fault {name}: accepted {accepted}, delivered {delivered}, lost {lost}, duplicated {duplicated}"
    );
}

fn recipient(i: usize) -> String {
    format!("f{i}@example.com")
}

// ---------------------------------------------------------------------------------------------
// Load: clients that keep sending until told to stop, and what each request got.

#[derive(Debug, Clone)]
enum Outcome {
    /// 202: the message `i` is promised.
    Accepted(usize),
    /// Any other answer: status, problem `code`, and how long it took.
    Refused(u16, String, Duration),
    /// No answer (connection refused or cut, or timed out): nothing was promised.
    NoAnswer,
}

struct Load {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Vec<Outcome>>>,
}

#[derive(Default)]
struct Tally {
    accepted: HashSet<usize>,
    refused: Vec<(u16, String, Duration)>,
    unanswered: usize,
}

impl Tally {
    fn statuses(&self) -> BTreeMap<u16, usize> {
        let mut by = BTreeMap::new();
        for (s, _, _) in &self.refused {
            *by.entry(*s).or_default() += 1;
        }
        by
    }
}

impl Load {
    /// `clients` concurrent senders against `base` (`http://host:port`), each pausing `pace`
    /// between requests so the load is steady rather than saturating two cores.
    fn start(base: &str, key: &str, clients: usize, pace: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let client = http_client();
        let tasks = (0..clients)
            .map(|_| {
                let (client, stop, accepted, next) =
                    (client.clone(), stop.clone(), accepted.clone(), next.clone());
                let (url, key) = (format!("{base}/v1/emails"), key.to_string());
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let started = Instant::now();
                        let sent = client
                            .post(&url)
                            .bearer_auth(&key)
                            // A request stuck longer than this is a hang: counted unanswered,
                            // and the outage checks catch it.
                            .timeout(Duration::from_secs(15))
                            .json(&json!({
                                "from": "app@example.com",
                                "to": recipient(i),
                                "subject": format!("fault {i}"),
                                "text": "x".repeat(500),
                            }))
                            .send()
                            .await;
                        let outcome = match sent {
                            Ok(r) if r.status() == 202 => {
                                accepted.fetch_add(1, Ordering::Relaxed);
                                Outcome::Accepted(i)
                            }
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let body: Value = r.json().await.unwrap_or(Value::Null);
                                let code = body["code"].as_str().unwrap_or_default().to_string();
                                Outcome::Refused(status, code, started.elapsed())
                            }
                            Err(_) => Outcome::NoAnswer,
                        };
                        let failed = !matches!(outcome, Outcome::Accepted(_));
                        outcomes.push(outcome);
                        // Back off a little on trouble, as a real client would.
                        let pause = if failed {
                            Duration::from_millis(100)
                        } else {
                            pace
                        };
                        tokio::time::sleep(pause).await;
                    }
                    outcomes
                })
            })
            .collect();
        Load {
            stop,
            accepted,
            tasks,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Waits until `n` sends in all were accepted.
    async fn wait_accepted(&self, n: usize, what: &str) {
        eventually(
            format_args!("{what}: {n} sends accepted"),
            Duration::from_secs(40),
            async || {
                (self.accepted() >= n)
                    .then_some(())
                    .ok_or(format!("{} accepted", self.accepted()))
            },
        )
        .await;
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut tally = Tally::default();
        for task in self.tasks {
            for outcome in task.await.unwrap() {
                match outcome {
                    Outcome::Accepted(i) => {
                        tally.accepted.insert(i);
                    }
                    Outcome::Refused(s, c, t) => tally.refused.push((s, c, t)),
                    Outcome::NoAnswer => tally.unanswered += 1,
                }
            }
        }
        tally
    }
}

/// Waits until no recipient in the database is still open, then compares what was accepted
/// with what the relay got: (delivered, lost, duplicated).
async fn settle(
    pool: &sqlx::PgPool,
    smtp: &TestSmtpServer,
    accepted: &HashSet<usize>,
) -> (usize, usize, usize) {
    eventually("every recipient at a terminal status", DRAIN_LIMIT, async || {
        // A query can fail right after a Postgres restart; it is simply asked again.
        let open: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM recipients WHERE status IN ('queued', 'deferred', 'sending', 'scheduled')",
        )
        .fetch_one(pool)
        .await;
        match open {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!("{n} recipients open")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let mut at_relay: HashMap<String, usize> = HashMap::new();
    for m in smtp.received() {
        for r in m.rcpt_to {
            *at_relay.entry(r).or_default() += 1;
        }
    }
    let delivered = accepted
        .iter()
        .filter(|i| at_relay.contains_key(&recipient(**i)))
        .count();
    // Duplicates among everything relayed, promised or not: a send that got no answer may
    // still have been committed, and it must not be relayed twice either.
    let duplicated = at_relay.values().map(|n| n - 1).sum();
    (delivered, accepted.len() - delivered, duplicated)
}

// ---------------------------------------------------------------------------------------------
// The real binary, for faults where a process dies or a dependency restarts under it.

struct Binary {
    env: Vec<(String, String)>,
    http: String,
}

impl Binary {
    fn new(database_url: &str, relay: &TestSmtpServer) -> Binary {
        let http = format!("127.0.0.1:{}", free_port());
        let env = [
            ("MAILGATE_DATABASE_URL", database_url.to_string()),
            ("MAILGATE_HTTP_ADDR", http.clone()),
            ("MAILGATE_SMTP_ADDR", "127.0.0.1:0".into()),
            ("MAILGATE_METRICS__ADDR", "127.0.0.1:0".into()),
            (
                "MAILGATE_RELAY_URL",
                format!("smtp://{}?tls=none", relay.addr),
            ),
            // Errors only (a crash says why), without the access log's line per refused request.
            ("MAILGATE_LOG", "error,tower_http=off".into()),
            ("MAILGATE_DELIVERY__CONCURRENCY", "8".into()),
            ("MAILGATE_DELIVERY__POLL_INTERVAL_MS", "100".into()),
            ("MAILGATE_DELIVERY__SMTP_TIMEOUT_SECS", "2".into()),
            ("MAILGATE_DELIVERY__LEASE_SECS", "9".into()),
            ("MAILGATE_DELIVERY__RETRY_BASE_SECS", "0.2".into()),
            ("MAILGATE_DELIVERY__RETRY_MAX_SECS", "1".into()),
            ("MAILGATE_DELIVERY__MAX_ATTEMPTS", "50".into()),
            // Durability under faults is the subject, not rate limits: generous ones.
            ("MAILGATE_RATELIMIT__SEND__RATE_PER_SEC", "100000".into()),
            ("MAILGATE_RATELIMIT__SEND__BURST", "100000".into()),
            ("MAILGATE_RATELIMIT__API__RATE_PER_SEC", "100000".into()),
            ("MAILGATE_RATELIMIT__API__BURST", "100000".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Binary { env, http }
    }

    fn set(&mut self, name: &str, value: &str) {
        self.env.push((name.into(), value.into()));
    }

    fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailgate"));
        // Nothing from the caller's environment (a developer's MAILGATE_*) leaks in.
        for (k, _) in std::env::vars() {
            if k.starts_with("MAILGATE_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// `mailgate keys create`: the key on the last line of stdout.
    async fn create_key(&self) -> String {
        process::create_key(self.command(), "faults", "send").await
    }

    /// `mailgate serve`, once it answers /healthz.
    async fn serve(&self) -> Child {
        process::serve(self.command(), &self.http).await
    }
}

// ---------------------------------------------------------------------------------------------
// 1. SIGKILL while requests are being accepted.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load() {
    bounded("sigkill_under_load", async {
        let smtp = TestSmtpServer::start().await;
        let db = create_database().await;
        let bin = Binary::new(&db, &smtp);
        let key = bin.create_key().await;

        let mut first = bin.serve().await;
        let load = Load::start(&bin.base(), &key, 8, Duration::from_millis(2));
        load.wait_accepted(200, "before the kill").await;
        // Eight clients have requests in flight right now: some die half-answered.
        first.kill().await.unwrap();
        let at_kill = load.accepted();
        // Clients keep knocking on a dead port for a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = bin.serve().await;
        load.wait_accepted(at_kill + 200, "after the restart").await;
        let tally = load.finish().await;

        let pool = sqlx::PgPool::connect(&db).await.unwrap();
        let (delivered, lost, duplicated) = settle(&pool, &smtp, &tally.accepted).await;
        report(
            "sigkill_under_load",
            tally.accepted.len(),
            delivered,
            lost,
            duplicated,
        );
        println!(
            "  killed after {at_kill} accepted; {} sends got no answer; other answers {:?}",
            tally.unanswered,
            tally.statuses()
        );
        assert!(
            tally.unanswered > 0,
            "the kill should have cut some requests"
        );
        assert!(
            tally.refused.iter().all(|(s, _, _)| *s == 503),
            "only 503s may refuse a send: {:?}",
            tally.refused
        );
        assert_eq!(lost, 0, "accepted messages never reached the relay");
        // Only the crash window repeats a send: at most the deliveries in flight at the kill
        // (concurrency 8, claimed in batches).
        assert!(
            duplicated <= 64,
            "{duplicated} duplicates is more than the crash window explains"
        );
        drop(second);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. Postgres stopped and started again under load: a private instance, never the shared one.

/// A PostgreSQL cluster of its own in a temporary directory, on a free port, with trust auth.
/// Stopped (immediately) and removed on drop, even when the test fails.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    /// initdb and the server refuse to run as root: then they run as `postgres`.
    as_postgres: bool,
}

impl PrivatePostgres {
    fn bin_dir() -> PathBuf {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
            .expect("an initdb under /usr/lib/postgresql/*/bin")
    }

    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            std::process::Command::new(&path)
        };
        cmd.args(args).stdin(Stdio::null());
        cmd.output().expect("PostgreSQL tool runs")
    }

    fn start() -> PrivatePostgres {
        let dir = std::env::temp_dir().join(format!("mailgate-faults-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let uid = std::process::Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        if as_postgres {
            let ok = std::process::Command::new("chown")
                .args(["postgres:", dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success(), "chown the private Postgres directory");
        }
        let pg = PrivatePostgres {
            dir,
            port: free_port(),
            bin: Self::bin_dir(),
            as_postgres,
        };
        let data = pg.data();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.pg_start();
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").to_str().unwrap().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_start(&self) {
        // The socket goes into the private directory, away from the shared server's.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m fast`: sessions are terminated, as in an operator's restart.
    fn pg_stop(&self, mode: &str) -> bool {
        self.run("pg_ctl", &["-D", &self.data(), "-m", mode, "-w", "stop"])
            .status
            .success()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.pg_stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load() {
    bounded("postgres_restart_under_load", async {
        let smtp = TestSmtpServer::start().await;
        // Blocking tools (initdb, pg_ctl) off the runtime's threads.
        let pg = Arc::new(
            tokio::task::spawn_blocking(PrivatePostgres::start)
                .await
                .unwrap(),
        );
        let bin = Binary::new(&pg.url(), &smtp);
        let key = bin.create_key().await;
        let mut serve = bin.serve().await;
        let client = http_client();
        let probe = |client: reqwest::Client, base: String, key: String| async move {
            let started = Instant::now();
            let r = client
                .post(format!("{base}/v1/emails"))
                .bearer_auth(&key)
                .timeout(Duration::from_secs(30))
                .json(
                    &json!({"from": "app@example.com", "to": "probe@example.com",
                               "subject": "probe", "text": "probe"}),
                )
                .send()
                .await
                .expect("mailgate answers during the outage");
            let status = r.status().as_u16();
            let content_type = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, content_type, body, started.elapsed())
        };

        let load = Load::start(&bin.base(), &key, 4, Duration::from_millis(5));
        load.wait_accepted(150, "before the outage").await;
        let stopping = pg.clone();
        assert!(
            tokio::task::spawn_blocking(move || stopping.pg_stop("fast"))
                .await
                .unwrap(),
            "pg_ctl stop"
        );
        let outage = Instant::now();
        let at_stop = load.accepted();

        // While Postgres is down every send is refused with 503 `unavailable`, promptly (the
        // pool's acquire timeout bounds the wait). Probes overlap so the outage stays short.
        let probes: Vec<_> = (0..3u64)
            .map(|k| {
                let (client, base, key) = (client.clone(), bin.base(), key.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1000 * k)).await;
                    probe(client, base, key).await
                })
            })
            .collect();
        let ready = client
            .get(format!("{}/readyz", bin.base()))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503, "readiness during the outage");
        let mut took_all = Vec::new();
        for p in probes {
            let (status, content_type, body, took) = p.await.unwrap();
            assert_eq!(status, 503, "a send during the outage: {body}");
            assert_eq!(body["code"], "unavailable", "{body}");
            assert!(
                content_type.starts_with("application/problem+json"),
                "{content_type}"
            );
            assert!(
                took < OUTAGE_ANSWER_LIMIT,
                "a send during the outage took {took:?} to be refused"
            );
            took_all.push(took);
        }
        let probes = took_all;
        let starting = pg.clone();
        tokio::task::spawn_blocking(move || starting.pg_start())
            .await
            .unwrap();
        let outage_secs = outage.elapsed().as_secs_f64();

        // mailgate reconnects by itself: no restart, sends are accepted again.
        let back = Instant::now();
        eventually(
            "a send accepted after Postgres came back",
            Duration::from_secs(20),
            async || {
                let (status, _, body, _) = probe(client.clone(), bin.base(), key.clone()).await;
                assert!(
                    status == 202 || status == 503,
                    "a send while Postgres comes back: {status} {body}"
                );
                status == 202
            },
        )
        .await;
        let recovered_secs = back.elapsed().as_secs_f64();
        load.wait_accepted(load.accepted() + 150, "after the outage")
            .await;
        let tally = load.finish().await;
        assert!(
            serve.try_wait().unwrap().is_none(),
            "mailgate exited during the outage"
        );

        let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
        let (delivered, lost, duplicated) = settle(&pool, &smtp, &tally.accepted).await;
        report(
            "postgres_restart_under_load",
            tally.accepted.len(),
            delivered,
            lost,
            duplicated,
        );
        let slowest = probes.iter().max().unwrap();
        println!(
            "  {at_stop} accepted before the stop; down {outage_secs:.1} s, {} probes answered 503 \
             (slowest {slowest:.1?}); sends accepted again {recovered_secs:.1} s after the start; \
             load answers {:?}, {} unanswered",
            probes.len(),
            tally.statuses(),
            tally.unanswered
        );
        let bad: Vec<_> = tally
            .refused
            .iter()
            .filter(|(s, c, t)| *s != 503 || c != "unavailable" || *t >= OUTAGE_ANSWER_LIMIT)
            .collect();
        assert!(
            bad.is_empty(),
            "sends answered other than a prompt 503: {bad:?}"
        );
        assert_eq!(tally.unanswered, 0, "every send gets an answer");
        assert_eq!(lost, 0, "accepted messages never reached the relay");
        // A relay's 250 whose status commit failed because Postgres went away is sent again:
        // at most the deliveries in flight at the stop.
        assert!(
            duplicated <= 16,
            "{duplicated} duplicates is more than the outage explains"
        );
        pool.close().await;
        serve.kill().await.unwrap();
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 3. Redis restarted under load, rate limits on and failing open.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_load() {
    bounded("redis_restart_under_load", async {
        let smtp = TestSmtpServer::start().await;
        let mut redis = TestRedis::start().await;
        let db = create_database().await;
        let mut bin = Binary::new(&db, &smtp);
        bin.set("MAILGATE_REDIS_URL", &redis.url());
        bin.set("MAILGATE_RATELIMIT__ENABLED", "true");
        bin.set("MAILGATE_RATELIMIT__ON_REDIS_ERROR", "fail_open");
        let key = bin.create_key().await;
        let serve = bin.serve().await;
        let load = Load::start(&bin.base(), &key, 4, Duration::from_millis(5));
        load.wait_accepted(150, "before the restart").await;
        assert!(redis_keys(&redis.url()).await > 0, "limits live in Redis");

        redis.stop().await;
        let at_stop = load.accepted();
        load.wait_accepted(at_stop + 100, "while Redis is down")
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis.restart().await;
        // Redis came back empty; mailgate's buckets reappear there once it uses it again.
        let back = Instant::now();
        eventually(
            "mailgate's buckets in Redis again",
            Duration::from_secs(20),
            async || redis_keys(&redis.url()).await > 0,
        )
        .await;
        let back_secs = back.elapsed().as_secs_f64();
        load.wait_accepted(load.accepted() + 100, "after the restart")
            .await;
        let tally = load.finish().await;

        let pool = sqlx::PgPool::connect(&db).await.unwrap();
        let (delivered, lost, duplicated) = settle(&pool, &smtp, &tally.accepted).await;
        report(
            "redis_restart_under_load",
            tally.accepted.len(),
            delivered,
            lost,
            duplicated,
        );
        println!(
            "  Redis down after {at_stop} accepted; limits back in Redis {back_secs:.1} s after \
             its restart; other answers {:?}, {} unanswered",
            tally.statuses(),
            tally.unanswered
        );
        assert!(
            tally.refused.is_empty() && tally.unanswered == 0,
            "failing open, every send is accepted: {:?}, {} unanswered",
            tally.refused,
            tally.unanswered
        );
        assert_eq!(lost, 0, "accepted messages never reached the relay");
        // Nothing crashed: each message is relayed exactly once.
        assert_eq!(duplicated, 0);
        drop(serve);
    })
    .await;
}

async fn redis_keys(url: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// 4. The upstream relay goes down and comes back several times. In process: nothing here
// needs a process to die, and the relay is a real SMTP server on a real port either way.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_flapping() {
    bounded("relay_flapping", async {
        let mut smtp = TestSmtpServer::start().await;
        let db = create_database().await;
        let mut config = test_config(&db);
        relay_to(&mut config, &smtp);
        config.delivery.retry_base_secs = 0.2;
        config.delivery.retry_max_secs = 1.0;
        // Enough attempts to outlast every down period below.
        config.delivery.max_attempts = 50;
        let app = TestApp::builder().config(config).start().await;

        let load = Load::start(&app.base, &app.key, 4, Duration::from_millis(20));
        let flaps = 4;
        for _ in 0..flaps {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            smtp.down().await;
            tokio::time::sleep(Duration::from_millis(1000)).await;
            smtp.up().await;
        }
        let tally = load.finish().await;
        let (delivered, lost, duplicated) = settle(&app.pool, &smtp, &tally.accepted).await;
        report(
            "relay_flapping",
            tally.accepted.len(),
            delivered,
            lost,
            duplicated,
        );
        let (deferrals,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM events WHERE type = 'deferred'")
                .fetch_one(&app.pool)
                .await
                .unwrap_or((-1,));
        println!(
            "  relay down {flaps} times for 1 s; {deferrals} deferrals; other answers {:?}",
            tally.statuses()
        );
        assert!(
            tally.refused.is_empty() && tally.unanswered == 0,
            "the API does not depend on the relay: {:?}",
            tally.refused
        );
        assert!(tally.accepted.len() >= 100, "too little load to mean much");
        assert_eq!(lost, 0, "accepted messages never reached the relay");
        // A connection cut between the relay's 250 and mailgate reading it repeats a
        // message: at most one per open connection per flap.
        assert!(
            duplicated <= 8 * flaps,
            "{duplicated} duplicates is more than the flaps explain"
        );
        app.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 5. A webhook receiver that is down for most of the run, then comes up.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_receiver_down_then_up() {
    bounded("webhook_receiver_down_then_up", async {
        let smtp = TestSmtpServer::start().await;
        let mut receiver = WebhookReceiver::start().await;
        let app = TestApp::builder()
            .relaying_to(&smtp)
            .webhooks_to_loopback()
            .configure(|c| {
                c.webhooks.timeout_secs = 2.0;
                c.webhooks.runner.lease_secs = 10;
                // About 19 s of retries (±20 %): longer than the receiver is down.
                c.webhooks.retry_schedule_secs =
                    vec![0.5, 0.5, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0];
            })
            .start()
            .await;
        let created = app
            .http
            .post(app.url("/v1/webhooks"))
            .bearer_auth(&app.key)
            .json(&json!({"url": receiver.url("/hook"), "events": ["email.delivered"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let secret = created.json::<Value>().await.unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_string();

        receiver.down().await;
        let down = Instant::now();
        let load = Load::start(&app.base, &app.key, 4, Duration::from_millis(20));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let tally = load.finish().await;
        // Mail is delivered meanwhile; only its webhooks wait.
        let (relayed, relay_lost, _) = settle(&app.pool, &smtp, &tally.accepted).await;
        assert_eq!(relay_lost, 0);
        // The app tried every event's delivery while the receiver was down, and recorded
        // each try as a failure to connect (no HTTP answer), none as a success.
        eventually(
            "a failed attempt recorded for every email.delivered webhook",
            Duration::from_secs(20),
            async || {
                let (deliveries, failed, answered): (i64, i64, i64) = sqlx::query_as(
                    "SELECT count(*),
                            count(*) FILTER (WHERE error IS NOT NULL),
                            count(*) FILTER (WHERE response_status IS NOT NULL
                                             OR status = 'succeeded')
                     FROM webhook_deliveries WHERE event_type = 'email.delivered'",
                )
                .fetch_one(&app.pool)
                .await
                .unwrap();
                assert_eq!(
                    answered, 0,
                    "the receiver was down, yet a delivery was answered"
                );
                if deliveries >= relayed as i64 && failed == deliveries {
                    Ok(())
                } else {
                    Err(format!(
                        "{deliveries} deliveries for {relayed} relayed, {failed} with a failed attempt"
                    ))
                }
            },
        )
        .await;
        assert!(
            receiver.received().is_empty(),
            "the receiver was down, yet got requests"
        );
        let down_for = down.elapsed();
        receiver.up().await;

        // Every accepted message's email.delivered event arrives at least once.
        let ids: HashMap<String, usize> = {
            let rows: Vec<(uuid::Uuid, String)> =
                sqlx::query_as("SELECT m.id, r.email FROM messages m JOIN recipients r ON r.message_id = m.id")
                    .fetch_all(&app.pool)
                    .await
                    .unwrap();
            let by_rcpt: HashMap<String, uuid::Uuid> =
                rows.into_iter().map(|(id, r)| (r, id)).collect();
            tally
                .accepted
                .iter()
                .map(|i| (by_rcpt[&recipient(*i)].to_string(), *i))
                .collect()
        };
        let arrivals = || {
            let mut arrived: HashMap<String, usize> = HashMap::new();
            for r in receiver.received_at("/hook") {
                let event = r.json();
                if event["type"] == "email.delivered"
                    && let Some(id) = event["data"]["email_id"].as_str()
                {
                    *arrived.entry(id.to_string()).or_default() += 1;
                }
            }
            arrived
        };
        // Waited for without failing here: the report below counts what is missing.
        let _ = within(DRAIN_LIMIT, async || {
            let arrived = arrivals();
            ids.keys().all(|id| arrived.contains_key(id))
        })
        .await;
        let arrived = arrivals();
        let delivered = ids.keys().filter(|id| arrived.contains_key(*id)).count();
        let lost = ids.len() - delivered;
        let duplicated: usize = arrived.values().map(|n| n - 1).sum();
        report(
            "webhook_receiver_down_then_up",
            ids.len(),
            delivered,
            lost,
            duplicated,
        );
        let requests = receiver.received_at("/hook");
        println!(
            "  receiver down {:.1} s; {relayed} messages relayed meanwhile; {} webhook requests after it came up",
            down_for.as_secs_f64(),
            requests.len()
        );
        for r in &requests {
            r.verify(&secret).expect("signed webhook");
        }
        assert!(tally.refused.is_empty() && tally.unanswered == 0);
        assert_eq!(lost, 0, "email.delivered events never arrived");
        // The receiver answered every request it got; a retry only follows a failure.
        assert_eq!(duplicated, 0);
        app.stop().await;
    })
    .await;
}
