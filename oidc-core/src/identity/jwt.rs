//! Reading a JWT's payload without verifying it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// The claims (payload) of a compact JWS `header.payload.signature`, **without verifying
/// anything**: no signature, no issuer, no expiry. Only for tokens the engine already
/// validated or received straight from the token endpoint (a session's ID token, checked at
/// login; an access token from the code exchange). `None` when `token` is not three parts
/// or its payload is not base64url JSON of an object.
#[must_use]
pub fn claims_unverified(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_payload_of_three_parts_only() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","acr":"1"}"#);
        let claims = claims_unverified(&format!("e30.{payload}.sig")).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert!(claims_unverified(&format!("e30.{payload}")).is_none());
        assert!(claims_unverified(&format!("e30.{payload}.sig.x")).is_none());
        assert!(claims_unverified("e30.!!.sig").is_none());
        let array = URL_SAFE_NO_PAD.encode("[1]");
        assert!(claims_unverified(&format!("e30.{array}.sig")).is_none());
    }
}
