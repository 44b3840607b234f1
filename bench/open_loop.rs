//! An HTTP load generator for the benches, two ways:
//!
//! - open loop (`bench/latency.sh`, `bench/sustained.sh`): POSTs at a fixed rate, whatever the
//!   answers take, each latency measured from the moment the request was *due*, so a stall
//!   counts against every request it delays (no coordinated omission). A closed-loop tool
//!   (wrk with a per-connection delay) paces each connection by its own answers: its
//!   connections fall into step and fire in bursts, which is not "half the maximum rate".
//! - closed loop with a count (`--count N`, `bench/sustained.sh`): N POSTs as fast as
//!   MAX_IN_FLIGHT connections allow, each timed from its own send.
//!
//! Every `{seq}` in the body becomes the request's number (from `--seq-from`, default 0), so
//! each message can be told apart at the far end: nothing lost, nothing twice.
//!
//! Usage: open_loop [--count N] [--seq-from K] URL RATE SECONDS MAX_IN_FLIGHT BODY_FILE [HEADER: VALUE]...
//! (with `--count`, RATE and SECONDS are ignored: pass 0 0). Prints one line:
//! `sent N ok N failed N rate R p50 X p90 X p99 X max X start T end T` (latencies in
//! milliseconds; start and end in Unix seconds: the first send and the last answer).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::Semaphore;

fn usage() -> ! {
    eprintln!(
        "usage: open_loop [--count N] [--seq-from K] URL RATE SECONDS MAX_IN_FLIGHT BODY_FILE [HEADER: VALUE]..."
    );
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Latencies of the answered requests and the count of the failed ones.
#[derive(Default)]
struct Tally {
    latencies: Vec<f64>,
    failed: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let mut count: Option<u64> = None;
    let mut seq_from = 0u64;
    while args.len() > 1 && args[1].starts_with("--") {
        let flag = args.remove(1);
        let value: u64 = arg(&args, 1);
        args.remove(1);
        match flag.as_str() {
            "--count" => count = Some(value),
            "--seq-from" => seq_from = value,
            _ => usage(),
        }
    }
    if args.len() < 6 {
        usage();
    }
    let url: String = arg(&args, 1);
    let rate: f64 = arg(&args, 2);
    let seconds: f64 = arg(&args, 3);
    let in_flight: usize = arg(&args, 4);
    let body = std::fs::read_to_string(&args[5]).unwrap_or_else(|e| {
        eprintln!("open_loop: {}: {e}", args[5]);
        std::process::exit(2)
    });
    let mut headers = reqwest::header::HeaderMap::new();
    for h in &args[6..] {
        let (name, value) = h.split_once(':').unwrap_or_else(|| usage());
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .unwrap_or_else(|_| usage()),
            value.trim().parse().unwrap_or_else(|_| usage()),
        );
    }
    // The build's reqwest brings no TLS provider of its own; plain HTTP needs none, but the
    // builder insists on one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(in_flight)
        .tcp_nodelay(true)
        .build()
        .expect("http client");

    let total = count.unwrap_or((rate * seconds).round() as u64);
    // Closed loop: every request is due at once and waits for a connection; each is timed
    // from when it got one.
    let interval = match count {
        Some(_) => Duration::ZERO,
        None => Duration::from_secs_f64(1.0 / rate),
    };
    // Bounds open connections like wrk's -c; in the open loop a request waiting for a slot is
    // still timed from its due moment.
    let slots = Arc::new(Semaphore::new(in_flight));
    let tally = Arc::new(Mutex::new(Tally {
        latencies: Vec::with_capacity(total as usize),
        failed: 0,
    }));
    let body: Arc<str> = body.into();
    let started_unix = unix_now();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
        let body = body.replace("{seq}", &(seq_from + i).to_string());
        let slot = if count.is_some() {
            // Closed loop: wait here, so the tasks spawn no faster than connections free up.
            Some(slots.clone().acquire_owned().await.expect("never closed"))
        } else {
            None
        };
        let slots = slots.clone();
        let closed = count.is_some();
        tasks.push(tokio::spawn(async move {
            let _slot = match slot {
                Some(s) => s,
                None => slots.acquire_owned().await.expect("never closed"),
            };
            let sent = if closed { Instant::now() } else { due };
            let ok = match client.post(&url).body(body).send().await {
                Ok(resp) => {
                    let ok = resp.status().is_success();
                    ok & resp.bytes().await.is_ok()
                }
                Err(_) => false,
            };
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            let mut t = tally.lock().expect("not poisoned");
            if ok {
                t.latencies.push(ms);
            } else {
                t.failed += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut t = std::mem::take(&mut *tally.lock().expect("not poisoned"));
    t.latencies.sort_by(f64::total_cmp);
    println!(
        "sent {total} ok {} failed {} rate {:.1} p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} start {:.3} end {:.3}",
        t.latencies.len(),
        t.failed,
        total as f64 / elapsed,
        percentile(&t.latencies, 50.0),
        percentile(&t.latencies, 90.0),
        percentile(&t.latencies, 99.0),
        t.latencies.last().copied().unwrap_or(f64::NAN),
        started_unix,
        started_unix + elapsed,
    );
}
