//! Request extractors whose rejections speak the API's problem format.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, rejection::BytesRejection},
    http::{StatusCode, header},
};
use serde::de::DeserializeOwned;

use super::error::{FieldError, ServiceError};

/// JSON body: malformed JSON is a 400, a well-formed body of the wrong shape a 422 naming the field.
pub struct AppJson<T>(pub T);

/// The raw bytes of a JSON body (content type and size checked), for handlers that also
/// need the exact bytes, like idempotent sends.
pub struct RawJson(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_json_content_type(req.headers())?;
        Bytes::from_request(req, state)
            .await
            .map(RawJson)
            .map_err(body_error)
    }
}

/// `Content-Type: application/json` (or any `+json`), else a 415.
pub(crate) fn check_json_content_type(headers: &axum::http::HeaderMap) -> Result<(), ServiceError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
        .unwrap_or(false);
    if is_json {
        Ok(())
    } else {
        Err(ServiceError::UnsupportedMediaType(
            "expected a JSON body with Content-Type: application/json".into(),
        ))
    }
}

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawJson(bytes) = RawJson::from_request(req, state).await?;
        parse_json_object(&bytes).map(AppJson)
    }
}

/// A body that could not be read: too large (413) or cut short (400).
pub(crate) fn body_error(rejection: BytesRejection) -> ServiceError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ServiceError::PayloadTooLarge("the request body exceeds the configured limit".into())
    } else {
        ServiceError::MalformedJson(format!("could not read the request body: {rejection}"))
    }
}

/// Query parameters whose rejection is a problem+json 422 like any other bad input. NUL is
/// refused in every parameter, as in JSON bodies: no filter needs it and Postgres text cannot
/// hold it.
pub struct AppQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for AppQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) = url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(ServiceError::validation(
                name.replace('\0', "\\0"),
                "must not contain NUL characters",
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| AppQuery(q.0))
            .map_err(|e| ServiceError::validation("query", e.body_text()))
    }
}

/// Like [`parse_json`], for bodies that must be a JSON object: serde would also fill a
/// struct from an array of its fields' values, which no client means.
pub fn parse_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServiceError> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && !value.is_object()
    {
        return Err(ServiceError::validation("body", "must be a JSON object"));
    }
    parse_json(bytes)
}

/// Parses in two steps so syntax errors and shape errors get their own status and message.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServiceError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ServiceError::MalformedJson(format!("malformed JSON: {e}")))?;
    // Postgres text cannot hold NUL, and no header or body needs it: refuse it up front.
    if let Some(path) = find_nul(&value, String::new()) {
        let field = if path.is_empty() {
            "body".to_string()
        } else {
            path
        };
        return Err(ServiceError::validation(
            field,
            "must not contain NUL characters",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ServiceError::Validation(vec![FieldError::new(field, err.inner().to_string())])
    })
}

/// The JSON path of the first string or key containing NUL.
fn find_nul(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_nul(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                find_nul(v, here)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        subject: String,
        tags: Option<Vec<String>>,
    }

    #[test]
    fn names_the_field_with_the_wrong_type() {
        let err = parse_json::<Body>(br#"{"subject":"x","tags":[1]}"#).unwrap_err();
        match err {
            ServiceError::Validation(errors) => assert_eq!(errors[0].field, "tags[0]"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn nul_is_refused_by_path() {
        match parse_json::<Body>(br#"{"subject":"a\u0000b"}"#) {
            Err(ServiceError::Validation(errors)) => assert_eq!(errors[0].field, "subject"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_object_body_is_not_filled_from_an_array() {
        match parse_json_object::<Body>(br#"["x", null]"#) {
            Err(ServiceError::Validation(errors)) => assert_eq!(errors[0].field, "body"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse_json_object::<Body>(br#"{"subject":"x"}"#).is_ok());
    }

    #[test]
    fn malformed_json_is_not_a_validation_error() {
        assert!(matches!(
            parse_json::<Body>(b"{\"subject\":"),
            Err(ServiceError::MalformedJson(_))
        ));
    }
}
