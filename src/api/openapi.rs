//! The OpenAPI document, generated from the handlers' annotations; served at `/openapi.json`
//! with Swagger UI at `/docs`, and printed by `mailgate openapi`.

use utoipa::{
    IntoResponses, Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{
    api_keys, emails, error::Problem, health, projects, relays, suppressions, templates, webhooks,
};

/// Every error a route may answer, as problem+json with a stable `code`.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ProblemResponses {
    #[response(
        status = 400,
        description = "Malformed JSON (`malformed_json`)",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    #[response(
        status = 401,
        description = "Missing, invalid or revoked credentials (`unauthorized`)",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "The key lacks the scope (`forbidden_scope`)",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 404,
        description = "Not found, or another project's (`not_found`)",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    #[response(
        status = 409,
        description = "Conflict (`idempotency_conflict`, `not_cancellable`, `project_exists`)",
        content_type = "application/problem+json"
    )]
    Conflict(Problem),
    #[response(
        status = 413,
        description = "Body or message too large (`payload_too_large`)",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    #[response(
        status = 415,
        description = "Not a JSON body (`unsupported_media_type`)",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
    #[response(
        status = 422,
        description = "Invalid fields, each named in `errors` (`validation_error`)",
        content_type = "application/problem+json"
    )]
    Unprocessable(Problem),
    #[response(
        status = 429,
        description = "Over the key's rate limit (`rate_limited`) or daily quota (`quota_exceeded`); see `Retry-After` and the `RateLimit-*` headers",
        content_type = "application/problem+json"
    )]
    TooManyRequests(Problem),
    #[response(
        status = 503,
        description = "The database is unavailable; retry (`unavailable`)",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mailgate",
        description = "HTTP-to-SMTP transactional email gateway. A 2xx to a send means the message is committed and will reach a terminal status."
    ),
    paths(
        emails::send,
        emails::send_batch,
        emails::list,
        emails::show,
        emails::source,
        emails::cancel,
        api_keys::create,
        api_keys::list,
        api_keys::revoke,
        api_keys::update,
        projects::create,
        projects::list,
        relays::list,
        templates::create,
        templates::list,
        templates::show,
        templates::replace,
        templates::remove,
        templates::render,
        templates::validate,
        health::healthz,
        health::readyz,
        webhooks::create,
        webhooks::list,
        webhooks::show,
        webhooks::update,
        webhooks::remove,
        webhooks::rotate_secret,
        webhooks::send_test,
        webhooks::deliveries,
        webhooks::retry,
        suppressions::list,
        suppressions::add,
        suppressions::show,
        suppressions::remove,
    ),
    modifiers(&Security),
    tags(
        (name = "emails", description = "Send mail and follow what happened to it"),
        (name = "templates", description = "Stored templates, rendered with tera"),
        (name = "keys", description = "API keys of a project"),
        (name = "operator", description = "Projects of every tenant (operator JWT)"),
        (name = "health", description = "Probes"),
        (name = "webhooks", description = "Signed callbacks for every recipient transition (Standard Webhooks)"),
        (name = "suppressions", description = "Addresses never mailed again")
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A project's API key: `Authorization: Bearer mg_live_…` or `mg_test_…`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An operator token from `mailgate token`"))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON, the form committed in `openapi/openapi.json`.
pub fn json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the spec serialises");
    text.push('\n');
    text
}
