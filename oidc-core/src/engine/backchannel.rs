//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the provider POSTs a signed
//! `logout_token`; every session of its `sid` (or `sub`) ends, in every replica when Redis is
//! configured. A *check* of that path (no body) is never an allow.

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde_json::Value;

use crate::clock::unix_now;
use crate::decision::{Decision, Deny, DenyReason};
use crate::engine::state::State;
use crate::error::chain::chain;
use crate::http::pages;
use crate::token::logout::{self, LogoutError, MAX_AGE};

fn response(status: StatusCode, body: &str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body.to_owned()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

impl State {
    /// Handles a back-channel logout request body
    /// (`application/x-www-form-urlencoded` with `logout_token`): 200 when the
    /// sessions are revoked, 400 with `invalid_request` when the token is
    /// refused, 503 when it cannot be processed now (the provider retries).
    pub(crate) async fn backchannel_logout(&self, form_body: &[u8]) -> Response<Bytes> {
        match self.logout_from_token(form_body).await {
            Ok(n) => {
                tracing::info!(
                    sessions_in_redis = n,
                    "back-channel logout: sessions revoked"
                );
                response(StatusCode::OK, "{}")
            }
            Err(LogoutError::Unavailable) => response(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error":"temporarily_unavailable"}"#,
            ),
            Err(e) => {
                tracing::warn!(error = %chain(&e), "back-channel logout refused");
                let body = serde_json::json!({"error": "invalid_request", "error_description": e.to_string()});
                response(StatusCode::BAD_REQUEST, &body.to_string())
            }
        }
    }

    /// The answer to an ext_authz *check* of `<prefix>/backchannel-logout`: never an allow.
    /// A `POST` here is the provider's logout sent through the check, which carries no body:
    /// the gateway lacks the route that takes this exact path to the adapter's HTTP port
    /// without ext_authz. Logged as a warning naming that route (the logout is lost) and
    /// answered 502; any other method gets 405.
    pub(crate) fn backchannel_logout_check(&self, parts: &Parts) -> Decision {
        let (status, code, message) = if parts.method == Method::POST {
            tracing::warn!(
                path = self.routes.backchannel.as_str(),
                "a back-channel logout reached the adapter as an ext_authz check, without its \
                 body: the logout is lost. Route POST to this exact path to the adapter's HTTP \
                 port without ext_authz (`ext-authz-adapter istio` renders the VirtualService \
                 route and the AuthorizationPolicy that does it; the Helm chart too)"
            );
            (
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the gateway sent this logout through ext_authz, which drops its body; route it to the adapter without ext_authz",
            )
        } else {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "POST a logout_token (OpenID Connect Back-Channel Logout)",
            )
        };
        Decision::Deny(Box::new(Deny {
            reason: DenyReason::Endpoint,
            response: pages::json_error(status, code, message),
        }))
    }

    pub(crate) async fn logout_from_token(&self, form_body: &[u8]) -> Result<usize, LogoutError> {
        let token = url::form_urlencoded::parse(form_body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .ok_or(LogoutError::Missing)?;
        let provider = self.provider.get().ok_or(LogoutError::Unavailable)?;
        let now = unix_now();
        let claims = logout::validate(&token, provider, &self.config, now).await?;
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or(LogoutError::Claim("jti is missing"))?;
        let store = &self.store;
        match store.first_jti(jti, MAX_AGE * 2, now).await {
            Ok(true) => {}
            Ok(false) => return Err(LogoutError::Replayed),
            Err(_) => return Err(LogoutError::Unavailable),
        }
        let sid = claims.get("sid").and_then(Value::as_str);
        let sub = claims.get("sub").and_then(Value::as_str);
        store
            .revoke(sid, sub, now)
            .await
            .map_err(|_| LogoutError::Unavailable)
    }
}
