//! The provider's tokens as newtypes whose `Debug` never shows the token.
//!
//! Each serialises as the plain string (`#[serde(transparent)]`), so a session cookie or a
//! token response reads and writes exactly as with a `String`. None has `Display`: the token
//! itself is reached only through [`IdToken::expose`] (and the like), where it is needed (an
//! upstream header, a refresh, a logout hint).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines one token newtype.
macro_rules! token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a token.
            #[must_use]
            pub fn new(token: impl Into<String>) -> Self {
                Self(token.into())
            }

            /// The token itself, for where it must go (a header, a token request). Never
            /// log it.
            #[must_use]
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(token: String) -> Self {
                Self(token)
            }
        }

        impl From<&str> for $name {
            fn from(token: &str) -> Self {
                Self(token.to_owned())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

token!(
    /// An ID token (a JWT the provider signed), as kept for `id_token_hint` at logout and
    /// the upstream `Authorization` header.
    IdToken
);
token!(
    /// An OAuth 2.0 access token, as the provider issued it (often a JWT, maybe opaque).
    AccessToken
);
token!(
    /// An OAuth 2.0 refresh token.
    RefreshToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_serde_is_the_string() {
        let t = IdToken::new("eyJ.secret.sig");
        assert_eq!(format!("{t:?}"), "IdToken(<redacted>)");
        assert_eq!(
            format!("{:?}", Some(RefreshToken::new("rt-secret"))),
            "Some(RefreshToken(<redacted>))"
        );
        assert_eq!(t.expose(), "eyJ.secret.sig");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"eyJ.secret.sig\"");
        let back: AccessToken = serde_json::from_str("\"at\"").unwrap();
        assert_eq!(back, AccessToken::from("at".to_owned()));
    }
}
