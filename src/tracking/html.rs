//! Instrumenting an HTML body: the `href` of every `<a>` that points at an http(s) URL goes
//! through mailgate's click endpoint, and a 1×1 pixel before `</body>` reports the open.
//!
//! Only the values of those attributes change and one element is added; everything else is
//! copied byte for byte, so the message looks the same. The scan knows tags, quoted attribute
//! values and comments, which is all it takes to find `href`s without re-serialising the
//! document through an HTML parser (which would rewrite the author's markup).

/// Where tracked links and the pixel point, and how tokens are made.
pub struct Links<'a> {
    /// `tracking.base_url` without a trailing slash.
    pub base: &'a str,
    /// Makes a link's token; `None` leaves links alone.
    pub click: Option<&'a dyn Fn(&str) -> String>,
    pub open: Option<String>,
}

pub fn instrument(html: &str, links: &Links<'_>) -> String {
    let mut out = String::with_capacity(html.len() + 256);
    let bytes = html.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while let Some(lt) = html[i..].find('<').map(|p| p + i) {
        if html[lt..].starts_with("<!--") {
            i = html[lt..].find("-->").map_or(html.len(), |p| lt + p + 3);
            continue;
        }
        let Some(end) = tag_end(bytes, lt) else {
            break;
        };
        let tag = &html[lt..end];
        if let Some(click) = links.click
            && is_anchor(tag)
            && let Some((start, stop, url)) = href(tag)
        {
            let url = unescape(url.trim());
            let lower = url.to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                out.push_str(&html[copied..lt + start]);
                out.push('"');
                out.push_str(links.base);
                out.push_str("/t/c/");
                out.push_str(&click(&url));
                out.push('"');
                copied = lt + stop;
            }
        }
        i = end;
    }
    let rest = &html[copied..];
    if let Some(token) = &links.open {
        let pixel = format!(
            r#"<img src="{}/t/o/{token}" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0">"#,
            links.base
        );
        match rest.to_ascii_lowercase().rfind("</body") {
            Some(at) => {
                out.push_str(&rest[..at]);
                out.push_str(&pixel);
                out.push_str(&rest[at..]);
            }
            None => {
                out.push_str(rest);
                out.push_str(&pixel);
            }
        }
    } else {
        out.push_str(rest);
    }
    out
}

/// The index just past the `>` that closes the tag opened at `lt`, skipping quoted values.
fn tag_end(bytes: &[u8], lt: usize) -> Option<usize> {
    let mut quote = None;
    for (k, &b) in bytes.iter().enumerate().skip(lt + 1) {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => return Some(k + 1),
            _ => {}
        }
    }
    None
}

fn is_anchor(tag: &str) -> bool {
    let b = tag.as_bytes();
    b.len() > 2 && b[1].eq_ignore_ascii_case(&b'a') && (b[2].is_ascii_whitespace())
}

/// The `href` attribute's value span within `tag`: (start of the value including its quotes,
/// end of it, the bare value).
fn href(tag: &str) -> Option<(usize, usize, &str)> {
    let b = tag.as_bytes();
    let mut k = 2;
    while k < b.len() {
        // Attribute name.
        while k < b.len() && (b[k].is_ascii_whitespace() || b[k] == b'/') {
            k += 1;
        }
        let name_start = k;
        while k < b.len() && !b[k].is_ascii_whitespace() && !matches!(b[k], b'=' | b'>' | b'/') {
            k += 1;
        }
        let name = &tag[name_start..k];
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        if k >= b.len() || b[k] != b'=' {
            if name.is_empty() {
                k += 1;
            }
            continue;
        }
        k += 1;
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        let value_start = k;
        let (value, value_end) = match b.get(k) {
            Some(&q @ (b'"' | b'\'')) => {
                let close = tag[k + 1..].find(q as char)? + k + 1;
                (&tag[k + 1..close], close + 1)
            }
            Some(_) => {
                let mut e = k;
                while e < b.len() && !b[e].is_ascii_whitespace() && b[e] != b'>' {
                    e += 1;
                }
                (&tag[k..e], e)
            }
            None => return None,
        };
        if name.eq_ignore_ascii_case("href") {
            return Some((value_start, value_end, value));
        }
        k = value_end;
    }
    None
}

/// The character references a URL in an attribute commonly carries (`&amp;` above all).
fn unescape(value: &str) -> String {
    if !value.contains('&') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(semi) = rest.find(';').filter(|s| *s <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(html: &str, open: bool) -> String {
        let click = |url: &str| format!("T[{url}]");
        instrument(
            html,
            &Links {
                base: "https://t.example",
                click: Some(&click),
                open: open.then(|| "OPEN".to_string()),
            },
        )
    }

    #[test]
    fn rewrites_http_links_only() {
        let html = r#"<p>Hi <a href="https://shop.example/o?id=1&amp;x=2" class=btn>order</a>, <A HREF='http://a.example'>a</A> <a href="mailto:x@y.example">mail</a> <a name=top>top</a> <a href=#x>x</a></p>"#;
        assert_eq!(
            run(html, false),
            r#"<p>Hi <a href="https://t.example/t/c/T[https://shop.example/o?id=1&x=2]" class=btn>order</a>, <A HREF="https://t.example/t/c/T[http://a.example]">a</A> <a href="mailto:x@y.example">mail</a> <a name=top>top</a> <a href=#x>x</a></p>"#
        );
    }

    #[test]
    fn leaves_comments_other_tags_and_quoted_angles_alone() {
        let html = r#"<!-- <a href="https://no.example"> --><abbr title="a > b">x</abbr><a title="x > y" href=https://yes.example>y</a>"#;
        assert_eq!(
            run(html, false),
            r#"<!-- <a href="https://no.example"> --><abbr title="a > b">x</abbr><a title="x > y" href="https://t.example/t/c/T[https://yes.example]">y</a>"#
        );
    }

    #[test]
    fn the_pixel_goes_before_the_body_ends() {
        let out = run("<html><body><p>Hi</p></BODY></html>", true);
        assert!(
            out.ends_with(r#"style="display:block;width:1px;height:1px;border:0"></BODY></html>"#),
            "{out}"
        );
        assert!(out.contains(r#"<img src="https://t.example/t/o/OPEN""#));
        let out = run("<p>Hi</p>", true);
        assert!(out.starts_with("<p>Hi</p><img "), "{out}");
        // Broken markup is copied, never lost.
        assert_eq!(run("<p>Hi <a href='x", false), "<p>Hi <a href='x");
    }
}
