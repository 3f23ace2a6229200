//! The signature algorithms accepted for every token the engine checks (ID, access and
//! logout tokens). Never `none`, never HMAC.

use jsonwebtoken::Algorithm;

/// Signature algorithms accepted for ID tokens. Never `none`, never HMAC:
/// a provider's public key must not double as a shared secret.
pub const ALLOWED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The position in [`ALLOWED_ALGORITHMS`] of the algorithm a JWS header
/// names (`alg`), or `None` when it is not allowed (`none`, HMAC, unknown).
pub(crate) fn allowed_algorithm(name: &str) -> Option<usize> {
    ALLOWED_ALGORITHMS
        .iter()
        .position(|&a| algorithm_name(a) == name)
}

/// An algorithm's name as a JWS header spells it.
pub(crate) fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
    }
}
