//! An open-loop HTTP load generator for `bench/latency.sh`: sends POST requests at a fixed
//! rate, whatever the answers take, and measures each latency from the moment the request
//! was *due*, so a stall counts against every request it delays (no coordinated omission).
//!
//! A closed-loop tool (wrk with a per-connection delay) paces each connection by its own
//! answers: its connections fall into step and fire in bursts of up to 64 at once, which is
//! not "half the maximum rate". This one spaces requests evenly.
//!
//! Usage: open_loop URL RATE SECONDS MAX_IN_FLIGHT BODY_FILE [HEADER: VALUE]...
//! Prints one line: `sent N ok N rate R p50 X p90 X p99 X max X` (milliseconds).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

fn usage() -> ! {
    eprintln!("usage: open_loop URL RATE SECONDS MAX_IN_FLIGHT BODY_FILE [HEADER: VALUE]...");
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        usage();
    }
    let url: String = arg(&args, 1);
    let rate: f64 = arg(&args, 2);
    let seconds: f64 = arg(&args, 3);
    let in_flight: usize = arg(&args, 4);
    let body = std::fs::read(&args[5]).unwrap_or_else(|e| {
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

    let total = (rate * seconds).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    // Bounds open connections like wrk's -c; a request waiting for a slot is still timed
    // from its due moment.
    let slots = Arc::new(Semaphore::new(in_flight));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let failures = Arc::new(Mutex::new(0u64));
    let body: Arc<[u8]> = body.into();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        let (slots, latencies, failures) = (slots.clone(), latencies.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("never closed");
            let ok = match client.post(&url).body(body.to_vec()).send().await {
                Ok(resp) => {
                    let ok = resp.status().is_success();
                    ok & resp.bytes().await.is_ok()
                }
                Err(_) => false,
            };
            let ms = due.elapsed().as_secs_f64() * 1000.0;
            if ok {
                latencies.lock().expect("not poisoned").push(ms);
            } else {
                *failures.lock().expect("not poisoned") += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    lat.sort_by(f64::total_cmp);
    let failed = *failures.lock().expect("not poisoned");
    println!(
        "sent {total} ok {} failed {failed} rate {:.1} p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        lat.len(),
        total as f64 / elapsed,
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
    );
}
