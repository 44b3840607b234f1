//! Running one SDK client script: where the SDKs are installed, the keys it gets, and its
//! one JSON line of results.

use std::path::PathBuf;

use mailgate::domain::api_key::KeyLimits;
use serde_json::Value;

use crate::support::app::TestApp;

/// Where `scripts/sdks` installs the SDKs: `MAILGATE_SDKS`, or `~/.cache/mailgate-sdks`.
fn sdks_dir() -> PathBuf {
    std::env::var_os("MAILGATE_SDKS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/mailgate-sdks")
        })
}

pub enum Runtime {
    /// A Python script, run by the SDK virtualenv's interpreter.
    Python,
    /// A CommonJS script, run by `node` with the SDKs' `node_modules` on `NODE_PATH`.
    Node,
}

/// Runs `tests/sdk/clients/<script>` against `app` and returns what it printed. The script
/// gets the app's URL, its all-scopes key, a key the app never issued and a key whose send
/// limit is one message. A missing SDK fails the test, naming the installer.
pub async fn run(app: &TestApp, runtime: Runtime, script: &str) -> Value {
    run_with(app, runtime, script, &[]).await
}

/// `run`, with more environment for the script.
pub async fn run_with(
    app: &TestApp,
    runtime: Runtime,
    script: &str,
    env: &[(&str, &str)],
) -> Value {
    let dir = sdks_dir();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk/clients")
        .join(script);
    let mut command = match runtime {
        Runtime::Python => {
            let python = dir.join("py/bin/python");
            assert!(
                python.exists(),
                "the Python SDKs are not installed in {}: run scripts/sdks (scripts/test does)",
                dir.display()
            );
            tokio::process::Command::new(python)
        }
        Runtime::Node => {
            let modules = dir.join("node/node_modules");
            assert!(
                modules.exists(),
                "the Node SDKs are not installed in {}: run scripts/sdks (scripts/test does)",
                dir.display()
            );
            let mut node = tokio::process::Command::new("node");
            node.env("NODE_PATH", modules);
            node
        }
    };
    let (limited, _) = app
        .create_limited_key(KeyLimits {
            rate_per_sec: Some(0.001),
            burst: Some(1),
            daily_quota: None,
        })
        .await;
    let output = command
        .arg(&path)
        .env("MAILGATE_URL", &app.base)
        .env("MAILGATE_KEY", &app.key)
        .env("MAILGATE_LIMITED_KEY", limited)
        .env(
            "MAILGATE_BAD_KEY",
            "mg_live_0000000000000000000000000000000000000000",
        )
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{}",
                crate::support::missing_tool("node or python", "nodejs python3", &e)
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}
