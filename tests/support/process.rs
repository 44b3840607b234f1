//! mailgate as a separate process (the built binary), for tests about what only whole
//! processes show: crashes, restarts, and limits shared between processes.

use std::{process::Stdio, time::Duration};

use super::eventually;
use tokio::process::{Child, Command};

/// `mailgate` with a database, an HTTP address, a metrics listener on a free port, and send
/// limits no test meets.
pub fn command(db: &str, http: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailgate"));
    cmd.env("MAILGATE_DATABASE_URL", db)
        .env("MAILGATE_HTTP_ADDR", http)
        .env("MAILGATE_SMTP_ADDR", "127.0.0.1:0")
        .env("MAILGATE_METRICS__ADDR", "127.0.0.1:0")
        .env("MAILGATE_LOG", "warn")
        .env("MAILGATE_RATELIMIT__SEND__RATE_PER_SEC", "100000")
        .env("MAILGATE_RATELIMIT__SEND__BURST", "100000")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// `mailgate keys create`: the key, from the last line of its output.
pub async fn create_key(mut cmd: Command, project: &str, scopes: &str) -> String {
    let out = cmd
        .args(["keys", "create", "--project", project, "--scopes", scopes])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string()
}

/// Runs `mailgate serve` and waits until `/healthz` on `http` answers.
pub async fn serve(mut cmd: Command, http: &str) -> Child {
    let mut child = cmd.arg("serve").spawn().expect("mailgate binary runs");
    wait_healthy(&mut child, http).await;
    child
}

/// Waits until the started mailgate answers `/healthz` on `http`; panics if it exits first.
pub async fn wait_healthy(child: &mut Child, http: &str) {
    let client = super::app::http_client();
    eventually("mailgate up", Duration::from_secs(30), async || {
        if let Ok(Some(exit)) = child.try_wait() {
            panic!("mailgate exited at start: {exit}");
        }
        client
            .get(format!("http://{http}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
}

/// SIGTERM, as systemd and orchestrators stop a process.
pub async fn terminate(child: &Child) {
    let pid = child.id().expect("still running");
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

/// SIGTERM, then waits for a clean exit (at most `within`).
pub async fn stop(child: Child, within: Duration) {
    terminate(&child).await;
    wait_exit(child, within).await;
}

/// Waits for a clean exit (at most `within`) of a process told to stop.
pub async fn wait_exit(mut child: Child, within: Duration) {
    let exit = tokio::time::timeout(within, child.wait())
        .await
        .expect("mailgate exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "mailgate exited with {exit}");
}
