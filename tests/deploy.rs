//! The files in `deploy/`: the example production config loads and validates offline (with
//! its secrets from the environment, printed redacted), a typo in it is refused with the
//! usual suggestion, and the systemd unit passes `systemd-analyze verify`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// The secrets `deploy/mailgate.env.example` gives the service, with recognisable passwords.
const SECRETS: &[(&str, &str)] = &[
    ("PGPASSWORD", "pg-hunter2"),
    (
        "MAILGATE_REDIS_URL",
        "rediss://mailgate:redis-hunter2@redis.internal.example:6380/0",
    ),
    (
        "MAILGATE_RELAYS__SES__URL",
        "smtp://AKIAEXAMPLE:ses-hunter2@email-smtp.eu-west-1.amazonaws.com:587?tls=required",
    ),
    (
        "MAILGATE_RELAYS__BACKUP__URL",
        "smtps://mailgate:backup-hunter2@smtp.backup-provider.example:465",
    ),
    ("MAILGATE_JWT_SECRET", "jwt-hunter2"),
];

/// `mailgate doctor --offline --config CONFIG` with only `envs` of the variables that
/// configure mailgate or Postgres: (success, stdout and stderr).
fn doctor_offline(config: &Path, envs: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MAILGATE_")
            || k.starts_with("PG")
            || k == "DATABASE_URL"
            || k == "REDIS_URL"
        {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(["doctor", "--offline", "--config"])
        .arg(config)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("mailgate runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_example_config_loads_offline_with_its_secrets_redacted() {
    let (ok, out) = doctor_offline(&deploy("mailgate.toml"), SECRETS);
    assert!(ok, "{out}");
    assert!(!out.contains("hunter2"), "a secret prints:\n{out}");
    for expected in [
        // From the file, TLS to Postgres as libpq reads it.
        "database_url = \"postgres://mailgate@db.internal.example:5432/mailgate?sslmode=verify-full&sslrootcert=/etc/mailgate/tls/db-ca.pem\"",
        // From the environment, redacted.
        "redis_url = \"rediss://mailgate:***@redis.internal.example:6380/0\"",
        "url = \"smtp://AKIAEXAMPLE:***@email-smtp.eu-west-1.amazonaws.com:587?tls=required\"",
        "url = \"smtps://mailgate:***@smtp.backup-provider.example:465\"",
        "jwt_secret = \"***\"",
        "ca_file = \"/etc/mailgate/tls/redis-ca.pem\"",
        "drain_secs = 10",
        "max_rate_per_sec = 14.0",
        "ok    postgres                         db.internal.example:5432, database mailgate, sslmode verify-full",
        "ok    redis                            rediss://mailgate:***@redis.internal.example:6380/0",
        "ok    relays",
        "not read offline: smtp.tls_cert=/etc/mailgate/tls/smtp-fullchain.pem",
        "all checks passed",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    // Nothing was connected to: the hosts do not exist, and the check still passed.
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn a_typo_in_the_example_config_is_refused_with_a_suggestion() {
    let text = std::fs::read_to_string(deploy("mailgate.toml")).unwrap();
    assert!(text.contains("\nshutdown_grace_secs = 20\n"));
    let typo = text.replacen(
        "\nshutdown_grace_secs = 20\n",
        "\nshutdown_grace_sec = 20\n",
        1,
    );
    let path = std::env::temp_dir().join(format!(
        "mailgate-deploy-{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, typo).unwrap();
    let (ok, out) = doctor_offline(&path, SECRETS);
    let _ = std::fs::remove_file(&path);
    assert!(!ok, "{out}");
    assert!(
        out.contains("unknown config key `delivery.shutdown_grace_sec`")
            && out.contains("did you mean `delivery.shutdown_grace_secs`?"),
        "{out}"
    );
}

#[test]
fn the_systemd_unit_verifies() {
    // `verify` checks that ExecStart exists: point it at the binary just built.
    let unit = std::fs::read_to_string(deploy("mailgate.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/mailgate serve"));
    let unit = unit.replace(
        "ExecStart=/usr/local/bin/mailgate",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_mailgate")),
    );
    let dir = std::env::temp_dir().join(format!("mailgate-unit-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mailgate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.unwrap_or_else(|e| {
        panic!(
            "systemd-analyze does not run ({e}): apt-get install systemd (scripts/test installs it)"
        )
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}
