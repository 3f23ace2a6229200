//! Logout tokens (OpenID Connect Back-Channel Logout 1.0): the signed token a provider POSTs
//! to end the sessions of a `sid` or `sub`, validated against its keys and the claim rules of
//! the specification.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::config::builder::Config;
use crate::provider::discovered::Provider;
use crate::token::error::TokenError;
use crate::token::id_token::decode_verified;

/// The event a logout token must carry.
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Logout tokens older than this are refused (and their `jti` kept this long).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);

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

/// Validates a logout token of `provider` for `config`'s client at `now`: its signature,
/// issuer, audience and the claim rules of Back-Channel Logout 1.0 (not its `jti`, which the
/// caller checks against the store). Returns its claims.
pub(crate) async fn validate(
    token: &str,
    provider: &Provider,
    config: &Config,
    now: u64,
) -> Result<Map<String, Value>, LogoutError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[provider.endpoints().issuer.as_str()]);
    validation.set_audience(&[config.client_id.as_str()]);
    validation.set_required_spec_claims(&["iss", "aud", "iat"]);
    // `exp` is optional in logout tokens; checked below when present.
    validation.validate_exp = false;
    validation.leeway = config.leeway.as_secs();
    let (_, claims) = decode_verified(token, provider, validation)
        .await
        .map_err(|e| match e {
            TokenError::Jwks(_) => LogoutError::Unavailable,
            e => LogoutError::Token(e),
        })?;
    check_claims(&claims, now, config.leeway.as_secs())?;
    Ok(claims)
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
