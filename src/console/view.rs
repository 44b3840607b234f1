//! Rendering pages: the tera templates compiled into the binary, the layout every page
//! shares (navigation, who is signed in, the sign-out form) and the error page.
//!
//! Autoescaping is on for every template (`.html`, `.svg`), and no template marks a value
//! `safe`: subjects, addresses, template sources and webhook answers print as text.

use std::sync::LazyLock;

use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use serde::Serialize;
use tera::{Context, Tera};

use crate::domain::Scope;

/// Who a page is shown to, as the layout needs it (the session's `Viewer`): a trait, so
/// rendering depends on no session.
pub trait Audience {
    /// This session's CSRF token, for the layout's sign-out form.
    fn csrf(&self) -> &str;
    /// Whether pages needing `scope` are open to this viewer.
    fn may(&self, scope: Scope) -> bool;
    fn is_operator(&self) -> bool;
    /// The project the pages show, if one is chosen.
    fn project_name(&self) -> Option<&str>;
    /// How the viewer signed in: "API key", "test key" or "operator".
    fn signed_in_as(&self) -> &'static str;
}

const TEMPLATES: [(&str, &str); 17] = [
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("error.html", include_str!("templates/error.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("messages.html", include_str!("templates/messages.html")),
    ("message.html", include_str!("templates/message.html")),
    ("projects.html", include_str!("templates/projects.html")),
    ("queue.html", include_str!("templates/queue.html")),
    (
        "destinations.html",
        include_str!("templates/destinations.html"),
    ),
    (
        "suppressions.html",
        include_str!("templates/suppressions.html"),
    ),
    ("templates.html", include_str!("templates/templates.html")),
    ("template.html", include_str!("templates/template.html")),
    ("webhooks.html", include_str!("templates/webhooks.html")),
    ("webhook.html", include_str!("templates/webhook.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("domains.html", include_str!("templates/domains.html")),
    ("domain.html", include_str!("templates/domain.html")),
];

static TERA: LazyLock<Tera> = LazyLock::new(|| {
    let mut tera = Tera::new();
    tera.autoescape_on([".html", ".svg"]);
    tera.add_raw_templates(TEMPLATES)
        .expect("the console's templates compile (a unit test checks them)");
    tera
});

#[derive(Serialize)]
struct NavItem {
    href: &'static str,
    label: &'static str,
    section: &'static str,
}

/// The sections a viewer may open: a key's scopes decide, as they do in the API.
fn navigation(viewer: &dyn Audience) -> Vec<NavItem> {
    let mut items = Vec::new();
    let has_project = viewer.project_name().is_some();
    let project_pages: [(&str, &str, &str, Scope); 7] = [
        ("/console/overview", "Overview", "overview", Scope::Messages),
        ("/console/messages", "Messages", "messages", Scope::Messages),
        (
            "/console/templates",
            "Templates",
            "templates",
            Scope::Templates,
        ),
        ("/console/webhooks", "Webhooks", "webhooks", Scope::Webhooks),
        (
            "/console/suppressions",
            "Suppressions",
            "suppressions",
            Scope::Suppressions,
        ),
        ("/console/domains", "Domains", "domains", Scope::Domains),
        ("/console/keys", "Keys", "keys", Scope::Keys),
    ];
    for (href, label, section, scope) in project_pages {
        if viewer.may(scope) && (has_project || !viewer.is_operator()) {
            items.push(NavItem {
                href,
                label,
                section,
            });
        }
    }
    if viewer.is_operator() {
        items.push(NavItem {
            href: "/console/projects",
            label: "Projects",
            section: "projects",
        });
        items.push(NavItem {
            href: "/console/queue",
            label: "Queue & relays",
            section: "queue",
        });
        items.push(NavItem {
            href: "/console/destinations",
            label: "Destinations",
            section: "destinations",
        });
    }
    items
}

/// A page in the shared layout. `context` holds the page's own values, and `section` (the
/// navigation entry to mark) when it has one.
pub fn page(
    viewer: Option<&dyn Audience>,
    template: &str,
    title: &str,
    mut context: Context,
) -> Response {
    context.insert("title", title);
    if !context.contains_key("section") {
        context.insert("section", "");
    }
    match viewer {
        Some(viewer) => {
            context.insert("signed_in", &true);
            context.insert("csrf", viewer.csrf());
            context.insert("nav", &navigation(viewer));
            context.insert("operator", &viewer.is_operator());
            context.insert("project", &viewer.project_name());
            context.insert("who", viewer.signed_in_as());
        }
        None => {
            context.insert("signed_in", &false);
            context.insert("nav", &Vec::<NavItem>::new());
            context.insert("operator", &false);
            context.insert("project", &None::<String>);
            context.insert("who", "");
            if !context.contains_key("csrf") {
                context.insert("csrf", "");
            }
        }
    }
    match TERA.render(template, &context) {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(template, error = %err, "console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// An error as a page: the status, what went wrong, and each bad field.
pub fn error_page(status: StatusCode, detail: &str, fields: &[(String, String)]) -> Response {
    let mut context = Context::new();
    context.insert("status", &status.as_u16());
    context.insert("reason", status.canonical_reason().unwrap_or("Error"));
    context.insert("detail", detail);
    context.insert("fields", fields);
    let mut response = page(
        None,
        "error.html",
        status.canonical_reason().unwrap_or("Error"),
        context,
    );
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_template_marks_a_value_safe() {
        // Autoescaping is the whole defence; one `| safe` would print mail as markup.
        for (name, source) in TEMPLATES {
            assert!(!source.contains("safe"), "{name} uses `safe`");
            assert!(
                !source.contains("autoescape"),
                "{name} switches autoescaping"
            );
        }
    }

    #[test]
    fn templates_compile_and_escape() {
        let response_text = TERA
            .render("error.html", &{
                let mut c = Context::new();
                c.insert("title", "Error");
                c.insert("section", "");
                c.insert("signed_in", &false);
                c.insert("nav", &Vec::<NavItem>::new());
                c.insert("operator", &false);
                c.insert("project", &None::<String>);
                c.insert("who", "");
                c.insert("csrf", "");
                c.insert("status", &400);
                c.insert("reason", "Bad Request");
                c.insert("detail", "<script>alert(1)</script>");
                c.insert("fields", &Vec::<(String, String)>::new());
                c
            })
            .unwrap();
        assert!(
            response_text.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
                || response_text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{response_text}"
        );
        assert!(!response_text.contains("<script>alert"));
    }
}
