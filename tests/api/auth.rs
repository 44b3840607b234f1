//! Keys, scopes, tenants and the operator.

use serde_json::{Value, json};

use crate::support::app::{JWT_SECRET, spawn_app};

fn body() -> Value {
    json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"})
}

fn operator_token() -> String {
    let secret: secrecy::SecretString = JWT_SECRET.to_string().into();
    mailgate::service::gate::mint_operator_token(&secret, std::time::Duration::from_secs(60))
        .unwrap()
}

#[tokio::test]
async fn missing_bad_and_unscoped_keys_are_refused() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/v1/emails"))
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "unauthorized"
    );

    let response = app
        .post_email_raw("mg_live_0000000000000000000000000000000000000000", &body())
        .await;
    assert_eq!(response.status(), 401);

    let read_only = app.create_key("acme", "messages", false).await;
    let response = app.post_email_raw(&read_only, &body()).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "forbidden_scope"
    );
}

#[tokio::test]
async fn another_projects_email_is_not_found() {
    let app = spawn_app().await;
    let id = app.send_ok(&body()).await;
    let other = app.create_key("globex", "send,messages", false).await;
    let response = app.get_email_raw(&other, &id).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_found");
    let response = app.get_source_raw(&other, &id).await;
    assert_eq!(response.status(), 404);
    // And the owner still sees it.
    assert_eq!(app.get_email_raw(&app.key, &id).await.status(), 200);
    assert_eq!(
        app.get_email_raw(&app.key, "not-a-uuid").await.status(),
        404
    );
}

#[tokio::test]
async fn keys_are_stored_hashed_and_revocation_works() {
    let app = spawn_app().await;
    // Only a 32-byte SHA-256 is stored, never the key.
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as("SELECT key_hash, prefix FROM api_keys")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    for (hash, prefix) in &rows {
        assert_eq!(hash.len(), 32);
        assert!(!String::from_utf8_lossy(hash).contains("mg_"));
        assert_eq!(
            prefix.len(),
            "mg_live_".len() + 6,
            "only a recognisable prefix is kept in clear"
        );
    }

    // A key with the `keys` scope creates and revokes keys of its own project.
    let created = app
        .create_api_key(&json!({"scopes": ["send"], "name": "ci"}))
        .await;
    let new_key = created["key"].as_str().unwrap().to_string();
    assert!(new_key.starts_with("mg_live_"));
    assert_eq!(app.post_email_raw(&new_key, &body()).await.status(), 202);

    let listed = app.list_api_keys().await;
    assert!(
        !serde_json::to_string(&listed).unwrap().contains(&new_key),
        "a list never shows keys in clear"
    );

    app.revoke_api_key(created["id"].as_str().unwrap()).await;
    assert_eq!(app.post_email_raw(&new_key, &body()).await.status(), 401);
    // A revoked key is gone: its limits can no longer be changed.
    let patched = app
        .patch_key_limits_raw(
            &app.key,
            created["id"].as_str().unwrap(),
            &json!({"burst": 1}),
        )
        .await;
    assert_eq!(patched.status(), 404);

    // It cannot reach into another project.
    app.create_key("globex", "send", false).await;
    let response = app
        .post_json(
            "/v1/api-keys",
            &json!({"project": "globex", "scopes": ["send"]}),
        )
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn the_operator_manages_projects_and_keys_with_a_jwt() {
    let app = spawn_app().await;
    let token = operator_token();
    let response = app.http.get(app.url("/v1/projects")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .http
        .get(app.url("/v1/projects"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        403,
        "a project key is not an operator token"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "operator_only"
    );
    let response = app
        .http
        .get(app.url("/v1/projects"))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let response = app
        .http
        .post(app.url("/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({"name": "initech"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = app
        .http
        .post(app.url("/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({"name": "initech"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);

    let response = app
        .http
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&token)
        .json(&json!({"project": "initech", "scopes": ["send", "messages"], "test": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let key: Value = response.json().await.unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("mg_test_"));
    let id = {
        let r = app.post_email_raw(&key, &body()).await;
        assert_eq!(r.status(), 202);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // initech's message is invisible to acme.
    assert_eq!(app.get_email_raw(&app.key, &id).await.status(), 404);

    let projects: Value = app
        .http
        .get(app.url("/v1/projects"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = projects["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "initech"]);
}

#[tokio::test]
async fn the_cli_prints_a_working_key_on_its_last_line() {
    let app = spawn_app().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .args([
            "keys",
            "create",
            "--project",
            "cli-made",
            "--scopes",
            "send,messages",
        ])
        .env("MAILGATE_DATABASE_URL", &app.database_url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("mg_live_"), "{stdout}");
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(&key),
        "the key is printed once, on stdout"
    );
    assert_eq!(app.post_email_raw(&key, &body()).await.status(), 202);
}

/// A provider route needs the scope of its native twin: reading a message through Resend's
/// `GET /emails/{id}` (HTML, Bcc list) needs `messages`, as `GET /v1/emails/{id}` does, not
/// `send`; and a key with `messages` alone still cannot send through Resend's routes.
#[tokio::test]
async fn provider_routes_need_their_native_twins_scope() {
    let app = spawn_app().await;
    let id = app
        .send_ok(&json!({"from": "a@example.com", "to": "b@example.com",
            "bcc": "hidden@example.com", "subject": "s", "html": "<p>secret</p>"}))
        .await;
    let send_only = app.create_key("acme", "send", false).await;
    let read_only = app.create_key("acme", "messages", false).await;

    let native = app.get_email_raw(&send_only, &id).await;
    assert_eq!(native.status(), 403);
    let resend = app
        .http
        .get(app.url(&format!("/emails/{id}")))
        .bearer_auth(&send_only)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resend.status(),
        401,
        "Resend answers a missing scope with 401"
    );
    let body: Value = resend.json().await.unwrap();
    assert_eq!(body["name"], "restricted_api_key");
    assert!(body.get("bcc").is_none(), "no message in a refusal: {body}");

    let resend = app
        .http
        .get(app.url(&format!("/emails/{id}")))
        .bearer_auth(&read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(resend.status(), 200);
    let body: Value = resend.json().await.unwrap();
    assert_eq!(body["bcc"], json!(["hidden@example.com"]));

    let sent = app
        .http
        .post(app.url("/emails"))
        .bearer_auth(&read_only)
        .json(&body_for_resend())
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.status(),
        401,
        "a read-only key cannot send through Resend"
    );
    let sent = app
        .http
        .post(app.url("/emails"))
        .bearer_auth(&send_only)
        .json(&body_for_resend())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
}

fn body_for_resend() -> Value {
    json!({"from": "a@example.com", "to": ["b@example.com"], "subject": "s", "text": "t"})
}
