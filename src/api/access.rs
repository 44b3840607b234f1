//! Who may call each route of the HTTP API: one table, [`ROUTES`]. The gate enforces it
//! (`gate::layer`, before any handler runs) and the OpenAPI document states it (each
//! operation's `security` names the scope its key needs, `openapi::RouteAccess`).
//!
//! A provider-compatible route does not say what it needs: it names its native twin and
//! needs what the twin needs. Resend's `GET /emails/{id}` reads a message, HTML and Bcc
//! list included, as `GET /v1/emails/{id}` does, so both need `messages`; a provider route
//! can never drift from its twin.
//!
//! Routes outside the API (`/metrics`, `/docs`, `/openapi.json`, the console) are not here:
//! they are not behind the gate.

use axum::http::Method;

use crate::{
    domain::Scope,
    service::{
        Caller,
        error::{Forbidden, ServiceError, ServiceResult},
        gate,
    },
};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: probes, tracking and unsubscribe links (their signed token is the credential).
    Open,
    /// A project's key holding the scope; the route acts in the key's project.
    Key(Scope),
    /// A project's key holding the scope (its own project), or the operator (any project).
    KeyOrOperator(Scope),
    /// Only the operator: routes about every tenant or the server itself.
    Operator,
}

/// What a route needs: its own rule, or its native twin's (`"POST /v1/emails"`).
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    Is(Access),
    TwinOf(&'static str),
}

/// One route: method and path as the router and the spec write them.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub rule: Rule,
}

const fn route(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        rule: Rule::Is(access),
    }
}

const fn twin(method: &'static str, path: &'static str, native: &'static str) -> Route {
    Route {
        method,
        path,
        rule: Rule::TwinOf(native),
    }
}

use Access::{Key, KeyOrOperator, Open, Operator};
use Scope::{Domains, Keys, Messages, Send, Suppressions, Templates, Webhooks};

/// Every route of the API. A route missing here is refused by the gate (a bug, logged),
/// and `tests/openapi.rs` holds this table and the spec to the same routes.
pub const ROUTES: &[Route] = &[
    // Mail: sending needs `send`, reading `messages`.
    route("POST", "/v1/emails", Key(Send)),
    route("POST", "/v1/emails/batch", Key(Send)),
    route("GET", "/v1/emails", Key(Messages)),
    route("GET", "/v1/emails/{id}", Key(Messages)),
    route("GET", "/v1/emails/{id}/source", Key(Messages)),
    route("POST", "/v1/emails/{id}/cancel", Key(Send)),
    route("PATCH", "/v1/emails/{id}", Key(Send)),
    route("POST", "/v1/emails/{id}/release", KeyOrOperator(Send)),
    route("POST", "/v1/emails/{id}/discard", KeyOrOperator(Send)),
    // Keys: a key manages its own project's, within what it holds itself (`service::keys`).
    route("GET", "/v1/api-keys", KeyOrOperator(Keys)),
    route("POST", "/v1/api-keys", KeyOrOperator(Keys)),
    route("PATCH", "/v1/api-keys/{id}", KeyOrOperator(Keys)),
    route("DELETE", "/v1/api-keys/{id}", KeyOrOperator(Keys)),
    route("GET", "/v1/templates", Key(Templates)),
    route("POST", "/v1/templates", Key(Templates)),
    route("POST", "/v1/templates/validate", Key(Templates)),
    route("GET", "/v1/templates/{name}", Key(Templates)),
    route("PUT", "/v1/templates/{name}", Key(Templates)),
    route("DELETE", "/v1/templates/{name}", Key(Templates)),
    route("POST", "/v1/templates/{name}/render", Key(Templates)),
    route("GET", "/v1/webhooks", Key(Webhooks)),
    route("POST", "/v1/webhooks", Key(Webhooks)),
    route("GET", "/v1/webhooks/signing-key", Key(Webhooks)),
    route("GET", "/v1/webhooks/{id}", Key(Webhooks)),
    route("PATCH", "/v1/webhooks/{id}", Key(Webhooks)),
    route("DELETE", "/v1/webhooks/{id}", Key(Webhooks)),
    route("POST", "/v1/webhooks/{id}/rotate-secret", Key(Webhooks)),
    route("POST", "/v1/webhooks/{id}/test", Key(Webhooks)),
    route("GET", "/v1/webhooks/{id}/deliveries", Key(Webhooks)),
    route(
        "POST",
        "/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
        Key(Webhooks),
    ),
    route("GET", "/v1/suppressions", Key(Suppressions)),
    route("POST", "/v1/suppressions", Key(Suppressions)),
    route("GET", "/v1/suppressions/{email}", Key(Suppressions)),
    route("DELETE", "/v1/suppressions/{email}", Key(Suppressions)),
    // Sending domains.
    route("GET", "/v1/domains", Key(Domains)),
    route("POST", "/v1/domains", Key(Domains)),
    route("GET", "/v1/domains/{id}", Key(Domains)),
    route("PATCH", "/v1/domains/{id}", Key(Domains)),
    route("DELETE", "/v1/domains/{id}", Key(Domains)),
    route("POST", "/v1/domains/{id}/verify", Key(Domains)),
    route("POST", "/v1/domains/{id}/rotate-dkim", Key(Domains)),
    // The operator's: every tenant, the server's relays and inbound log.
    route("GET", "/v1/projects", Operator),
    route("POST", "/v1/projects", Operator),
    route("PATCH", "/v1/projects/{name}", Operator),
    route("GET", "/v1/relays", Operator),
    route("GET", "/v1/destinations", Operator),
    route("GET", "/v1/inbound", Operator),
    // No key.
    route("GET", "/healthz", Open),
    route("GET", "/readyz", Open),
    route("GET", "/t/o/{token}", Open),
    route("GET", "/t/c/{token}", Open),
    route("GET", "/u/{token}", Open),
    route("POST", "/u/{token}", Open),
    // Resend.
    twin("POST", "/emails", "POST /v1/emails"),
    twin("POST", "/emails/batch", "POST /v1/emails/batch"),
    twin("GET", "/emails/{id}", "GET /v1/emails/{id}"),
    twin("POST", "/emails/{id}/cancel", "POST /v1/emails/{id}/cancel"),
    twin("GET", "/emails", "GET /v1/emails"),
    twin("PATCH", "/emails/{id}", "PATCH /v1/emails/{id}"),
    twin("POST", "/domains", "POST /v1/domains"),
    twin("GET", "/domains", "GET /v1/domains"),
    twin("GET", "/domains/{id}", "GET /v1/domains/{id}"),
    twin("PATCH", "/domains/{id}", "PATCH /v1/domains/{id}"),
    twin("DELETE", "/domains/{id}", "DELETE /v1/domains/{id}"),
    twin(
        "POST",
        "/domains/{id}/verify",
        "POST /v1/domains/{id}/verify",
    ),
    // Postmark.
    twin("POST", "/email", "POST /v1/emails"),
    twin("POST", "/email/withTemplate", "POST /v1/emails"),
    twin("POST", "/email/batch", "POST /v1/emails/batch"),
    twin("POST", "/email/batchWithTemplates", "POST /v1/emails/batch"),
    // SendGrid: one request, many personalizations.
    twin("POST", "/v3/mail/send", "POST /v1/emails/batch"),
    // Mailgun.
    twin("POST", "/v3/{domain}/messages", "POST /v1/emails"),
];

/// What `method` on the route `path` (the router's pattern, `/emails/{id}`) needs: `None`
/// for a route not in the table. A trailing slash is the same route (postmarker adds one);
/// `HEAD` is `GET`'s.
pub fn access(method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    rule_of(method, normalise(path)).and_then(resolve)
}

/// Whether any method of `path` is in the table (another method gets the router's 405).
pub fn knows_path(path: &str) -> bool {
    let path = normalise(path);
    ROUTES.iter().any(|r| r.path == path)
}

fn normalise(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    }
}

fn rule_of(method: &str, path: &str) -> Option<Rule> {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.rule)
}

/// A rule's access, a twin's through the native route it names (one level: twins name
/// native routes).
pub fn resolve(rule: Rule) -> Option<Access> {
    match rule {
        Rule::Is(access) => Some(access),
        Rule::TwinOf(native) => {
            let (method, path) = native.split_once(' ')?;
            match rule_of(method, path)? {
                Rule::Is(access) => Some(access),
                Rule::TwinOf(_) => None,
            }
        }
    }
}

/// Whether `caller` may call a route needing `access`; the refusal says why.
pub fn authorize(caller: &Caller, access: Access) -> ServiceResult<()> {
    match (caller, access) {
        (_, Open) | (Caller::Operator, KeyOrOperator(_) | Operator) => Ok(()),
        (Caller::Key(key), Key(scope) | KeyOrOperator(scope)) => {
            gate::require(key, scope).map(drop)
        }
        (Caller::Key(_), Operator) => Err(ServiceError::forbidden(
            Forbidden::OperatorOnly,
            "only the operator may call this route (Authorization: Bearer <token from `mailgate token`>); a project's API key cannot",
        )),
        (Caller::Operator, Key(_)) => Err(ServiceError::forbidden(
            Forbidden::KeyOnly,
            "this route acts in one project: call it with that project's API key, not the operator's token",
        )),
    }
}

/// The table as docs/keys.md shows it: one row per route, what it needs.
pub fn markdown_table() -> String {
    let mut out = String::from("| route | needs |\n|---|---|\n");
    for r in ROUTES {
        let needs = match resolve(r.rule) {
            Some(Open) => "no key".to_string(),
            Some(Key(s)) => format!("key with `{}`", s.as_str()),
            Some(KeyOrOperator(s)) => format!("key with `{}`, or the operator", s.as_str()),
            Some(Operator) => "the operator".to_string(),
            None => "refused (no rule)".to_string(),
        };
        let needs = match r.rule {
            Rule::TwinOf(native) => format!("{needs}, as `{native}`"),
            Rule::Is(_) => needs,
        };
        out.push_str(&format!("| `{} {}` | {needs} |\n", r.method, r.path));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_is_listed_once() {
        for (i, a) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[i + 1..]
                    .iter()
                    .all(|b| (a.method, a.path) != (b.method, b.path)),
                "{} {} is listed twice",
                a.method,
                a.path
            );
        }
    }

    /// A twin names a native route, and provider routes take only keys (their SDKs carry no
    /// operator token).
    #[test]
    fn every_twin_is_a_native_key_route() {
        for r in ROUTES {
            if let Rule::TwinOf(native) = r.rule {
                assert!(native.contains(" /v1/"), "{native} is not a native route");
                assert!(
                    matches!(resolve(r.rule), Some(Key(_))),
                    "{} {} names {native}, which is not a key route",
                    r.method,
                    r.path
                );
            }
        }
    }

    #[test]
    fn a_trailing_slash_and_head_are_the_same_route() {
        assert_eq!(
            access(&Method::POST, "/email/batch/"),
            Some(Key(Scope::Send))
        );
        assert_eq!(
            access(&Method::HEAD, "/emails/{id}"),
            Some(Key(Scope::Messages))
        );
        assert_eq!(access(&Method::DELETE, "/emails/{id}"), None);
        assert!(knows_path("/emails/{id}/"));
        assert!(!knows_path("/nowhere"));
    }

    /// docs/keys.md shows the table as the code has it.
    #[test]
    fn the_docs_show_this_table() {
        let docs = include_str!("../../docs/keys.md");
        let table = markdown_table();
        assert!(
            docs.contains(&table),
            "docs/keys.md does not show api::access::ROUTES; paste this in its place:\n\n{table}"
        );
    }
}
