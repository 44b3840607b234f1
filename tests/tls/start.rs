//! The built binary with a wrong CA: `serve` refuses to start on an untrusted Postgres
//! certificate and says so; it starts on an untrusted Redis certificate (rate limits fall
//! back, as in an outage) but logs an error naming it; `doctor` fails both checks with the
//! reason, and passes with the right CA.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::Command;

use super::{pki::s, postgres::PgFixture, servers::TlsRedis};
use crate::support::{app::create_database, free_port, process};

/// `mailgate ARGS` with only the `MAILGATE_*` variables given here.
fn mailgate(args: &[&str], envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MAILGATE_")
            || k.starts_with("PGSSL")
            || k == "DATABASE_URL"
            || k == "REDIS_URL"
        {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("MAILGATE_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("MAILGATE_SMTP_ADDR", "127.0.0.1:0")
        .env("MAILGATE_METRICS__ADDR", "127.0.0.1:0")
        .env("MAILGATE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs to the end (at most 60 s): (success, stdout, stderr).
async fn finish(mut cmd: Command) -> (bool, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("mailgate finishes within 60 s")
        .expect("mailgate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_refuses_an_untrusted_postgres_certificate() {
    let f = PgFixture::start().await;
    let wrong = s(&f.pki.wrong_ca);
    let url = format!(
        "postgres://postgres:pg-hunter2@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={wrong}",
        f.pg.port
    );
    let started = Instant::now();
    let (ok, _, stderr) = finish(mailgate(&["serve"], &[("MAILGATE_DATABASE_URL", url)])).await;
    assert!(!ok, "serve started on an untrusted certificate:\n{stderr}");
    let expected = format!(
        "error: could not connect to Postgres at postgres://postgres:***@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={wrong}: TLS: certificate not trusted",
        f.pg.port
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // A misconfiguration is not retried until a timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn doctor_fails_on_wrong_cas_and_passes_on_the_right_ones() {
    let f = PgFixture::start().await;
    let redis = TlsRedis::start(&f.pki, true).await;
    let env = |ca: String| {
        vec![
            (
                "MAILGATE_DATABASE_URL",
                f.pg.url("postgres", &format!("sslmode=verify-full&sslrootcert={ca}")),
            ),
            ("MAILGATE_REDIS_URL", redis.url()),
            ("MAILGATE_REDIS__CA_FILE", ca),
            ("MAILGATE_REDIS__CLIENT_CERT", s(&f.pki.client_cert)),
            ("MAILGATE_REDIS__CLIENT_KEY", s(&f.pki.client_key)),
        ]
    };

    let (ok, report, _) = finish(mailgate(&["doctor"], &env(s(&f.pki.wrong_ca)))).await;
    assert!(!ok, "{report}");
    let line = |name: &str| {
        report
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no {name} line:\n{report}"))
            .to_string()
    };
    let postgres = line("postgres");
    assert!(
        postgres.starts_with("FAIL") && postgres.contains("TLS: certificate not trusted"),
        "{report}"
    );
    let redis_line = line("redis");
    assert!(
        redis_line.starts_with("FAIL")
            && redis_line.contains(&format!("{}: TLS: certificate not trusted", redis.url())),
        "{report}"
    );

    let good = env(s(&f.pki.ca));
    let (ok, _, stderr) = finish(mailgate(&["migrate"], &good)).await;
    assert!(ok, "{stderr}");
    let (ok, report, stderr) = finish(mailgate(&["doctor"], &good)).await;
    assert!(ok, "{report}{stderr}");
    assert!(report.contains("all checks passed"), "{report}");
}

#[tokio::test]
async fn serve_starts_on_an_untrusted_redis_certificate_and_logs_why() {
    let f = PgFixture::start().await;
    let redis = TlsRedis::start(&f.pki, false).await;
    let http = format!("127.0.0.1:{}", free_port());
    let mut child = mailgate(
        &["serve"],
        &[
            ("MAILGATE_DATABASE_URL", create_database().await),
            ("MAILGATE_REDIS_URL", redis.url()),
            ("MAILGATE_REDIS__CA_FILE", s(&f.pki.wrong_ca)),
        ],
    )
    .env("MAILGATE_HTTP_ADDR", &http)
    .spawn()
    .expect("mailgate runs");
    process::wait_healthy(&mut child, &http).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "could not connect to Redis at {}: TLS: certificate not trusted (signed by an unknown issuer: check the CA file) (redis.ca_file={}); until this is fixed rate limits are per process (on_redis_error = fail_open)",
        redis.url(),
        s(&f.pki.wrong_ca)
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("ERROR") && l.contains(&expected)),
        "{stderr}"
    );
}
