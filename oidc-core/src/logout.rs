//! OpenID Connect Back-Channel Logout 1.0: the provider POSTs a signed
//! `logout_token`; every session of that `sid` (or `sub`) ends, in every
//! replica when Redis is configured.

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::decision::{Decision, Deny, DenyReason};
use crate::engine::Engine;
use crate::error::{TokenError, chain};
use crate::id_token::decode_verified;

/// The event a logout token must carry.
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Logout tokens older than this are refused (and their `jti` kept this long).
const MAX_AGE: Duration = Duration::from_secs(600);

/// Why a logout token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutError {
    /// The request has no `logout_token` form field.
    #[error("the request has no logout_token")]
    Missing,
    /// The signature, issuer or audience is wrong, or the token is malformed.
    #[error("logout token refused")]
    Token(#[source] TokenError),
    /// A claim the specification requires is missing or wrong.
    #[error("logout token refused: {0}")]
    Claim(&'static str),
    /// The token was used before.
    #[error("logout token replayed (jti seen before)")]
    Replayed,
    /// The provider is not discovered yet, or the session store is down.
    #[error("cannot process logouts right now")]
    Unavailable,
}

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

impl Engine {
    /// Handles a back-channel logout request body
    /// (`application/x-www-form-urlencoded` with `logout_token`): 200 when the
    /// sessions are revoked, 400 with `invalid_request` when the token is
    /// refused, 503 when it cannot be processed now (the provider retries).
    pub async fn backchannel_logout(&self, form_body: &[u8]) -> Response<Bytes> {
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
                path = self.backchannel_logout_path(),
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
            response: crate::pages::json_error(status, code, message),
        }))
    }

    async fn logout_from_token(&self, form_body: &[u8]) -> Result<usize, LogoutError> {
        let token = url::form_urlencoded::parse(form_body)
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .ok_or(LogoutError::Missing)?;
        let provider = self.provider().ok_or(LogoutError::Unavailable)?;
        let config = self.config();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[provider.endpoints().issuer.as_str()]);
        validation.set_audience(&[config.client_id.as_str()]);
        validation.set_required_spec_claims(&["iss", "aud", "iat"]);
        // `exp` is optional in logout tokens; checked below when present.
        validation.validate_exp = false;
        validation.leeway = config.leeway.as_secs();
        let (_, claims) = decode_verified(&token, provider, validation)
            .await
            .map_err(|e| match e {
                TokenError::Jwks(_) => LogoutError::Unavailable,
                e => LogoutError::Token(e),
            })?;
        let now = crate::engine::unix_now();
        check_claims(&claims, now, config.leeway.as_secs())?;
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or(LogoutError::Claim("jti is missing"))?;
        let store = self.store();
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

/// The claim rules of Back-Channel Logout 1.0 §2.6 that a JWT library does not check.
fn check_claims(claims: &Map<String, Value>, now: u64, leeway: u64) -> Result<(), LogoutError> {
    let events = claims
        .get("events")
        .and_then(Value::as_object)
        .ok_or(LogoutError::Claim("events is missing"))?;
    if !events.get(EVENT).is_some_and(Value::is_object) {
        return Err(LogoutError::Claim(
            "events lacks the back-channel logout event",
        ));
    }
    if claims.contains_key("nonce") {
        return Err(LogoutError::Claim(
            "a logout token must not contain a nonce",
        ));
    }
    let has = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    if !has("sid") && !has("sub") {
        return Err(LogoutError::Claim("neither sid nor sub is present"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or(LogoutError::Claim("iat is missing"))?;
    if iat > now + leeway {
        return Err(LogoutError::Claim("iat is in the future"));
    }
    if now > iat + MAX_AGE.as_secs() + leeway {
        return Err(LogoutError::Claim("the token is too old"));
    }
    if let Some(exp) = claims.get("exp") {
        let exp = exp
            .as_u64()
            .ok_or(LogoutError::Claim("exp is not a number"))?;
        if now > exp + leeway {
            return Err(LogoutError::Claim("the token has expired"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn spec_rules() {
        let good = json!({"iat": 1000, "jti": "j", "sid": "s", "events": {EVENT: {}}});
        assert!(check_claims(&claims(good.clone()), 1000, 30).is_ok());
        let mut v = good.clone();
        v["nonce"] = json!("n");
        assert!(
            check_claims(&claims(v), 1000, 30).is_err(),
            "nonce forbidden"
        );
        let mut v = good.clone();
        v["events"] = json!({"other": {}});
        assert!(check_claims(&claims(v), 1000, 30).is_err(), "wrong event");
        let v = json!({"iat": 1000, "jti": "j", "events": {EVENT: {}}});
        assert!(
            check_claims(&claims(v), 1000, 30).is_err(),
            "sid or sub needed"
        );
        assert!(
            check_claims(&claims(good.clone()), 5000, 30).is_err(),
            "too old"
        );
        assert!(
            check_claims(&claims(good), 900, 30).is_err(),
            "from the future"
        );
    }
}
