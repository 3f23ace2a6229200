//! axum extractors (cargo feature `axum`).

use std::convert::Infallible;
use std::fmt;

use axum::body::Body;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::IntoResponse;
use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};

use crate::identity::{AccessToken, Identity};
use crate::service::missing_identity;

/// Rejection of the [`Identity`] and [`AccessToken`] extractors: the answer
/// the [`OidcLayer`](crate::OidcLayer) in front gives when nobody is signed
/// in (a login redirect for navigations, `401` for API calls, or the reason a
/// bearer token was refused). `500` when no `OidcLayer` is in front.
pub struct IdentityRejection {
    response: Response<Bytes>,
}

impl IdentityRejection {
    /// The status of the answer.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }
}

impl fmt::Debug for IdentityRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityRejection")
            .field("status", &self.response.status())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for IdentityRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no signed-in user ({})", self.response.status())
    }
}

impl std::error::Error for IdentityRejection {}

impl IntoResponse for IdentityRejection {
    fn into_response(self) -> axum::response::Response {
        self.response.map(Body::from)
    }
}

/// The signed-in user; rejects with [`IdentityRejection`] when there is none,
/// so a handler on a public route can still require one.
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = IdentityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(identity.clone());
        }
        Err(IdentityRejection {
            response: missing_identity(parts).await,
        })
    }
}

/// `Option<Identity>`: the signed-in user, if any. Never rejects.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

/// The signed-in user's access token; rejects like [`Identity`] when nobody
/// is signed in (or the session kept no access token).
impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = IdentityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(token) = parts.extensions.get::<AccessToken>() {
            return Ok(token.clone());
        }
        if parts.extensions.get::<Identity>().is_some() {
            // Signed in, but the provider issued no access token.
            return Err(IdentityRejection {
                response: oidc_core::token::bearer::missing_token_response(),
            });
        }
        Err(IdentityRejection {
            response: missing_identity(parts).await,
        })
    }
}

/// `Option<AccessToken>`: the access token, if any. Never rejects.
impl<S: Send + Sync> OptionalFromRequestParts<S> for AccessToken {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AccessToken>().cloned())
    }
}
