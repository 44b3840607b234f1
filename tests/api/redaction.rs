//! Secrets in connection URLs never print: the Postgres client key's passphrase
//! (`sslpassword=`), a password in `scan.rspamd_url`, and a relay password that is not valid
//! percent-encoding. The real binary is run with each, and everything it writes is read.

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

use crate::support::app::create_database;

/// `mailgate ARGS` with only these `MAILGATE_*` variables (and the default log filter).
fn mailgate(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MAILGATE_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .env("MAILGATE_HTTP_ADDR", "127.0.0.1:0")
        .env("MAILGATE_SMTP_ADDR", "127.0.0.1:0")
        .env("MAILGATE_METRICS__ADDR", "127.0.0.1:0")
        .env("MAILGATE_LOG", "info,sqlx=warn")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `mailgate serve` until its start-up line, then stops it: every line it wrote.
async fn serve_until_started(envs: &[(&str, &str)]) -> String {
    let mut child = mailgate(&["serve"], envs).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let started = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("mailgate serving:");
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    child.kill().await.unwrap();
    let seen = seen.join("\n");
    assert!(started == Ok(true), "serve did not start:\n{seen}");
    seen
}

/// Runs `mailgate ARGS` to its end: (success, stdout and stderr).
async fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), mailgate(args, envs).output())
        .await
        .expect("mailgate finishes within 60 s")
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_database_urls_sslpassword_never_prints() {
    // libpq's passphrase of an encrypted client key, in the URL beside the other TLS settings.
    let url = format!(
        "{}?sslpassword=pg-key-hunter2&application_name=mailgate",
        create_database().await
    );
    let log = serve_until_started(&[("MAILGATE_DATABASE_URL", &url)]).await;
    assert!(!log.contains("hunter2"), "the passphrase is logged:\n{log}");
    // The start-up line still shows the URL, with the passphrase replaced; a warning says it
    // is not used.
    assert!(
        log.contains("?sslpassword=***&application_name=mailgate"),
        "{log}"
    );
    assert!(log.contains("`sslpassword` is ignored"), "{log}");

    let (_, report) = run(&["doctor"], &[("MAILGATE_DATABASE_URL", &url)]).await;
    assert!(
        !report.contains("hunter2"),
        "doctor prints the passphrase:\n{report}"
    );
    assert!(report.contains("sslpassword=***"), "{report}");
}

#[tokio::test]
async fn a_password_in_the_rspamd_url_never_prints() {
    let db = create_database().await;
    // rspamd behind a proxy that asks for a password (nothing answers: only the start-up
    // line and doctor's report are read).
    let rspamd = "http://scanner:rspamd-hunter2@127.0.0.1:9";
    let envs = [
        ("MAILGATE_DATABASE_URL", db.as_str()),
        ("MAILGATE_SCAN__RSPAMD_URL", rspamd),
    ];
    let log = serve_until_started(&envs).await;
    assert!(!log.contains("hunter2"), "the password is logged:\n{log}");
    assert!(
        log.contains("rspamd http://scanner:***@127.0.0.1:9"),
        "{log}"
    );

    let (_, report) = run(&["doctor"], &envs).await;
    assert!(
        !report.contains("hunter2"),
        "doctor prints the password:\n{report}"
    );
    assert!(report.contains("rspamd"), "{report}");
}

#[tokio::test]
async fn a_relay_password_that_is_not_valid_percent_encoding_is_refused_without_quoting_it() {
    let db = create_database().await;
    // `%ZZ` is no escape: a password with a bare `%` pasted into the URL as it is.
    for url in [
        "smtp://bob:s3cr%ZZet@127.0.0.1:2526",
        "smtp://bob:s3cr?ZZet@127.0.0.1:2526",
    ] {
        let envs = [
            ("MAILGATE_DATABASE_URL", db.as_str()),
            ("MAILGATE_RELAY_URL", url),
        ];
        let (ok, out) = run(&["serve"], &envs).await;
        assert!(!ok, "serve started with {url}:\n{out}");
        assert!(
            out.contains("relay `default`") && out.contains("password"),
            "the error names the relay and its password:\n{out}"
        );
        for part in ["s3cr", "ZZ"] {
            assert!(
                !out.contains(part),
                "the error quotes the password ({part}):\n{out}"
            );
        }
        let (ok, report) = run(&["doctor"], &envs).await;
        assert!(!ok, "{report}");
        for part in ["s3cr", "ZZ"] {
            assert!(
                !report.contains(part),
                "doctor quotes the password ({part}):\n{report}"
            );
        }
    }
}
