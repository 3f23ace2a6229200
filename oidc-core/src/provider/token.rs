//! The token endpoint: authorization-code exchange (and, later, refresh).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::config::builder::{ClientAuthMethod, Config};
use crate::identity::tokens::{AccessToken, IdToken, RefreshToken};
use crate::provider::discovered::Provider;
use crate::provider::error::ProviderError;

/// The parts of a token response we use.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: Option<AccessToken>,
    pub(crate) id_token: Option<IdToken>,
    pub(crate) refresh_token: Option<RefreshToken>,
    pub(crate) expires_in: Option<u64>,
    /// Keycloak's lifetime of the refresh token.
    pub(crate) refresh_expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

/// `application/x-www-form-urlencoded` component encoding, as RFC 6749 §2.3.1
/// requires for the Basic credentials too.
fn form_encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl Provider {
    /// Exchanges an authorization code (with its PKCE verifier).
    pub(crate) async fn exchange_code(
        &self,
        config: &Config,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<TokenResponse, ProviderError> {
        let params = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        self.token_request(config, &params).await
    }

    /// Uses a refresh token (`grant_type=refresh_token`).
    pub(crate) async fn refresh(
        &self,
        config: &Config,
        refresh_token: &RefreshToken,
    ) -> Result<TokenResponse, ProviderError> {
        let params = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        self.token_request(config, &params).await
    }

    async fn token_request(
        &self,
        config: &Config,
        params: &[(&str, &str)],
    ) -> Result<TokenResponse, ProviderError> {
        let url = &self.endpoints().token;
        let mut body: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        let mut req = self.http.post(url.clone());
        match (&config.client_secret, config.client_auth) {
            (Some(secret), ClientAuthMethod::Basic) => {
                let creds = format!(
                    "{}:{}",
                    form_encode(&config.client_id),
                    form_encode(secret.expose())
                );
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(creds)),
                );
            }
            (Some(secret), ClientAuthMethod::Post) => {
                body.push(format!("client_id={}", form_encode(&config.client_id)));
                body.push(format!("client_secret={}", form_encode(secret.expose())));
            }
            (None, _) => body.push(format!("client_id={}", form_encode(&config.client_id))),
        }
        let unreachable = |source| ProviderError::Unreachable {
            url: url.to_string(),
            source,
        };
        let resp = req
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body.join("&"))
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorResponse>(&bytes)
                .ok()
                .map(|e| e.error);
            return Err(ProviderError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                detail,
            });
        }
        // serde_json's message may quote a value of the response: name only where it broke.
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::Malformed {
            url: url.to_string(),
            what: format!(
                "token response is not the expected JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        })
    }
}
