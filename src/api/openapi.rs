//! The OpenAPI document, generated from the handlers' annotations; served at `/openapi.json`
//! with Swagger UI at `/docs`, and printed by `mailgate openapi`.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{
    api_keys, compat, emails, health, hold, inbound, projects, relays, suppressions, templates,
    tracking, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mailgate",
        description = "HTTP-to-SMTP transactional email gateway. A 2xx to a send means the message is committed and will reach a terminal status.\n\nNo string, in a JSON body or a query parameter, may contain NUL (U+0000)."
    ),
    paths(
        emails::send,
        emails::send_batch,
        emails::list,
        emails::show,
        emails::source,
        emails::cancel,
        hold::release,
        hold::discard,
        api_keys::create,
        api_keys::list,
        api_keys::revoke,
        api_keys::update,
        projects::create,
        projects::list,
        projects::update,
        inbound::list,
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
        webhooks::signing_key,
        suppressions::list,
        suppressions::add,
        suppressions::show,
        suppressions::remove,
        tracking::open,
        tracking::click,
        compat::resend::routes::send,
        compat::resend::routes::send_batch,
        compat::resend::routes::show,
        compat::resend::routes::cancel,
        compat::postmark::routes::send,
        compat::postmark::routes::send_batch,
        compat::postmark::routes::send_with_template,
        compat::postmark::routes::send_batch_with_templates,
        compat::sendgrid::routes::send,
        compat::mailgun::routes::send,
    ),
    components(schemas(
        crate::domain::status::MessageStatus,
        webhooks::DeliveryStatus,
        compat::resend::errors::ErrorBody,
        compat::postmark::errors::ErrorBody,
        compat::sendgrid::errors::ErrorBody,
        compat::sendgrid::errors::ErrorItem,
        compat::mailgun::errors::ErrorBody,
    )),
    modifiers(&Security, &CrossFieldRules),
    tags(
        (name = "emails", description = "Send mail and follow what happened to it"),
        (name = "templates", description = "Stored templates, rendered with tera"),
        (name = "keys", description = "API keys of a project"),
        (name = "operator", description = "Projects of every tenant (operator JWT)"),
        (name = "health", description = "Probes"),
        (name = "webhooks", description = "Signed callbacks for every recipient transition (Standard Webhooks)"),
        (name = "suppressions", description = "Addresses never mailed again"),
        (name = "resend", description = "Resend-compatible routes, for Resend's SDKs (docs/compat/resend.md)"),
        (name = "postmark", description = "Postmark-compatible routes, for Postmark's SDKs (docs/compat/postmark.md)"),
        (name = "sendgrid", description = "SendGrid-compatible routes, for SendGrid's SDKs (docs/compat/sendgrid.md)"),
        (name = "mailgun", description = "Mailgun-compatible routes, for Mailgun's SDKs (docs/compat/mailgun.md)"),
        (name = "tracking", description = "The open pixel and link redirects of tracked mail (no key: the signed token is the credential)")
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
            "postmark_token",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "X-Postmark-Server-Token",
                    "A project's API key, as Postmark's SDKs send their server token",
                ),
            )),
        );
        components.add_security_scheme(
            "mailgun_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "`api` and a project's API key, as Mailgun's SDKs send them",
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

/// Rules between fields that the derives cannot state, added to the request schemas as
/// `allOf` clauses: what is required unless something else is given.
struct CrossFieldRules;

impl Modify for CrossFieldRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            RefOr, Schema,
            schema::{AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Type},
        };
        fn any_of(items: impl IntoIterator<Item = Schema>) -> Schema {
            items
                .into_iter()
                .fold(AnyOfBuilder::new(), |b, item| b.item(item))
                .into()
        }
        fn all_of(items: impl IntoIterator<Item = RefOr<Schema>>) -> Schema {
            items
                .into_iter()
                .fold(AllOfBuilder::new(), |b, item| b.item(item))
                .into()
        }
        fn typed(t: Type) -> ObjectBuilder {
            ObjectBuilder::new().schema_type(t)
        }
        /// `field` is present, with this schema.
        fn given(field: &str, schema: impl Into<RefOr<Schema>>) -> Schema {
            ObjectBuilder::new()
                .required(field)
                .property(field, schema)
                .into()
        }
        let not_empty = |field: &str| given(field, typed(Type::String).min_length(Some(1)));
        let html_or_text = || any_of([not_empty("html"), not_empty("text")]);
        let some_recipient = |field: &str| {
            given(
                field,
                any_of([
                    typed(Type::String).into(),
                    typed(Type::Object).into(),
                    ArrayBuilder::new().min_items(Some(1)).into(),
                ]),
            )
        };
        let absent = |fields: &[&str]| -> Schema {
            fields
                .iter()
                .fold(ObjectBuilder::new(), |b, f| {
                    b.property(*f, typed(Type::Null))
                })
                .into()
        };
        // Content given directly: a subject and html or text, no template variables.
        let direct = all_of([
            given("subject", typed(Type::String)).into(),
            absent(&["template", "variables"]).into(),
            html_or_text().into(),
        ]);
        // From a template, which provides subject, html and text.
        let templated = all_of([
            given("template", typed(Type::String)).into(),
            absent(&["subject", "html", "text"]).into(),
        ]);
        let send = all_of([
            any_of([
                some_recipient("to"),
                some_recipient("cc"),
                some_recipient("bcc"),
            ])
            .into(),
            any_of([direct, templated]).into(),
        ]);
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, rule) in [
            ("NewTemplate", html_or_text()),
            ("TemplateParts", html_or_text()),
            ("ValidateRequest", html_or_text()),
            ("SendRequest", send),
        ] {
            if let Some(schema) = components.schemas.remove(name) {
                components
                    .schemas
                    .insert(name.to_string(), all_of([schema, rule.into()]).into());
            }
        }
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
