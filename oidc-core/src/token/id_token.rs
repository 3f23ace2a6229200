//! ID-token validation (OpenID Connect Core §3.1.3.7): signature with an
//! allow-listed asymmetric algorithm, iss, aud, azp, exp, iat, nonce, at_hash.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use crate::config::builder::Config;
use crate::provider::discovered::Provider;
use crate::token::algorithms::{ALLOWED_ALGORITHMS, allowed_algorithm};
use crate::token::error::TokenError;

/// What the ID token must match besides the provider's keys.
pub(crate) struct Expected<'a> {
    pub(crate) nonce: Option<&'a str>,
    pub(crate) access_token: Option<&'a str>,
    pub(crate) now: u64,
}

/// Checks the alg in the header without trusting anything else in it.
fn header_alg(token: &str) -> Result<(Algorithm, Option<String>), TokenError> {
    // Parse the header by hand first so that `none` and unknown algorithms
    // get a precise error instead of a generic parse failure.
    let header_b64 = token.split('.').next().ok_or(TokenError::Malformed(None))?;
    let raw = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed(None))?;
    let header: Map<String, Value> =
        serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed(None))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed(None))?;
    let parsed = allowed_algorithm(alg)
        .map(|i| ALLOWED_ALGORITHMS[i])
        .ok_or_else(|| TokenError::Algorithm(alg.chars().take(16).collect()))?;
    let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    Ok((parsed, kid))
}

/// Verifies a JWS signed by the provider (allow-listed algorithm, a key from
/// its JWKS, refetched once on an unknown `kid`: see [`JwksCache::decode`])
/// and the standard claims that `validation` asks for (its algorithm list is
/// replaced by the token's allow-listed algorithm). Returns the algorithm and
/// the claims.
///
/// [`JwksCache::decode`]: crate::provider::jwks::JwksCache::decode
pub(crate) async fn decode_verified(
    token: &str,
    provider: &Provider,
    mut validation: Validation,
) -> Result<(Algorithm, Map<String, Value>), TokenError> {
    if token.split('.').count() != 3 {
        return Err(TokenError::Malformed(None));
    }
    let (alg, kid) = header_alg(token)?;
    validation.algorithms = vec![alg];
    let claims = provider
        .jwks
        .decode(&provider.http, token, kid.as_deref(), &validation)
        .await?;
    Ok((alg, claims))
}

/// Validates `token` and returns its claims.
pub(crate) async fn validate(
    token: &str,
    provider: &Provider,
    config: &Config,
    expected: Expected<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[provider.endpoints().issuer.as_str()]);
    validation.set_audience(&[config.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = config.leeway.as_secs();
    validation.validate_nbf = true;
    let (alg, claims) = decode_verified(token, provider, validation).await?;

    check_azp(&claims, &config.client_id)?;
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or(TokenError::Claim("iat is missing"))?;
    if iat > expected.now + config.leeway.as_secs() {
        return Err(TokenError::Claim("iat is in the future"));
    }
    if claims
        .get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(TokenError::Claim("sub is missing"));
    }
    if let Some(want) = expected.nonce {
        let got = claims
            .get("nonce")
            .and_then(Value::as_str)
            .ok_or(TokenError::Claim("nonce is missing"))?;
        if !bool::from(got.as_bytes().ct_eq(want.as_bytes())) {
            return Err(TokenError::Claim("nonce does not match the login"));
        }
    }
    if let (Some(at_hash), Some(access_token)) = (claims.get("at_hash"), expected.access_token) {
        let at_hash = at_hash
            .as_str()
            .ok_or(TokenError::Claim("at_hash is not a string"))?;
        if at_hash != token_hash(alg, access_token) {
            return Err(TokenError::Claim("at_hash does not match the access token"));
        }
    }
    Ok(claims)
}

/// `azp` must name us when present, and must be present with several audiences.
fn check_azp(claims: &Map<String, Value>, client_id: &str) -> Result<(), TokenError> {
    let several_audiences = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<HashSet<_>>()
                .len()
                > 1
        });
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(TokenError::Claim("azp names another client")),
        None if several_audiences => Err(TokenError::Claim(
            "azp is missing although aud has several entries",
        )),
        None => Ok(()),
    }
}

/// `at_hash`/`c_hash`: the left half of the token's hash with the JWS alg's hash function.
pub(crate) fn token_hash(alg: Algorithm, token: &str) -> String {
    let digest: Vec<u8> = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => Sha384::digest(token).to_vec(),
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => Sha512::digest(token).to_vec(),
        _ => Sha256::digest(token).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::algorithms::algorithm_name;
    use serde_json::json;

    #[test]
    fn refuses_none_and_hmac_by_name() {
        let h = |alg: &str| URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        for alg in ["none", "HS256", "HS512", "RS1"] {
            let token = format!("{}.e30.", h(alg));
            assert!(
                matches!(header_alg(&token), Err(TokenError::Algorithm(a)) if a == alg),
                "{alg}"
            );
        }
        for (i, &alg) in ALLOWED_ALGORITHMS.iter().enumerate() {
            assert_eq!(allowed_algorithm(&format!("{alg:?}")), Some(i));
            let token = format!("{}.e30.sig", h(algorithm_name(alg)));
            assert!(matches!(header_alg(&token), Ok((a, None)) if a == alg));
        }
        assert!(matches!(
            header_alg("garbage"),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn azp_rules() {
        let c = |v: Value| v.as_object().unwrap().clone();
        assert!(check_azp(&c(json!({"aud": "app"})), "app").is_ok());
        assert!(check_azp(&c(json!({"aud": ["app", "other"], "azp": "app"})), "app").is_ok());
        assert!(check_azp(&c(json!({"aud": ["app", "other"]})), "app").is_err());
        assert!(check_azp(&c(json!({"aud": "app", "azp": "other"})), "app").is_err());
    }

    #[test]
    fn at_hash_matches_the_spec_example() {
        // OpenID Connect Core, Appendix A.3 example values.
        assert_eq!(
            token_hash(
                Algorithm::RS256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
