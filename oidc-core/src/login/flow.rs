//! Login start and the login-flow cookie.
//!
//! Each login gets its own short-lived AEAD cookie, named after its `state`
//! (`<cookie>_csrf_<state prefix>`), holding state, nonce, PKCE verifier,
//! return URL and start time. Two tabs can log in at once; at most
//! `max_flows` are kept per browser, the oldest dropped first.

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::config::builder::Config;
use crate::http::cookies::{self, CookieWriter};
use crate::login::error::LoginError;
use crate::session::crypto::{Purpose, Sealer};

/// Length of the state prefix used in the cookie name.
const NAME_TAG: usize = 16;

/// What a login in progress remembers between start and callback.
#[derive(Serialize, Deserialize)]
pub(crate) struct FlowState {
    #[serde(rename = "s")]
    pub(crate) state: String,
    #[serde(rename = "n")]
    pub(crate) nonce: String,
    #[serde(rename = "v")]
    pub(crate) verifier: String,
    #[serde(rename = "r")]
    pub(crate) return_to: String,
    #[serde(rename = "u")]
    pub(crate) redirect_uri: String,
    #[serde(rename = "t")]
    pub(crate) created_at: u64,
}

/// 32 random bytes, URL-safe base64 (43 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// PKCE S256 challenge for a verifier (RFC 7636 §4.2).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Creates and reads login-flow cookies.
#[derive(Debug)]
pub(crate) struct Flows {
    sealer: Sealer,
    prefix: String,
    /// States already used: a callback replayed together with its flow cookie is refused.
    consumed: Mutex<Consumed>,
}

/// Most used states remembered (in two generations of half as many each).
const MAX_CONSUMED: usize = 100_000;

/// The used states (hashed), in two generations: when the current one is full it becomes
/// the previous one and the previous one is forgotten. So memory stays bounded and a flood
/// of callbacks (each needs a flow cookie from `<prefix>/start`, and costs one token request)
/// can push old states out but never lock real logins out. A state pushed out could be
/// replayed only with its flow cookie, within `flow_ttl`, and with a code the provider has
/// not redeemed yet (a code is single-use at the provider, RFC 6749 §4.1.2).
#[derive(Debug, Default)]
struct Consumed {
    current: HashSet<[u8; 32]>,
    previous: HashSet<[u8; 32]>,
}

impl Consumed {
    /// Marks `key` used; `false` if it was used before (a replay).
    fn insert(&mut self, key: [u8; 32]) -> bool {
        if self.current.contains(&key) || self.previous.contains(&key) {
            return false;
        }
        if self.current.len() >= MAX_CONSUMED / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key)
    }
}

/// A started login: where to send the browser and the cookies to set.
pub(crate) struct Started {
    pub(crate) authorize_url: Url,
    pub(crate) set_cookies: Vec<HeaderValue>,
}

impl Flows {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            sealer: Sealer::new(&config.cookie_secrets, Purpose::Flow),
            prefix: format!("{}_csrf_", config.cookie.name),
            consumed: Mutex::default(),
        }
    }

    /// Marks `state` used; `false` if it was used before (a replay). Called before the
    /// code exchange, so one flow cookie causes at most one token request.
    fn consume(&self, state: &str) -> bool {
        let key: [u8; 32] = Sha256::digest(state.as_bytes()).into();
        self.consumed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key)
    }

    fn name_for(&self, state: &str) -> Option<String> {
        let tag = state.get(..NAME_TAG)?;
        tag.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            .then(|| format!("{}{tag}", self.prefix))
    }

    /// Starts a login: fresh state, nonce and PKCE verifier, sealed in a new
    /// flow cookie; the oldest flow cookies are deleted beyond `max_flows`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &self,
        config: &Config,
        authorization_endpoint: &Url,
        redirect_uri: &str,
        return_to: &str,
        request: &HeaderMap,
        writer: &CookieWriter,
        host: Option<&str>,
        now: u64,
    ) -> Started {
        let flow = FlowState {
            state: random_token(),
            nonce: random_token(),
            verifier: random_token(),
            return_to: return_to.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            created_at: now,
        };
        let mut url = authorization_endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &config.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &config.scope)
                .append_pair("state", &flow.state)
                .append_pair("nonce", &flow.nonce)
                .append_pair("code_challenge", &pkce_challenge(&flow.verifier))
                .append_pair("code_challenge_method", "S256");
            for (k, v) in &config.extra_auth_params {
                q.append_pair(k, v);
            }
        }

        let mut set_cookies = self.evict_oldest(request, config, writer, host, now);
        let name = self
            .name_for(&flow.state)
            .unwrap_or_else(|| self.prefix.clone());
        let plain = serde_json::to_vec(&flow).unwrap_or_default();
        let sealed = self.sealer.seal(name.as_bytes(), &plain);
        set_cookies.push(writer.set(&name, &sealed, config.flow_ttl, host));
        Started {
            authorize_url: url,
            set_cookies,
        }
    }

    /// Deletes flow cookies so that, with the one about to be added, at most
    /// `max_flows` remain. Unreadable or expired ones go first, then the oldest.
    fn evict_oldest(
        &self,
        request: &HeaderMap,
        config: &Config,
        writer: &CookieWriter,
        host: Option<&str>,
        now: u64,
    ) -> Vec<HeaderValue> {
        let mut existing: Vec<(u64, &str)> = cookies::iter(request)
            .filter(|(n, _)| n.starts_with(&self.prefix))
            .map(|(name, value)| {
                let created = self
                    .sealer
                    .open(name.as_bytes(), value)
                    .ok()
                    .and_then(|p| serde_json::from_slice::<FlowState>(&p).ok())
                    .map(|f| f.created_at)
                    .filter(|t| now.saturating_sub(*t) <= config.flow_ttl.as_secs())
                    .unwrap_or(0);
                (created, name)
            })
            .collect();
        existing.sort_unstable();
        existing.dedup_by(|a, b| a.1 == b.1);
        let keep = config.max_flows.saturating_sub(1);
        let drop = existing.len().saturating_sub(keep);
        existing
            .iter()
            .enumerate()
            .filter(|(i, (created, _))| *i < drop || *created == 0)
            .map(|(_, (_, name))| writer.clear(name, host))
            .collect()
    }

    /// Finds and opens the flow cookie for `state`. Returns the flow and the
    /// `Set-Cookie` that deletes its cookie (used once, whatever the outcome).
    pub(crate) fn take(
        &self,
        request: &HeaderMap,
        state: &str,
        config: &Config,
        writer: &CookieWriter,
        host: Option<&str>,
        now: u64,
    ) -> Result<(FlowState, HeaderValue), LoginError> {
        let name = self.name_for(state).ok_or(LoginError::State)?;
        let value = cookies::get(request, &name).ok_or(LoginError::State)?;
        let clear = writer.clear(&name, host);
        let plain = self
            .sealer
            .open(name.as_bytes(), value)
            .map_err(|_| LoginError::State)?;
        let flow: FlowState = serde_json::from_slice(&plain).map_err(|_| LoginError::State)?;
        if !bool::from(flow.state.as_bytes().ct_eq(state.as_bytes()))
            || now.saturating_sub(flow.created_at) > config.flow_ttl.as_secs()
        {
            return Err(LoginError::State);
        }
        if !self.consume(&flow.state) {
            return Err(LoginError::State);
        }
        Ok((flow, clear))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_states_are_refused_and_a_flood_never_locks_logins_out() {
        let key = |i: usize| -> [u8; 32] { Sha256::digest(i.to_le_bytes()).into() };
        let mut used = Consumed::default();
        assert!(used.insert(key(0)));
        assert!(!used.insert(key(0)), "a replay");
        for i in 1..=MAX_CONSUMED + 1 {
            assert!(used.insert(key(i)), "state {i} refused");
        }
        assert!(used.current.len() + used.previous.len() <= MAX_CONSUMED);
        // The most recent ones are still remembered.
        assert!(!used.insert(key(MAX_CONSUMED)));
    }

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
