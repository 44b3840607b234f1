//! What one request costs the process in memory, measured as an operator would: the growth
//! of the `mailgate` process's peak resident set (`VmHWM` in `/proc/<pid>/status`) across
//! one SendGrid sandbox-mode request of 100 personalizations sharing one 2 MB attachment.
//! Each personalization renders about 2.7 MB of MIME; before the attachment was shared and
//! each message dropped once checked, the request grew the process by about 500 MiB.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::support::{app::create_database, process};

const MIB: u64 = 1 << 20;

/// The process's peak resident set so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc/<pid>/status is readable (Linux)");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib * 1024
}

fn mail(personalizations: usize, attachment: &str) -> Value {
    let to: Vec<Value> = (0..personalizations)
        .map(|i| json!({"to": [{"email": format!("r{i}@example.org")}]}))
        .collect();
    json!({
        "from": {"email": "reports@example.com"},
        "subject": "Your monthly report",
        "personalizations": to,
        "content": [{"type": "text/plain", "value": "The report is attached."}],
        "attachments": [{"content": attachment, "filename": "report.pdf", "type": "application/pdf"}],
        "mail_settings": {"sandbox_mode": {"enable": true}}
    })
}

/// Starts a mailgate with `env`, sends the request once to warm it up with one
/// personalization, then the full one; answers its status and the peak RSS growth.
async fn growth(env: &[(&str, &str)]) -> (u16, u64) {
    let db = create_database().await;
    let http = format!("127.0.0.1:{}", crate::support::free_port());
    let mailgate = || {
        let mut cmd = process::command(&db, &http);
        cmd.envs(env.iter().copied());
        cmd
    };
    let key = process::create_key(mailgate(), "memory", "send").await;
    let child = process::serve(mailgate(), &http).await;
    let pid = child.id().expect("running");
    let client = crate::support::app::http_client();
    // Binary, as a PDF is: base64 in the MIME.
    let file: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7) as u8).collect();
    let attachment = base64::engine::general_purpose::STANDARD.encode(file);
    let send = |body: Value| {
        client
            .post(format!("http://{http}/v3/mail/send"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let warm = send(mail(1, &attachment)).await.unwrap();
    assert_eq!(warm.status(), 200, "{:?}", warm.text().await);
    let before = peak_rss(pid);
    let answer = send(mail(100, &attachment)).await.unwrap();
    let after = peak_rss(pid);
    let status = answer.status().as_u16();
    process::stop(child, Duration::from_secs(30)).await;
    (status, after.saturating_sub(before))
}

#[tokio::test]
async fn a_shared_attachment_is_held_once_not_per_personalization() {
    // With the default bound (50 MiB of MIME per request): refused once the bound is crossed,
    // before the request renders all 270 MB. Growth first: it is what the test is about.
    let (status, grew) = growth(&[]).await;
    eprintln!(
        "sandbox, 100 personalizations x 2 MB, default bound: {status}, peak RSS grew {} MiB",
        grew / MIB
    );
    assert!(grew < 100 * MIB, "peak RSS grew {} MiB", grew / MIB);
    assert_eq!(status, 413);

    // With a bound high enough for all 100 to render (about 270 MB of MIME in all): checked
    // one at a time, the attachment held once.
    let (status, grew) =
        growth(&[("MAILGATE_HTTP__MAX_REQUEST_BYTES_RENDERED", "1073741824")]).await;
    eprintln!(
        "sandbox, 100 personalizations x 2 MB, bound 1 GiB: {status}, peak RSS grew {} MiB",
        grew / MIB
    );
    assert!(grew < 100 * MIB, "peak RSS grew {} MiB", grew / MIB);
    assert_eq!(status, 200);
}
