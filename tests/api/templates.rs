//! Stored templates: saving, rendering, sending with them, and the push/pull folder format.

use std::{path::Path, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    app::{TestApp, create_database, expect, spawn_app, spawn_app_relaying_to, test_config},
    smtp_server::TestSmtpServer,
};

const WAIT: Duration = Duration::from_secs(15);

fn first_error(problem: &Value) -> (String, String) {
    let e = &problem["errors"][0];
    (
        e["field"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn repo_templates() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))
}

fn temp_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mailgate-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn templates_are_created_read_replaced_listed_and_deleted() {
    let app = spawn_app().await;
    let body = json!({
        "name": "welcome",
        "description": "Sent after sign-up",
        "subject": "Welcome, {{ name }}",
        "html": "<p>Hello {{ name }}</p>",
    });
    let created = app.create_template(&body).await;
    assert_eq!(created["name"], "welcome");
    assert_eq!(created["version"], 1);
    assert_eq!(created["text"], Value::Null);
    assert!(created.get("id").is_none(), "internal ids stay internal");

    let (status, problem) = app.call(Method::POST, "/v1/templates", Some(body)).await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "template_exists");

    let shown = app.get_template("welcome").await;
    assert_eq!(shown["html"], "<p>Hello {{ name }}</p>");

    // A change bumps the version; saving the same content again does not.
    let replacement = json!({"subject": "Hi {{ name }}", "text": "Hello {{ name }}"});
    let updated = app.put_template("welcome", &replacement).await;
    assert_eq!(updated["version"], 2);
    assert_eq!(
        updated["html"],
        Value::Null,
        "PUT replaces the whole template"
    );
    assert_eq!(updated["description"], Value::Null);
    let again = app.put_template("welcome", &replacement).await;
    assert_eq!(again["version"], 2);
    assert_eq!(again["updated_at"], updated["updated_at"]);

    // PUT creates too, and names must match the URL.
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/templates/receipt",
            Some(json!({"subject": "s", "text": "t"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, problem) = app
        .call(
            Method::PUT,
            "/v1/templates/receipt",
            Some(json!({"name": "other", "text": "t"})),
        )
        .await;
    assert_eq!((status, first_error(&problem).0.as_str()), (422, "name"));
    app.put_template("alpha", &json!({"text": "a"})).await;

    // Pages by name, without the sources.
    let page = app.list_templates("limit=2").await;
    let names: Vec<&str> = page
        .data
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "receipt"]);
    assert!(page.data[0].get("html").is_none());
    let cursor = page.next_cursor.clone().unwrap();
    let page = app
        .list_templates(&format!("limit=2&cursor={cursor}"))
        .await;
    assert_eq!(page.data[0]["name"], "welcome");
    assert_eq!(page.next_cursor, None);
    let (status, problem) = app.call(Method::GET, "/v1/templates?limit=0", None).await;
    assert_eq!((status, first_error(&problem).0.as_str()), (422, "limit"));

    app.delete_template("welcome").await;
    for method in [Method::GET, Method::DELETE] {
        let (status, problem) = app.call(method, "/v1/templates/welcome", None).await;
        assert_eq!(status, 404);
        assert_eq!(problem["code"], "template_not_found");
    }
}

#[tokio::test]
async fn bad_template_bodies_get_a_422_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"name": "Bad Name", "text": "t"}), "name"),
        (json!({"text": "t"}), "name"),
        (json!({"name": "x", "subject": "s"}), "html"),
        (
            json!({"name": "x", "text": "t", "subject": "a\nb"}),
            "subject",
        ),
        (
            json!({"name": "x", "text": "t", "layout": "missing"}),
            "layout",
        ),
        (json!({"name": "x", "text": "t", "layout": "x"}), "layout"),
        (json!({"name": "x", "text": "t", "version": 3}), "version"),
        (json!({"name": "x", "text": "t", "html": 5}), "html"),
        (json!({"name": "validate", "text": "t"}), "name"),
    ];
    for (body, field) in cases {
        let (status, problem) = app
            .call(Method::POST, "/v1/templates", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body} -> {problem}");
        assert_eq!(problem["code"], "validation_error", "{body}");
        assert_eq!(first_error(&problem).0, field, "{body} -> {problem}");
    }
    let read_only = app.create_key("acme", "send,messages", false).await;
    let (status, problem) = app
        .call_as(&read_only, Method::GET, "/v1/templates", None)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("forbidden_scope"))
    );
}

#[tokio::test]
async fn templates_that_do_not_parse_are_refused_with_part_line_and_column() {
    let app = spawn_app().await;
    let (status, problem) = app
        .call(
            Method::POST,
            "/v1/templates",
            Some(json!({
                "name": "broken",
                "subject": "Hi {{ name }",
                "html": "<p>\n  fine\n  {% for x in items %}{{ x }}\n</p>",
                "text": "{{ get_env(name='HOME') }}",
            })),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "validation_error");
    let errors: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(errors[0].0, "subject");
    assert!(errors[0].1.starts_with("line 1, column "), "{errors:?}");
    assert_eq!(errors[1].0, "html");
    assert!(errors[1].1.starts_with("line 4, column "), "{errors:?}");
    // No function can read the environment or files: they do not exist.
    assert_eq!(errors[2].0, "text");
    assert!(
        errors[2]
            .1
            .contains("line 1, column 4: Unknown function `get_env`"),
        "{errors:?}"
    );
    let (status, _) = app.call(Method::GET, "/v1/templates/broken", None).await;
    assert_eq!(status, 404, "nothing was saved");

    // The validate endpoint says the same about unsaved content.
    let (status, problem) = app
        .call(
            Method::POST,
            "/v1/templates/validate",
            Some(json!({"html": "<p>\n\n{{ name | nope }}</p>"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        first_error(&problem),
        (
            "html".into(),
            "line 3, column 11: Unknown filter `nope`".into()
        )
    );
}

#[tokio::test]
async fn rendering_escapes_html_only_and_reports_missing_variables() {
    let app = spawn_app().await;
    app.put_template("order", &json!({
            "subject": "Order {{ order.number }} for {{ name }}",
            "html": "<h1>Hi {{ name }}</h1>\n<ul>{% for i in items %}<li>{{ loop.index }}. {{ i.name | upper }} x{{ i.qty }}</li>{% endfor %}</ul>\n<p>{{ note | default(value='No note') }}</p>",
            "text": "Hi {{ name }}\n{% for i in items %}- {{ i.name | title }} x{{ i.qty }}\n{% endfor %}{{ items | length }} item{{ items | length | pluralize }}",
        }))
    .await;
    let out = app
        .render_template(
            "order",
            json!({
                "name": "<script>alert(1)</script> & co",
                "order": {"number": "A-1"},
                "items": [{"name": "tea", "qty": 2}, {"name": "big cake", "qty": 1}],
            }),
        )
        .await;
    assert_eq!(
        out["subject"],
        "Order A-1 for <script>alert(1)</script> & co"
    );
    assert_eq!(
        out["html"],
        "<h1>Hi &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</h1>\n<ul><li>1. TEA x2</li><li>2. BIG CAKE x1</li></ul>\n<p>No note</p>"
    );
    assert_eq!(
        out["text"],
        "Hi <script>alert(1)</script> & co\n- Tea x2\n- Big Cake x1\n2 items"
    );

    // A missing variable is an error naming the part, the position and the variable.
    let problem = expect(
        422,
        app.render_template_raw("order", json!({"name": "Ada", "items": [], "order": {}}))
            .await,
    )
    .await;
    assert_eq!(problem["code"], "template_render_error");
    let (field, message) = first_error(&problem);
    assert_eq!(field, "subject");
    assert!(message.starts_with("line 1, column "), "{message}");
    assert!(message.contains("number"), "{message}");

    // So is a value of the wrong type, and variables that are not an object.
    let problem = expect(
        422,
        app.render_template_raw(
            "order",
            json!({"name": "Ada", "order": {"number": 1}, "items": 7}),
        )
        .await,
    )
    .await;
    assert_eq!(problem["code"], "template_render_error");
    assert!(
        first_error(&problem).1.contains("Iteration not possible"),
        "{problem}"
    );
    let problem = expect(422, app.render_template_raw("order", json!([1, 2])).await).await;
    assert_eq!(first_error(&problem).0, "variables");

    let problem = expect(404, app.render_template_raw("nope", json!({})).await).await;
    assert_eq!(problem["code"], "template_not_found");
}

#[tokio::test]
async fn layouts_wrap_each_part_and_stay_one_level_deep() {
    let app = spawn_app().await;
    app.put_template(
        "frame",
        &json!({
            "html": "<div class=\"frame\">{{ content }}</div><footer>{{ company }}</footer>",
            "text": "{{ content }}\n-- {{ company }}",
        }),
    )
    .await;
    app.put_template(
        "note",
        &json!({"subject": "Note", "html": "<p>{{ body }}</p>", "layout": "frame"}),
    )
    .await;
    let out = app
        .render_template("note", json!({"body": "1 < 2", "company": "Acme"}))
        .await;
    assert_eq!(
        out["html"],
        "<div class=\"frame\"><p>1 &lt; 2</p></div><footer>Acme</footer>"
    );
    // No text part: made from the final HTML, layout included.
    let text = out["text"].as_str().unwrap();
    assert!(text.contains("1 < 2") && text.contains("Acme"), "{text}");

    // A missing variable of the layout is reported as the layout's.
    let problem = expect(
        422,
        app.render_template_raw("note", json!({"body": "x"})).await,
    )
    .await;
    let (field, message) = first_error(&problem);
    assert_eq!(field, "layout");
    assert!(message.contains("company"), "{message}");

    // Layouts do not nest, either way round.
    let (status, problem) = app
        .call(
            Method::PUT,
            "/v1/templates/frame",
            Some(json!({"html": "{{ content }}", "layout": "note"})),
        )
        .await;
    assert_eq!((status, first_error(&problem).0.as_str()), (422, "layout"));
    let (status, problem) = app
        .call(
            Method::PUT,
            "/v1/templates/deeper",
            Some(json!({"html": "x", "layout": "note"})),
        )
        .await;
    assert_eq!((status, first_error(&problem).0.as_str()), (422, "layout"));

    // A layout in use cannot be deleted.
    let (status, problem) = app.call(Method::DELETE, "/v1/templates/frame", None).await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "template_in_use");
    assert!(problem["detail"].as_str().unwrap().contains("note"));

    // Unsaved content can be tried with a stored layout.
    let (status, out) = app
        .call(
            Method::POST,
            "/v1/templates/validate",
            Some(json!({
                "subject": "Preview for {{ name }}",
                "html": "<b>{{ name }}</b>",
                "text": "{{ name }}",
                "layout": "frame",
                "variables": {"name": "Ada", "company": "Acme"},
            })),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out,
        json!({
            "subject": "Preview for Ada",
            "html": "<div class=\"frame\"><b>Ada</b></div><footer>Acme</footer>",
            "text": "Ada\n-- Acme",
        })
    );
}

#[tokio::test]
async fn another_projects_template_is_not_found() {
    let app = spawn_app().await;
    app.put_template("secret", &json!({"subject": "s", "text": "acme only"}))
        .await;
    let other = app
        .create_key("globex", "send,messages,templates", false)
        .await;
    for (method, path) in [
        (Method::GET, "/v1/templates/secret"),
        (Method::DELETE, "/v1/templates/secret"),
    ] {
        let (status, problem) = app.call_as(&other, method, path, None).await;
        assert_eq!(status, 404);
        assert_eq!(problem["code"], "template_not_found");
    }
    let (status, _) = app
        .call_as(
            &other,
            Method::POST,
            "/v1/templates/secret/render",
            Some(json!({"variables": {}})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, page) = app
        .call_as(&other, Method::GET, "/v1/templates", None)
        .await;
    assert_eq!(page["data"], json!([]));
    let response = app
        .post_email_raw(
            &other,
            &json!({"from": "a@example.com", "to": "b@example.com", "template": "secret"}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "template_not_found");
    assert_eq!(first_error(&problem).0, "template");

    // The same name in another project is another template.
    let (status, _) = app
        .call_as(
            &other,
            Method::PUT,
            "/v1/templates/secret",
            Some(json!({"subject": "s", "text": "globex's own"})),
        )
        .await;
    assert_eq!(status, 201);
    let out = app.render_template("secret", json!({})).await;
    assert_eq!(out["text"], "acme only");
}

#[tokio::test]
async fn a_message_sent_by_template_is_rendered_at_accept_and_relayed() {
    let smtp = TestSmtpServer::start().await;
    let app = spawn_app_relaying_to(&smtp).await;
    app.put_template(
        "welcome",
        &json!({
            "subject": "Welcome {{ name }}",
            "html": "<h1>Hi {{ name }}</h1>\n<p><a href=\"{{ url }}\">Sign in</a></p>",
        }),
    )
    .await;
    let id = app
        .send_ok(&json!({
            "from": "hello@shop.example",
            "to": "ada@example.com",
            "template": "welcome",
            "variables": {"name": "Ada <3", "url": "https://shop.example/in"},
            "tags": ["welcome"],
        }))
        .await;
    app.wait_for_status(&id, &["delivered"], WAIT).await;
    let received = smtp.wait_for(1, WAIT).await;
    let mime = received[0].text();
    for needle in [
        "Subject: Welcome Ada <3",
        "multipart/alternative",
        "<h1>Hi Ada &lt;3</h1>",
        "Content-Type: text/plain",
        "Hi Ada <3",
        "https://shop.example/in",
    ] {
        assert!(mime.contains(needle), "{needle:?} missing from:\n{mime}");
    }
    assert!(!mime.contains("{{"), "unrendered template in:\n{mime}");
}

#[tokio::test]
async fn a_send_that_cannot_render_is_refused_and_nothing_is_queued() {
    let app = spawn_app().await;
    app.put_template(
        "hello",
        &json!({"subject": "Hi {{ name }}", "text": "Hello {{ name }}, {{ code }}"}),
    )
    .await;
    app.put_template("no-subject", &json!({"text": "t"})).await;
    let base = json!({"from": "a@example.com", "to": "b@example.com", "template": "hello"});
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (
            with(
                json!({"subject": "s", "html": "<p>h</p>", "variables": {"name": "x", "code": 1}}),
            ),
            "validation_error",
            "subject",
        ),
        (
            with(json!({"variables": {"name": "Ada"}})),
            "template_render_error",
            "text",
        ),
        (
            with(json!({"variables": {"name": "x\r\nBcc: victim@example.com", "code": 1}})),
            "template_render_error",
            "subject",
        ),
        (
            with(json!({"variables": "name=Ada"})),
            "validation_error",
            "variables",
        ),
        (
            with(json!({"template": "missing"})),
            "template_not_found",
            "template",
        ),
        (
            with(json!({"template": "no-subject"})),
            "validation_error",
            "template",
        ),
        (
            json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t", "variables": {}}),
            "validation_error",
            "variables",
        ),
    ];
    for (body, code, field) in cases {
        let response = app.post_email_raw(&app.key, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code, "{body} -> {problem}");
        assert_eq!(first_error(&problem).0, field, "{body} -> {problem}");
    }
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    let ok = with(json!({"variables": {"name": "Ada", "code": 42}}));
    app.send_ok(&ok).await;
}

#[tokio::test]
async fn rendered_output_is_bounded_by_the_message_size_limit() {
    let db = create_database().await;
    let mut config = test_config(&db);
    config.http.max_message_bytes = 20_000;
    let app = TestApp::builder().config(config).start().await;
    app.put_template(
        "big",
        &json!({"subject": "s", "text": "{% for i in range(end=n) %}0123456789{% endfor %}"}),
    )
    .await;
    let _ = app.render_template("big", json!({"n": 100})).await;
    let problem = expect(
        422,
        app.render_template_raw("big", json!({"n": 5000})).await,
    )
    .await;
    assert_eq!(problem["code"], "template_render_error");
    assert!(first_error(&problem).1.contains("size limit"), "{problem}");
}

#[tokio::test]
async fn a_change_saved_through_one_instance_is_rendered_by_another() {
    let app = spawn_app().await;
    let other = app.another_instance(test_config(&app.database_url)).await;
    app.put_template("promo", &json!({"subject": "s", "text": "v1 {{ x }}"}))
        .await;
    let out = other.render_template("promo", json!({"x": 1})).await;
    assert_eq!(out["text"], "v1 1", "cached on the other instance now");

    app.put_template("promo", &json!({"subject": "s", "text": "v2 {{ x }}"}))
        .await;
    let out = other.render_template("promo", json!({"x": 1})).await;
    assert_eq!(out["text"], "v2 1");

    // Deleted and created again: version 1 again, and still not the stale copy.
    app.delete_template("promo").await;
    let _ = expect(
        404,
        other.render_template_raw("promo", json!({"x": 1})).await,
    )
    .await;
    let created = app
        .put_template("promo", &json!({"subject": "s", "text": "v3 {{ x }}"}))
        .await;
    assert_eq!(created["version"], 1);
    let out = other.render_template("promo", json!({"x": 1})).await;
    assert_eq!(out["text"], "v3 1");

    // A layout change reaches templates that use it.
    app.put_template("frame", &json!({"text": "[{{ content }}]"}))
        .await;
    app.put_template(
        "promo",
        &json!({"subject": "s", "text": "v4", "layout": "frame"}),
    )
    .await;
    let out = other.render_template("promo", json!({})).await;
    assert_eq!(out["text"], "[v4]");
    app.put_template("frame", &json!({"text": "<{{ content }}>"}))
        .await;
    let out = other.render_template("promo", json!({})).await;
    assert_eq!(out["text"], "<v4>");
}

async fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .args(args)
        .env("MAILGATE_DATABASE_URL", &app.database_url)
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap()
}

fn stdout_lines(output: &std::process::Output) -> Vec<String> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn the_example_templates_push_render_and_pull_back_unchanged() {
    let app = spawn_app().await;
    let dir = repo_templates().to_str().unwrap();
    let pushed = stdout_lines(&cli(&app, &["templates", "push", dir, "--project", "acme"]).await);
    assert_eq!(
        pushed,
        [
            "base\tcreated\tversion 1",
            "password-reset\tcreated\tversion 1",
            "receipt\tcreated\tversion 1",
            "welcome\tcreated\tversion 1",
        ]
    );
    let again = stdout_lines(&cli(&app, &["templates", "push", dir, "--project", "acme"]).await);
    assert!(
        again.iter().all(|l| l.contains("\tunchanged\tversion 1")),
        "{again:?}"
    );

    // The examples render with the variables the README lists.
    let receipt = app.render_template("receipt", json!({
            "customer": {"name": "Ada"},
            "order_number": "A-1001",
            "items": [
                {"name": "Tea", "quantity": 2, "unit_price": "$3.00", "amount": "$6.00"},
                {"name": "Cake <large>", "quantity": 1, "unit_price": "$12.50", "amount": "$12.50"},
            ],
            "total": "$18.50",
        })).await;
    assert_eq!(receipt["subject"], "Your receipt for order A-1001");
    let html = receipt["html"].as_str().unwrap();
    assert!(html.contains("<td>Cake &lt;large&gt;</td>"), "{html}");
    assert!(html.contains("2 items"), "{html}");
    let text = receipt["text"].as_str().unwrap();
    assert!(
        text.contains("2. Cake <large> x 1 @ $12.50 = $12.50"),
        "{text}"
    );
    assert!(text.contains("Paid with card."), "{text}");

    let welcome = app.render_template("welcome", json!({"name": "Ada", "product_name": "Acme", "login_url": "https://acme.example/login"})).await;
    let text = welcome["text"].as_str().unwrap();
    assert!(text.contains("Welcome, Ada!"), "{text}");
    assert!(text.contains("https://acme.example/login"), "{text}");
    assert!(text.contains("account with Acme"), "{text}");
    let reset = app.render_template("password-reset", json!({"name": "Ada", "product_name": "Acme", "reset_url": "https://acme.example/r/1", "expires_in_minutes": 30})).await;
    assert!(
        reset["text"]
            .as_str()
            .unwrap()
            .contains("expires in 30 minutes")
    );

    // Pulled back, every part is byte for byte what was pushed.
    let out = temp_dir("pull");
    let pulled = stdout_lines(
        &cli(
            &app,
            &[
                "templates",
                "pull",
                out.to_str().unwrap(),
                "--project",
                "acme",
            ],
        )
        .await,
    );
    assert_eq!(pulled.len(), 4, "{pulled:?}");
    for name in ["base", "welcome", "password-reset", "receipt"] {
        for file in ["subject.txt", "body.html", "body.txt"] {
            let original = std::fs::read(repo_templates().join(name).join(file)).ok();
            let copy = std::fs::read(out.join(name).join(file)).ok();
            assert_eq!(original, copy, "{name}/{file}");
        }
        let manifest = |dir: &Path| -> toml::Value {
            toml::from_str(&std::fs::read_to_string(dir.join(name).join("template.toml")).unwrap())
                .unwrap()
        };
        assert_eq!(
            manifest(repo_templates()),
            manifest(&out),
            "{name}/template.toml"
        );
    }
    // And pushing the pulled folder changes nothing.
    let again = stdout_lines(
        &cli(
            &app,
            &[
                "templates",
                "push",
                out.to_str().unwrap(),
                "--project",
                "acme",
            ],
        )
        .await,
    );
    assert!(
        again.iter().all(|l| l.contains("\tunchanged\t")),
        "{again:?}"
    );
    std::fs::remove_dir_all(&out).ok();
}

#[tokio::test]
async fn push_checks_every_folder_first_and_writes_nothing_when_one_is_invalid() {
    let app = spawn_app().await;
    let dir = temp_dir("push");
    std::fs::create_dir_all(dir.join("good")).unwrap();
    std::fs::write(dir.join("good/template.toml"), "").unwrap();
    std::fs::write(dir.join("good/body.txt"), "Hello {{ name }}\n").unwrap();
    std::fs::create_dir_all(dir.join("bad")).unwrap();
    std::fs::write(dir.join("bad/template.toml"), "layout = \"good\"\n").unwrap();
    std::fs::write(dir.join("bad/body.html"), "<p>\n{% if x %}\n</p>").unwrap();
    std::fs::create_dir_all(dir.join("notes")).unwrap();

    let output = cli(
        &app,
        &[
            "templates",
            "push",
            dir.to_str().unwrap(),
            "--project",
            "acme",
        ],
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}: line ", dir.join("bad/body.html").display())),
        "{stderr}"
    );
    assert!(stderr.contains("notes: no template.toml"), "{stderr}");
    assert!(stderr.contains("nothing was pushed"), "{stderr}");
    let page = app.list_templates("").await;
    assert!(page.data.is_empty());

    let output = cli(
        &app,
        &[
            "templates",
            "push",
            dir.to_str().unwrap(),
            "--project",
            "nope",
        ],
    )
    .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no project named `nope`"));
    std::fs::remove_dir_all(&dir).ok();
}
