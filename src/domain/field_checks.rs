//! Checks of the fields every way in shares (the HTTP API and SMTP submission): extra headers,
//! tags and metadata. Each reports its problems by path and keeps what passed.

use std::collections::BTreeMap;

use super::{FieldError, has_line_break};

const MAX_TAGS: usize = 10;
const MAX_METADATA: usize = 50;

/// Headers mailgate sets itself; letting callers set them would corrupt the message.
const STRUCTURAL_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "message-id",
    "date",
    "reply-to",
    "sender",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "return-path",
    "received",
    "dkim-signature",
];

pub fn check_headers(
    headers: BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let path = format!("headers.{name}");
        let valid_name = !name.is_empty()
            && name.len() <= 76
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid_name {
            errors.push(FieldError::new(
                path,
                "header names are letters, digits and `-`",
            ));
        } else if STRUCTURAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            errors.push(FieldError::new(
                path,
                "this header is set by mailgate and cannot be overridden",
            ));
        } else if has_line_break(&value) {
            errors.push(FieldError::new(
                path,
                "header values must not contain CR or LF",
            ));
        } else if value.chars().any(|c| c.is_control() && c != '\t') {
            errors.push(FieldError::new(
                path,
                "header values must not contain control characters",
            ));
        } else if value.len() > 998 {
            errors.push(FieldError::new(path, "header values are at most 998 bytes"));
        } else {
            out.push((name, value));
        }
    }
    out
}

pub fn check_tags(tags: Vec<String>, errors: &mut Vec<FieldError>) -> Vec<String> {
    if tags.len() > MAX_TAGS {
        errors.push(FieldError::new("tags", format!("at most {MAX_TAGS} tags")));
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, tag) in tags.into_iter().enumerate() {
        let ok = !tag.is_empty()
            && tag.len() <= 64
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if ok {
            if !out.contains(&tag) {
                out.push(tag);
            }
        } else {
            errors.push(FieldError::new(
                format!("tags[{i}]"),
                "tags are 1 to 64 characters of letters, digits, `-`, `_`, `.` and `:`",
            ));
        }
    }
    out
}

pub fn check_metadata(
    map: BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, String> {
    if map.len() > MAX_METADATA {
        errors.push(FieldError::new(
            "metadata",
            format!("at most {MAX_METADATA} keys"),
        ));
        return BTreeMap::new();
    }
    for (k, v) in &map {
        if k.is_empty() || k.len() > 64 {
            errors.push(FieldError::new(
                format!("metadata.{k}"),
                "keys are 1 to 64 characters",
            ));
        } else if v.len() > 1000 {
            errors.push(FieldError::new(
                format!("metadata.{k}"),
                "values are at most 1000 bytes",
            ));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_mailgate_sets_are_refused_by_path() {
        let mut errors = Vec::new();
        let kept = check_headers(
            BTreeMap::from([
                ("X-Campaign".to_string(), "1".to_string()),
                ("message-id".to_string(), "<x@y>".to_string()),
                ("X-Bad".to_string(), "a\r\nBcc: z@w.com".to_string()),
            ]),
            &mut errors,
        );
        assert_eq!(kept, vec![("X-Campaign".to_string(), "1".to_string())]);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["headers.X-Bad", "headers.message-id"]);
    }

    #[test]
    fn tags_are_short_slugs_kept_once() {
        let mut errors = Vec::new();
        let tags = check_tags(
            vec!["a".into(), "a".into(), "no spaces".into(), "b:c".into()],
            &mut errors,
        );
        assert_eq!(tags, ["a", "b:c"]);
        assert_eq!(errors[0].field, "tags[2]");
    }
}
