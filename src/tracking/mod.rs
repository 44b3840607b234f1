//! Opens and clicks of tracked mail (opt-in per project and per send, with
//! `tracking.base_url` set).
//!
//! At accept, once per message, the HTML part gets a 1×1 pixel and its http(s) links are
//! pointed at `<base_url>/t/c/<token>` (`html`; for SMTP submissions, inside the MIME: `mime`).
//! Tokens are signed (`tokens`): the click endpoint redirects only to a URL that was in that
//! message, and a bad token is a 404. The text part is never touched.
//!
//! One copy of the MIME goes to every recipient of a message, so an open or click names its
//! recipient only when the message had one.
//!
//! The same base URL carries one-click unsubscribe links (RFC 8058, `/u/<token>`): a send
//! with `unsubscribe` gets `List-Unsubscribe` and `List-Unsubscribe-Post` headers whose token
//! names its one recipient ([`Tracker::unsubscribe_headers`]).

pub mod html;
pub mod mime;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{domain::Track, store::projects::ProjectCache, tokens::TokenKey};

/// `url` without its query string and fragment, as recorded with `tracking.record_query`
/// off: magic links and password reset tokens live there.
pub fn without_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.into()
        }
        // Links are signed as written; one the URL parser refuses is cut by hand.
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

pub struct Tracker {
    base: String,
    key: TokenKey,
    pool: PgPool,
    projects: ProjectCache,
}

impl Tracker {
    /// `base` is `tracking.base_url` without its trailing slash.
    pub fn new(base: &str, key: TokenKey, pool: PgPool, projects: ProjectCache) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            key,
            pool,
            projects,
        }
    }

    /// (opens, clicks) for a send of `project` that asked for `track`.
    pub async fn choice(&self, project: Uuid, track: Track) -> sqlx::Result<(bool, bool)> {
        if let (Some(opens), Some(clicks)) = (track.opens, track.clicks) {
            return Ok((opens, clicks));
        }
        let defaults = self
            .projects
            .get(&self.pool, project)
            .await?
            .map_or((false, false), |p| (p.track_opens, p.track_clicks));
        Ok(track.or(defaults))
    }

    /// The HTML of message `id`, instrumented as chosen.
    pub fn html(&self, html: &str, id: Uuid, (opens, clicks): (bool, bool)) -> String {
        if !opens && !clicks {
            return html.to_string();
        }
        let click = |url: &str| self.key.click_token(id, url);
        html::instrument(
            html,
            &html::Links {
                base: &self.base,
                click: clicks.then_some(&click as &dyn Fn(&str) -> String),
                open: opens.then(|| self.key.open_token(id)),
            },
        )
    }

    /// The RFC 8058 headers of message `id` of `project`, sent to `email` alone: a signed
    /// `/u/<token>` link, and the POST body that unsubscribes with one click. The token is
    /// base64url, so nothing in these values can end the header early.
    pub fn unsubscribe_headers(
        &self,
        project: Uuid,
        id: Uuid,
        email: &str,
    ) -> Vec<(String, String)> {
        let token = self.key.unsubscribe_token(project, id, email);
        vec![
            (
                "List-Unsubscribe".to_string(),
                format!("<{}/u/{token}>", self.base),
            ),
            (
                "List-Unsubscribe-Post".to_string(),
                "List-Unsubscribe=One-Click".to_string(),
            ),
        ]
    }

    /// Submitted MIME of message `id`, its HTML parts instrumented as chosen.
    pub fn mime(&self, raw: &[u8], id: Uuid, choice: (bool, bool)) -> Vec<u8> {
        if !choice.0 && !choice.1 {
            return raw.to_vec();
        }
        mime::instrument(raw, |html| self.html(html, id, choice))
    }
}

#[cfg(test)]
mod tests {
    use super::without_query;

    #[test]
    fn without_query_keeps_scheme_host_and_path() {
        assert_eq!(
            without_query("https://shop.example/reset?token=s3cret&u=1#frag"),
            "https://shop.example/reset"
        );
        assert_eq!(
            without_query("https://shop.example/a/b"),
            "https://shop.example/a/b"
        );
        assert_eq!(
            without_query("http://[bad/login?code=1"),
            "http://[bad/login"
        );
    }
}
