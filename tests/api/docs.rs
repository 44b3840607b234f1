//! The spec and Swagger UI are served by the running gateway.

use serde_json::Value;

use crate::support::app::spawn_app;

#[tokio::test]
async fn serves_the_spec_and_swagger_ui() {
    let app = spawn_app().await;
    let spec: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["info"]["title"], "mailgate");
    assert!(spec["paths"]["/v1/emails"]["post"].is_object());
    let committed: Value = serde_json::from_str(&mailgate::api::openapi::json()).unwrap();
    assert_eq!(spec, committed);
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "Swagger UI is served without any download"
    );
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_count_accepted_and_delivered_mail_and_show_the_queue() {
    let smtp = crate::support::smtp_server::TestSmtpServer::start().await;
    let app = crate::support::app::spawn_app_relaying_to(&smtp).await;
    let project: (uuid::Uuid,) = sqlx::query_as("SELECT id FROM projects WHERE name = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let project = format!("project=\"{}\"", project.0);
    smtp.rcpt_reply("gone@example.com", 550, "5.1.1 unknown", None);
    for to in ["a@example.com", "gone@example.com"] {
        let id = app
            .send_ok(&serde_json::json!({"from": "x@example.com", "to": to, "subject": "s", "text": "t"}))
            .await;
        app.wait_for_status(
            &id,
            &["delivered", "bounced"],
            std::time::Duration::from_secs(15),
        )
        .await;
    }
    let text = app.scrape_metrics().await;
    assert_eq!(
        metric(&text, "mailgate_messages_accepted_total", &[&project]),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "mailgate_deliveries_total",
            &[&project, "outcome=\"delivered\"", "relay=\"default\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "mailgate_deliveries_total",
            &[&project, "outcome=\"bounced\""]
        ),
        1.0
    );
    assert!(
        metric(
            &text,
            "mailgate_smtp_send_seconds_count",
            &["relay=\"default\""]
        ) >= 2.0,
        "{text}"
    );
    assert!(
        text.contains("mailgate_queue_depth{status=\"queued\"}"),
        "{text}"
    );
    assert!(text.contains("mailgate_queue_oldest_waiting_seconds"));
}
