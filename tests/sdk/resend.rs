//! resend-python and the resend Node SDK against mailgate's Resend routes.

use serde_json::{Value, json};

use crate::{
    clients::{Runtime, run},
    mail::{self, Expected},
    support::{app::spawn_app_relaying_to, smtp_server::TestSmtpServer},
};

/// Plain send, attachment, cc/bcc/reply-to/headers/tags, template, batch, Idempotency-Key,
/// `GET /emails/{id}`, an invalid recipient, a 429 and a bad key; every delivery checked.
/// `extra` deliveries beyond the common set come from the script's own scenarios.
async fn scenario_set(runtime: Runtime, script: &str, extra: usize) -> Value {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    app.put_template("welcome", &mail::welcome_template()).await;
    let out = run(&app, runtime, script).await;

    // The ids are mailgate's own.
    for scenario in ["plain", "attachment", "extras", "template"] {
        let id = out[scenario].as_str().unwrap();
        assert_eq!(app.get_email(id).await.id, id, "{scenario}");
    }
    assert_eq!(out["batch"].as_array().unwrap().len(), 2);
    // The same Idempotency-Key and body: one message, the first answer replayed.
    assert_eq!(out["idempotent"][0], out["idempotent"][1]);
    // Resend tags are metadata entries, and their names tags.
    let extras = app.get_email(out["extras"].as_str().unwrap()).await;
    assert_eq!(extras.tags, ["category"]);
    assert_eq!(extras.metadata["category"], "welcome");
    // Resend's email object.
    let got = &out["get"];
    assert_eq!(got["object"], "email");
    assert_eq!(got["id"], out["extras"]);
    assert_eq!(got["to"], serde_json::json!(["to@x.test"]));
    assert_eq!(got["cc"], serde_json::json!(["cc@x.test"]));
    assert_eq!(got["bcc"], serde_json::json!(["bcc@x.test"]));
    assert_eq!(got["subject"], "extras");
    assert_eq!(got["tags"][0]["name"], "category");
    assert_eq!(got["tags"][0]["value"], "welcome");
    // `scheduled_at: "in 1 hour"`, then `POST /emails/{id}/cancel`: nothing is sent.
    let scheduled = out["scheduled"].as_str().unwrap();
    assert_eq!(out["cancel"]["object"], "email", "{out}");
    assert_eq!(out["cancel"]["id"], scheduled);
    let email = app.get_email(scheduled).await;
    assert_eq!(email.status, "cancelled", "{email}");
    assert!(email.send_at.is_some(), "{email}");

    // plain, attachment, extras ×3, template, batch ×2, idempotent, limited.
    mail::check(
        &smtp,
        Expected {
            deliveries: 10 + extra,
        },
    )
    .await;
    out
}

#[tokio::test]
async fn resend_python_sdk_sends_through_mailgate() {
    // One more delivery: the good item of the permissive batch.
    let out = scenario_set(Runtime::Python, "resend_client.py", 1).await;
    // resend-python's own exception classes, chosen by status and `name`.
    assert_eq!(out["invalid"]["class"], "ValidationError", "{out}");
    assert_eq!(out["rate_limited"]["class"], "RateLimitError", "{out}");
    assert_eq!(out["bad_key"]["class"], "InvalidApiKeyError", "{out}");
    // The same Idempotency-Key with another body.
    assert_eq!(
        out["idempotency_conflict"],
        json!({"class": "ResendError", "code": "409"}),
        "{out}"
    );
    // x-batch-validation: permissive sends the good item and names the bad one.
    assert_eq!(out["permissive"]["data"].as_array().unwrap().len(), 1);
    assert_eq!(out["permissive"]["errors"][0]["index"], 1, "{out}");
}

#[tokio::test]
async fn resend_node_sdk_sends_through_mailgate() {
    let out = scenario_set(Runtime::Node, "resend_client.cjs", 0).await;
    // resend-node returns the error body as `error`.
    assert_eq!(out["invalid"]["name"], "validation_error", "{out}");
    assert_eq!(out["invalid"]["statusCode"], 422);
    assert_eq!(out["rate_limited"]["name"], "rate_limit_exceeded", "{out}");
    assert_eq!(out["rate_limited"]["statusCode"], 429);
    assert_eq!(out["bad_key"]["name"], "invalid_api_key", "{out}");
    assert_eq!(out["bad_key"]["statusCode"], 403);
}

/// `emails.list` pages newest first with `limit` and `after`, and `emails.update` moves a
/// scheduled email (and refuses one that is not scheduled); checked against what mailgate
/// stored.
async fn list_and_update(runtime: Runtime, script: &str) -> Value {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    let out = run(&app, runtime, script).await;
    let (now, later) = (
        out["ids"]["now"].as_str().unwrap(),
        out["ids"]["later"].as_str().unwrap(),
    );
    assert_eq!(
        out["first_page"],
        json!({"object": "list", "has_more": true, "ids": [later], "to": ["later@x.test"],
               "last_event": "scheduled"}),
        "{out}"
    );
    assert_eq!(
        out["second_page"],
        json!({"has_more": false, "ids": [now], "cc": ["cc@x.test"]})
    );
    assert_eq!(out["updated"], json!({"object": "email", "id": later}));
    let wanted: chrono::DateTime<chrono::Utc> = out["new_time"].as_str().unwrap().parse().unwrap();
    let stored = app.get_email(later).await.send_at.expect("still scheduled");
    assert!(
        (stored - wanted).num_milliseconds().abs() < 1,
        "{stored} != {wanted}"
    );
    out
}

#[tokio::test]
async fn resend_python_sdk_lists_and_reschedules() {
    let out = list_and_update(Runtime::Python, "resend_list_update.py").await;
    assert_eq!(out["not_scheduled"]["code"], "422", "{out}");
}

#[tokio::test]
async fn resend_node_sdk_lists_and_reschedules() {
    let out = list_and_update(Runtime::Node, "resend_list_update.cjs").await;
    assert_eq!(
        out["not_scheduled"],
        json!({"name": "validation_error", "statusCode": 422}),
        "{out}"
    );
}

/// Runs a Domains script: publishes the records it hands over (in a real DNS server on
/// loopback) and lets it verify, then returns what it printed and the domain's name.
async fn domains_scenario(runtime: Runtime, script: &str) -> Value {
    use crate::support::{app::TestApp, dns_server::TestDns};
    let dns = TestDns::start().await;
    let app = TestApp::builder()
        .configure(|c| {
            c.dns.nameservers = vec![dns.addr.to_string()];
            c.dns.timeout_ms = 1000;
            c.domains.spf_include = Some("_spf.relay.test".into());
        })
        .start()
        .await;
    let publish = std::env::temp_dir().join(format!(
        "mailgate-domains-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    let publish_path = publish.to_str().unwrap().to_string();
    let watcher = async {
        let records: Value = crate::support::eventually::eventually(
            "the script hands over its records",
            std::time::Duration::from_secs(60),
            async || {
                std::fs::read_to_string(&publish)
                    .ok()
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            },
        )
        .await;
        let domain = if script.ends_with(".py") {
            "sdk-py.test"
        } else {
            "sdk-node.test"
        };
        for r in records.as_array().unwrap() {
            let name = match r["name"].as_str().unwrap() {
                "@" => domain.to_string(),
                relative => format!("{relative}.{domain}"),
            };
            if r["type"] == "TXT" {
                dns.txt(&name, r["value"].as_str().unwrap());
            }
        }
        std::fs::write(format!("{publish_path}.done"), b"").unwrap();
    };
    let env = [("PUBLISH", publish_path.as_str())];
    let (out, ()) = tokio::join!(
        crate::clients::run_with(&app, runtime, script, &env),
        watcher
    );
    let _ = std::fs::remove_file(&publish);
    let _ = std::fs::remove_file(format!("{publish_path}.done"));
    // Resend's shapes, with mailgate's records: DKIM under a dated selector, SPF, DMARC.
    let created = &out["created"];
    assert_eq!(created["status"], "not_started", "{out}");
    let records = created["records"].as_array().unwrap();
    let dkim = records.iter().find(|r| r["record"] == "DKIM").unwrap();
    assert!(
        dkim["name"].as_str().unwrap().ends_with("._domainkey"),
        "{dkim}"
    );
    assert_eq!(dkim["type"], "TXT");
    assert_eq!(dkim["ttl"], "Auto");
    assert_eq!(dkim["status"], "not_started");
    assert!(
        dkim["value"]
            .as_str()
            .unwrap()
            .starts_with("v=DKIM1; k=rsa; p=")
    );
    let spf = records.iter().find(|r| r["record"] == "SPF").unwrap();
    assert_eq!(spf["name"], "@");
    assert_eq!(spf["value"], "v=spf1 include:_spf.relay.test ~all");
    assert_eq!(out["got"]["object"], "domain");
    assert_eq!(out["got"]["id"], created["id"]);
    assert_eq!(out["listed"]["object"], "list");
    assert_eq!(out["listed"]["ids"], json!([created["id"]]));
    assert_eq!(out["updated"]["id"], created["id"]);
    assert_eq!(out["verified"]["object"], "domain");
    // Verified through the DNS server, as the native route would say.
    assert_eq!(out["after_verify"], "verified", "{out}");
    assert_eq!(out["removed"]["deleted"], true);
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/domains/{}", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 404, "removed through the SDK is removed");
    out
}

#[tokio::test]
async fn resend_python_sdk_manages_domains() {
    let out = domains_scenario(Runtime::Python, "resend_domains.py").await;
    // resend-python has no class of its own for a 404: its base class, with the code.
    assert_eq!(
        out["gone"],
        json!({"class": "ResendError", "code": "404"}),
        "{out}"
    );
}

#[tokio::test]
async fn resend_node_sdk_manages_domains() {
    let out = domains_scenario(Runtime::Node, "resend_domains.cjs").await;
    assert_eq!(out["gone"]["statusCode"], 404, "{out}");
}
