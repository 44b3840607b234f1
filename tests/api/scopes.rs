//! Every route of the spec, tried as an attacker would: with a key of each single scope, with
//! the operator's token, and with no key. What each route needs is read from the spec the
//! gateway serves (each operation's `security` lists the scope a key needs, and `operator`
//! when the operator may call it), and the answers must agree: too little is refused with the
//! route family's refusal, enough is never a 401 or 403.

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::support::app::{JWT_SECRET, TestApp, status_and_json};

const SCOPES: [&str; 7] = [
    "send",
    "messages",
    "templates",
    "webhooks",
    "suppressions",
    "keys",
    "domains",
];

/// What a route needs, as the spec states it.
#[derive(Debug)]
struct Needs {
    /// The scope a key needs; `None`: no key will do.
    scope: Option<String>,
    operator: bool,
    /// The schemes the route's clients carry a key in (`api_key`, `postmark_token`, …).
    schemes: Vec<String>,
}

fn needs(method: &str, path: &str, operation: &Value) -> Option<Needs> {
    let security = operation.get("security")?.as_array()?;
    let mut scope = None;
    let mut operator = false;
    let mut schemes = Vec::new();
    for requirement in security {
        for (scheme, roles) in requirement.as_object().unwrap() {
            if scheme == "operator" {
                operator = true;
                continue;
            }
            let roles: Vec<&str> = roles
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert_eq!(
                roles.len(),
                1,
                "{method} {path}: the `{scheme}` requirement names the one scope a key needs: {roles:?}"
            );
            scope = Some(roles[0].to_string());
            schemes.push(scheme.clone());
        }
    }
    Some(Needs {
        scope,
        operator,
        schemes,
    })
}

/// The family a route belongs to, by its tag: its refusals have its shape.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Native,
    Resend,
    Postmark,
    SendGrid,
    Mailgun,
}

fn family(operation: &Value) -> Family {
    match operation["tags"][0].as_str().unwrap_or("") {
        "resend" => Family::Resend,
        "postmark" => Family::Postmark,
        "sendgrid" => Family::SendGrid,
        "mailgun" => Family::Mailgun,
        _ => Family::Native,
    }
}

/// Whether the answer is the family's refusal of a caller who may not call the route.
fn is_refusal(family: Family, status: u16, body: &Value) -> bool {
    match family {
        Family::Native => {
            status == 403
                && ["forbidden_scope", "operator_only", "key_only"]
                    .contains(&body["code"].as_str().unwrap_or(""))
        }
        // Resend answers a restricted key with 401 `restricted_api_key`.
        Family::Resend => status == 401 && body["name"] == "restricted_api_key",
        // Postmark: 422, ErrorCode 405 ("not allowed to send").
        Family::Postmark => status == 422 && body["ErrorCode"] == 405,
        Family::SendGrid | Family::Mailgun => status == 403,
    }
}

/// The path with made-up values for its parameters.
fn concrete(path: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    path.replace("{id}", &id)
        .replace("{delivery_id}", &id)
        .replace("{name}", "no-such-thing")
        .replace("{email}", "nobody@example.com")
        .replace("{token}", "not-a-token")
        .replace("{domain}", "example.com")
}

/// A request carrying `token` where the route's clients carry it.
fn with_token(request: RequestBuilder, schemes: &[String], token: &str) -> RequestBuilder {
    match schemes.first().map(String::as_str) {
        Some("postmark_token") => request.header("X-Postmark-Server-Token", token),
        Some("mailgun_basic") => request.basic_auth("api", Some(token)),
        _ => request.bearer_auth(token),
    }
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    schemes: &[String],
    token: Option<&str>,
) -> (u16, Value) {
    let method: Method = method.parse().unwrap();
    let mut request = app.http.request(method.clone(), app.url(&concrete(path)));
    if let Some(token) = token {
        request = with_token(request, schemes, token);
    }
    if method != Method::GET && method != Method::DELETE {
        request = request.json(&json!({}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn every_route_answers_each_scope_as_the_spec_says() {
    let app = TestApp::builder()
        // Dozens of requests without a key on purpose: the failed-authentication throttle
        // would end them in 429s.
        .configure(|c| c.ratelimit.auth_failures_per_minute = 0)
        .start()
        .await;
    let (_, spec) =
        status_and_json(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    let operator = mailgate::service::gate::mint_operator_token(
        &JWT_SECRET.to_string().into(),
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    let mut keys = Vec::new();
    for scope in SCOPES {
        keys.push((scope, app.create_key("acme", scope, false).await));
    }

    let mut wrong = Vec::new();
    let mut walked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let family = family(operation);
            let Some(needs) = needs(&method, path, operation) else {
                // Open: anyone may call it.
                let (status, body) = call(&app, &method, path, &[], None).await;
                if status == 401 || status == 403 {
                    wrong.push(format!(
                        "{method} {path} is open, yet without a key: {status} {body}"
                    ));
                }
                continue;
            };
            walked += 1;
            let mut check = |who: &str, allowed: bool, status: u16, body: &Value| {
                let refused = is_refusal(family, status, body);
                let ok = if allowed {
                    !refused && status != 401 && status != 403 && status < 500
                } else {
                    refused
                };
                if !ok {
                    let expected = if allowed { "let through" } else { "refused" };
                    wrong.push(format!(
                        "{method} {path} with {who}: expected {expected}, got {status} {body}"
                    ));
                }
            };
            for (scope, key) in &keys {
                let (status, body) = call(&app, &method, path, &needs.schemes, Some(key)).await;
                let allowed = needs.scope.as_deref() == Some(*scope);
                check(&format!("a `{scope}` key"), allowed, status, &body);
            }
            let (status, body) = call(&app, &method, path, &needs.schemes, Some(&operator)).await;
            check("the operator's token", needs.operator, status, &body);
            // No key at all: never let through.
            let (status, body) = call(&app, &method, path, &needs.schemes, None).await;
            if status != 401 {
                wrong.push(format!("{method} {path} without a key: {status} {body}"));
            }
        }
    }
    assert!(walked >= 45, "only {walked} routes with a key in the spec");
    assert!(
        wrong.is_empty(),
        "{} answers disagree with the spec:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The spec states a scope for each key route, and the same one for a provider's route as
/// for its native twin.
#[tokio::test]
async fn provider_routes_need_what_their_native_twins_need() {
    let spec: Value = serde_json::from_str(&mailgate::api::openapi::json()).unwrap();
    let scope_of = |method: &str, path: &str| {
        needs(method, path, &spec["paths"][path][method])
            .and_then(|n| n.scope)
            .unwrap_or_else(|| panic!("{method} {path} states no scope"))
    };
    for (provider, native) in [
        (("post", "/emails"), ("post", "/v1/emails")),
        (("get", "/emails/{id}"), ("get", "/v1/emails/{id}")),
        (
            ("post", "/emails/{id}/cancel"),
            ("post", "/v1/emails/{id}/cancel"),
        ),
        (("post", "/email/batch"), ("post", "/v1/emails/batch")),
        (("post", "/v3/mail/send"), ("post", "/v1/emails/batch")),
        (("post", "/v3/{domain}/messages"), ("post", "/v1/emails")),
    ] {
        assert_eq!(
            scope_of(provider.0, provider.1),
            scope_of(native.0, native.1),
            "{provider:?} and its twin {native:?}"
        );
    }
    assert_eq!(scope_of("get", "/emails/{id}"), "messages");
}
