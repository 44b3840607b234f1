//! Renders per second of the example templates with a warm cache: each template is compiled
//! once and reused, as the per-process cache does after a template's first use. Run through
//! `bench/templates.sh`; optional argument: seconds per measurement (default 3).
//!
//! Not measured: the one indexed query per send that checks the cached version.

use std::{
    hint::black_box,
    path::Path,
    time::{Duration, Instant},
};

use mailgate::templates::{
    disk,
    engine::{Compiled, compile},
};
use serde_json::{Value, json};

fn load(name: &str, layout: Option<&str>) -> Compiled {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let template = disk::read_one(&dir.join(name)).expect("example template");
    let layout = layout.map(|l| disk::read_one(&dir.join(l)).expect("example layout"));
    compile(
        template.draft.sources(),
        layout.as_ref().map(|l| l.draft.sources()),
        None,
    )
    .expect("example compiles")
}

fn measure(label: &str, compiled: &Compiled, variables: &Value, seconds: f64) {
    let limit = 10 * 1024 * 1024;
    let sample = compiled.render(variables, limit).expect("renders");
    let bytes = [&sample.subject, &sample.html, &sample.text]
        .iter()
        .filter_map(|p| p.as_ref().map(String::len))
        .sum::<usize>();
    // Warm-up: allocator, caches, branch predictors.
    for _ in 0..1_000 {
        black_box(compiled.render(variables, limit).unwrap());
    }
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut renders = 0u64;
    while started.elapsed() < budget {
        for _ in 0..100 {
            black_box(compiled.render(black_box(variables), limit).unwrap());
        }
        renders += 100;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{label:<48} {:>9.0} renders/s  {:>7.1} µs/render  ({bytes} bytes out, one thread)",
        renders as f64 / elapsed,
        elapsed * 1e6 / renders as f64
    );
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("seconds"))
        .unwrap_or(3.0);
    let items: Vec<Value> = (1..=10)
        .map(|i| {
            json!({
                "name": format!("Item number {i} <special>"),
                "quantity": i,
                "unit_price": format!("${i}.50"),
                "amount": format!("${}.00", i * i),
            })
        })
        .collect();
    let receipt = json!({
        "customer": {"name": "Ada Lovelace"},
        "order_number": "A-100042",
        "items": items,
        "total": "$385.00",
        "paid_with": "Visa ending 4242",
    });
    measure(
        "receipt (10 line items; subject, html, text)",
        &load("receipt", None),
        &receipt,
        seconds,
    );
    let welcome = json!({
        "name": "Ada", "product_name": "Acme", "login_url": "https://acme.example/login"
    });
    measure(
        "welcome (layout; text generated from html)",
        &load("welcome", Some("base")),
        &welcome,
        seconds,
    );
}
