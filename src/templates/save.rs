//! Saving templates: every part must parse, and layouts must exist and stay one level deep.
//! Shared by the HTTP API and `mailgate templates push`.

use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    TemplateError,
    engine::{self, Sources},
};
use crate::{
    domain::{FieldError, TemplateName, has_line_break},
    store::templates::{self as store, Saved, TemplateFields, TemplateRow},
};

/// Largest source of one part. Templates are markup, not storage for attachments.
pub const MAX_PART_BYTES: usize = 512 * 1024;
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A template as a client writes it; empty strings count as absent.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateDraft {
    /// Required to create with `POST`; with `PUT` the URL names the template.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// The name of another template of the project whose html and text wrap this one's.
    #[serde(default)]
    pub layout: Option<String>,
}

impl TemplateDraft {
    /// The parts as they are, for compiling.
    pub fn sources(&self) -> Sources<'_> {
        Sources {
            subject: self.subject.as_deref(),
            html: self.html.as_deref(),
            text: self.text.as_deref(),
        }
    }
}

/// A draft whose fields are well-formed and whose parts all parse.
#[derive(Debug, Clone)]
pub struct CheckedTemplate {
    pub name: TemplateName,
    pub description: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub layout: Option<TemplateName>,
}

impl CheckedTemplate {
    fn fields(&self) -> TemplateFields<'_> {
        TemplateFields {
            name: self.name.as_str(),
            description: self.description.as_deref(),
            subject: self.subject.as_deref(),
            html: self.html.as_deref(),
            text: self.text.as_deref(),
            layout: self.layout.as_ref().map(TemplateName::as_str),
        }
    }
}

fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Checks the parts of a draft without a name (`POST /v1/templates/validate`).
pub fn check_parts(draft: &TemplateDraft) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let subject = draft.subject.as_deref().filter(|s| !s.is_empty());
    let html = draft.html.as_deref().filter(|s| !s.is_empty());
    let text = draft.text.as_deref().filter(|s| !s.is_empty());
    if html.is_none() && text.is_none() {
        errors.push(FieldError::new("html", "html or text is required"));
    }
    for (field, value) in [("subject", subject), ("html", html), ("text", text)] {
        if value.is_some_and(|v| v.len() > MAX_PART_BYTES) {
            errors.push(FieldError::new(
                field,
                format!("is longer than {MAX_PART_BYTES} bytes"),
            ));
        }
    }
    if subject.is_some_and(has_line_break) {
        errors.push(FieldError::new("subject", "must be one line (no CR or LF)"));
    }
    if let Some(description) = &draft.description
        && (description.chars().count() > MAX_DESCRIPTION_CHARS
            || description.chars().any(|c| c.is_control() && c != '\n'))
    {
        errors.push(FieldError::new(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters, no control characters"),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    engine::compile(
        Sources {
            subject,
            html,
            text,
        },
        None,
        None,
    )
    .map(|_| ())
}

/// Checks a draft to be saved under `name`: all problems at once, each naming its field.
pub fn check(name: &str, draft: TemplateDraft) -> Result<CheckedTemplate, Vec<FieldError>> {
    let mut errors = Vec::new();
    let parsed_name = TemplateName::parse(name)
        .map_err(|e| errors.push(FieldError::new("name", e)))
        .ok();
    let layout = match present(draft.layout.clone()) {
        None => None,
        Some(layout) if layout == name => {
            errors.push(FieldError::new(
                "layout",
                "a template cannot be its own layout",
            ));
            None
        }
        Some(layout) => TemplateName::parse(&layout)
            .map_err(|_| {
                errors.push(FieldError::new(
                    "layout",
                    format!("no template named `{layout}` in this project"),
                ))
            })
            .ok(),
    };
    if let Err(parts) = check_parts(&draft) {
        errors.extend(parts);
    }
    match parsed_name {
        Some(name) if errors.is_empty() => Ok(CheckedTemplate {
            name,
            description: present(draft.description),
            subject: present(draft.subject),
            html: present(draft.html),
            text: present(draft.text),
            layout,
        }),
        _ => Err(errors),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// `POST`: the name must be free.
    Create,
    /// `PUT` and `push`: create or replace.
    Upsert,
}

/// Writes a checked template after checking its layout against the project's templates.
pub async fn save(
    conn: &mut PgConnection,
    project_id: Uuid,
    template: &CheckedTemplate,
    mode: SaveMode,
) -> Result<(TemplateRow, Saved), TemplateError> {
    check_layout(conn, project_id, template).await?;
    let fields = template.fields();
    let result = match mode {
        SaveMode::Create => store::create(conn, project_id, &fields)
            .await
            .map(|row| row.map(|r| (r, Saved::Created))),
        SaveMode::Upsert => store::upsert(conn, project_id, &fields).await.map(Some),
    };
    match result {
        Ok(Some(saved)) => Ok(saved),
        Ok(None) => Err(TemplateError::Exists(template.name.to_string())),
        // The layout was deleted since it was checked.
        Err(e) if store::is_layout_reference_error(&e) => Err(no_such_layout(template)),
        Err(e) => Err(e.into()),
    }
}

fn no_such_layout(template: &CheckedTemplate) -> TemplateError {
    let layout = template.layout.as_ref().map_or("", TemplateName::as_str);
    TemplateError::Invalid(vec![FieldError::new(
        "layout",
        format!("no template named `{layout}` in this project"),
    )])
}

/// Layouts are one level deep: a layout has no layout, and a template used as a layout
/// cannot take one. Rendering relies on it.
async fn check_layout(
    conn: &mut PgConnection,
    project_id: Uuid,
    template: &CheckedTemplate,
) -> Result<(), TemplateError> {
    let Some(layout) = &template.layout else {
        return Ok(());
    };
    let invalid =
        |message: String| TemplateError::Invalid(vec![FieldError::new("layout", message)]);
    match store::find(conn, project_id, layout.as_str()).await? {
        None => return Err(no_such_layout(template)),
        Some(row) if row.layout.is_some() => {
            return Err(invalid(format!(
                "`{layout}` has a layout itself; layouts do not nest"
            )));
        }
        Some(_) => {}
    }
    let users = store::layout_users(conn, project_id, template.name.as_str()).await?;
    if !users.is_empty() {
        return Err(invalid(format!(
            "`{}` is the layout of {}, so it cannot have a layout itself",
            template.name,
            users.join(", ")
        )));
    }
    Ok(())
}

/// Loads a stored layout to render unsaved content with (`POST /v1/templates/validate`).
pub async fn load_layout(
    conn: &mut PgConnection,
    project_id: Uuid,
    name: &str,
) -> Result<TemplateRow, TemplateError> {
    let not_found = || {
        TemplateError::Invalid(vec![FieldError::new(
            "layout",
            format!("no template named `{name}` in this project"),
        )])
    };
    if TemplateName::parse(name).is_err() {
        return Err(not_found());
    }
    match store::find(conn, project_id, name).await? {
        Some(row) if row.layout.is_some() => Err(TemplateError::Invalid(vec![FieldError::new(
            "layout",
            format!("`{name}` has a layout itself; layouts do not nest"),
        )])),
        Some(row) => Ok(row),
        None => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(html: &str) -> TemplateDraft {
        TemplateDraft {
            subject: Some("Hi {{ name }}".into()),
            html: Some(html.into()),
            ..Default::default()
        }
    }

    #[test]
    fn reports_every_bad_field() {
        let errors = check(
            "Bad Name",
            TemplateDraft {
                subject: Some("a\nb".into()),
                html: Some("{{ x".into()),
                layout: Some("Bad Name".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "layout", "subject"]);
    }

    #[test]
    fn empty_parts_are_absent_and_one_body_is_required() {
        let t = check("a", draft("<p>x</p>")).unwrap();
        assert_eq!(t.text, None);
        let errors = check(
            "a",
            TemplateDraft {
                html: Some(String::new()),
                text: Some(String::new()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "html");
    }
}
