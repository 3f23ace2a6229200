//! The [`BearerValidator`]: checks an access token's signature against its issuer's keys,
//! then its issuer, audience, lifetime and kind, and whether a back-channel logout revoked
//! it; remembers accepted tokens until they expire.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::config::builder::Config;
use crate::error::chain::chain;
use crate::http::headers::headers_for;
use crate::identity::claims::email_unverified;
use crate::provider::cell::ProviderCell;
use crate::provider::discovered::Provider;
use crate::provider::error::ProviderError;
use crate::store::backend::Store;
use crate::token::algorithms::{ALLOWED_ALGORITHMS, allowed_algorithm};
use crate::token::bearer::cache::{Accepted, TokenCache};
use crate::token::bearer::claims::BearerClaims;
use crate::token::bearer::error::{BearerConfigError, BearerError};
use crate::token::error::TokenError;

/// An issuer trusted besides the engine's own, with the audiences accepted
/// from it. Discovered (`/.well-known/openid-configuration`, then its JWKS)
/// on its first token, or up front with [`BearerValidator::discover`].
#[derive(Clone, Debug)]
#[must_use]
pub struct TrustedIssuer {
    issuer: String,
    audiences: Vec<String>,
}

impl TrustedIssuer {
    /// An issuer URL, exactly as its discovery document and tokens name it.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: Vec::new(),
        }
    }

    /// Accepts tokens from this issuer for this audience (call once per audience).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }
}

/// Builder for [`BearerValidator`], from `Engine::bearer_validator`: the engine's issuer,
/// with its keys, clock leeway and revocations.
#[derive(Debug)]
#[must_use]
pub struct BearerBuilder {
    issuer: Issuer,
    audiences: Option<Vec<String>>,
    audience_claims: Option<Vec<String>>,
    trusted: Vec<TrustedIssuer>,
}

/// What a validator shares with the engine: its configuration, its issuer's keys and the
/// revocation store.
#[derive(Clone, Debug)]
pub(crate) struct Issuer {
    pub(crate) config: Arc<Config>,
    pub(crate) provider: Arc<ProviderCell>,
    pub(crate) store: Arc<Store>,
}

impl BearerBuilder {
    /// A builder for `issuer`'s tokens; by default it accepts the client id as audience and
    /// trusts no other issuer.
    pub(crate) fn new(issuer: Issuer) -> Self {
        Self {
            issuer,
            audiences: None,
            audience_claims: None,
            trusted: Vec::new(),
        }
    }

    /// Accepts tokens of the engine's issuer for this audience. The first call
    /// replaces the default (the client id); call once per audience.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences
            .get_or_insert_with(Vec::new)
            .push(audience.into());
        self
    }

    /// Which claims are compared with the accepted audiences (default `aud`;
    /// oauth2-proxy's `--oidc-audience-claim`). The first call replaces the
    /// default: `.audience_claim("aud").audience_claim("azp")` accepts a
    /// Keycloak token whose `azp` is the client even when `aud` is `account`.
    pub fn audience_claim(mut self, claim: impl Into<String>) -> Self {
        self.audience_claims
            .get_or_insert_with(Vec::new)
            .push(claim.into());
        self
    }

    /// Trusts another issuer, with its own audiences.
    pub fn trusted_issuer(mut self, issuer: TrustedIssuer) -> Self {
        self.trusted.push(issuer);
        self
    }

    /// Checks the configuration and builds the validator. No I/O.
    pub fn build(self) -> Result<BearerValidator, BearerConfigError> {
        let config = &*self.issuer.config;
        let primary_key = issuer_key(config.issuer.as_str()).to_owned();
        let primary = self
            .audiences
            .unwrap_or_else(|| vec![config.client_id.clone()]);
        if primary.is_empty() {
            return Err(BearerConfigError::NoAudience(config.issuer.to_string()));
        }
        let audience_claims = self
            .audience_claims
            .unwrap_or_else(|| vec!["aud".to_owned()]);
        let mut extras: Vec<Extra> = Vec::with_capacity(self.trusted.len());
        for t in self.trusted {
            let url = Url::parse(&t.issuer)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| BearerConfigError::IssuerUrl(t.issuer.clone()))?;
            let key = issuer_key(&t.issuer);
            if key == primary_key || extras.iter().any(|e| *e.key == *key) {
                return Err(BearerConfigError::DuplicateIssuer(t.issuer));
            }
            if t.audiences.is_empty() {
                return Err(BearerConfigError::NoAudience(t.issuer));
            }
            extras.push(Extra {
                key: key.into(),
                url,
                audiences: t.audiences.into_boxed_slice(),
                provider: tokio::sync::OnceCell::new(),
                last_failure: Mutex::new(None),
            });
        }
        let leeway = config.leeway.as_secs();
        let validations = ALLOWED_ALGORITHMS
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                // iss and aud are checked here, against the issuer the token
                // was routed to and that issuer's own audiences.
                v.validate_aud = false;
                v.set_required_spec_claims(&["exp", "iss", "sub"]);
                v.validate_nbf = true;
                v.leeway = leeway;
                v
            })
            .collect();
        Ok(BearerValidator {
            inner: Arc::new(Inner {
                primary_key: primary_key.into(),
                primary: primary.into_boxed_slice(),
                audience_claims: audience_claims.into_boxed_slice(),
                extras: extras.into_boxed_slice(),
                validations,
                retry: config.jwks_refetch_interval,
                tokens: TokenCache::default(),
                issuer: self.issuer,
            }),
        })
    }
}

/// An issuer URL without its trailing `/`, for routing tokens by `iss`.
fn issuer_key(issuer: &str) -> &str {
    issuer.trim_end_matches('/')
}

/// Validates bearer access tokens. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct BearerValidator {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: Issuer,
    primary_key: Box<str>,
    primary: Box<[String]>,
    audience_claims: Box<[String]>,
    extras: Box<[Extra]>,
    /// One per entry of [`ALLOWED_ALGORITHMS`], in the same order.
    validations: Box<[Validation]>,
    /// Minimum time between two discovery attempts of a failing trusted issuer.
    retry: Duration,
    /// Tokens this validator accepted, with the identity built from them.
    tokens: TokenCache,
}

struct Extra {
    key: Box<str>,
    url: Url,
    audiences: Box<[String]>,
    provider: tokio::sync::OnceCell<Provider>,
    last_failure: Mutex<Option<Instant>>,
}

impl Extra {
    async fn provider(
        &self,
        http: &reqwest::Client,
        retry: Duration,
    ) -> Result<&Provider, BearerError> {
        if let Some(p) = self.provider.get() {
            return Ok(p);
        }
        let recently_failed = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() < retry);
        if recently_failed {
            return Err(BearerError::NotReady);
        }
        self.provider
            .get_or_try_init(|| Provider::discover(http.clone(), &self.url, retry))
            .await
            .map_err(|e| {
                tracing::warn!(issuer = %self.url, error = %chain(&e), "trusted issuer discovery failed");
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                BearerError::Provider(e)
            })
    }
}

impl fmt::Debug for BearerValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("BearerValidator");
        d.field("issuer", &i.primary_key)
            .field("audiences", &i.primary)
            .field("audience_claims", &i.audience_claims);
        for e in &*i.extras {
            d.field("trusted_issuer", &(&e.key, &e.audiences));
        }
        d.finish()
    }
}

/// The parts of the header we read, borrowed from the decoded bytes.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
}

/// The issuer, read before anything is trusted, to pick the keys.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
}

impl BearerValidator {
    /// Discovers the trusted issuers now rather than on their first token.
    /// The engine's own issuer is discovered by `Engine::discover`.
    pub async fn discover(&self) -> Result<(), ProviderError> {
        let http = self.inner.issuer.provider.http();
        for e in &*self.inner.extras {
            if e.provider.get().is_none() {
                e.provider
                    .get_or_try_init(|| Provider::discover(http.clone(), &e.url, self.inner.retry))
                    .await?;
            }
        }
        Ok(())
    }

    /// Validates an access token (the value after `Bearer `) and returns its claims.
    /// A token of the engine's own issuer whose session a back-channel logout ended is
    /// refused ([`BearerError::Revoked`]).
    ///
    /// I/O happens only when the token's key is not cached (one rate-limited
    /// JWKS refetch) or a trusted issuer is used for the first time, and, with Redis,
    /// for the revocation check (as for a cookie session: one round trip).
    pub async fn validate(&self, token: &str) -> Result<BearerClaims, BearerError> {
        let claims = self.verify(token).await?;
        self.check_revoked(&claims).await?;
        Ok(claims)
    }

    /// Refuses a token of the engine's own issuer whose `sid` was revoked by a back-channel
    /// logout, or whose `sub` was after its `iat`: in this process (no I/O, no lock while
    /// nothing was revoked) and, with Redis, in any replica (one round trip per request, the
    /// cost a cookie session pays). Tokens of trusted issuers are not ours to revoke.
    async fn check_revoked(&self, claims: &BearerClaims) -> Result<(), BearerError> {
        if claims.principal.issuer().map(issuer_key) != Some(&*self.inner.primary_key) {
            return Ok(());
        }
        let sid = claims.claims.get("sid").and_then(Value::as_str);
        // No `iat`: as old as can be, so any revocation of its subject covers it.
        let iat = claims
            .claims
            .get("iat")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let store = &self.inner.issuer.store;
        match store
            .is_token_revoked(sid, &claims.principal.subject, iat)
            .await
        {
            Ok(false) => Ok(()),
            Ok(true) => Err(BearerError::Revoked),
            Err(_) => Err(BearerError::StoreUnavailable),
        }
    }

    /// Every check of [`BearerValidator::validate`] but revocation.
    async fn verify(&self, token: &str) -> Result<BearerClaims, BearerError> {
        let inner = &*self.inner;
        let mut segments = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(if token.contains('.') {
                BearerError::Malformed
            } else {
                BearerError::Opaque
            });
        };
        if h64.is_empty() || p64.is_empty() {
            return Err(BearerError::Malformed);
        }

        // The header, for the algorithm and key id.
        let raw = URL_SAFE_NO_PAD
            .decode(h64)
            .map_err(|_| BearerError::Malformed)?;
        let head: RawHeader<'_> =
            serde_json::from_slice(&raw).map_err(|_| BearerError::Malformed)?;
        let alg_name = head.alg.as_deref().ok_or(BearerError::Malformed)?;
        let alg_index = allowed_algorithm(alg_name)
            .ok_or_else(|| BearerError::Algorithm(alg_name.chars().take(16).collect()))?;
        if s64.is_empty() {
            return Err(BearerError::Malformed);
        }
        if let Some(typ) = head.typ.as_deref()
            && !["JWT", "at+jwt", "application/at+jwt"]
                .iter()
                .any(|ok| typ.eq_ignore_ascii_case(ok))
        {
            return Err(BearerError::NotAccessToken(typ.chars().take(32).collect()));
        }

        // The issuer, to pick its keys and audiences. Nothing is trusted yet.
        let payload = URL_SAFE_NO_PAD
            .decode(p64)
            .map_err(|_| BearerError::Malformed)?;
        let peek: Peek<'_> =
            serde_json::from_slice(&payload).map_err(|_| BearerError::Malformed)?;
        let iss = peek
            .iss
            .as_deref()
            .ok_or(BearerError::MissingClaim("iss"))?;
        let http = inner.issuer.provider.http();
        let (provider, audiences) = if issuer_key(iss) == &*inner.primary_key {
            let p = inner.issuer.provider.get().ok_or(BearerError::NotReady)?;
            (p, &*inner.primary)
        } else if let Some(e) = inner.extras.iter().find(|e| *e.key == *issuer_key(iss)) {
            (e.provider(http, inner.retry).await?, &*e.audiences)
        } else {
            return Err(BearerError::UntrustedIssuer(
                iss.chars().take(200).collect(),
            ));
        };

        // Signature (key chosen by kid and alg, one JWKS refetch on an unknown
        // kid), exp, nbf and the required claims.
        let claims = provider
            .jwks
            .decode(
                http,
                token,
                head.kid.as_deref(),
                &inner.validations[alg_index],
            )
            .await
            .map_err(|e| match e {
                TokenError::Jwks(p) => BearerError::Provider(p),
                TokenError::Invalid(e) => map_jwt_error(e),
                TokenError::Algorithm(a) => BearerError::Algorithm(a),
                _ => BearerError::UnknownKey {
                    kid: head.kid.as_deref().map(|k| k.chars().take(64).collect()),
                },
            })?;

        if claims.get("iss").and_then(Value::as_str) != Some(provider.endpoints().issuer.as_str()) {
            return Err(BearerError::UntrustedIssuer(
                iss.chars().take(200).collect(),
            ));
        }
        if !self.audience_ok(&claims, audiences) {
            return Err(BearerError::Audience);
        }
        check_access_token_type(&claims)?;
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(BearerError::MissingClaim("sub"));
        }
        let config = &*inner.issuer.config;
        if email_unverified(&claims) && !config.allow_unverified_email {
            return Err(BearerError::EmailNotVerified);
        }
        Ok(BearerClaims::from_claims(claims, &config.groups_claim))
    }

    /// [`BearerValidator::validate`], remembering accepted tokens: a token accepted before
    /// is answered from a bounded cache, keyed by its exact text, until its `exp` (no
    /// signature check, no allocation but the `Arc`). A key the issuer withdraws stops
    /// tokens not seen yet at once, cached ones at their `exp`. Revocation (back-channel
    /// logout) is checked on every call, cached token or not.
    pub async fn validate_shared(&self, token: &str) -> Result<Arc<BearerClaims>, BearerError> {
        let now = crate::clock::unix_now();
        Ok(Arc::clone(&self.accepted(token, now).await?.claims))
    }

    async fn accepted(&self, token: &str, now: u64) -> Result<Arc<Accepted>, BearerError> {
        let tokens = &self.inner.tokens;
        let accepted = match tokens.get(token, now) {
            Some(hit) => hit,
            None => tokens.insert(token, self.verify(token).await?),
        };
        self.check_revoked(&accepted.claims).await?;
        Ok(accepted)
    }

    /// An accepted token's claims and the identity headers `Engine::check_bearer` sets
    /// for it, built once per token.
    pub(crate) async fn identity(
        &self,
        token: &str,
        now: u64,
    ) -> Result<(HeaderMap, Arc<BearerClaims>), BearerError> {
        let accepted = self.accepted(token, now).await?;
        let headers = accepted.headers.get_or_init(|| {
            let config = &*self.inner.issuer.config;
            // As oauth2-proxy's JWT sessions: the token is what goes upstream for
            // --set-authorization-header and --pass-access-token.
            headers_for(config, &accepted.claims.principal, Some(token), Some(token))
        });
        Ok((headers.clone(), Arc::clone(&accepted.claims)))
    }

    fn audience_ok(&self, claims: &Map<String, Value>, accepted: &[String]) -> bool {
        let accepts = |v: &Value| v.as_str().is_some_and(|s| accepted.iter().any(|a| a == s));
        self.inner
            .audience_claims
            .iter()
            .filter_map(|c| claims.get(c.as_str()))
            .any(|v| match v {
                Value::Array(items) => items.iter().any(accepts),
                v => accepts(v),
            })
    }
}

/// Refuses ID tokens (and other JWTs) presented as access tokens: an ID
/// token is signed by the same issuer for the client id, so audience checks
/// alone would let it pass. Keycloak names the kind in `typ` (`Bearer`, `ID`,
/// `Refresh`, `Logout`); without `typ`, the ID-token-only claims `nonce`,
/// `at_hash` and `c_hash` give an ID token away.
fn check_access_token_type(claims: &Map<String, Value>) -> Result<(), BearerError> {
    match claims.get("typ") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("Bearer") => Ok(()),
        Some(other) => Err(BearerError::NotAccessToken(
            other.as_str().unwrap_or("?").chars().take(32).collect(),
        )),
        None if ["nonce", "at_hash", "c_hash"]
            .iter()
            .any(|c| claims.contains_key(*c)) =>
        {
            Err(BearerError::NotAccessToken("id_token".to_owned()))
        }
        None => Ok(()),
    }
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> BearerError {
    match e.kind() {
        ErrorKind::ExpiredSignature => BearerError::Expired,
        ErrorKind::ImmatureSignature => BearerError::NotYetValid,
        ErrorKind::InvalidSignature => BearerError::Signature,
        ErrorKind::MissingRequiredClaim(c) => BearerError::MissingClaim(match c.as_str() {
            "exp" => "exp",
            "iss" => "iss",
            "sub" => "sub",
            _ => "required",
        }),
        ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidToken => BearerError::Malformed,
        _ => BearerError::Invalid(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A builder for an issuer that is never contacted.
    fn builder() -> BearerBuilder {
        let config = Config::builder("https://idp.example.com/realms/r", "app")
            .cookie_secret("0123456789abcdef0123456789abcdef")
            .build()
            .unwrap();
        let http = reqwest::Client::new();
        BearerBuilder::new(Issuer {
            provider: Arc::new(ProviderCell::new(
                http,
                config.issuer.clone(),
                config.jwks_refetch_interval,
            )),
            store: Arc::new(Store::new(&config)),
            config: Arc::new(config),
        })
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[tokio::test]
    async fn refuses_before_any_io() {
        let v = builder().build().unwrap();
        let h = |alg: &str| b64(&json!({"alg": alg, "typ": "JWT"}));
        let p = b64(&json!({"iss": "https://idp.example.com/realms/r", "sub": "x"}));
        type Expect = fn(&BearerError) -> bool;
        let cases: Vec<(String, Expect)> = vec![
            ("opaque-token".into(), |e| matches!(e, BearerError::Opaque)),
            ("a.b".into(), |e| matches!(e, BearerError::Malformed)),
            ("a..c".into(), |e| matches!(e, BearerError::Malformed)),
            ("!!.e30.sig".into(), |e| matches!(e, BearerError::Malformed)),
            (
                format!("{}.{p}.sig", h("none")),
                |e| matches!(e, BearerError::Algorithm(a) if a == "none"),
            ),
            (
                format!("{}.{p}.sig", h("HS256")),
                |e| matches!(e, BearerError::Algorithm(a) if a == "HS256"),
            ),
            (
                format!(
                    "{}.{p}.sig",
                    b64(&json!({"alg": "RS256", "typ": "logout+jwt"}))
                ),
                |e| matches!(e, BearerError::NotAccessToken(_)),
            ),
            (
                format!("{}.{}.sig", h("RS256"), b64(&json!({"sub": "x"}))),
                |e| matches!(e, BearerError::MissingClaim("iss")),
            ),
            (
                format!(
                    "{}.{}.sig",
                    h("RS256"),
                    b64(&json!({"iss": "https://evil.example.com", "sub": "x"}))
                ),
                |e| matches!(e, BearerError::UntrustedIssuer(_)),
            ),
            // The right issuer, but the engine has not discovered it yet.
            (format!("{}.{p}.sig", h("RS256")), |e| {
                matches!(e, BearerError::NotReady)
            }),
        ];
        for (token, expected) in cases {
            let err = v.validate(&token).await.unwrap_err();
            assert!(expected(&err), "{token}: {err:?}");
        }
    }

    #[test]
    fn configuration_errors() {
        assert!(matches!(
            builder()
                .trusted_issuer(
                    TrustedIssuer::new("https://idp.example.com/realms/r/").audience("a")
                )
                .build(),
            Err(BearerConfigError::DuplicateIssuer(_))
        ));
        assert!(matches!(
            builder()
                .trusted_issuer(TrustedIssuer::new("https://other.example.com"))
                .build(),
            Err(BearerConfigError::NoAudience(_))
        ));
        assert!(matches!(
            builder()
                .trusted_issuer(TrustedIssuer::new("ftp://x").audience("a"))
                .build(),
            Err(BearerConfigError::IssuerUrl(_))
        ));
        let v = builder()
            .audience("account")
            .audience_claim("aud")
            .audience_claim("azp")
            .build()
            .unwrap();
        let claims = |v: Value| v.as_object().unwrap().clone();
        let acc = ["account".to_owned()];
        assert!(v.audience_ok(&claims(json!({"aud": "account"})), &acc));
        assert!(v.audience_ok(&claims(json!({"aud": ["x", "account"]})), &acc));
        assert!(v.audience_ok(&claims(json!({"aud": "x", "azp": "account"})), &acc));
        assert!(!v.audience_ok(&claims(json!({"aud": "x"})), &acc));
        assert!(!v.audience_ok(&claims(json!({})), &acc));
    }

    #[test]
    fn id_tokens_are_not_access_tokens() {
        let c = |v: Value| v.as_object().unwrap().clone();
        assert!(check_access_token_type(&c(json!({}))).is_ok());
        assert!(check_access_token_type(&c(json!({"typ": "Bearer"}))).is_ok());
        assert!(check_access_token_type(&c(json!({"typ": "Bearer", "nonce": "n"}))).is_ok());
        for bad in [
            json!({"typ": "ID"}),
            json!({"typ": "Refresh"}),
            json!({"nonce": "n"}),
            json!({"at_hash": "h"}),
            json!({"c_hash": "h"}),
        ] {
            assert!(
                matches!(
                    check_access_token_type(&c(bad.clone())),
                    Err(BearerError::NotAccessToken(_))
                ),
                "{bad}"
            );
        }
    }
}
