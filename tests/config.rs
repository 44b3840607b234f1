//! The `mailgate` binary refuses a configuration with a key that is not a setting, in the
//! file or the environment, whatever the subcommand, and says which key and what was meant.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

/// A config file with `text`, removed when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "mailgate-config-test-{}.toml",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `mailgate args` with only `envs` of the `MAILGATE_*` variables; a run still going
/// after 20 s (a `serve` that started) is killed and fails the test.
fn mailgate(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailgate"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("MAILGATE_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            cmd.env_remove(k);
        }
    }
    // Never reached: the configuration is refused before anything connects.
    cmd.env(
        "MAILGATE_DATABASE_URL",
        "postgres://postgres@127.0.0.1:1/none",
    );
    cmd.envs(envs.iter().copied());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("mailgate {args:?} still runs: the configuration was accepted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.success(), text)
}

#[test]
fn migrate_refuses_a_misspelt_key_in_the_config_file() {
    let file = ConfigFile::new("[delivery]\nconcurency = 5\n");
    let path = file.0.to_str().unwrap();
    let (ok, out) = mailgate(&["--config", path, "migrate"], &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("unknown config key `delivery.concurency`")
            && out.contains(path)
            && out.contains("did you mean `delivery.concurrency`?"),
        "{out}"
    );
    // The same through MAILGATE_CONFIG.
    let (ok, out) = mailgate(&["migrate"], &[("MAILGATE_CONFIG", path)]);
    assert!(
        !ok && out.contains("did you mean `delivery.concurrency`?"),
        "{out}"
    );
}

#[test]
fn every_subcommand_refuses_a_misspelt_environment_variable() {
    for args in [
        &["serve"][..],
        &["migrate"],
        &["doctor"],
        &["projects", "list"],
        &["token"],
    ] {
        let (ok, out) = mailgate(args, &[("MAILGATE_DELIVERY__CONCURENCY", "5")]);
        assert!(!ok, "mailgate {args:?}: {out}");
        assert!(
            out.contains("MAILGATE_DELIVERY__CONCURENCY")
                && out.contains(
                    "did you mean `delivery.concurrency` (MAILGATE_DELIVERY__CONCURRENCY)?"
                ),
            "mailgate {args:?}: {out}"
        );
    }
}

#[test]
fn variables_that_scripts_and_tests_set_are_not_config_errors() {
    let file = ConfigFile::new(
        "[delivery]\nconcurrency = 5\n[relays.any-name]\nurl = \"smtp://127.0.0.1:2526\"\n",
    );
    let (ok, out) = mailgate(
        &["--config", file.0.to_str().unwrap(), "token"],
        &[
            ("MAILGATE_JWT_SECRET", "test-secret"),
            ("MAILGATE_ROOT", "/src/mailgate"),
            ("MAILGATE_KEY", "mg_live_example"),
            ("MAILGATE_PID", "1"),
            ("MAILGATE_FUZZ_EXAMPLES", "0"),
            (
                "MAILGATE_TEST_DATABASE_URL",
                "postgres://postgres@127.0.0.1/postgres",
            ),
        ],
    );
    assert!(ok, "{out}");
}
