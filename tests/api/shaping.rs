//! Per-destination shaping for direct delivery (`[shaping.NAME]`, issue 26 §5 and §6): sites
//! capped across processes through Redis, a throttling site paused while others flow, domains
//! that share MX hosts sharing one cap, and the operator's `GET /v1/destinations`. Real DNS
//! and SMTP servers on loopback; each test owns the addresses 127.31.N.x.

use std::time::Duration;

use mailgate::{
    config::{Config, RelayConfig, ShapingConfig},
    delivery::{
        Relays,
        direct::{Delivery, Envelope},
    },
    queue::mail::Job,
};
use serde_json::{Value, json};

use crate::support::{
    app::{JWT_SECRET, TestApp, relays_of, require_shared_redis, test_config},
    dns_server::TestDns,
    eventually,
    smtp_server::TestSmtpServer,
};

const WAIT: Duration = Duration::from_secs(30);

/// A direct relay as the default pool, resolving through `dns`, MX on loopback allowed.
fn direct(c: &mut Config, dns: &TestDns) {
    c.dns.nameservers = vec![dns.addr.to_string()];
    c.dns.timeout_ms = 1000;
    c.relays.insert(
        "direct".into(),
        RelayConfig {
            allow_private_mx: true,
            ..RelayConfig::direct()
        },
    );
    c.pools.insert("default".into(), vec!["direct".into()]);
}

fn shaping(suffix: Option<&str>, max_connections: Option<u32>) -> ShapingConfig {
    ShapingConfig {
        mx_suffix: suffix.map(|s| vec![s.to_string()]).unwrap_or_default(),
        max_connections,
        ..Default::default()
    }
}

fn msg(to: &str) -> Value {
    json!({"from": "sender@mailgate.test", "to": to, "subject": "shaped", "text": "hello"})
}

fn operator_token() -> String {
    let secret: secrecy::SecretString = JWT_SECRET.to_string().into();
    mailgate::service::gate::mint_operator_token(&secret, Duration::from_secs(300)).unwrap()
}

pub(crate) async fn destinations(app: &TestApp) -> Value {
    let r = app
        .http
        .get(app.url("/v1/destinations"))
        .bearer_auth(operator_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Waits until `/v1/destinations` lists a site that `is` picks out, in a state `ready` takes.
pub(crate) async fn site_when(
    app: &TestApp,
    what: &str,
    is: impl Fn(&Value) -> bool,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, WAIT, async || {
        let list = destinations(app).await;
        match list["data"].as_array().unwrap().iter().find(|d| is(d)) {
            Some(site) if ready(site) => Ok(site.clone()),
            _ => Err(list.to_string()),
        }
    })
    .await
}

/// `path` of the console, as the operator signed in with a token (the sign-in form's
/// double-submit value is the test's own).
async fn console_page(app: &TestApp, path: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = operator_token();
    let r = http
        .post(app.url("/console/sign-in"))
        .header("cookie", "mg_console_sign_in=shaping-test")
        .header("content-type", "application/x-www-form-urlencoded")
        // A JWT is URL-safe as it is.
        .body(format!("csrf=shaping-test&token={token}"))
        .send()
        .await
        .unwrap();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("mg_console="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {r:?}"))
        .to_string();
    let r = http
        .get(app.url(path))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// A site capped at 2 connections, fed by two mailgate instances on one database and one
/// Redis that each want more: the MX never sees a third connection at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_capped_at_two_connections_never_sees_a_third_across_two_instances() {
    const MESSAGES: usize = 40;
    require_shared_redis();
    let dns = TestDns::start().await;
    dns.mx("cap.test", &[(10, "mx.cap.test")])
        .addr("mx.cap.test", &["127.31.1.1"]);
    let mx = TestSmtpServer::start_on("127.31.1.1:25".parse().unwrap()).await;
    // Slow answers, so both instances want more connections than the cap.
    mx.set_data_delay(Duration::from_millis(60));
    let config = TestApp::builder()
        .configure(|c| {
            direct(c, &dns);
            c.shaping
                .insert("capped".into(), shaping(Some(".cap.test"), Some(2)));
            // The cap is shared while Redis answers; a call slower than the default 100 ms
            // on a loaded machine makes each process fall back to its own cap, by design.
            c.redis.timeout_ms = 2_000;
        })
        .build_config()
        .await;
    let app = TestApp::builder().config(config.clone()).start().await;
    let _other = app.another_instance(config).await;

    let items: Vec<Value> = (0..MESSAGES)
        .map(|i| msg(&format!("user{i}@cap.test")))
        .collect();
    let r = app.post_batch_raw(&app.key, &json!(items)).await;
    assert_eq!(r.status(), 200);
    mx.wait_for(MESSAGES, Duration::from_secs(60)).await;
    let most = mx.max_open_connections();
    assert!(
        most <= 2,
        "two instances opened {most} connections at once to a site capped at 2"
    );
    // Waiting for a slot is not an attempt: every recipient was delivered on its first.
    let (over,): (i64,) = sqlx::query_as("SELECT count(*) FROM recipients WHERE attempts <> 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(over, 0);
}

/// A session left idle with a capped site's only connection slot is closed within seconds:
/// another process with mail for the site gets the slot, and the MX never sees the two
/// connections open at once. Two relays built as `serve` builds them, sharing one Redis,
/// stand for two processes; the first keeps its session and has no more mail.
#[tokio::test]
async fn an_idle_session_hands_its_slot_to_another_process_within_seconds() {
    let dns = TestDns::start().await;
    dns.mx("idle.test", &[(10, "mx.idle.test")])
        .addr("mx.idle.test", &["127.31.5.1"]);
    let mx = TestSmtpServer::start_on("127.31.5.1:25".parse().unwrap()).await;
    let mut config = test_config("postgres://unused");
    config.redis_url = Some(require_shared_redis().into());
    direct(&mut config, &dns);
    config
        .shaping
        .insert("default".into(), shaping(None, Some(1)));
    let (one, two) = (relays_of(&config), relays_of(&config));
    let mime = b"From: sender@mailgate.test\r\nTo: a@idle.test\r\nSubject: idle\r\n\r\nhello\r\n";
    let deliver = async |relays: &Relays, to: &str| {
        let job = Job {
            recipient_id: 1,
            message_id: uuid::Uuid::now_v7(),
            project_id: uuid::Uuid::now_v7(),
            email: to.into(),
            attempts: 1,
            from_addr: "sender@mailgate.test".into(),
            mime: mime.to_vec(),
            relay: None,
            sandbox: false,
            accepted_at: chrono::Utc::now(),
            bounce_domain: None,
            together: 1,
        };
        let envelope = Envelope {
            from: "sender@mailgate.test",
            to,
            intl: Default::default(),
        };
        // As the queue does: not now is no attempt, and the recipient comes back after the
        // wait it was given.
        loop {
            match relays
                .direct(None)
                .unwrap()
                .deliver(&job, &envelope, mime)
                .await
            {
                Delivery::Done(reply) => return reply,
                Delivery::NotNow(not_now) => tokio::time::sleep(not_now.wait).await,
            }
        }
    };

    let first = deliver(&one, "a@idle.test").await;
    assert_eq!(first.code, Some(250), "{first:?}");
    // The first process keeps its session, idle, holding the one slot.
    let started = std::time::Instant::now();
    let second = deliver(&two, "b@idle.test").await;
    assert_eq!(second.code, Some(250), "{second:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the second process waited {:?} for the slot of an idle session",
        started.elapsed()
    );
    assert_eq!(
        mx.max_open_connections(),
        1,
        "the idle session was closed before the other process opened its own"
    );
    assert_eq!(mx.connections(), 2);
}

/// Two domains whose MX is the same host are one site: one cap for both.
#[tokio::test]
async fn domains_sharing_mx_hosts_share_one_cap() {
    let dns = TestDns::start().await;
    for domain in ["one.shared.test", "two.shared.test"] {
        dns.mx(domain, &[(10, "mx.shared.test")]);
    }
    dns.addr("mx.shared.test", &["127.31.3.1"]);
    let mx = TestSmtpServer::start_on("127.31.3.1:25".parse().unwrap()).await;
    mx.set_data_delay(Duration::from_millis(50));
    let app = TestApp::builder()
        .configure(|c| {
            direct(c, &dns);
            c.shaping.insert("default".into(), shaping(None, Some(1)));
        })
        .start()
        .await;
    let items: Vec<Value> = (0..20)
        .map(|i| {
            let domain = if i % 2 == 0 { "one" } else { "two" };
            msg(&format!("u{i}@{domain}.shared.test"))
        })
        .collect();
    let r = app.post_batch_raw(&app.key, &json!(items)).await;
    assert_eq!(r.status(), 200);
    mx.wait_for(20, WAIT).await;
    assert_eq!(
        mx.max_open_connections(),
        1,
        "one.shared.test and two.shared.test share mx.shared.test, so its one connection"
    );
}

/// A `421` from one site pauses it (for this egress address) while another site keeps
/// receiving; the throttled recipient waits without an attempt counted, then goes.
#[tokio::test]
async fn a_throttling_site_is_paused_while_another_keeps_receiving() {
    let dns = TestDns::start().await;
    dns.mx("slow.test", &[(10, "mx.slow.test")])
        .addr("mx.slow.test", &["127.31.2.1"])
        .mx("fast.test", &[(10, "mx.fast.test")])
        .addr("mx.fast.test", &["127.31.2.2"]);
    let slow = TestSmtpServer::start_on("127.31.2.1:25".parse().unwrap()).await;
    let fast = TestSmtpServer::start_on("127.31.2.2:25".parse().unwrap()).await;
    // Every try of a@slow.test is throttled until the test says otherwise.
    slow.rcpt_reply(
        "a@slow.test",
        421,
        "4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints",
        None,
    );
    let app = TestApp::builder()
        .configure(|c| {
            direct(c, &dns);
            c.shaping
                .insert("slowsite".into(), shaping(Some(".slow.test"), None));
        })
        .start()
        .await;

    let a = app.send_ok(&msg("a@slow.test")).await;
    // The site pushed back: it is paused, for every process, with the reply that did it.
    let paused = site_when(
        &app,
        "slow.test paused",
        |d| d["shaping"] == "slowsite",
        |site| site["egress"][0]["throttles"].as_u64() >= Some(1) && site["queued"] == 1,
    )
    .await;
    assert_eq!(paused["domains"], json!(["slow.test"]), "{paused}");
    assert_eq!(
        paused["queued"], 1,
        "waiting out a pause is not an attempt: {paused}"
    );
    assert!(paused["egress"][0]["backoff_ms"].as_u64().unwrap() >= 1000);
    assert!(
        paused["egress"][0]["last_throttle"]
            .as_str()
            .unwrap()
            .contains("TSS04"),
        "{paused}"
    );
    // Meanwhile the other site takes its mail at once.
    let b = app.send_ok(&msg("b@slow.test")).await;
    let f = app.send_ok(&msg("f@fast.test")).await;
    app.wait_for_status(&f, &["delivered"], Duration::from_secs(5))
        .await;
    assert_eq!(fast.received().len(), 1);
    let email = app.get_email(&a).await;
    assert_ne!(email.recipients[0].status, "delivered", "{email:#}");
    assert!(
        email.events_of("deferred").is_empty() && email.recipients[0].attempts <= 1,
        "the throttled recipient waits, no attempt counted: {email:#}"
    );
    // Paused between tries (1 s, then 2 s, …): a handful of tries, not a retry loop.
    let tries = slow.connections();
    assert!(
        tries <= 3,
        "{tries} sessions to a throttling site in about a second"
    );

    // The site takes mail again: both go, each on its first attempt, with no deferral.
    slow.rcpt_reply("a@slow.test", 250, "2.1.5 OK", None);
    for id in [&a, &b] {
        let email = app.wait_for_status(id, &["delivered"], WAIT).await;
        let r = &email.recipients[0];
        assert_eq!(
            r.attempts, 1,
            "waiting out a pause is not an attempt: {email:#}"
        );
        assert!(email.events_of("deferred").is_empty(), "{email:#}");
    }
    assert_eq!(slow.received().len(), 2);
    let metrics = app.scrape_metrics().await;
    assert!(
        metrics.contains("mailgate_site_throttled_total{site=\"slowsite\"}"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mailgate_site_deliveries_total{")
                && l.contains("site=\"other\"")
                && l.contains("outcome=\"delivered\"")),
        "fast.test is counted under `other`: {metrics}"
    );
}

/// The operator's view of waiting mail: a site with a queued (throttled) and a deferred
/// recipient, its counts, last reply and pause; a key (any scopes) is refused.
#[tokio::test]
async fn destinations_list_waiting_sites_for_the_operator_only() {
    let dns = TestDns::start().await;
    dns.mx("wait.test", &[(10, "mx.wait.test")])
        .mx("also.wait.test", &[(10, "mx.wait.test")])
        .addr("mx.wait.test", &["127.31.4.1"]);
    let mx = TestSmtpServer::start_on("127.31.4.1:25".parse().unwrap()).await;
    mx.rcpt_reply("busy@wait.test", 451, "4.2.1 mailbox busy", None);
    mx.rcpt_reply(
        "slow@also.wait.test",
        451,
        "4.7.650 The mail server [127.0.0.1] has been temporarily rate limited due to IP reputation.",
        None,
    );
    let app = TestApp::builder()
        .configure(|c| {
            direct(c, &dns);
            // Deferred mail stays deferred for the length of the test.
            c.delivery.retry_base_secs = 300.0;
            c.delivery.retry_max_secs = 300.0;
        })
        .start()
        .await;
    app.send_ok(&msg("busy@wait.test")).await;
    let site = site_when(
        &app,
        "wait.test listed",
        |d| d["mx"] == json!(["mx.wait.test"]),
        |site| site["deferred"] == 1,
    )
    .await;
    assert_eq!(site["shaping"], "default");
    assert_eq!(site["queued"], 0);
    assert!(
        site["last_reply"]
            .as_str()
            .unwrap()
            .contains("451 4.2.1 mailbox busy"),
        "{site}"
    );
    assert_eq!(site["limits"]["max_connections"], 10, "{site}");

    // Another domain on the same MX is the same site; its throttled recipient waits queued.
    app.send_ok(&msg("slow@also.wait.test")).await;
    let site = site_when(
        &app,
        "the site paused",
        |d| d["mx"] == json!(["mx.wait.test"]),
        |site| site["queued"] == 1 && site["egress"][0]["backoff_ms"].as_u64() >= Some(1000),
    )
    .await;
    let mut domains: Vec<String> = serde_json::from_value(site["domains"].clone()).unwrap();
    domains.sort();
    assert_eq!(domains, ["also.wait.test", "wait.test"], "{site}");
    assert_eq!(site["deferred"], 1);
    let egress = &site["egress"][0];
    assert_eq!(egress["addr"], "any");
    assert!(
        egress["last_throttle"]
            .as_str()
            .unwrap()
            .contains("4.7.650")
    );
    assert!(egress["throttles"].as_u64().unwrap() >= 1, "{egress}");

    // The console's Destinations page shows the same to the operator.
    let page = console_page(&app, "/console/destinations").await;
    for part in [
        "also.wait.test",
        "mx.wait.test",
        "4.7.650",
        "451 4.2.1 mailbox busy",
    ] {
        assert!(page.contains(part), "{part} in {page}");
    }

    // A key, even one with every scope, may not look.
    let r = app
        .http
        .get(app.url("/v1/destinations"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "operator_only", "{body}");
}

/// Unknown keys inside a shaping entry are refused (file and environment), naming the key;
/// so are an entry without suffixes and a zero cap.
#[test]
fn config_refuses_unknown_and_bad_shaping_keys() {
    let path = std::env::temp_dir().join(format!(
        "mailgate-shaping-{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    let load = |toml: &str| {
        std::fs::write(&path, toml).unwrap();
        let result = Config::load_from(Some(&path), &[]).map_err(|e| format!("{e:#}"));
        let _ = std::fs::remove_file(&path);
        result
    };
    let c = load("[shaping.google]\nmax_connections = 2\ntls = \"required\"\n[shaping.mine]\nmx_suffix = [\".mail.example.net\"]\nmax_rate_per_sec = 1.5\nmax_messages_per_connection = 3\n").unwrap();
    let map = c.shaping_map();
    assert_eq!(map["google"].max_connections, Some(2));
    assert_eq!(
        map["google"].tls,
        Some(mailgate::config::TlsRequirement::Required)
    );
    assert_eq!(map["mine"].tls, None, "opportunistic unless asked");
    assert_eq!(map["google"].max_messages_per_connection, Some(50));
    assert_eq!(map["mine"].max_rate_per_sec, Some(1.5));
    for (toml, says) in [
        (
            "[shaping.google]\nmax_conections = 2\n",
            "did you mean `shaping.google.max_connections`?",
        ),
        (
            "[shaping.mine]\nmax_connections = 2\n",
            "shaping.mine.mx_suffix",
        ),
        (
            "[shaping.default]\nmax_connections = 0\n",
            "must be at least 1",
        ),
        (
            "[shaping.default]\nmx_suffix = [\".x.test\"]\n",
            "shaping.default.mx_suffix",
        ),
        ("[shaping.default]\ntls = \"sometimes\"\n", "sometimes"),
    ] {
        let err = load(toml).unwrap_err();
        assert!(err.contains(says), "{toml}: {err}");
    }
    let vars = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let err = Config::load_from(
        None,
        &vars(&[("MAILGATE_SHAPING__YAHOO__MAX_MESSAGES_PER_CONECTION", "5")]),
    )
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("MAILGATE_SHAPING__YAHOO__MAX_MESSAGES_PER_CONECTION")
            && err.contains("shaping.yahoo.max_messages_per_connection"),
        "{err}"
    );
    let c = Config::load_from(
        None,
        &vars(&[
            ("MAILGATE_SHAPING__YAHOO__MAX_CONNECTIONS", "3"),
            (
                "MAILGATE_SHAPING__MINE__MX_SUFFIX",
                r#"[".mail.example.net"]"#,
            ),
        ]),
    )
    .unwrap();
    assert_eq!(c.shaping_map()["yahoo"].max_connections, Some(3));
    assert_eq!(c.shaping_map()["mine"].mx_suffix, [".mail.example.net"]);
}
