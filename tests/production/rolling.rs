//! A rolling restart under load: two mailgate processes take sends over HTTP and SMTP while
//! each in turn is stopped with SIGTERM and started again. The clients act like a load
//! balancer in front of them: they route to instances whose `/readyz` answers 200, and
//! retry on a connection refusal, a 503 or an SMTP 421. Every 202 and every 250 must reach
//! the relay; duplicates only come from transactions cut mid-way, and are counted.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
    address::Envelope,
    transport::smtp::{
        PoolConfig,
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use serde_json::json;
use tokio::process::Child;

use crate::support::{app::create_database, eventually, process, smtp_server::TestSmtpServer};

const DRAIN_SECS: u64 = 2;
const HTTP_CLIENTS: usize = 4;
const SMTP_CLIENTS: usize = 2;

/// One mailgate instance: its fixed ports, and whether the "load balancer" routes to it.
struct Instance {
    http: String,
    smtp: String,
    routed: AtomicBool,
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Subjects answered 202 or 250.
    accepted: Vec<String>,
    /// Refused connections, 503s and 421s, retried.
    retried: HashMap<&'static str, usize>,
    /// Anything else: must stay empty.
    unexpected: Vec<String>,
}

struct Load {
    instances: Vec<Instance>,
    running: AtomicBool,
    next: AtomicUsize,
    seen: Mutex<Seen>,
}

impl Load {
    /// The next routed instance, round robin; waits while none is.
    async fn pick(&self) -> usize {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            for k in 0..self.instances.len() {
                let i = (n + k) % self.instances.len();
                if self.instances[i].routed.load(Ordering::Acquire) {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn retried(&self, why: &'static str) {
        *self.seen.lock().unwrap().retried.entry(why).or_default() += 1;
    }

    fn accepted(&self, subject: String) {
        self.seen.lock().unwrap().accepted.push(subject);
    }

    fn unexpected(&self, what: String) {
        self.seen.lock().unwrap().unexpected.push(what);
    }
}

/// The load balancer's health check: `/readyz` every 100 ms.
async fn health_checks(load: Arc<Load>) {
    let client = crate::support::app::http_client();
    while load.running.load(Ordering::Relaxed) {
        for instance in &load.instances {
            let ready = matches!(
                client
                    .get(format!("http://{}/readyz", instance.http))
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await,
                Ok(r) if r.status() == 200
            );
            instance.routed.store(ready, Ordering::Release);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn http_client_loop(load: Arc<Load>, key: String, client_no: usize) {
    let client = crate::support::app::http_client();
    let mut n = 0;
    while load.running.load(Ordering::Relaxed) {
        let subject = format!("rolling-h{client_no}-{n}");
        n += 1;
        // Retried with the same Idempotency-Key, so a send whose answer was lost is not
        // sent twice.
        loop {
            let i = load.pick().await;
            let sent = client
                .post(format!("http://{}/v1/emails", load.instances[i].http))
                .bearer_auth(&key)
                .header("Idempotency-Key", &subject)
                .json(&json!({"from": "app@example.com", "to": "user@example.com",
                              "subject": &subject, "text": "rolling restart"}))
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == 202 => {
                    load.accepted(subject);
                    break;
                }
                Ok(r) if r.status() == 503 => load.retried("http 503"),
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    load.unexpected(format!("HTTP {status}: {body}"));
                    break;
                }
                Err(e) if e.is_connect() => load.retried("http connection refused"),
                // The server closed a kept-alive connection as the request went out.
                Err(e) if e.is_request() => load.retried("http connection closed"),
                Err(e) => {
                    load.unexpected(format!("HTTP client error: {e}"));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn smtp_transport(addr: &str, key: &str) -> AsyncSmtpTransport<Tokio1Executor> {
    let (host, port) = addr.split_once(':').unwrap();
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port.parse().unwrap())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new("rolling".into(), key.into()))
        .timeout(Some(Duration::from_secs(10)))
        .pool_config(PoolConfig::new().max_size(1))
        .build()
}

async fn smtp_client_loop(load: Arc<Load>, key: String, client_no: usize) {
    let transports: Vec<_> = load
        .instances
        .iter()
        .map(|i| smtp_transport(&i.smtp, &key))
        .collect();
    let envelope = Envelope::new(
        Some("app@example.com".parse().unwrap()),
        vec!["user@example.com".parse().unwrap()],
    )
    .unwrap();
    let mut n = 0;
    while load.running.load(Ordering::Relaxed) {
        let subject = format!("rolling-s{client_no}-{n}");
        n += 1;
        let mime = format!(
            "From: app@example.com\r\nTo: user@example.com\r\nSubject: {subject}\r\n\r\nrolling restart\r\n"
        );
        loop {
            let i = load.pick().await;
            match transports[i].send_raw(&envelope, mime.as_bytes()).await {
                Ok(_) => {
                    load.accepted(subject);
                    break;
                }
                Err(e) if e.status().is_some_and(|c| c.to_string() == "421") => {
                    load.retried("smtp 421")
                }
                // Refused, or cut as the process went away: no answer, so retried (a
                // message cut after its DATA may arrive twice; counted below).
                Err(e) if e.status().is_none() => load.retried("smtp connection"),
                Err(e) => {
                    load.unexpected(format!("SMTP: {e}"));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn subject_of(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(|s| s.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_load_loses_nothing() {
    let smtp = TestSmtpServer::start().await;
    let db = create_database().await;
    let instances: Vec<Instance> = (0..2)
        .map(|_| Instance {
            http: format!("127.0.0.1:{}", crate::support::free_port()),
            smtp: format!("127.0.0.1:{}", crate::support::free_port()),
            routed: AtomicBool::new(false),
        })
        .collect();
    let relay = format!("smtp://{}?tls=none", smtp.addr);
    let mailgate = |i: &Instance| {
        let mut cmd = process::command(&db, &i.http);
        cmd.env("MAILGATE_SMTP_ADDR", &i.smtp)
            .env("MAILGATE_RELAY_URL", &relay)
            .env("MAILGATE_HTTP__DRAIN_SECS", DRAIN_SECS.to_string());
        cmd
    };
    let key = process::create_key(mailgate(&instances[0]), "rolling", "send,messages").await;
    let mut children: Vec<Child> = Vec::new();
    for i in &instances {
        children.push(process::serve(mailgate(i), &i.http).await);
    }

    let load = Arc::new(Load {
        instances,
        running: AtomicBool::new(true),
        next: AtomicUsize::new(0),
        seen: Mutex::default(),
    });
    let mut tasks = vec![tokio::spawn(health_checks(load.clone()))];
    for c in 0..HTTP_CLIENTS {
        tasks.push(tokio::spawn(http_client_loop(load.clone(), key.clone(), c)));
    }
    for c in 0..SMTP_CLIENTS {
        tasks.push(tokio::spawn(smtp_client_loop(load.clone(), key.clone(), c)));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut drains = Vec::new();
    for n in 0..children.len() {
        // Stop one instance while the other takes the load; start it again on its ports.
        let child = children.remove(n);
        let stopping = Instant::now();
        process::terminate(&child).await;
        // During the drain the process still answers, but `/readyz` says 503 (once the
        // signal has arrived).
        let body = eventually("readyz 503", Duration::from_secs(1), async || {
            let ready = crate::support::app::http_client()
                .get(format!("http://{}/readyz", load.instances[n].http))
                .send()
                .await
                .expect("still serving during the drain");
            if ready.status() == 503 {
                Some(ready.json::<serde_json::Value>().await.unwrap())
            } else {
                None
            }
        })
        .await;
        assert_eq!(body["status"], "draining", "{body}");
        process::wait_exit(child, Duration::from_secs(60)).await;
        drains.push(stopping.elapsed());
        children.insert(
            n,
            process::serve(mailgate(&load.instances[n]), &load.instances[n].http).await,
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    load.running.store(false, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    let seen = std::mem::take(&mut *load.seen.lock().unwrap());
    assert!(
        seen.unexpected.is_empty(),
        "clients saw errors other than refusals, 503 and 421: {:?}",
        seen.unexpected
    );
    let accepted = seen.accepted.len();
    assert!(accepted > 100, "the load ran ({accepted} accepted)");
    let at_sink = eventually(
        "every accepted message at the relay",
        Duration::from_secs(60),
        async || {
            let mut at_sink: HashMap<String, usize> = HashMap::new();
            for m in smtp.received() {
                *at_sink
                    .entry(subject_of(&m.data).unwrap_or_default())
                    .or_default() += 1;
            }
            let missing = seen
                .accepted
                .iter()
                .filter(|s| !at_sink.contains_key(*s))
                .count();
            if missing == 0 {
                Ok(at_sink)
            } else {
                Err(format!("{missing} of {accepted} missing"))
            }
        },
    )
    .await;
    let duplicated: usize = at_sink.values().map(|n| n - 1).sum();
    let unannounced = at_sink
        .keys()
        .filter(|s| !seen.accepted.contains(s))
        .count();
    println!(
        "rolling restart: {accepted} accepted ({} over HTTP, {} over SMTP), all delivered; \
         duplicates {duplicated}, delivered without a client seeing the 250 {unannounced}; \
         retried {:?}; drains took {:?}",
        seen.accepted
            .iter()
            .filter(|s| s.starts_with("rolling-h"))
            .count(),
        seen.accepted
            .iter()
            .filter(|s| s.starts_with("rolling-s"))
            .count(),
        seen.retried,
        drains
    );
    assert!(
        drains.iter().all(|d| *d >= Duration::from_secs(DRAIN_SECS)),
        "each process served through its drain"
    );
    // A duplicate needs a transaction cut mid-way: a handful at most.
    assert!(duplicated <= 8, "{duplicated} duplicates");

    for child in children {
        process::stop(child, Duration::from_secs(60)).await;
    }
}

#[tokio::test]
async fn a_second_signal_stops_a_drain_at_once() {
    let db = create_database().await;
    let http = format!("127.0.0.1:{}", crate::support::free_port());
    let mut cmd = process::command(&db, &http);
    cmd.env("MAILGATE_HTTP__DRAIN_SECS", "60");
    let mut child = process::serve(cmd, &http).await;
    process::terminate(&child).await;
    let body = eventually("readyz 503", Duration::from_secs(1), async || {
        let r = crate::support::app::http_client()
            .get(format!("http://{http}/readyz"))
            .send()
            .await
            .expect("serving during the drain");
        if r.status() == 503 {
            Some(r.json::<serde_json::Value>().await.unwrap())
        } else {
            None
        }
    })
    .await;
    assert!(body["reason"].as_str().unwrap().contains("60 s"), "{body}");
    // An operator who does not want to wait out the drain signals again.
    process::terminate(&child).await;
    let exit = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("a second signal stops at once")
        .unwrap();
    assert_eq!(exit.code(), Some(130));
}
