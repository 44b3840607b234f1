//! Compiled templates per process, checked against the database before every use.
//!
//! Every render first reads the template's stamp (row id and version, and its layout's) in
//! one indexed query; a compilation is reused only when its stamp is the current one. So a
//! change saved through any instance is seen by every instance on its next render, with no
//! broadcast and no expiry to tune.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sqlx::PgPool;
use uuid::Uuid;

use super::{
    TemplateError,
    engine::{self, Compiled, Sources},
};
use crate::store::templates::{self as store, Stamp, TemplateRow};

/// Beyond this many compilations the cache starts over: simpler than LRU, and compiling
/// again costs little.
const MAX_ENTRIES: usize = 2_000;

/// (project, template name).
type Key = (Uuid, String);

#[derive(Clone, Default)]
pub struct TemplateCache {
    entries: Arc<Mutex<HashMap<Key, Arc<Compiled>>>>,
}

impl TemplateCache {
    /// The current compilation of a project's template, or `None` if there is no such template.
    pub async fn get(
        &self,
        pool: &PgPool,
        project_id: Uuid,
        name: &str,
    ) -> Result<Option<Arc<Compiled>>, TemplateError> {
        let Some(stamp) = store::stamp(pool, project_id, name).await? else {
            return Ok(None);
        };
        let key = (project_id, name.to_string());
        if let Some(hit) = self.lookup(&key)
            && hit.stamp == Some(stamp)
        {
            return Ok(Some(hit));
        }
        let Some((template, layout)) = store::find_with_layout(pool, project_id, name).await?
        else {
            return Ok(None);
        };
        // Stamped from the rows compiled, which may be newer than the stamp read above.
        let compiled = Arc::new(compile_row(&template, layout.as_ref())?);
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, compiled.clone());
        Ok(Some(compiled))
    }

    fn lookup(&self, key: &Key) -> Option<Arc<Compiled>> {
        self.entries.lock().expect("not poisoned").get(key).cloned()
    }
}

pub fn sources(row: &TemplateRow) -> Sources<'_> {
    Sources {
        subject: row.subject.as_deref(),
        html: row.html.as_deref(),
        text: row.text.as_deref(),
    }
}

fn compile_row(
    template: &TemplateRow,
    layout: Option<&TemplateRow>,
) -> Result<Compiled, TemplateError> {
    if let Some(name) = &template.layout
        && layout.is_none()
    {
        return Err(TemplateError::Render(crate::domain::FieldError::new(
            "layout",
            format!("the layout `{name}` no longer exists"),
        )));
    }
    let stamp = Stamp {
        id: template.id,
        version: template.version,
        layout: layout.map(|l| (l.id, l.version)),
    };
    // Stored templates were checked when saved; only an engine upgrade could fail here.
    engine::compile(sources(template), layout.map(sources), Some(stamp))
        .map_err(|mut errors| TemplateError::Render(errors.remove(0)))
}
