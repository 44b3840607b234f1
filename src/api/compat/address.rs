//! Address lists as providers write them: one string, comma-separated (`"a@x.test, B
//! <b@x.test>"`). Commas inside a quoted display name or angle brackets do not split.

use serde_json::Value;

/// The addresses of a comma-separated list, trimmed, empty items dropped.
pub fn split_list(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    for c in list.chars() {
        if escaped {
            escaped = false;
            current.push(c);
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A comma-separated list as the JSON the native request takes: absent when empty.
pub fn list_value(list: Option<&str>) -> Option<Value> {
    let items = split_list(list?);
    (!items.is_empty()).then(|| Value::Array(items.into_iter().map(Value::String).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_in_names_and_brackets_do_not_split() {
        assert_eq!(
            split_list(r#"a@x.test,"Doe, Jo" <j@x.test> , B <b@x.test>,,"#),
            vec!["a@x.test", r#""Doe, Jo" <j@x.test>"#, "B <b@x.test>"]
        );
        assert!(split_list(" , ").is_empty());
    }
}
