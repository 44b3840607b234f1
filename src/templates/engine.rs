//! Compiling template sources with tera and rendering them with bounds on size and time.
//!
//! Each part (subject, html, text and the layout's html and text) is its own tera instance,
//! so a parse error names exactly one part and parts cannot include one another. tera 2
//! ships no functions that reach outside the template (no environment, files or clock);
//! the only built-in function that loops, `range`, is replaced by a bounded one.

use std::{
    cell::Cell,
    io::{self, Write},
    time::{Duration, Instant},
};

use tera::{Context, ErrorKind, Kwargs, State, Tera};

use crate::{
    domain::{FieldError, has_line_break},
    store::templates::Stamp,
};

/// Where a part comes from, for error messages and for tera's escaping rule (by suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Subject,
    Html,
    Text,
    LayoutHtml,
    LayoutText,
}

impl Part {
    /// The request field an error in this part is reported on.
    pub fn field(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Html => "html",
            Part::Text => "text",
            Part::LayoutHtml | Part::LayoutText => "layout",
        }
    }

    /// `.html` parts autoescape variables; the others render them as they are.
    fn tera_name(self) -> &'static str {
        match self {
            Part::Subject => "subject.txt",
            Part::Html => "html.html",
            Part::Text => "text.txt",
            Part::LayoutHtml => "layout.html",
            Part::LayoutText => "layout.txt",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Part::LayoutHtml => "layout html, ",
            Part::LayoutText => "layout text, ",
            _ => "",
        }
    }
}

/// The sources of one template; absent parts are `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    pub subject: Option<&'a str>,
    pub html: Option<&'a str>,
    pub text: Option<&'a str>,
}

/// The variable a layout places the wrapped part with: `{{ content }}`.
pub const CONTENT_VARIABLE: &str = "content";

/// The longest a template may render before it is stopped.
pub const RENDER_TIME_LIMIT: Duration = Duration::from_secs(2);

/// `range()` produces at most this many numbers: plenty for an email, and nested loops
/// over it stay within the time limit checks.
const MAX_RANGE: i64 = 10_000;

/// Wrap width of text generated from HTML: the customary line length of plain-text mail.
const TEXT_WIDTH: usize = 78;

struct CompiledPart {
    part: Part,
    tera: Tera,
    /// Kept to quote the failing expression in render errors.
    source: Box<str>,
}

/// A template ready to render, with the layout that wraps it.
pub struct Compiled {
    subject: Option<CompiledPart>,
    html: Option<CompiledPart>,
    text: Option<CompiledPart>,
    layout_html: Option<CompiledPart>,
    layout_text: Option<CompiledPart>,
    /// Which stored versions this was compiled from (for the cache); `None` for unsaved content.
    pub(crate) stamp: Option<Stamp>,
}

/// The three parts of a rendered message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Rendered {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
}

/// Compiles a template and its layout; every part that does not parse is reported.
pub fn compile(
    template: Sources<'_>,
    layout: Option<Sources<'_>>,
    stamp: Option<Stamp>,
) -> Result<Compiled, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut part = |part: Part, source: Option<&str>| {
        source.and_then(|s| {
            compile_part(part, s)
                .map_err(|e| errors.push(e))
                .ok()
                .map(|tera| CompiledPart {
                    part,
                    tera,
                    source: s.into(),
                })
        })
    };
    let compiled = Compiled {
        subject: part(Part::Subject, template.subject),
        html: part(Part::Html, template.html),
        text: part(Part::Text, template.text),
        layout_html: part(Part::LayoutHtml, layout.and_then(|l| l.html)),
        layout_text: part(Part::LayoutText, layout.and_then(|l| l.text)),
        stamp,
    };
    if errors.is_empty() {
        Ok(compiled)
    } else {
        Err(errors)
    }
}

fn compile_part(part: Part, source: &str) -> Result<Tera, FieldError> {
    let mut tera = Tera::new();
    tera.autoescape_on([".html"]);
    tera.register_function("range", bounded_range);
    tera.add_raw_template(part.tera_name(), source)
        .map_err(|e| FieldError::new(part.field(), describe(part, &e, source)))?;
    Ok(tera)
}

impl Compiled {
    /// Renders every part with `variables` (a JSON object). The first failure is returned,
    /// naming the part, and where tera knows it, the line and column.
    pub fn render(
        &self,
        variables: &serde_json::Value,
        max_bytes: usize,
    ) -> Result<Rendered, FieldError> {
        if !matches!(variables, serde_json::Value::Object(_)) {
            return Err(FieldError::new("variables", "must be a JSON object"));
        }
        let context = Context::from_serialize(variables)
            .map_err(|e| FieldError::new("variables", e.to_string()))?;
        let _deadline = Deadline::start(RENDER_TIME_LIMIT);
        let run = |part: &CompiledPart, context: &Context| render_part(part, context, max_bytes);

        let subject = self
            .subject
            .as_ref()
            .map(|p| run(p, &context))
            .transpose()?;
        if let Some(s) = &subject
            && has_line_break(s)
        {
            return Err(FieldError::new(
                "subject",
                "the rendered subject contains a line break (CR or LF); check the variables it uses",
            ));
        }
        let wrap = |inner: Option<String>,
                    layout: &Option<CompiledPart>,
                    safe: bool|
         -> Result<Option<String>, FieldError> {
            match (inner, layout) {
                (Some(inner), Some(layout)) => {
                    let mut context = context.clone();
                    // The wrapped HTML is already escaped: the layout must not escape it again.
                    let content = if safe {
                        tera::Value::safe_string(&inner)
                    } else {
                        tera::Value::from(inner)
                    };
                    context.insert_value(CONTENT_VARIABLE, content);
                    run(layout, &context).map(Some)
                }
                (inner, _) => Ok(inner),
            }
        };
        let html = self.html.as_ref().map(|p| run(p, &context)).transpose()?;
        let html = wrap(html, &self.layout_html, true)?;
        let text = match &self.text {
            Some(p) => wrap(Some(run(p, &context)?), &self.layout_text, false)?,
            // Explicit text wins; otherwise it is made from the final HTML.
            None => html.as_deref().map(html_to_text).transpose()?,
        };
        Ok(Rendered {
            subject,
            html,
            text,
        })
    }
}

/// Plain text from HTML, as mail clients without HTML would want it: wrapped lines,
/// links kept as numbered references.
pub fn html_to_text(html: &str) -> Result<String, FieldError> {
    html2text::config::plain()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), TEXT_WIDTH)
        .map_err(|e| {
            FieldError::new(
                "text",
                format!("could not make a text part from the HTML: {e}"),
            )
        })
}

fn render_part(
    part: &CompiledPart,
    context: &Context,
    max_bytes: usize,
) -> Result<String, FieldError> {
    let mut out = BoundedOutput::new(max_bytes);
    let result = part
        .tera
        .render_to(part.part.tera_name(), context, &mut out);
    if let Some(stop) = out.stopped {
        return Err(FieldError::new(part.part.field(), stop.message(max_bytes)));
    }
    if let Err(e) = result {
        return Err(FieldError::new(
            part.part.field(),
            describe(part.part, &e, &part.source),
        ));
    }
    String::from_utf8(out.buf)
        .map_err(|_| FieldError::new(part.part.field(), "rendered to invalid UTF-8"))
}

/// "line 3, column 7: <what tera says> (at `user.name`)".
fn describe(part: Part, err: &tera::Error, source: &str) -> String {
    match err.kind() {
        ErrorKind::SyntaxError(report) | ErrorKind::RenderingError(report) => {
            let span = report.span();
            let mut message = format!(
                "{}line {}, column {}: {}",
                part.label(),
                span.start_line,
                span.start_col + 1,
                report.message()
            );
            if let Some(snippet) = snippet(source, span)
                && !report.message().contains(snippet.as_str())
            {
                let trimmed = message.trim_end_matches('.').len();
                message.truncate(trimmed);
                message.push_str(&format!(" (at `{snippet}`)"));
            }
            if let Some(cause) = std::error::Error::source(err) {
                message.push_str(&format!(": {cause}"));
            }
            message
        }
        // Unknown filters, functions and templates come as ready-made terminal reports.
        _ => format!("{}{}", part.label(), tidy_report(&err.to_string())),
    }
}

/// Turns tera's "error: msg\n --> file:3:7\n  | …" reports into "line 3, column 7: msg".
fn tidy_report(report: &str) -> String {
    let mut found = Vec::new();
    let mut lines = report.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(message) = line.strip_prefix("error: ") else {
            continue;
        };
        let position = lines
            .peek()
            .and_then(|next| next.trim_start().strip_prefix("--> "))
            .and_then(|locus| {
                let mut it = locus.rsplitn(3, ':');
                let column = it.next()?.parse::<usize>().ok()?;
                let line = it.next()?.parse::<usize>().ok()?;
                Some(format!("line {line}, column {column}: "))
            });
        found.push(format!("{}{message}", position.unwrap_or_default()));
    }
    if found.is_empty() {
        report.to_string()
    } else {
        found.join("; ")
    }
}

/// The source text a one-line span covers, if short enough to quote. tera points at the
/// last name of `order.customer.name`; the whole path says more, so it is included.
fn snippet(source: &str, span: &tera::Span) -> Option<String> {
    if span.start_line != span.end_line || span.end_col <= span.start_col {
        return None;
    }
    let line: Vec<char> = source
        .lines()
        .nth(span.start_line.checked_sub(1)?)?
        .chars()
        .collect();
    let end = span.end_col.min(line.len());
    let mut start = span.start_col.min(end);
    while start > 0 && (line[start - 1].is_alphanumeric() || matches!(line[start - 1], '_' | '.')) {
        start -= 1;
    }
    let text: String = line[start..end].iter().collect();
    let text = text.trim();
    (!text.is_empty() && text.chars().count() <= 80).then(|| text.to_string())
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    TooLarge,
    TooSlow,
}

impl Stop {
    fn message(self, max_bytes: usize) -> String {
        match self {
            Stop::TooLarge => {
                format!("the rendered output exceeds the message size limit of {max_bytes} bytes")
            }
            Stop::TooSlow => format!(
                "rendering was stopped after {} s; loops are too large",
                RENDER_TIME_LIMIT.as_secs()
            ),
        }
    }
}

/// Collects output and stops rendering when it grows past the limit or runs out of time.
struct BoundedOutput {
    buf: Vec<u8>,
    limit: usize,
    writes: u32,
    stopped: Option<Stop>,
}

impl BoundedOutput {
    fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            limit,
            writes: 0,
            stopped: None,
        }
    }
}

impl Write for BoundedOutput {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.stopped = Some(Stop::TooLarge);
            return Err(io::Error::other("output limit reached"));
        }
        // Reading the clock on every write would cost more than most writes.
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(512) && Deadline::passed() {
            self.stopped = Some(Stop::TooSlow);
            return Err(io::Error::other("time limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// When the render running on this thread must stop. Thread-local because tera calls
    /// functions without any state of ours; a render runs start to end on one thread.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

struct Deadline;

impl Deadline {
    fn start(limit: Duration) -> Self {
        DEADLINE.set(Some(Instant::now() + limit));
        Deadline
    }

    fn passed() -> bool {
        DEADLINE.get().is_some_and(|d| Instant::now() > d)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE.set(None);
    }
}

/// `range(end=…, start=0, step_by=1)` like tera's, but shorter and aware of the deadline,
/// so nested loops that write nothing still stop.
fn bounded_range(kwargs: Kwargs, _: &State) -> tera::TeraResult<Vec<i64>> {
    if Deadline::passed() {
        return Err(tera::Error::message(format!(
            "rendering was stopped after {} s; loops are too large",
            RENDER_TIME_LIMIT.as_secs()
        )));
    }
    let start = kwargs.get::<i64>("start")?.unwrap_or(0);
    let end = kwargs.must_get::<i64>("end")?;
    let step = kwargs.get::<i64>("step_by")?.unwrap_or(1);
    if step == 0 {
        return Err(tera::Error::message("`range`: step_by must not be 0"));
    }
    let len = (i128::from(end) - i128::from(start)) / i128::from(step);
    if len > i128::from(MAX_RANGE) {
        return Err(tera::Error::message(format!(
            "`range` is limited to {MAX_RANGE} numbers"
        )));
    }
    let mut out = Vec::new();
    let mut next = Some(start);
    // checked_add: near i64::MAX a wrapping step would loop forever.
    while let Some(i) = next.filter(|&i| (step > 0 && i < end) || (step < 0 && i > end)) {
        out.push(i);
        next = i.checked_add(step);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(sources: Sources, vars: serde_json::Value) -> Result<Rendered, FieldError> {
        compile(sources, None, None)
            .map_err(|mut e| e.remove(0))?
            .render(&vars, 1 << 20)
    }

    fn html(source: &str, vars: serde_json::Value) -> Result<String, FieldError> {
        render(
            Sources {
                html: Some(source),
                ..Default::default()
            },
            vars,
        )
        .map(|r| r.html.unwrap())
    }

    #[test]
    fn html_escapes_variables_text_and_subject_do_not() {
        let r = render(
            Sources {
                subject: Some("Hi {{ name }}"),
                html: Some("<p>{{ name }}</p>"),
                text: Some("Hi {{ name }}"),
            },
            json!({"name": "<b>Tom & Jerry</b>"}),
        )
        .unwrap();
        assert_eq!(r.html.unwrap(), "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>");
        assert_eq!(r.text.unwrap(), "Hi <b>Tom & Jerry</b>");
        assert_eq!(r.subject.unwrap(), "Hi <b>Tom & Jerry</b>");
    }

    #[test]
    fn loops_and_filters() {
        let out = html(
            "{% for i in items %}{{ loop.index }}.{{ i.name | upper }}={{ i.qty * 2 }};{% endfor %}{{ missing | default(value='none') }}",
            json!({"items": [{"name": "tea", "qty": 1}, {"name": "cake", "qty": 3}]}),
        )
        .unwrap();
        assert_eq!(out, "1.TEA=2;2.CAKE=6;none");
    }

    #[test]
    fn undefined_variables_are_errors_with_a_position() {
        let err = html("<p>\n  Hello {{ user.name }}</p>", json!({"user": {}})).unwrap_err();
        assert_eq!(err.field, "html");
        assert!(
            err.message.starts_with("line 2, column "),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("`name` is not defined"),
            "{}",
            err.message
        );
        let err = html("{{ nobody }}", json!({})).unwrap_err();
        assert!(err.message.contains("nobody"), "{}", err.message);
    }

    #[test]
    fn wrong_types_are_errors() {
        let err = html("{{ total | round }}", json!({"total": "abc"})).unwrap_err();
        assert_eq!(err.field, "html");
        let err = html("{% for i in n %}{% endfor %}", json!({"n": 3})).unwrap_err();
        assert!(err.message.contains("Iteration"), "{}", err.message);
    }

    #[test]
    fn parse_errors_name_part_line_and_column() {
        let errors = compile(
            Sources {
                subject: Some("ok"),
                html: Some("<p>\n\n  {{ name </p>"),
                text: Some("{% if %}"),
            },
            None,
            None,
        )
        .err()
        .unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "html");
        assert!(
            errors[0].message.starts_with("line 3, column "),
            "{}",
            errors[0].message
        );
        assert_eq!(errors[1].field, "text");
        assert!(
            errors[1].message.starts_with("line 1, column "),
            "{}",
            errors[1].message
        );
    }

    #[test]
    fn templates_cannot_reach_the_environment_or_files() {
        for source in [
            "{{ get_env(name='HOME') }}",
            "{{ 1 | get_env }}",
            "{{ now() }}",
            "{{ load_data(path='/etc/passwd') }}",
            "{% include '/etc/passwd' %}",
            "{% extends 'html.html' %}",
        ] {
            let result = compile(
                Sources {
                    html: Some(source),
                    ..Default::default()
                },
                None,
                None,
            );
            let errors = result.err().unwrap_or_else(|| panic!("{source} compiled"));
            assert_eq!(errors[0].field, "html");
            assert!(!errors[0].message.contains('\n'), "{}", errors[0].message);
        }
    }

    #[test]
    fn subjects_with_line_breaks_are_refused() {
        let err = render(
            Sources {
                subject: Some("Hi {{ name }}"),
                text: Some("t"),
                ..Default::default()
            },
            json!({"name": "x\r\nBcc: victim@example.com"}),
        )
        .unwrap_err();
        assert_eq!(err.field, "subject");
    }

    #[test]
    fn output_and_time_are_bounded() {
        let compiled = compile(
            Sources {
                text: Some("{% for i in range(end=10000) %}xxxxxxxxxx{% endfor %}"),
                ..Default::default()
            },
            None,
            None,
        )
        .unwrap();
        let err = compiled.render(&json!({}), 50_000).unwrap_err();
        assert!(err.message.contains("size limit"), "{}", err.message);
        assert!(compiled.render(&json!({}), 200_000).is_ok());

        let err = html("{% for i in range(end=100000) %}{% endfor %}", json!({})).unwrap_err();
        assert!(err.message.contains("limited"), "{}", err.message);

        let started = Instant::now();
        let err = html(
            "{% for i in range(end=10000) %}{% for j in range(end=10000) %}{% for k in range(end=10000) %}{% endfor %}{% endfor %}{% endfor %}",
            json!({}),
        )
        .unwrap_err();
        assert!(err.message.contains("stopped"), "{}", err.message);
        assert!(started.elapsed() < RENDER_TIME_LIMIT * 3);
    }

    #[test]
    fn range_counts_like_teras_and_stops_at_the_edges() {
        let out = html(
            "{{ range(end=3) | join(sep=',') }}|{{ range(start=5, end=0, step_by=-2) | join(sep=',') }}|{{ range(start=9223372036854775800, end=9223372036854775807, step_by=5) | join(sep=',') }}",
            json!({}),
        )
        .unwrap();
        assert_eq!(out, "0,1,2|5,3,1|9223372036854775800,9223372036854775805");
        assert!(html("{{ range(end=3, step_by=0) }}", json!({})).is_err());
    }

    #[test]
    fn a_layout_wraps_each_part_and_text_comes_from_html_when_absent() {
        let layout = Sources {
            html: Some("<html><body>{{ content }}<p>{{ company }}</p></body></html>"),
            text: Some("{{ content }}\n-- {{ company }}"),
            ..Default::default()
        };
        let vars = json!({"name": "<Ada>", "company": "Acme"});
        let both = compile(
            Sources {
                subject: Some("s"),
                html: Some("<h1>Hi {{ name }}</h1>"),
                text: Some("Hi {{ name }}"),
            },
            Some(layout),
            None,
        )
        .unwrap()
        .render(&vars, 1 << 20)
        .unwrap();
        assert_eq!(
            both.html.unwrap(),
            "<html><body><h1>Hi &lt;Ada&gt;</h1><p>Acme</p></body></html>"
        );
        assert_eq!(both.text.unwrap(), "Hi <Ada>\n-- Acme");

        let html_only = compile(
            Sources {
                html: Some("<h1>Hi {{ name }}</h1><p>See <a href=\"https://x.example/r\">your account</a>.</p>"),
                ..Default::default()
            },
            Some(layout),
            None,
        )
        .unwrap()
        .render(&vars, 1 << 20)
        .unwrap();
        let text = html_only.text.unwrap();
        assert!(text.contains("Hi <Ada>"), "{text}");
        assert!(text.contains("https://x.example/r"), "{text}");
        assert!(text.contains("Acme"), "{text}");
        assert!(!text.contains("<h1>"), "{text}");
    }
}
