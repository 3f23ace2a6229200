//! Secret values as newtypes whose `Debug` never shows the secret.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::config::error::ConfigError;
use crate::config::setting::Setting;

/// The OAuth 2.0 client secret shared with the identity provider.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a client secret.
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the token request. Never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// A cookie secret (`ConfigBuilder::cookie_secret`): 16, 24 or 32 bytes, given raw or base64-encoded
/// (standard or URL-safe alphabet), exactly as oauth2-proxy accepts it.
///
/// The bytes are never used directly as a key: per-purpose AES-256 keys are
/// derived from them with HKDF-SHA256.
#[derive(Clone)]
pub struct CookieSecret(Vec<u8>);

impl CookieSecret {
    /// Parses a cookie secret.
    ///
    /// # Errors
    ///
    /// [`ConfigError::SecretLength`] (naming [`Setting::CookieSecret`]) when the decoded
    /// secret is not 16, 24 or 32 bytes; its message says how to generate one.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let bytes = decode_secret(value);
        match bytes.len() {
            16 | 24 | 32 => Ok(Self(bytes)),
            len => Err(ConfigError::SecretLength {
                setting: Setting::CookieSecret,
                len,
            }),
        }
    }

    /// Key material derived elsewhere (never user input).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// oauth2-proxy's rule: if the value is valid base64 of a usable length, use
/// the decoded bytes; otherwise use the string's bytes as they are.
fn decode_secret(value: &str) -> Vec<u8> {
    for engine in [&URL_SAFE, &STANDARD, &URL_SAFE_NO_PAD] {
        if let Ok(decoded) = engine.decode(value)
            && matches!(decoded.len(), 16 | 24 | 32)
        {
            return decoded;
        }
    }
    value.as_bytes().to_vec()
}

impl fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_raw_and_base64_of_the_right_lengths() {
        assert_eq!(
            CookieSecret::parse("0123456789abcdef")
                .unwrap()
                .bytes()
                .len(),
            16
        );
        let b64 = STANDARD.encode([7u8; 32]);
        assert_eq!(CookieSecret::parse(&b64).unwrap().bytes(), &[7u8; 32]);
        let b64url = URL_SAFE_NO_PAD.encode([0xfbu8; 24]);
        assert_eq!(CookieSecret::parse(&b64url).unwrap().bytes(), &[0xfbu8; 24]);
    }

    #[test]
    fn refuses_other_lengths_and_names_the_length() {
        let err = CookieSecret::parse("too-short").unwrap_err();
        assert!(err.to_string().contains("9 bytes"), "{err}");
        assert!(err.to_string().starts_with("cookie_secret: "), "{err}");
        assert!(err.to_string().contains("openssl rand"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = CookieSecret::parse("0123456789abcdef").unwrap();
        assert!(!format!("{s:?}").contains("0123"));
        let c = ClientSecret::new("hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
