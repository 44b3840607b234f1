//! A key that manages keys (the `keys` scope) gives no more than it holds: no scope it lacks,
//! no send limit above its own or, except to lower a key, above the configured defaults; a
//! test key makes test keys only. Each refusal is a 403 naming what asks too much. The
//! operator is not bound by any of it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::app::{JWT_SECRET, TestApp, spawn_app};
use mailgate::domain::api_key::KeyLimits;

fn operator_token() -> String {
    mailgate::service::gate::mint_operator_token(
        &JWT_SECRET.to_string().into(),
        std::time::Duration::from_secs(60),
    )
    .unwrap()
}

/// The fields a 403 names, after checking its code.
fn refused_fields(status: u16, body: &Value, code: &str) -> Vec<String> {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], code, "{body}");
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The configured defaults of the app under test: `ratelimit.send`.
async fn app_with_defaults() -> TestApp {
    TestApp::builder()
        .configure(|c| {
            c.ratelimit.send.rate_per_sec = 50.0;
            c.ratelimit.send.burst = 100;
            c.ratelimit.send.daily_quota = Some(10_000);
        })
        .start()
        .await
}

#[tokio::test]
async fn a_keys_key_grants_no_scope_it_lacks() {
    let app = spawn_app().await;
    let keys_only = app.create_key("acme", "keys", false).await;

    // The hole: a `keys` key made itself a key with every power.
    let (status, body) = app
        .call_as(
            &keys_only,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"scopes": ["send", "messages", "keys", "webhooks"]})),
        )
        .await;
    assert_eq!(
        refused_fields(status, &body, "exceeds_own_scopes"),
        ["scopes"]
    );
    let detail = body["detail"].as_str().unwrap();
    for scope in ["`send`", "`messages`", "`webhooks`"] {
        assert!(
            detail.contains(scope),
            "the refusal names {scope}: {detail}"
        );
    }
    assert_eq!(
        app.list_api_keys().await.data.len(),
        2,
        "no key was made: the app's key and the `keys` key only"
    );

    // What it holds, it may give.
    let (status, body) = app
        .call_as(
            &keys_only,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"scopes": ["keys"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // A key with more scopes is out of its reach: it can neither change nor revoke it.
    let strong = app
        .create_api_key(&json!({"scopes": ["send", "webhooks"], "name": "strong"}))
        .await;
    let strong_id = strong["id"].as_str().unwrap();
    let (status, body) = app
        .call_as(
            &keys_only,
            Method::PATCH,
            &format!("/v1/api-keys/{strong_id}"),
            Some(json!({"burst": 1})),
        )
        .await;
    refused_fields(status, &body, "exceeds_own_scopes");
    let (status, body) = app
        .call_as(
            &keys_only,
            Method::DELETE,
            &format!("/v1/api-keys/{strong_id}"),
            None,
        )
        .await;
    refused_fields(status, &body, "exceeds_own_scopes");
    let strong_key = strong["key"].as_str().unwrap();
    let (status, _) = app
        .call_as(strong_key, Method::GET, "/v1/webhooks", None)
        .await;
    assert_eq!(status, 200, "the stronger key still works");

    // The operator grants anything.
    let (status, body) = app
        .call_as(
            &operator_token(),
            Method::POST,
            "/v1/api-keys",
            Some(json!({"project": "acme", "scopes": ["send", "messages", "keys", "webhooks"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_key_cannot_raise_limits_above_its_own_or_the_defaults() {
    let app = app_with_defaults().await;
    // A key of the defaults' limits cannot make a key freer than the defaults.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"scopes": ["send"], "rate_per_sec": 1000, "burst": 100, "daily_quota": 20000})),
        )
        .await;
    assert_eq!(
        refused_fields(status, &body, "exceeds_own_limits"),
        ["rate_per_sec", "daily_quota"],
        "burst 100 is the default: allowed; the others are named"
    );
    assert!(body["detail"].as_str().unwrap().contains("1000"), "{body}");

    // A limited key: 5 per second, burst 10, 1000 a day.
    let (limited, limited_id) = app
        .create_limited_key(KeyLimits {
            rate_per_sec: Some(5.0),
            burst: Some(10),
            daily_quota: Some(1000),
        })
        .await;
    let limited_id = limited_id.to_string();
    // It cannot raise its own limits…
    let (status, body) = app
        .call_as(
            &limited,
            Method::PATCH,
            &format!("/v1/api-keys/{limited_id}"),
            Some(json!({"rate_per_sec": 6, "burst": 10})),
        )
        .await;
    assert_eq!(
        refused_fields(status, &body, "exceeds_own_limits"),
        ["rate_per_sec"]
    );
    // …nor return them to the larger defaults…
    let (status, body) = app
        .call_as(
            &limited,
            Method::PATCH,
            &format!("/v1/api-keys/{limited_id}"),
            Some(json!({"burst": null, "daily_quota": null})),
        )
        .await;
    assert_eq!(
        refused_fields(status, &body, "exceeds_own_limits"),
        ["burst", "daily_quota"]
    );
    // …and its limits are as they were.
    let info = app
        .list_api_keys()
        .await
        .data
        .into_iter()
        .find(|k| k["id"] == limited_id.as_str())
        .unwrap();
    assert_eq!(
        (&info["rate_per_sec"], &info["burst"], &info["daily_quota"]),
        (&json!(5.0), &json!(10), &json!(1000))
    );
    // Lowering them is fine.
    let (status, body) = app
        .call_as(
            &limited,
            Method::PATCH,
            &format!("/v1/api-keys/{limited_id}"),
            Some(json!({"rate_per_sec": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // A key it makes gets at most its own: left out, a limit is its own.
    let (status, made) = app
        .call_as(
            &limited,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"scopes": ["send"], "burst": 4})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (&made["rate_per_sec"], &made["burst"], &made["daily_quota"]),
        (&json!(2.0), &json!(4), &json!(1000))
    );
    // The new key sends under those limits: its bucket holds 4.
    let response = app
        .post_email_raw(
            made["key"].as_str().unwrap(),
            &json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["ratelimit-limit"], "4");
    // And it cannot raise the key it made beyond its own either.
    let made_id = made["id"].as_str().unwrap();
    let (status, body) = app
        .call_as(
            &limited,
            Method::PATCH,
            &format!("/v1/api-keys/{made_id}"),
            Some(json!({"burst": 50})),
        )
        .await;
    assert_eq!(
        refused_fields(status, &body, "exceeds_own_limits"),
        ["burst"]
    );

    // The operator raises limits beyond the defaults.
    let (status, body) = app
        .call_as(
            &operator_token(),
            Method::PATCH,
            &format!("/v1/api-keys/{limited_id}"),
            Some(json!({"rate_per_sec": 1000, "burst": 5000, "daily_quota": null})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["burst"], 5000);
}

#[tokio::test]
async fn a_test_key_makes_test_keys_only() {
    let app = spawn_app().await;
    let test_key = app.create_key("acme", "keys,send", true).await;
    let (status, body) = app
        .call_as(
            &test_key,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"scopes": ["send"]})),
        )
        .await;
    assert_eq!(refused_fields(status, &body, "test_key_only"), ["test"]);
    let (status, body) = app
        .call_as(
            &test_key,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"scopes": ["send"], "test": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["key"].as_str().unwrap().starts_with("mg_test_"));
}
