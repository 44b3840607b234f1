//! Template rows: the tera sources of each project's templates, keyed by (project, name).

use chrono::{DateTime, Utc};
use serde::Serialize;
// Only the constant column lists are formatted into these statements; values are bound.
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

/// A stored template, as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TemplateRow {
    /// Internal: tells cached compilations apart across a delete and re-create.
    #[serde(skip)]
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub layout: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A template in a list: everything but the sources.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TemplateSummary {
    pub name: String,
    pub description: Option<String>,
    pub layout: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a save writes; already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFields<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub html: Option<&'a str>,
    pub text: Option<&'a str>,
    pub layout: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Saved {
    Created,
    Updated,
    Unchanged,
}

impl Saved {
    pub fn as_str(self) -> &'static str {
        match self {
            Saved::Created => "created",
            Saved::Updated => "updated",
            Saved::Unchanged => "unchanged",
        }
    }
}

/// Which compilation of a template is current: its row id and version, and its layout's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub id: Uuid,
    pub version: i32,
    pub layout: Option<(Uuid, i32)>,
}

const COLUMNS: &str =
    "id, name, description, subject, html, text, layout, version, created_at, updated_at";

/// Inserts a new template; `None` when the name is taken in this project.
pub async fn create(
    conn: &mut PgConnection,
    project_id: Uuid,
    t: &TemplateFields<'_>,
) -> sqlx::Result<Option<TemplateRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO templates (project_id, name, id, description, subject, html, text, layout)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (project_id, name) DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(project_id)
    .bind(t.name)
    .bind(Uuid::now_v7())
    .bind(t.description)
    .bind(t.subject)
    .bind(t.html)
    .bind(t.text)
    .bind(t.layout)
    .fetch_optional(conn)
    .await
}

/// Creates or replaces a template. The version is bumped only when something changed, so
/// pushing the same folder twice is a no-op.
pub async fn upsert(
    conn: &mut PgConnection,
    project_id: Uuid,
    t: &TemplateFields<'_>,
) -> sqlx::Result<(TemplateRow, Saved)> {
    // `xmax = 0` holds only for a row this statement inserted (an update sets xmax).
    let inserted: Option<bool> = sqlx::query_scalar(
        "INSERT INTO templates (project_id, name, id, description, subject, html, text, layout)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (project_id, name) DO UPDATE SET
             description = EXCLUDED.description, subject = EXCLUDED.subject,
             html = EXCLUDED.html, text = EXCLUDED.text, layout = EXCLUDED.layout,
             version = templates.version + 1, updated_at = now()
         WHERE (templates.description, templates.subject, templates.html, templates.text,
                templates.layout)
               IS DISTINCT FROM
               (EXCLUDED.description, EXCLUDED.subject, EXCLUDED.html, EXCLUDED.text,
                EXCLUDED.layout)
         RETURNING xmax = 0",
    )
    .bind(project_id)
    .bind(t.name)
    .bind(Uuid::now_v7())
    .bind(t.description)
    .bind(t.subject)
    .bind(t.html)
    .bind(t.text)
    .bind(t.layout)
    .fetch_optional(&mut *conn)
    .await?;
    let saved = match inserted {
        Some(true) => Saved::Created,
        Some(false) => Saved::Updated,
        None => Saved::Unchanged,
    };
    let row = find(&mut *conn, project_id, t.name)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((row, saved))
}

pub async fn find(
    conn: &mut PgConnection,
    project_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<TemplateRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM templates WHERE project_id = $1 AND name = $2"
    )))
    .bind(project_id)
    .bind(name)
    .fetch_optional(conn)
    .await
}

/// A template and the layout that wraps it, in one round trip.
pub async fn find_with_layout(
    pool: &PgPool,
    project_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<(TemplateRow, Option<TemplateRow>)>> {
    let rows: Vec<TemplateRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM templates
         WHERE project_id = $1
           AND (name = $2 OR name = (SELECT layout FROM templates WHERE project_id = $1 AND name = $2))"
    )))
    .bind(project_id)
    .bind(name)
    .fetch_all(pool)
    .await?;
    let (mut own, others): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.name == name);
    Ok(own.pop().map(|template| {
        let layout = others
            .into_iter()
            .find(|r| Some(&r.name) == template.layout.as_ref());
        (template, layout)
    }))
}

/// The current stamp of a template: one indexed lookup, run before every cached render.
pub async fn stamp(pool: &PgPool, project_id: Uuid, name: &str) -> sqlx::Result<Option<Stamp>> {
    let row: Option<(Uuid, i32, Option<Uuid>, Option<i32>)> = sqlx::query_as(
        "SELECT t.id, t.version, l.id, l.version
         FROM templates t
         LEFT JOIN templates l ON l.project_id = t.project_id AND l.name = t.layout
         WHERE t.project_id = $1 AND t.name = $2",
    )
    .bind(project_id)
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, version, layout_id, layout_version)| Stamp {
        id,
        version,
        layout: layout_id.zip(layout_version),
    }))
}

/// One page of a project's templates by name, after `cursor` (the last name of the previous page).
pub async fn list(
    pool: &PgPool,
    project_id: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<TemplateSummary>> {
    sqlx::query_as(
        "SELECT name, description, layout, version, created_at, updated_at FROM templates
         WHERE project_id = $1 AND ($2::text IS NULL OR name > $2)
         ORDER BY name LIMIT $3",
    )
    .bind(project_id)
    .bind(cursor)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Every template of a project with its sources (`mailgate templates pull`).
pub async fn list_full(pool: &PgPool, project_id: Uuid) -> sqlx::Result<Vec<TemplateRow>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM templates WHERE project_id = $1 ORDER BY name"
    )))
    .bind(project_id)
    .fetch_all(pool)
    .await
}

/// The templates that use `name` as their layout.
pub async fn layout_users(
    conn: &mut PgConnection,
    project_id: Uuid,
    name: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT name FROM templates WHERE project_id = $1 AND layout = $2 ORDER BY name LIMIT 10",
    )
    .bind(project_id)
    .bind(name)
    .fetch_all(conn)
    .await
}

/// Deletes a template; `false` when there was none. Fails with a foreign-key violation
/// while another template uses it as its layout.
pub async fn delete(conn: &mut PgConnection, project_id: Uuid, name: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM templates WHERE project_id = $1 AND name = $2")
        .bind(project_id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// True when `err` is Postgres refusing a write because of the layout reference.
pub fn is_layout_reference_error(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23503"))
}
