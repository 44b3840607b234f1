//! Unknown keys are errors: a misspelt key in the file or the environment would otherwise be
//! ignored and its default used without a word. Every section refuses unknown fields; this
//! turns serde's refusal into a message that names the key, where it came from and the
//! nearest key that exists. A key that was renamed is refused with its new name.

use std::path::Path;

use figment::error::Kind;

use super::{
    env::{EnvLayer, var_name},
    runner,
};

/// Spellings that are no longer settings, with the one that replaced each: refused, with
/// the new name, rather than read.
const RENAMED: &[(&str, &str)] = &[
    ("smtp.addr", "smtp_addr"),
    ("webhooks.worker_enabled", "webhooks.workers_enabled"),
];

/// The message for the first unknown key in `err`, if it is about one.
pub(super) fn unknown_key(
    err: &figment::Error,
    env: &EnvLayer,
    file: Option<&Path>,
) -> Option<String> {
    let (err, field, expected) = err.clone().into_iter().find_map(|e| {
        let (field, expected) = match &e.kind {
            Kind::UnknownField(field, expected) => (
                field.clone(),
                expected.iter().map(|k| k.to_string()).collect(),
            ),
            // A section with flattened runner settings: serde says only this, so the keys
            // of the section are looked up.
            Kind::Message(m) => {
                let field = m.strip_prefix("unknown field `")?.strip_suffix('`')?;
                (field.to_string(), runner::section_keys(&e.path.join("."))?)
            }
            _ => return None,
        };
        Some((e, field, expected))
    })?;
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    let field = &field;
    let mut path = err.path.clone();
    if path.last() != Some(field) {
        path.push(field.clone());
    }
    let parent: Vec<&str> = path[..path.len() - 1].iter().map(String::as_str).collect();
    let key = path.join(".");
    let path_str: Vec<&str> = path.iter().map(String::as_str).collect();
    // Name the variable to use only where one variable set the key itself (not a table).
    let (mut message, from_env) = match env.var_for(&path) {
        Some(var) => (
            format!("unknown config key `{key}` (environment variable {var})"),
            var.eq_ignore_ascii_case(&var_name(&path_str)),
        ),
        None => match file {
            Some(file) => (
                format!("unknown config key `{key}` in {}", file.display()),
                false,
            ),
            None => (format!("unknown config key `{key}`"), false),
        },
    };
    let renamed = RENAMED
        .iter()
        .find(|(old, _)| *old == key)
        .map(|(_, new)| new.split('.').collect::<Vec<_>>());
    match renamed.or_else(|| {
        nearest(field, &expected).map(|name| {
            let mut near = parent.clone();
            near.push(name);
            near
        })
    }) {
        Some(near) => {
            message.push_str(&format!(": did you mean `{}`", near.join(".")));
            if from_env {
                message.push_str(&format!(" ({})", var_name(&near)));
            }
            message.push('?');
        }
        None if parent.is_empty() => {
            message.push_str(&format!("; the top-level keys are {}", expected.join(", ")))
        }
        None => message.push_str(&format!(
            "; the keys of `{}` are {}",
            parent.join("."),
            expected.join(", ")
        )),
    }
    Some(message)
}

/// The known name closest to `typed`, if it is close enough to be what was meant.
fn nearest<'a>(typed: &str, known: &[&'a str]) -> Option<&'a str> {
    let typed = typed.to_ascii_lowercase();
    let allowed = (typed.chars().count() / 4).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(&typed, k), *k))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance: insertions, deletions and substitutions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("concurency", "concurrency"), 1);
        assert_eq!(edit_distance("lease_sec", "lease_secs"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            nearest("concurency", &["claim_batch", "concurrency"]),
            Some("concurrency")
        );
        assert_eq!(nearest("root", &["redis_url", "log"]), None);
    }
}
