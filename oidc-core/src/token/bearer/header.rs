//! The `Authorization: Bearer` header: reading the token, and the answers for a request
//! without one or whose token lacks what a rule needs (RFC 6750).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::http::pages;
use crate::token::bearer::error::BearerError;

/// The token of an `Authorization: Bearer <token>` header.
///
/// `Ok(None)` when there is no `Authorization` header or it uses another
/// scheme (e.g. `Basic`); [`BearerError::Malformed`] when the scheme is
/// `Bearer` but the value is not an RFC 6750 token.
pub fn token_from_headers(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    const SCHEME: &[u8] = b"bearer";
    if bytes.len() < SCHEME.len() || !bytes[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Ok(None);
    }
    let rest = &bytes[SCHEME.len()..];
    if !rest.is_empty() && rest[0] != b' ' {
        // e.g. "BearerX": another scheme.
        return Ok(None);
    }
    let token = rest.trim_ascii();
    let body_len = token.iter().position(|&b| b == b'=').unwrap_or(token.len());
    let token68 = !token.is_empty()
        && token[..body_len]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        && token[body_len..].iter().all(|&b| b == b'=');
    if !token68 {
        return Err(BearerError::Malformed);
    }
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| BearerError::Malformed)
}

/// `401` with a bare `WWW-Authenticate: Bearer` challenge (RFC 6750 §3.1: no
/// error code when no token was sent) and a JSON body.
#[must_use]
pub fn missing_token_response() -> Response<Bytes> {
    let mut r = pages::json_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "an access token is required (Authorization: Bearer <token>)",
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// `403` for a valid token whose subject a rule refuses:
/// `WWW-Authenticate: Bearer error="insufficient_scope"` and a JSON body.
#[must_use]
pub fn forbidden_response() -> Response<Bytes> {
    let mut r = pages::json_error(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "the access token lacks a required group or role",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks a required group or role\"",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn authorization_header_parsing() {
        assert_eq!(token_from_headers(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            token_from_headers(&headers("Basic dXNlcjpwdw==")).unwrap(),
            None
        );
        assert_eq!(token_from_headers(&headers("Bearerish x")).unwrap(), None);
        assert_eq!(
            token_from_headers(&headers("Bearer a.b.c")).unwrap(),
            Some("a.b.c")
        );
        assert_eq!(
            token_from_headers(&headers("bearer  a.b-_c ")).unwrap(),
            Some("a.b-_c")
        );
        assert_eq!(
            token_from_headers(&headers("BEARER abc==")).unwrap(),
            Some("abc==")
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer a=b",
            "Bearer \"x\"",
        ] {
            assert!(
                matches!(
                    token_from_headers(&headers(bad)),
                    Err(BearerError::Malformed)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn answers_without_a_token_or_without_a_role() {
        assert_eq!(
            missing_token_response().headers()[header::WWW_AUTHENTICATE],
            "Bearer"
        );
        assert_eq!(forbidden_response().status(), StatusCode::FORBIDDEN);
    }
}
