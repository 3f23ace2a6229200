//! Bearer tokens: `Authorization: Bearer <JWT>` access tokens, validated
//! locally against the issuer's signing keys.
//!
//! A [`BearerValidator`] checks a token's signature with an allow-listed
//! asymmetric algorithm against the issuer's JWKS (the engine's own cache for
//! the engine's issuer, so key rotation and the rate-limited refetch on an
//! unknown `kid` behave exactly as for ID tokens), then `iss`, the audience,
//! `exp` and `nbf` (with the configured leeway), and that the token is an
//! access token rather than an ID token of the same issuer. Extra issuers can be trusted,
//! each with its own audiences; they are discovered on their first token or
//! up front with [`BearerValidator::discover`].
//!
//! Keycloak puts `aud: account` in access tokens unless an audience mapper
//! adds the client: the default expected audience is the client id, so either
//! add the mapper or list the audiences you accept with
//! [`BearerBuilder::audience`] (or match `azp` with
//! [`BearerBuilder::audience_claim`]).
//!
//! ```no_run
//! use oidc_core::bearer::{BearerValidator, TrustedIssuer, token_from_headers};
//! use oidc_core::{Config, Engine};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder("https://keycloak.example.com/realms/mytest", "nginx")
//!     .cookie_secret("0123456789abcdef0123456789abcdef")
//!     .build()?;
//! let engine = Engine::new(config)?;
//! engine.discover().await?;
//! let bearer = BearerValidator::builder(engine)
//!     .audience("nginx")
//!     .audience("account")
//!     .trusted_issuer(TrustedIssuer::new("https://partner.example.com/realms/b2b").audience("nginx"))
//!     .build()?;
//!
//! let (parts, ()) = http::Request::get("/api").body(())?.into_parts();
//! match token_from_headers(&parts.headers) {
//!     Ok(Some(token)) => match bearer.validate(token).await {
//!         Ok(claims) => println!("token of {} with roles {:?}", claims.principal.subject, claims.principal.realm_roles),
//!         Err(e) => println!("answer {} ({e})", e.status()),
//!     },
//!     Ok(None) => println!("no bearer token"),
//!     Err(e) => println!("answer {} ({e})", e.status()),
//! }
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::claims::{email_unverified, keycloak_roles, string_list};
use crate::engine::Engine;
use crate::error::{ProviderError, TokenError, chain};
use crate::headers::headers_for;
use crate::id_token::{ALLOWED_ALGORITHMS, allowed_algorithm};
use crate::pages;
use crate::principal::Principal;
use crate::provider::Provider;
use crate::token_cache::{Accepted, TokenCache};

/// Why a bearer token was refused. Each maps to an HTTP answer with
/// [`BearerError::status`] and [`BearerError::response`]; none carries the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// The `Authorization: Bearer` value is empty or not a token, or the token
    /// is not a well-formed JWS (three base64url parts, JSON header and payload).
    #[error("the bearer token is malformed")]
    Malformed,
    /// The token is not a JWT at all (an opaque token): it cannot be checked
    /// locally.
    #[error("the bearer token is opaque, not a JWT; only JWT access tokens are accepted")]
    Opaque,
    /// The token's algorithm is not on the allow-list (never `none`, never HMAC).
    #[error("the bearer token's algorithm {0:?} is not allowed")]
    Algorithm(String),
    /// The token's `iss` is neither the engine's issuer nor a trusted one.
    #[error("the bearer token's issuer {0:?} is not trusted")]
    UntrustedIssuer(String),
    /// No key of the issuer matches the token's `kid` and algorithm, even after
    /// refetching the issuer's JWKS.
    #[error("no signing key of the issuer matches the bearer token (kid {kid:?})")]
    UnknownKey {
        /// The token's `kid`, when it has one.
        kid: Option<String>,
    },
    /// The signature does not verify with the issuer's key.
    #[error("the bearer token's signature is invalid")]
    Signature,
    /// `exp` is past (beyond the leeway).
    #[error("the bearer token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the bearer token is not valid yet (nbf)")]
    NotYetValid,
    /// None of the token's audiences is one this service accepts.
    #[error("the bearer token is meant for another audience")]
    Audience,
    /// A required claim (`exp`, `iss`, `sub`) is missing.
    #[error("the bearer token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// The token is a JWT but not an access token (an ID, refresh or logout
    /// token, going by its `typ`).
    #[error("the bearer token is not an access token (typ {0:?})")]
    NotAccessToken(String),
    /// Any other validation failure reported by `jsonwebtoken`.
    #[error("the bearer token is invalid")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// The token carries an email its issuer says is not verified
    /// (`email_verified: false`), refused as at the login.
    #[error("the bearer token's email is not verified")]
    EmailNotVerified,
    /// A back-channel logout ended the token's provider session (`sid`), or every session
    /// of its user (`sub`) after the token was issued.
    #[error("the bearer token's session was ended by a back-channel logout")]
    Revoked,
    /// The session store (Redis), which holds the other replicas' logouts, cannot be
    /// reached: the token is refused until it can (fail closed).
    #[error("the session store is unavailable; cannot tell whether the bearer token was revoked")]
    StoreUnavailable,
    /// The issuer has not been discovered yet (or its discovery failed a
    /// moment ago): try again shortly.
    #[error("the token's identity provider is not reachable yet")]
    NotReady,
    /// Discovering the issuer or fetching its signing keys failed.
    #[error("could not fetch the token issuer's signing keys")]
    Provider(#[source] ProviderError),
}

impl BearerError {
    /// 503 when the provider could not be asked, 401 otherwise.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotReady | Self::Provider(_) | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// A short description for `error_description`, never echoing the token.
    fn description(&self) -> &'static str {
        match self {
            Self::Malformed => "the access token is malformed",
            Self::Opaque => "the access token is not a JWT",
            Self::Algorithm(_) => "the access token's signature algorithm is not allowed",
            Self::UntrustedIssuer(_) => "the access token's issuer is not trusted",
            Self::UnknownKey { .. } => "the access token is signed by an unknown key",
            Self::Signature => "the access token's signature is invalid",
            Self::Expired => "the access token expired",
            Self::NotYetValid => "the access token is not valid yet",
            Self::Audience => "the access token is meant for another audience",
            Self::MissingClaim(_) => "the access token lacks a required claim",
            Self::NotAccessToken(_) => "the token is not an access token",
            Self::Invalid(_) => "the access token is invalid",
            Self::EmailNotVerified => "the access token's email is not verified",
            Self::Revoked => "the access token's session has ended",
            Self::StoreUnavailable => "the session store cannot be reached right now",
            Self::NotReady | Self::Provider(_) => {
                "the access token's issuer cannot be reached right now"
            }
        }
    }

    /// The answer to send: `401` with `WWW-Authenticate: Bearer
    /// error="invalid_token", error_description="..."` and a JSON body
    /// `{"error":"invalid_token","message":"..."}`, or `503` when the
    /// provider could not be asked.
    #[must_use]
    pub fn response(&self) -> Response<Bytes> {
        let description = self.description();
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            let mut r = pages::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                description,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
        let mut r = pages::json_error(StatusCode::UNAUTHORIZED, "invalid_token", description);
        let challenge =
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }
}

/// A bearer configuration that cannot be used. Raised when building, never per request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BearerConfigError {
    /// A trusted issuer is not an http(s) URL.
    #[error("trusted issuer {0:?} is not an http(s) URL")]
    IssuerUrl(String),
    /// An issuer was given no audience: every token would be refused.
    #[error("issuer {0} has no accepted audience; add one (the default is the client id)")]
    NoAudience(String),
    /// The same issuer was trusted twice (or is the engine's own issuer).
    #[error(
        "issuer {0} is trusted twice (the engine's own issuer is always trusted; set its audiences with .audience())"
    )]
    DuplicateIssuer(String),
}

/// The claims of a validated access token, with the usual ones parsed out.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct BearerClaims {
    /// The token's user: `sub`, `email`, `preferred_username`, `name`, the groups (from the
    /// engine's configured groups claim), Keycloak's realm and client roles, and `iss`.
    pub principal: Principal,
    /// `azp`: the client the token was issued to, when present.
    pub authorized_party: Option<String>,
    /// `scope`, split at spaces.
    pub scopes: Vec<String>,
    /// `exp` (Unix seconds).
    pub expires_at: u64,
    /// Every claim of the token, as sent.
    pub claims: Map<String, Value>,
}

impl BearerClaims {
    fn from_claims(claims: Map<String, Value>, groups_claim: &str) -> Self {
        let get = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        let (realm_roles, client_roles) = keycloak_roles(&claims);
        Self {
            principal: Principal {
                subject: get("sub").unwrap_or_default(),
                email: get("email"),
                preferred_username: get("preferred_username"),
                name: get("name"),
                groups: string_list(claims.get(groups_claim)),
                realm_roles,
                client_roles,
                issuer: claims.get("iss").and_then(Value::as_str).map(Arc::from),
            },
            authorized_party: get("azp"),
            scopes: claims
                .get("scope")
                .and_then(Value::as_str)
                .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            expires_at: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
            claims,
        }
    }

    /// The token's user.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

impl AsRef<Principal> for BearerClaims {
    fn as_ref(&self) -> &Principal {
        &self.principal
    }
}

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

/// Builder for [`BearerValidator`]; see [`BearerValidator::builder`].
#[derive(Debug)]
#[must_use]
pub struct BearerBuilder {
    engine: Engine,
    audiences: Option<Vec<String>>,
    audience_claims: Option<Vec<String>>,
    trusted: Vec<TrustedIssuer>,
}

impl BearerBuilder {
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
        let config = self.engine.config();
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
                engine: self.engine,
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
    engine: Engine,
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
    /// Starts a validator for the engine's issuer; by default it accepts the
    /// client id as audience and trusts no other issuer.
    pub fn builder(engine: Engine) -> BearerBuilder {
        BearerBuilder {
            engine,
            audiences: None,
            audience_claims: None,
            trusted: Vec::new(),
        }
    }

    /// A validator with the defaults: the engine's issuer, audience = client id.
    #[must_use]
    pub fn new(engine: Engine) -> Self {
        Self::builder(engine)
            .build()
            .unwrap_or_else(|_| unreachable!("the default bearer configuration is valid"))
    }

    /// The engine this validator uses for its own issuer.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Discovers the trusted issuers now rather than on their first token.
    /// The engine's own issuer is discovered by [`Engine::discover`].
    pub async fn discover(&self) -> Result<(), ProviderError> {
        let http = self.inner.engine.http();
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
        let store = self.inner.engine.store();
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
        let http = inner.engine.http();
        let (provider, audiences) = if issuer_key(iss) == &*inner.primary_key {
            let p = inner.engine.provider().ok_or(BearerError::NotReady)?;
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
        let config = inner.engine.config();
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
        let now = crate::engine::unix_now();
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

    /// An accepted token's claims and the identity headers [`Engine::check_bearer`] sets
    /// for it, built once per token.
    pub(crate) async fn identity(
        &self,
        token: &str,
        now: u64,
    ) -> Result<(HeaderMap, Arc<BearerClaims>), BearerError> {
        let accepted = self.accepted(token, now).await?;
        let headers = accepted.headers.get_or_init(|| {
            let config = self.inner.engine.config();
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

impl Engine {
    /// A [`BearerBuilder`] for this engine's issuer; same as
    /// [`BearerValidator::builder`].
    pub fn bearer_validator(&self) -> BearerBuilder {
        BearerValidator::builder(self.clone())
    }
}

/// The token of an `Authorization: Bearer <token>` header.
///
/// `Ok(None)` when there is no `Authorization` header or it uses another
/// scheme (e.g. `Basic`); [`BearerError::Malformed`] when the scheme is
/// `Bearer` but the value is not an RFC 6750 token.
pub fn token_from_headers(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    const SCHEME: &[u8] = b"bearer";
    if bytes.len() < SCHEME.len() || !bytes[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Ok(None);
    }
    let rest = &bytes[SCHEME.len()..];
    if !rest.is_empty() && rest[0] != b' ' {
        // e.g. "BearerX": another scheme.
        return Ok(None);
    }
    let token = rest.trim_ascii();
    let body_len = token.iter().position(|&b| b == b'=').unwrap_or(token.len());
    let token68 = !token.is_empty()
        && token[..body_len]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        && token[body_len..].iter().all(|&b| b == b'=');
    if !token68 {
        return Err(BearerError::Malformed);
    }
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| BearerError::Malformed)
}

/// `401` with a bare `WWW-Authenticate: Bearer` challenge (RFC 6750 §3.1: no
/// error code when no token was sent) and a JSON body.
#[must_use]
pub fn missing_token_response() -> Response<Bytes> {
    let mut r = pages::json_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "an access token is required (Authorization: Bearer <token>)",
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// `403` for a valid token whose subject a rule refuses:
/// `WWW-Authenticate: Bearer error="insufficient_scope"` and a JSON body.
#[must_use]
pub fn forbidden_response() -> Response<Bytes> {
    let mut r = pages::json_error(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "the access token lacks a required group or role",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer error=\"insufficient_scope\", error_description=\"the access token lacks a required group or role\"",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn engine() -> Engine {
        let c = Config::builder("https://idp.example.com/realms/r", "app")
            .cookie_secret("0123456789abcdef0123456789abcdef")
            .build()
            .unwrap();
        Engine::new(c).unwrap()
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn authorization_header_parsing() {
        assert_eq!(token_from_headers(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            token_from_headers(&headers("Basic dXNlcjpwdw==")).unwrap(),
            None
        );
        assert_eq!(token_from_headers(&headers("Bearerish x")).unwrap(), None);
        assert_eq!(
            token_from_headers(&headers("Bearer a.b.c")).unwrap(),
            Some("a.b.c")
        );
        assert_eq!(
            token_from_headers(&headers("bearer  a.b-_c ")).unwrap(),
            Some("a.b-_c")
        );
        assert_eq!(
            token_from_headers(&headers("BEARER abc==")).unwrap(),
            Some("abc==")
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer a=b",
            "Bearer \"x\"",
        ] {
            assert!(
                matches!(
                    token_from_headers(&headers(bad)),
                    Err(BearerError::Malformed)
                ),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn refuses_before_any_io() {
        let v = BearerValidator::new(engine());
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
    fn error_responses() {
        let r = BearerError::Expired.response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"the access token expired\""
        );
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(
            BearerError::NotReady.response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            missing_token_response().headers()[header::WWW_AUTHENTICATE],
            "Bearer"
        );
        assert_eq!(forbidden_response().status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn configuration_errors() {
        let e = engine();
        assert!(matches!(
            BearerValidator::builder(e.clone())
                .trusted_issuer(
                    TrustedIssuer::new("https://idp.example.com/realms/r/").audience("a")
                )
                .build(),
            Err(BearerConfigError::DuplicateIssuer(_))
        ));
        assert!(matches!(
            BearerValidator::builder(e.clone())
                .trusted_issuer(TrustedIssuer::new("https://other.example.com"))
                .build(),
            Err(BearerConfigError::NoAudience(_))
        ));
        assert!(matches!(
            BearerValidator::builder(e.clone())
                .trusted_issuer(TrustedIssuer::new("ftp://x").audience("a"))
                .build(),
            Err(BearerConfigError::IssuerUrl(_))
        ));
        let v = BearerValidator::builder(e)
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

    #[test]
    fn claims_are_parsed_for_an_identity() {
        let c = BearerClaims::from_claims(
            json!({
                "iss": "i", "sub": "s", "azp": "nginx", "exp": 5,
                "email": "a@example.com", "preferred_username": "alice", "name": "Alice A",
                "groups": ["g1"], "scope": "openid email",
                "realm_access": {"roles": ["admin", "user"]},
                "resource_access": {"nginx": {"roles": ["editor"]}, "account": {"roles": ["view-profile"]}}
            })
            .as_object()
            .unwrap()
            .clone(),
            "groups",
        );
        let p = &c.principal;
        assert_eq!(p.subject, "s");
        assert_eq!(p.issuer(), Some("i"));
        assert_eq!(p.preferred_username.as_deref(), Some("alice"));
        assert_eq!(p.name.as_deref(), Some("Alice A"));
        assert_eq!(p.email.as_deref(), Some("a@example.com"));
        assert_eq!(p.realm_roles, ["admin", "user"]);
        assert!(p.client_roles.contains(&"nginx:editor".to_owned()));
        assert!(p.client_roles.contains(&"account:view-profile".to_owned()));
        assert_eq!(c.scopes, ["openid", "email"]);
        assert_eq!(c.authorized_party.as_deref(), Some("nginx"));
        assert_eq!(p.groups, ["g1"]);
        assert_eq!(c.expires_at, 5);
        assert!(crate::authz::Rule::client_role("nginx", "editor").allows(&c));
    }
}
