//! Logging: a tracing subscriber filtered by `MAILGATE_LOG` (or the config's `log`).

use tracing_subscriber::EnvFilter;

pub fn init(default_filter: &str) {
    let filter = std::env::var("MAILGATE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    // A second init (tests) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
