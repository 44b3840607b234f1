//! The console over plain HTTP, for what a browser hides: cookies' flags, status codes,
//! headers. `Visitor` keeps cookies like a browser would.

use std::collections::HashMap;

use reqwest::{Response, header};

use crate::support::app::TestApp;

pub struct Visitor<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        mailgate::webhooks::install_tls_provider();
        Self {
            app,
            // Redirects are looked at, not followed.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn keep_cookies(&mut self, response: &Response) {
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, path: &str) -> Response {
        let response = self
            .http
            .get(self.app.url(path))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// Posts a form with extra headers.
    pub async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .http
            .post(self.app.url(path))
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        self.keep_cookies(&response);
        response
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        self.post_with(path, form, &[]).await
    }

    /// The sign-in form's token, from a fresh sign-in page.
    pub async fn sign_in_token(&mut self) -> String {
        let page = self.get("/console/sign-in").await.text().await.unwrap();
        hidden_value(&page, "csrf").expect("the sign-in form carries a token")
    }

    /// Signs in with `token`; returns the answer (a redirect when it worked).
    pub async fn sign_in(&mut self, token: &str) -> Response {
        let csrf = self.sign_in_token().await;
        self.post(
            "/console/sign-in",
            &[
                ("token", token),
                ("csrf", &csrf),
                ("next", "/console/overview"),
            ],
        )
        .await
    }

    /// The session's CSRF token, as the pages carry it.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/console/overview").await.text().await.unwrap();
        hidden_value(&page, "csrf").expect("pages carry the session's token")
    }
}

/// The value of the first hidden input named `name` in `html`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}
