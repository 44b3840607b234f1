//! What a send asks to be tracked.

use serde::Deserialize;

/// Opens and clicks to track for one send; an absent field takes the project's default.
/// Nothing is tracked unless the server has `tracking.base_url`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// Add a 1×1 pixel to the HTML part; its loading is `email.opened`.
    #[serde(default)]
    pub opens: Option<bool>,
    /// Route the HTML part's http(s) links through mailgate; each click is `email.clicked`.
    #[serde(default)]
    pub clicks: Option<bool>,
}

impl Track {
    /// This send's choice over the project's defaults.
    pub fn or(self, defaults: (bool, bool)) -> (bool, bool) {
        (
            self.opens.unwrap_or(defaults.0),
            self.clicks.unwrap_or(defaults.1),
        )
    }

    /// `X-Mailgate-Track: opens, clicks` (or `none`) on SMTP submissions. Unknown words are
    /// refused, so a typo never silently turns tracking off.
    pub fn parse_header(value: &str) -> Result<Self, String> {
        let mut track = Track {
            opens: Some(false),
            clicks: Some(false),
        };
        for word in value
            .split([',', ' '])
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            match word.to_ascii_lowercase().as_str() {
                "opens" => track.opens = Some(true),
                "clicks" => track.clicks = Some(true),
                "none" => {}
                other => {
                    return Err(format!(
                        "X-Mailgate-Track: `{other}` is not `opens`, `clicks` or `none`"
                    ));
                }
            }
        }
        Ok(track)
    }
}
