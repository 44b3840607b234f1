//! The folder format of `mailgate templates push|pull`: one folder per template, named
//! after it, with one file per part so each can be edited and diffed on its own.
//!
//! ```text
//! DIR/<name>/template.toml   description = "…", layout = "<name>"   (both optional)
//!            subject.txt     the subject; one line (a final line break is dropped)
//!            body.html       the HTML part
//!            body.txt        the text part (optional: made from the HTML when absent)
//! ```
//!
//! Folders without a `template.toml` are not templates and are skipped.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::TemplateDraft;
use crate::store::templates::TemplateRow;

pub const MANIFEST_FILE: &str = "template.toml";
pub const SUBJECT_FILE: &str = "subject.txt";
pub const HTML_FILE: &str = "body.html";
pub const TEXT_FILE: &str = "body.txt";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layout: Option<String>,
}

/// A template read from its folder.
#[derive(Debug, Clone)]
pub struct FolderTemplate {
    pub name: String,
    pub dir: PathBuf,
    pub draft: TemplateDraft,
}

impl FolderTemplate {
    /// The file a field of the template comes from, for error messages.
    pub fn file_for(&self, field: &str) -> PathBuf {
        match field {
            "subject" => self.dir.join(SUBJECT_FILE),
            "html" => self.dir.join(HTML_FILE),
            "text" => self.dir.join(TEXT_FILE),
            "name" => self.dir.clone(),
            _ => self.dir.join(MANIFEST_FILE),
        }
    }
}

/// Every template folder directly under `dir`, by name, and the folders skipped.
pub fn read_all(dir: &Path) -> anyhow::Result<(Vec<FolderTemplate>, Vec<PathBuf>)> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("cannot read the folder {}", dir.display()))?;
    let mut templates = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read the folder {}", dir.display()))?
            .path();
        if !path.is_dir() {
            continue;
        }
        if path.join(MANIFEST_FILE).is_file() {
            templates.push(read_one(&path)?);
        } else {
            skipped.push(path);
        }
    }
    templates.sort_by(|a, b| a.name.cmp(&b.name));
    skipped.sort();
    Ok((templates, skipped))
}

pub fn read_one(dir: &Path) -> anyhow::Result<FolderTemplate> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no usable folder name", dir.display()))?
        .to_string();
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest: Manifest = toml::from_str(&read_optional(&manifest_path)?.unwrap_or_default())
        .with_context(|| format!("{} is not a valid template.toml", manifest_path.display()))?;
    let subject = read_optional(&dir.join(SUBJECT_FILE))?.map(|s| {
        // Editors end files with a line break; a subject is one line without it.
        let s = s.strip_suffix('\n').unwrap_or(&s);
        s.strip_suffix('\r').unwrap_or(s).to_string()
    });
    Ok(FolderTemplate {
        draft: TemplateDraft {
            name: Some(name.clone()),
            description: manifest.description,
            subject,
            html: read_optional(&dir.join(HTML_FILE))?,
            text: read_optional(&dir.join(TEXT_FILE))?,
            layout: manifest.layout,
        },
        name,
        dir: dir.to_path_buf(),
    })
}

fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {} as UTF-8 text", path.display())),
    }
}

/// Writes a stored template to `dir/<name>/`, removing part files it does not have, so
/// pushing the folder back changes nothing.
pub fn write_one(dir: &Path, row: &TemplateRow) -> anyhow::Result<PathBuf> {
    let folder = dir.join(&row.name);
    fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create the folder {}", folder.display()))?;
    let manifest = Manifest {
        description: row.description.clone(),
        layout: row.layout.clone(),
    };
    let manifest = format!(
        "# Template `{}`, version {} (written by `mailgate templates pull`).\n{}",
        row.name,
        row.version,
        toml::to_string(&manifest).context("cannot write template.toml")?
    );
    write(&folder.join(MANIFEST_FILE), Some(&manifest))?;
    write(
        &folder.join(SUBJECT_FILE),
        row.subject.as_ref().map(|s| format!("{s}\n")).as_deref(),
    )?;
    write(&folder.join(HTML_FILE), row.html.as_deref())?;
    write(&folder.join(TEXT_FILE), row.text.as_deref())?;
    Ok(folder)
}

fn write(path: &Path, content: Option<&str>) -> anyhow::Result<()> {
    match content {
        Some(content) => {
            fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))
        }
        None => match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        },
    }
}
