//! The OpenAPI document, generated from the handlers' annotations; served at `/openapi.json`
//! with Swagger UI at `/docs`, and printed by `mailgate openapi`.

use axum::http::Method;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{
    access::{self, Access},
    api_keys, compat, destinations, domains, emails, health, hold, inbound, projects, relays,
    suppressions, templates, tracking, unsubscribe, webhooks,
};
use crate::domain::Scope;

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
        emails::reschedule,
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
        destinations::list,
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
        domains::create,
        domains::list,
        domains::show,
        domains::update,
        domains::remove,
        domains::verify,
        domains::rotate_dkim,
        tracking::open,
        tracking::click,
        unsubscribe::page,
        unsubscribe::one_click,
        compat::resend::routes::send,
        compat::resend::routes::send_batch,
        compat::resend::routes::show,
        compat::resend::routes::cancel,
        compat::resend::routes::list,
        compat::resend::routes::update,
        compat::resend::domains::create,
        compat::resend::domains::list,
        compat::resend::domains::show,
        compat::resend::domains::update,
        compat::resend::domains::remove,
        compat::resend::domains::verify,
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
    modifiers(&Security, &RouteAccess, &CrossFieldRules),
    tags(
        (name = "emails", description = "Send mail and follow what happened to it"),
        (name = "templates", description = "Stored templates, rendered with tera"),
        (name = "keys", description = "API keys of a project"),
        (name = "operator", description = "Projects of every tenant (operator JWT)"),
        (name = "health", description = "Probes"),
        (name = "webhooks", description = "Signed callbacks for every recipient transition (Standard Webhooks)"),
        (name = "suppressions", description = "Addresses never mailed again"),
        (name = "domains", description = "Sending domains: the DNS records to publish, their verification, DKIM keys and rotation"),
        (name = "resend", description = "Resend-compatible routes, for Resend's SDKs (docs/compat/resend.md)"),
        (name = "postmark", description = "Postmark-compatible routes, for Postmark's SDKs (docs/compat/postmark.md)"),
        (name = "sendgrid", description = "SendGrid-compatible routes, for SendGrid's SDKs (docs/compat/sendgrid.md)"),
        (name = "mailgun", description = "Mailgun-compatible routes, for Mailgun's SDKs (docs/compat/mailgun.md)"),
        (name = "tracking", description = "The open pixel and link redirects of tracked mail (no key: the signed token is the credential)"),
        (name = "unsubscribe", description = "One-click unsubscribe links (RFC 8058) of mail sent with `unsubscribe` (no key: the signed token is the credential)")
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

/// Each operation's `security` from the one table of who may call what (`access::ROUTES`):
/// the scheme the route's clients use (`api_key`, `postmark_token`, …) lists the scope a key
/// needs as its role (OpenAPI 3.1 allows role names for any scheme), and `operator` is there
/// exactly when the operator may call it. An open route has none.
struct RouteAccess;

impl Modify for RouteAccess {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::PATCH, &mut item.patch),
                (Method::DELETE, &mut item.delete),
            ] {
                let Some(operation) = operation else { continue };
                // A route missing from the table keeps its annotation; a test finds it.
                let Some(access) = access::access(&method, path) else {
                    continue;
                };
                // The schemes the annotation names, their roles dropped.
                let annotated: Vec<String> = operation
                    .security
                    .iter()
                    .flatten()
                    .filter_map(|r| serde_json::to_value(r).ok())
                    .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
                    .flatten()
                    .collect();
                let mut key_schemes: Vec<&str> = annotated
                    .iter()
                    .map(String::as_str)
                    .filter(|s| *s != "operator")
                    .collect();
                if key_schemes.is_empty() {
                    key_schemes.push("api_key");
                }
                let keys = |scope: Scope| {
                    key_schemes
                        .iter()
                        .map(|s| SecurityRequirement::new(*s, [scope.as_str()]))
                        .collect::<Vec<_>>()
                };
                let operator = || SecurityRequirement::new("operator", Vec::<String>::new());
                operation.security = match access {
                    Access::Open => None,
                    Access::Key(scope) => Some(keys(scope)),
                    Access::KeyOrOperator(scope) => {
                        let mut all = keys(scope);
                        all.push(operator());
                        Some(all)
                    }
                    Access::Operator => Some(vec![operator()]),
                };
            }
        }
    }
}

/// Rules between fields that the derives cannot state, added to the request schemas as
/// `allOf` clauses: what is required unless something else is given, and the form of fields a
/// provider's body holds as plain strings. The rules are the server's: a body the spec calls
/// valid is refused only for what depends on state outside it (a stored template, a relay, how
/// far ahead a send may be scheduled, DNS); `scripts/fuzz.toml` lists those operations.
struct CrossFieldRules;

/// A bare address or `Name <address>`, as `NameAddrDoc`'s pattern writes it.
const MAILBOX: &str = r"([A-Za-z0-9_%+-]{1,64}@[A-Za-z0-9]{1,20}(\.[A-Za-z0-9]{1,20}){0,3}\.[A-Za-z]{2,20}|[A-Za-z0-9 ]{0,64}<[A-Za-z0-9_%+-]{1,64}@[A-Za-z0-9]{1,20}(\.[A-Za-z0-9]{1,20}){0,3}\.[A-Za-z]{2,20}>)";

impl Modify for CrossFieldRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            Ref, RefOr, Schema,
            schema::{AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Type},
        };
        fn any_of<S: Into<RefOr<Schema>>>(items: impl IntoIterator<Item = S>) -> Schema {
            items
                .into_iter()
                .fold(AnyOfBuilder::new(), |b, item| b.item(item))
                .into()
        }
        fn all_of<S: Into<RefOr<Schema>>>(items: impl IntoIterator<Item = S>) -> Schema {
            items
                .into_iter()
                .fold(AllOfBuilder::new(), |b, item| b.item(item))
                .into()
        }
        fn typed(t: Type) -> ObjectBuilder {
            ObjectBuilder::new().schema_type(t)
        }
        fn named(component: &str) -> RefOr<Schema> {
            Ref::from_schema_name(component).into()
        }
        /// `field` is present, with this schema.
        fn given(field: &str, schema: impl Into<RefOr<Schema>>) -> Schema {
            ObjectBuilder::new()
                .required(field)
                .property(field, schema)
                .into()
        }
        /// `field`, when present and not null, has this schema.
        fn when(field: &str, schema: impl Into<RefOr<Schema>>) -> Schema {
            ObjectBuilder::new()
                .property(field, any_of([schema.into(), typed(Type::Null).into()]))
                .into()
        }
        /// None of `fields` is given (absent or null).
        fn absent(fields: &[&str]) -> Schema {
            fields
                .iter()
                .fold(ObjectBuilder::new(), |b, f| {
                    b.property(*f, typed(Type::Null))
                })
                .into()
        }
        let one_line = || {
            typed(Type::String)
                .max_length(Some(998))
                .pattern(Some(r"^[^\r\n]*$"))
        };
        let not_empty = |field: &str| given(field, typed(Type::String).min_length(Some(1)));
        let either_body = |html: &str, text: &str| any_of([not_empty(html), not_empty(text)]);
        let html_or_text = || either_body("html", "text");
        let address = || any_of([named("AddrSpecDoc"), named("NameAddrDoc")]);
        let some_recipient = |field: &str| {
            given(
                field,
                any_of([
                    Schema::from(typed(Type::String)),
                    typed(Type::Object).into(),
                    ArrayBuilder::new().min_items(Some(1)).into(),
                ]),
            )
        };
        let recipients_in =
            |make: &dyn Fn(&str) -> Schema, fields: [&str; 3]| any_of(fields.map(make));
        let recipients = || recipients_in(&some_recipient, ["to", "cc", "bcc"]);
        // Content given directly: a subject and html or text, no template variables.
        let direct = all_of([
            given("subject", typed(Type::String)),
            absent(&["template", "variables"]),
            html_or_text(),
        ]);
        // From a template, which provides subject, html and text.
        let templated = all_of([
            given("template", typed(Type::String)),
            absent(&["subject", "html", "text"]),
        ]);
        let send = all_of([recipients(), any_of([direct, templated])]);

        // Resend: the same rules; `from` is a string, `template` an object.
        let resend_email = all_of([
            given("from", address()),
            recipients(),
            any_of([
                all_of([
                    given("subject", typed(Type::String)),
                    absent(&["template"]),
                    html_or_text(),
                ]),
                all_of([
                    given("template", typed(Type::Object)),
                    absent(&["subject", "html", "text"]),
                ]),
            ]),
            when(
                "scheduled_at",
                any_of([
                    typed(Type::String).format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::DateTime,
                    ))),
                    typed(Type::String).pattern(Some(
                        r"^[Ii][Nn] [0-9]{1,5} ([Ss][Ee][Cc]([Oo][Nn][Dd])?|[Mm][Ii][Nn]([Uu][Tt][Ee])?|[Hh]([Oo][Uu])?[Rr]|[Dd][Aa][Yy])[Ss]?$",
                    )),
                ]),
            ),
        ]);
        let byte = || typed(Type::Integer).minimum(Some(0)).maximum(Some(255));
        let resend_attachment = |part: &dyn Fn(&str) -> RefOr<Schema>| {
            all_of([
                absent(&["path"]),
                given("filename", part("filename")),
                when("content_type", part("content_type")),
                when("content_id", part("content_id")),
                when("inline_content_id", part("content_id")),
                given(
                    "content",
                    any_of([
                        RefOr::from(typed(Type::String).format(Some(
                            utoipa::openapi::SchemaFormat::KnownFormat(
                                utoipa::openapi::KnownFormat::Byte,
                            ),
                        ))),
                        ArrayBuilder::new().items(byte()).into(),
                        all_of([
                            given("type", typed(Type::String).enum_values(Some(["Buffer"]))),
                            given("data", ArrayBuilder::new().items(byte())),
                        ])
                        .into(),
                    ]),
                ),
            ])
        };

        // Postmark: `/email` sends content, `/email/withTemplate` a stored template; addresses
        // are comma-separated strings.
        let list =
            || typed(Type::String).pattern(Some(format!(r"^({MAILBOX}(, ?{MAILBOX}){{0,49}})?$")));
        let some_in_list = |field: &str| {
            given(
                field,
                typed(Type::String).pattern(Some(format!(r"^{MAILBOX}(, ?{MAILBOX}){{0,49}}$"))),
            )
        };
        let postmark_common = || {
            all_of([
                given("From", address()),
                when("To", list()),
                when("Cc", list()),
                when("Bcc", list()),
                when("ReplyTo", list()),
                recipients_in(&some_in_list, ["To", "Cc", "Bcc"]),
            ])
        };
        let postmark_email = all_of([
            named("PostmarkMessage"),
            postmark_common().into(),
            given("Subject", one_line()).into(),
            absent(&["TemplateId", "TemplateAlias"]).into(),
            either_body("HtmlBody", "TextBody").into(),
        ]);
        let postmark_template = all_of([
            named("PostmarkMessage"),
            postmark_common().into(),
            any_of([
                given("TemplateId", typed(Type::Integer)),
                given("TemplateAlias", typed(Type::String)),
            ])
            .into(),
            absent(&["Subject", "HtmlBody", "TextBody"]).into(),
        ]);

        // SendGrid: each personalization needs a recipient; content or a template.
        let non_empty_list = |field: &str| given(field, ArrayBuilder::new().min_items(Some(1)));
        // Legacy substitutions are refused when given (not empty).
        let unused = || {
            any_of([
                Schema::from(typed(Type::Object).max_properties(Some(0))),
                ArrayBuilder::new().max_items(Some(0)).into(),
            ])
        };
        let personalization = all_of([
            recipients_in(&non_empty_list, ["to", "cc", "bcc"]),
            when("substitutions", unused()),
        ]);
        let sendgrid_content = any_of([
            all_of([
                absent(&["template_id"]),
                // A personalization's subject overrides the mail's.
                any_of([
                    all_of([
                        given("subject", one_line()),
                        ObjectBuilder::new()
                            .property(
                                "personalizations",
                                ArrayBuilder::new().items(RefOr::from(when("subject", one_line()))),
                            )
                            .into(),
                    ]),
                    ObjectBuilder::new()
                        .property(
                            "personalizations",
                            ArrayBuilder::new().items(RefOr::from(given("subject", one_line()))),
                        )
                        .into(),
                ]),
                given(
                    "content",
                    ArrayBuilder::new().min_items(Some(1)).items(
                        ObjectBuilder::new()
                            .property("value", typed(Type::String).min_length(Some(1))),
                    ),
                ),
            ]),
            given("template_id", typed(Type::String)),
        ]);
        let sendgrid_mail = all_of([sendgrid_content, when("sections", unused())]);

        // Mailgun: a form; `t:variables` only with a template.
        let some_in_lists = |field: &str| {
            given(
                field,
                ArrayBuilder::new().min_items(Some(1)).items(
                    typed(Type::String)
                        .pattern(Some(format!(r"^{MAILBOX}(, ?{MAILBOX}){{0,49}}$"))),
                ),
            )
        };
        let lists = || ArrayBuilder::new().items(list());
        let mailgun_message = all_of([
            given("from", address()),
            when("to", lists()),
            when("cc", lists()),
            when("bcc", lists()),
            recipients_in(&some_in_lists, ["to", "cc", "bcc"]),
            any_of([
                all_of([
                    given("subject", typed(Type::String)),
                    absent(&["template", "t:variables"]),
                    html_or_text(),
                ]),
                all_of([
                    given("template", typed(Type::String)),
                    absent(&["subject", "html", "text"]),
                ]),
            ]),
        ]);

        let components = openapi.components.get_or_insert_with(Default::default);
        // The native attachment's fields, which every provider's attachment becomes.
        let native = match components.schemas.get("AttachmentRequest") {
            Some(RefOr::T(Schema::Object(o))) => o.properties.clone(),
            _ => Default::default(),
        };
        let part = |field: &str| -> RefOr<Schema> {
            native
                .get(field)
                .cloned()
                .unwrap_or_else(|| typed(Type::String).into())
        };
        let postmark_attachment = all_of([
            given("Name", part("filename")),
            given("Content", part("content")),
            when("ContentType", part("content_type")),
            // `cid:` is dropped.
            when(
                "ContentID",
                typed(Type::String).pattern(Some(r"^(?!cid:$)(cid:)?[!-;=?-~]{1,128}$")),
            ),
        ]);
        let sendgrid_attachment = all_of([
            given("filename", part("filename")),
            given("content", part("content")),
            when("type", part("content_type")),
            // `content_id` is only read for an inline part; its rule is left unstated.
        ]);
        // Mailgun takes any `h:` header and `v:` variable beside its named fields.
        let mailgun_names = match components.schemas.get("MailgunMessage") {
            Some(RefOr::T(Schema::Object(o))) => o.properties.keys().cloned().collect(),
            _ => Vec::new(),
        }
        .into_iter()
        .chain(
            compat::mailgun::request::IGNORED
                .iter()
                .map(|name| name.to_string()),
        )
        .collect::<Vec<_>>();
        let mailgun_message = all_of([
            mailgun_message,
            ObjectBuilder::new()
                .property_names(Some(any_of([
                    typed(Type::String).enum_values(Some(mailgun_names)),
                    typed(Type::String).pattern(Some(r"^(h:[A-Za-z0-9-]{1,76}|v:.{1,64})$")),
                ])))
                .into(),
        ]);
        for (name, rule) in [
            ("NewTemplate", html_or_text()),
            ("TemplateParts", html_or_text()),
            ("ValidateRequest", html_or_text()),
            ("SendRequest", send),
            ("ResendEmail", resend_email),
            ("ResendAttachment", resend_attachment(&part)),
            ("PostmarkAttachment", postmark_attachment),
            ("SendGridAttachment", sendgrid_attachment),
            ("SendGridPersonalization", personalization),
            ("SendGridMail", sendgrid_mail),
            ("MailgunMessage", mailgun_message),
        ] {
            if let Some(schema) = components.schemas.remove(name) {
                components
                    .schemas
                    .insert(name.to_string(), all_of([schema, rule.into()]).into());
            }
        }
        for (name, schema, path) in [
            ("PostmarkEmail", postmark_email, "/email"),
            (
                "PostmarkTemplateEmail",
                postmark_template,
                "/email/withTemplate",
            ),
        ] {
            components.schemas.insert(name.to_string(), schema.into());
            let body = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|op| op.request_body.as_mut());
            if let Some(RefOr::T(body)) = body {
                for content in body.content.values_mut() {
                    if let RefOr::T(content) = content {
                        content.schema = Some(named(name));
                    }
                }
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
