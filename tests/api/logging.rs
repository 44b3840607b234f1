//! Logs for machines: `MAILGATE_LOG_FORMAT=json` and request ids that tie a reply to its lines.

use std::{process::Stdio, time::Duration};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::app::{create_database, http_client, spawn_app};

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_clients_own_is_kept() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let response = app
        .http
        .get(app.url("/v1/emails"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
}

#[tokio::test]
async fn json_log_format_writes_one_json_object_per_line_with_span_fields() {
    let db = create_database().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .arg("serve")
        .env("MAILGATE_DATABASE_URL", &db)
        .env("MAILGATE_HTTP_ADDR", "127.0.0.1:0")
        .env("MAILGATE_METRICS__ADDR", "127.0.0.1:0")
        .env("MAILGATE_SMTP__ENABLED", "false")
        .env("MAILGATE_LOG_FORMAT", "json")
        .env("MAILGATE_LOG", "info,sqlx=warn,tower_http=debug")
        .env_remove("MAILGATE_RELAY_URL")
        .env_remove("MAILGATE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen: Vec<String> = Vec::new();

    // The start-up line names the port it bound.
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("serve exited early");
            seen.push(line.clone());
            let Ok(json) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(rest) = json["message"]
                .as_str()
                .and_then(|m| m.strip_prefix("mailgate serving: http="))
            {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no start-up line in:\n{}", seen.join("\n")));

    let response = http_client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line);
        }
    })
    .await
    .expect("serve stops on SIGTERM");
    assert!(child.wait().await.unwrap().success());

    let parsed: Vec<Value> = seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        parsed
            .iter()
            .all(|j| j["level"].is_string() && j["timestamp"].is_string())
    );
    assert!(
        parsed
            .iter()
            .any(|j| j["message"].as_str() == Some("mailgate stopped"))
    );
    // tower-http's request lines sit in the request span, which names the request id.
    let in_request = parsed.iter().find(|j| {
        j["spans"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["request_id"] == request_id.as_str()))
    });
    let in_request =
        in_request.unwrap_or_else(|| panic!("no line with request_id {request_id}:\n{seen:#?}"));
    assert_eq!(in_request["spans"][0]["path"], "/healthz");
}
