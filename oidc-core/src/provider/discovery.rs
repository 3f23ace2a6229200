//! OpenID Connect Discovery 1.0, parsed with `openidconnect`'s metadata types.

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, ProviderMetadata};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::provider::error::ProviderError;
use crate::provider::http::get_json;

/// RP-initiated logout metadata, which core discovery does not carry.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct LogoutMetadata {
    end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for LogoutMetadata {}

type Metadata = ProviderMetadata<
    LogoutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The endpoints the engine uses, from the discovery document.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Endpoints {
    /// The issuer, exactly as the document names it (ID tokens' `iss` must equal it).
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization: Url,
    /// Token endpoint.
    pub token: Url,
    /// UserInfo endpoint.
    pub userinfo: Option<Url>,
    /// RP-initiated logout endpoint.
    pub end_session: Option<Url>,
    /// JWKS URI.
    pub jwks_uri: Url,
}

pub(super) async fn discover(
    http: &reqwest::Client,
    issuer: &Url,
) -> Result<Endpoints, ProviderError> {
    let base = issuer.as_str().trim_end_matches('/');
    let url = Url::parse(&format!("{base}/.well-known/openid-configuration")).map_err(|e| {
        ProviderError::Malformed {
            url: issuer.to_string(),
            what: e.to_string(),
        }
    })?;
    let meta: Metadata = get_json(http, &url).await?;
    let found = meta.issuer().as_str();
    if found.trim_end_matches('/') != base {
        return Err(ProviderError::IssuerMismatch {
            url: url.to_string(),
            expected: issuer.to_string(),
            found: found.to_owned(),
        });
    }
    let malformed = |what: &str| ProviderError::Malformed {
        url: url.to_string(),
        what: what.to_owned(),
    };
    let token = meta
        .token_endpoint()
        .ok_or_else(|| malformed("token_endpoint is missing"))?;
    let end_session = match &meta.additional_metadata().end_session_endpoint {
        Some(raw) => {
            Some(Url::parse(raw).map_err(|_| malformed("end_session_endpoint is not a URL"))?)
        }
        None => None,
    };
    Ok(Endpoints {
        issuer: found.to_owned(),
        authorization: meta.authorization_endpoint().url().clone(),
        token: token.url().clone(),
        userinfo: meta.userinfo_endpoint().map(|u| u.url().clone()),
        end_session,
        jwks_uri: meta.jwks_uri().url().clone(),
    })
}
