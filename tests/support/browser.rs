//! A real headless Chromium, driven over the W3C WebDriver protocol through Debian's
//! `chromedriver` on a free port. The protocol is plain JSON over HTTP, so this speaks it
//! with the reqwest client the tests already have.
//!
//! Each `Browser` owns its chromedriver and its Chromium; dropping it ends both.

use std::{io::Write, net::TcpStream, path::PathBuf, process::Stdio, sync::Once, time::Duration};

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::{eventually, missing_tool, within};

/// The W3C name of an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
// Generous: CI runs these beside other tests on two cores.
const WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    port: u16,
}

/// A reference to an element of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

/// Where screenshots go; printed once per test binary.
pub fn screenshot_dir() -> PathBuf {
    static SHOWN: Once = Once::new();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    // Written to stderr directly, past the test harness's capture, so every run shows it.
    SHOWN.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "console screenshots are written to {}",
            dir.display()
        );
    });
    dir
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at 1280 × 900. Fails, naming the Debian
    /// package, when either is missing.
    pub async fn start() -> Browser {
        let chromium = ["chromium", "chromium-browser"]
            .iter()
            .find_map(|name| which(name))
            .unwrap_or_else(|| {
                panic!("chromium is not installed: apt-get install chromium chromium-driver (scripts/test installs them)")
            });
        let port = super::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{}", missing_tool("chromedriver", "chromium-driver", &e)));
        let http = super::app::http_client();
        let base = format!("http://127.0.0.1:{port}");
        eventually(
            format_args!("chromedriver on port {port}"),
            WAIT,
            async || {
                http.get(format!("{base}/status"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--no-first-run", "--disable-extensions", "--lang=en-US"],
            },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON from chromedriver");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start: {created}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            http,
            port,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON from chromedriver");
        answer["value"].clone()
    }

    /// Like `call`, panicking with the driver's message on a WebDriver error.
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let value = self.call(method, path, body).await;
        if let Some(error) = value.get("error") {
            panic!("WebDriver {path}: {error}: {}", value["message"]);
        }
        value
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The page's URL path and query, without the origin.
    pub async fn path(&self) -> String {
        let url = self.url().await;
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        after_scheme
            .find('/')
            .map_or("/".to_string(), |i| after_scheme[i..].to_string())
    }

    pub async fn title(&self) -> String {
        self.command(reqwest::Method::GET, "/title", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Elements matching a CSS selector now (no waiting).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().unwrap().to_string()))
            .collect()
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        match within(WAIT, async || self.find_all(css).await.into_iter().next()).await {
            Ok(e) => e,
            Err(_) => panic!(
                "no element `{css}` on {} after {WAIT:?}:\n{}",
                self.url().await,
                self.text("body").await
            ),
        }
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        match self.find_all(css).await.into_iter().next() {
            Some(e) => self.text_of(&e).await,
            None => String::new(),
        }
    }

    pub async fn text_of(&self, e: &Element) -> String {
        self.command(
            reqwest::Method::GET,
            &format!("/element/{}/text", e.0),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub async fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        self.command(
            reqwest::Method::GET,
            &format!("/element/{}/attribute/{name}", e.0),
            None,
        )
        .await
        .as_str()
        .map(str::to_string)
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.click_on(&e).await;
    }

    pub async fn click_on(&self, e: &Element) {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await;
    }

    /// Clears a field and types `text` into it, key by key.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            Some(json!({})),
        )
        .await;
        self.type_into(&e, text).await;
    }

    pub async fn type_into(&self, e: &Element, text: &str) {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The text of an open alert, confirm or prompt dialog, if one is open.
    pub async fn dialog(&self) -> Option<String> {
        let value = self.call(reqwest::Method::GET, "/alert/text", None).await;
        if value.get("error").is_some() {
            None
        } else {
            Some(value.as_str().unwrap_or_default().to_string())
        }
    }

    pub async fn accept_dialog(&self) {
        self.command(reqwest::Method::POST, "/alert/accept", Some(json!({})))
            .await;
    }

    /// Waits until the page's path (with query) satisfies `wanted`; returns it.
    pub async fn wait_for_path(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        eventually(format_args!("the page at {what}"), WAIT, async || {
            let path = self.path().await;
            if wanted(&path) { Ok(path) } else { Err(path) }
        })
        .await
    }

    /// Waits until `script` (a function body) returns `true` in the page.
    pub async fn wait_until(&self, what: &str, script: &str) {
        eventually(what, WAIT, async || {
            self.execute(script, json!([])).await == Value::Bool(true)
        })
        .await;
    }

    /// Waits until the text of `css` satisfies `wanted`; returns it.
    pub async fn wait_for_text(&self, css: &str, wanted: impl Fn(&str) -> bool) -> String {
        eventually(format_args!("the text of `{css}`"), WAIT, async || {
            // While the page is being replaced (a form was just posted), the element found can
            // go stale before its text is read: that is "not yet", not a failure.
            let text = match self.find_all(css).await.into_iter().next() {
                Some(e) => {
                    let value = self
                        .call(
                            reqwest::Method::GET,
                            &format!("/element/{}/text", e.0),
                            None,
                        )
                        .await;
                    value.as_str().map(str::to_string).unwrap_or_default()
                }
                None => String::new(),
            };
            if wanted(&text) {
                Ok(text)
            } else {
                Err(format!("{text:?}"))
            }
        })
        .await
    }

    /// The whole page at `width` CSS pixels, as `<name>-<width>.png` in `screenshot_dir()`:
    /// the viewport is emulated at that width (as a phone's would be) and as tall as the
    /// page, through Chromium's DevTools commands.
    pub async fn screenshot(&self, name: &str, width: u32) -> PathBuf {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let height = metrics["cssContentSize"]["height"]
            .as_f64()
            .unwrap_or(900.0)
            .clamp(600.0, 8000.0)
            .ceil();
        // The viewport as tall as the page, so frames below the fold are painted too.
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let shot = self
            .cdp("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("base64 PNG"))
            .expect("valid base64");
        let path = screenshot_dir().join(format!("{name}-{width}.png"));
        std::fs::write(&path, bytes).expect("screenshot written");
        self.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
            .await;
        path
    }

    /// A Chrome DevTools command, through chromedriver.
    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
        .await
    }

    /// Signs in to the console at `base` with `token` from the sign-in page; returns the
    /// path the console went to.
    pub async fn sign_in(&self, base: &str, token: &str) -> String {
        self.goto(&format!("{base}/console/sign-in")).await;
        self.fill("#token", token).await;
        self.click("form[action='/console/sign-in'] button[type=submit]")
            .await;
        self.wait_for_path("a signed-in page", |p| !p.starts_with("/console/sign-in"))
            .await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver close Chromium; a plain blocking request,
        // since drop cannot wait for the async client. chromedriver itself is killed on drop.
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.port
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = std::io::Read::read_to_end(&mut stream, &mut Vec::new());
            }
        }
        let _ = self.driver.start_kill();
    }
}

fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
