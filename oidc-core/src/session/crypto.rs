//! AEAD sealing for cookies: AES-256-GCM with keys derived per purpose from
//! the configured cookie secrets. The first secret seals, every secret opens.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

use crate::config::secret::CookieSecret;
use crate::session::wire::FORMAT_VERSION;

/// The envelope's first byte: the session format version (see `FORMAT_VERSION`).
const VERSION: u8 = FORMAT_VERSION;
const NONCE_LEN: usize = 12;

/// What a key is used for; keys for different purposes never coincide.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose {
    Session,
    Flow,
    /// A refreshed session published in Redis for other replicas.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    RefreshResult,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::Session => b"oidc-authz session cookie v1",
            Purpose::Flow => b"oidc-authz login flow cookie v1",
            Purpose::RefreshResult => b"oidc-authz refresh result v1",
        }
    }
}

/// A sealed value could not be opened: wrong key, tampered, truncated or
/// moved to another cookie name. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "cookie could not be decrypted (tampered, truncated, renamed or sealed with an unknown secret)"
)]
pub struct OpenError;

/// Seals and opens cookie values.
#[derive(Clone)]
pub(crate) struct Sealer {
    ciphers: Vec<Aes256Gcm>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.ciphers.len())
            .finish()
    }
}

impl Sealer {
    pub(crate) fn new(secrets: &[CookieSecret], purpose: Purpose) -> Self {
        let ciphers = secrets
            .iter()
            .map(|secret| {
                let hk = Hkdf::<Sha256>::new(Some(b"oidc-authz"), secret.bytes());
                let mut key = [0u8; 32];
                // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
                let _ = hk.expand(purpose.info(), &mut key);
                Aes256Gcm::new(&key.into())
            })
            .collect();
        Self { ciphers }
    }

    /// Seals `plaintext`, binding it to `aad` (the cookie name). Returns
    /// URL-safe base64, which is valid in a cookie value as is.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        blob.push(VERSION);
        blob.extend_from_slice(&nonce);
        // The first cipher always exists: Config refuses an empty secret list.
        let ct = self.ciphers[0]
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        blob.extend_from_slice(&ct);
        URL_SAFE_NO_PAD.encode(blob)
    }

    /// Opens a value sealed by [`Sealer::seal`] under the same `aad`.
    pub(crate) fn open(&self, aad: &[u8], value: &str) -> Result<Vec<u8>, OpenError> {
        let blob = URL_SAFE_NO_PAD.decode(value).map_err(|_| OpenError)?;
        if blob.len() < 1 + NONCE_LEN + 16 || blob[0] != VERSION {
            return Err(OpenError);
        }
        let (nonce, ct) = blob[1..].split_at(NONCE_LEN);
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        let nonce = &Nonce::from(n);
        self.ciphers
            .iter()
            .find_map(|c| c.decrypt(nonce, Payload { msg: ct, aad }).ok())
            .ok_or(OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> CookieSecret {
        CookieSecret::parse(s).unwrap()
    }

    #[test]
    fn round_trip_and_binding() {
        let s = Sealer::new(&[secret("0123456789abcdef")], Purpose::Session);
        let v = s.seal(b"auth", b"hello");
        assert_eq!(s.open(b"auth", &v).unwrap(), b"hello");
        assert_eq!(
            s.open(b"other", &v),
            Err(OpenError),
            "bound to the cookie name"
        );
        let flow = Sealer::new(&[secret("0123456789abcdef")], Purpose::Flow);
        assert_eq!(
            flow.open(b"auth", &v),
            Err(OpenError),
            "bound to the purpose"
        );
    }

    #[test]
    fn tampering_fails() {
        let s = Sealer::new(&[secret("0123456789abcdef")], Purpose::Session);
        let v = s.seal(b"auth", b"hello world");
        let mut bytes = v.into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(s.open(b"auth", &tampered), Err(OpenError));
        assert_eq!(s.open(b"auth", ""), Err(OpenError));
        assert_eq!(s.open(b"auth", "!!!"), Err(OpenError));
    }

    #[test]
    fn rotation_first_seals_all_open() {
        let old = Sealer::new(&[secret("oldoldoldoldoldo")], Purpose::Session);
        let v = old.seal(b"auth", b"x");
        let rotated = Sealer::new(
            &[secret("newnewnewnewnewn"), secret("oldoldoldoldoldo")],
            Purpose::Session,
        );
        assert_eq!(rotated.open(b"auth", &v).unwrap(), b"x");
        let fresh = rotated.seal(b"auth", b"y");
        assert!(
            old.open(b"auth", &fresh).is_err(),
            "new values use the first secret"
        );
    }
}
