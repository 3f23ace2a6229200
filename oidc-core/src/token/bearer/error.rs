//! Why a bearer token or a bearer configuration was refused, and the HTTP answer for each.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::http::pages;
use crate::provider::error::ProviderError;

/// Why a bearer token was refused. Each maps to an HTTP answer with
/// [`BearerError::status`] and [`BearerError::response`]; none carries the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// The `Authorization: Bearer` value is empty or not a token, or the token
    /// is not a well-formed JWS (three base64url parts, JSON header and payload).
    #[error("the bearer token is malformed")]
    Malformed,
    /// The token is not a JWT at all (an opaque token): it cannot be checked
    /// locally.
    #[error("the bearer token is opaque, not a JWT; only JWT access tokens are accepted")]
    Opaque,
    /// The token's algorithm is not on the allow-list (never `none`, never HMAC).
    #[error("the bearer token's algorithm {0:?} is not allowed")]
    Algorithm(String),
    /// The token's `iss` is neither the engine's issuer nor a trusted one.
    #[error("the bearer token's issuer {0:?} is not trusted")]
    UntrustedIssuer(String),
    /// No key of the issuer matches the token's `kid` and algorithm, even after
    /// refetching the issuer's JWKS.
    #[error("no signing key of the issuer matches the bearer token (kid {kid:?})")]
    UnknownKey {
        /// The token's `kid`, when it has one.
        kid: Option<String>,
    },
    /// The signature does not verify with the issuer's key.
    #[error("the bearer token's signature is invalid")]
    Signature,
    /// `exp` is past (beyond the leeway).
    #[error("the bearer token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the bearer token is not valid yet (nbf)")]
    NotYetValid,
    /// None of the token's audiences is one this service accepts.
    #[error("the bearer token is meant for another audience")]
    Audience,
    /// A required claim (`exp`, `iss`, `sub`) is missing.
    #[error("the bearer token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// The token is a JWT but not an access token (an ID, refresh or logout
    /// token, going by its `typ`).
    #[error("the bearer token is not an access token (typ {0:?})")]
    NotAccessToken(String),
    /// Any other validation failure reported by `jsonwebtoken`.
    #[error("the bearer token is invalid")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// The token carries an email its issuer says is not verified
    /// (`email_verified: false`), refused as at the login.
    #[error("the bearer token's email is not verified")]
    EmailNotVerified,
    /// A back-channel logout ended the token's provider session (`sid`), or every session
    /// of its user (`sub`) after the token was issued.
    #[error("the bearer token's session was ended by a back-channel logout")]
    Revoked,
    /// The session store (Redis), which holds the other replicas' logouts, cannot be
    /// reached: the token is refused until it can (fail closed).
    #[error("the session store is unavailable; cannot tell whether the bearer token was revoked")]
    StoreUnavailable,
    /// The issuer has not been discovered yet (or its discovery failed a
    /// moment ago): try again shortly.
    #[error("the token's identity provider is not reachable yet")]
    NotReady,
    /// Discovering the issuer or fetching its signing keys failed.
    #[error("could not fetch the token issuer's signing keys")]
    Provider(#[source] ProviderError),
}

impl BearerError {
    /// 503 when the provider could not be asked, 401 otherwise.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotReady | Self::Provider(_) | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// A short description for `error_description`, never echoing the token.
    fn description(&self) -> &'static str {
        match self {
            Self::Malformed => "the access token is malformed",
            Self::Opaque => "the access token is not a JWT",
            Self::Algorithm(_) => "the access token's signature algorithm is not allowed",
            Self::UntrustedIssuer(_) => "the access token's issuer is not trusted",
            Self::UnknownKey { .. } => "the access token is signed by an unknown key",
            Self::Signature => "the access token's signature is invalid",
            Self::Expired => "the access token expired",
            Self::NotYetValid => "the access token is not valid yet",
            Self::Audience => "the access token is meant for another audience",
            Self::MissingClaim(_) => "the access token lacks a required claim",
            Self::NotAccessToken(_) => "the token is not an access token",
            Self::Invalid(_) => "the access token is invalid",
            Self::EmailNotVerified => "the access token's email is not verified",
            Self::Revoked => "the access token's session has ended",
            Self::StoreUnavailable => "the session store cannot be reached right now",
            Self::NotReady | Self::Provider(_) => {
                "the access token's issuer cannot be reached right now"
            }
        }
    }

    /// The answer to send: `401` with `WWW-Authenticate: Bearer
    /// error="invalid_token", error_description="..."` and a JSON body
    /// `{"error":"invalid_token","message":"..."}`, or `503` when the
    /// provider could not be asked.
    #[must_use]
    pub fn response(&self) -> Response<Bytes> {
        let description = self.description();
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            let mut r = pages::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                description,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
        let mut r = pages::json_error(StatusCode::UNAUTHORIZED, "invalid_token", description);
        let challenge =
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }
}

/// A bearer configuration that cannot be used. Raised when building, never per request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BearerConfigError {
    /// A trusted issuer is not an http(s) URL.
    #[error("trusted issuer {0:?} is not an http(s) URL")]
    IssuerUrl(String),
    /// An issuer was given no audience: every token would be refused.
    #[error("issuer {0} has no accepted audience; add one (the default is the client id)")]
    NoAudience(String),
    /// The same issuer was trusted twice (or is the engine's own issuer).
    #[error(
        "issuer {0} is trusted twice (the engine's own issuer is always trusted; set its audiences with .audience())"
    )]
    DuplicateIssuer(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn error_responses() {
        let r = BearerError::Expired.response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"the access token expired\""
        );
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(
            BearerError::NotReady.response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
