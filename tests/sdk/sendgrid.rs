//! The sendgrid Python SDK and @sendgrid/mail against mailgate's SendGrid route.

use serde_json::{Value, json};

use crate::{
    clients::{Runtime, run},
    mail::{self, Expected},
    support::{app::spawn_app_relaying_to, smtp_server::TestSmtpServer},
};

/// Plain send, attachment, cc/bcc/reply-to/headers/categories/custom_args, template, two
/// personalizations, sandbox mode, an invalid recipient, a 429 and a bad key; every delivery
/// checked.
async fn scenario_set(runtime: Runtime, script: &str) -> Value {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    // @sendgrid/mail sends dynamic_template_data only for `d-…` template ids.
    app.put_template("d-welcome", &mail::welcome_template())
        .await;
    let out = run(&app, runtime, script).await;

    // 202 and X-Message-Id, mailgate's id.
    for scenario in ["plain", "attachment", "extras", "template"] {
        assert_eq!(out[scenario]["status"], 202, "{scenario}: {out}");
        let id = out[scenario]["id"].as_str().unwrap();
        assert_eq!(app.get_email(id).await.id, id, "{scenario}");
    }
    // Two personalizations are two messages, listed in X-Mailgate-Message-Ids.
    assert_eq!(out["batch"]["status"], 202);
    let ids = out["batch"]["ids"].as_str().unwrap();
    assert_eq!(ids.split(", ").count(), 2, "{ids}");
    // Sandbox mode: 200, nothing sent.
    assert_eq!(out["sandbox"]["status"], 200, "{out}");
    assert_eq!(out["sandbox"]["id"], Value::Null);
    let extras = app.get_email(out["extras"]["id"].as_str().unwrap()).await;
    assert_eq!(extras.tags, ["welcome"]);
    assert_eq!(extras.metadata, json!({"user_id": "42"}));
    // SendGrid's error body names the field.
    assert_eq!(out["invalid"]["status"], 400, "{out}");
    assert_eq!(
        out["invalid"]["body"]["errors"][0]["field"],
        "personalizations.0.to.0"
    );

    // plain, attachment, extras ×3, template, batch ×2, limited.
    mail::check(&smtp, Expected { deliveries: 9 }).await;
    out
}

#[tokio::test]
async fn sendgrid_python_sdk_sends_through_mailgate() {
    let out = scenario_set(Runtime::Python, "sendgrid_client.py").await;
    // python-http-client's classes, by status.
    assert_eq!(out["invalid"]["class"], "BadRequestsError", "{out}");
    assert_eq!(
        out["rate_limited"]["class"], "TooManyRequestsError",
        "{out}"
    );
    assert_eq!(out["bad_key"]["class"], "UnauthorizedError", "{out}");
}

#[tokio::test]
async fn sendgrid_node_sdk_sends_through_mailgate() {
    let out = scenario_set(Runtime::Node, "sendgrid_client.cjs").await;
    // @sendgrid/client rejects with ResponseError carrying the status.
    assert_eq!(out["invalid"]["class"], "ResponseError", "{out}");
    assert_eq!(out["rate_limited"]["class"], "ResponseError", "{out}");
    assert_eq!(out["rate_limited"]["status"], 429);
    assert_eq!(out["bad_key"]["class"], "ResponseError", "{out}");
    assert_eq!(out["bad_key"]["status"], 401);
}
