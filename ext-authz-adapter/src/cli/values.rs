//! The values of the enum-like flags, with the library's type each one maps to.

use clap::ValueEnum;
use oidc_core::{ClientAuthMethod, SameSite, SessionStoreKind};

/// `--provider`: only OpenID Connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// OpenID Connect, endpoints from discovery.
    Oidc,
    /// oauth2-proxy's Keycloak OIDC provider: the same here (roles come from the access token).
    KeycloakOidc,
}

/// `--token-endpoint-auth-method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic,
    /// Client id and secret in the form body.
    ClientSecretPost,
}

impl From<TokenEndpointAuthMethod> for ClientAuthMethod {
    fn from(method: TokenEndpointAuthMethod) -> Self {
        match method {
            TokenEndpointAuthMethod::ClientSecretBasic => Self::Basic,
            TokenEndpointAuthMethod::ClientSecretPost => Self::Post,
        }
    }
}

/// `--cookie-samesite` (any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CookieSameSite {
    /// `""`: no attribute (the browser's default).
    #[value(name = "", hide = true)]
    Unset,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (needs Secure).
    None,
}

impl From<CookieSameSite> for SameSite {
    fn from(same_site: CookieSameSite) -> Self {
        match same_site {
            CookieSameSite::Unset => Self::Unset,
            CookieSameSite::Lax => Self::Lax,
            CookieSameSite::Strict => Self::Strict,
            CookieSameSite::None => Self::None,
        }
    }
}

/// `--session-store-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SessionStoreType {
    /// The session, encrypted, in the browser's cookie.
    Cookie,
    /// In Redis; the cookie holds a ticket.
    Redis,
}

impl From<SessionStoreType> for SessionStoreKind {
    fn from(store: SessionStoreType) -> Self {
        match store {
            SessionStoreType::Cookie => Self::Cookie,
            SessionStoreType::Redis => Self::Redis,
        }
    }
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--code-challenge-method` (any case): PKCE is always S256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CodeChallengeMethod {
    /// SHA-256 of the verifier; "plain" is refused.
    #[value(name = "S256")]
    S256,
}
