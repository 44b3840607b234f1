//! The `RateLimit-*` response headers (IETF draft) of a rate-limit decision: written by the
//! gate on every authenticated answer, by a batch for its own charge, and on a 429.

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue},
    response::{IntoResponseParts, ResponseParts},
};

use crate::ratelimit::Decision;

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

pub fn write_headers(d: &Decision, headers: &mut HeaderMap) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(d.reset_secs()));
    // Digits, `;`, `,`, `=` and letters only: always a valid header value.
    if let Ok(policy) = HeaderValue::from_str(&d.params.policy()) {
        headers.insert(RATELIMIT_POLICY, policy);
    }
}

/// A handler's own charge (a batch's messages) as headers of its response.
impl IntoResponseParts for Decision {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        write_headers(&self, res.headers_mut());
        Ok(res)
    }
}
