//! The engine: one `check` per request, for every transport.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::claims::{email_unverified, keycloak_roles, string_list};
use crate::config::Config;
use crate::cookies::CookieWriter;
use crate::decision::{Allow, Decision, Deny, DenyReason};
use crate::error::{ConfigError, LoginError, ProviderError, chain};
use crate::flow::Flows;
use crate::headers::{identity_headers, removal_list};
use crate::id_token::{self, Expected};
use crate::metrics::Metrics;
use crate::pages;
use crate::principal::Principal;
use crate::provider::{self, Provider, TokenResponse};
use crate::refresh::{self, Outcome, Refresher};
use crate::request;
use crate::session::Session;
use crate::session::cache::{Decoded, SessionCache};
use crate::session::cookie::{SessionCodec, SessionError};
use crate::store::{Down, Loaded, Store};
use crate::tokens::{AccessToken, IdToken, RefreshToken};

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    now()
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The engine's own endpoints under its proxy prefix (`<prefix>/<endpoint>`), answered by
/// [`Engine::check`] itself: what gateways must route to it (and the linter looks for).
pub const ENDPOINTS: &[&str] = &[
    CALLBACK,
    START,
    SIGN_IN,
    SIGN_OUT,
    USERINFO,
    AUTH,
    BACKCHANNEL_LOGOUT,
];
/// `<prefix>/callback`: the login's redirect URI.
pub const CALLBACK: &str = "callback";
/// `<prefix>/start`: starts a login.
pub const START: &str = "start";
/// `<prefix>/sign_in`: the sign-in page (or the provider, with `--skip-provider-button`).
pub const SIGN_IN: &str = "sign_in";
/// `<prefix>/sign_out`: ends the session.
pub const SIGN_OUT: &str = "sign_out";
/// `<prefix>/userinfo`: the signed-in user as JSON.
pub const USERINFO: &str = "userinfo";
/// `<prefix>/auth`: nginx `auth_request`.
pub const AUTH: &str = "auth";
/// `<prefix>/backchannel-logout`: the provider POSTs its logout token here, so gateways route
/// exactly that `POST` to the engine's server without ext_authz (a check carries no body).
pub const BACKCHANNEL_LOGOUT: &str = "backchannel-logout";

/// Paths of the engine's own routes, computed once from `--proxy-prefix`.
#[derive(Debug)]
struct Routes {
    prefix: String,
    backchannel: String,
    start: String,
    callback: String,
}

/// The OpenID Connect relying-party engine. Cheap to clone; share one per process.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    /// The configured issuer, shared by every session's [`Principal`].
    issuer: Arc<str>,
    http: reqwest::Client,
    provider: OnceLock<Provider>,
    sessions: SessionCodec,
    /// Decoded cookie sessions by their exact cookie bytes.
    decoded: SessionCache,
    flows: Flows,
    writer: CookieWriter,
    remove: &'static [&'static str],
    routes: Routes,
    refresher: Refresher,
    metrics: Metrics,
    store: Store,
}

/// Why a request has no usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unauthenticated {
    /// No session cookie at all.
    NoSession,
    /// A session cookie that was refused (tampered, expired, foreign).
    Invalid(SessionError),
}

impl Engine {
    /// Builds the engine. No network I/O happens here: call
    /// [`Engine::discover`] (or [`Engine::discover_until_ready`]) next.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let http =
            provider::http_client(config.http_timeout, &config.resolve, &config.provider_tls)
                .map_err(ConfigError::HttpClient)?;
        let prefix = config.proxy_prefix.clone();
        let metrics = Metrics::new(config.provider_tls.insecure_skip_verify);
        if config.provider_tls.insecure_skip_verify {
            tracing::warn!(
                issuer = %config.issuer,
                "ssl_insecure_skip_verify (--ssl-insecure-skip-verify) is set: the identity provider's TLS certificate is NOT verified; anyone on the path can impersonate it. For testing only: give its CA with provider_ca_files (--provider-ca-file) instead"
            );
        }
        let inner = Inner {
            sessions: SessionCodec::new(&config.cookie.name, &config.cookie_secrets),
            decoded: SessionCache::default(),
            flows: Flows::new(&config),
            writer: CookieWriter::new(config.cookie.clone()),
            remove: removal_list(&config),
            routes: Routes {
                backchannel: format!("{prefix}/{BACKCHANNEL_LOGOUT}"),
                start: format!("{prefix}/{START}"),
                callback: format!("{prefix}/{CALLBACK}"),
                prefix,
            },
            http,
            provider: OnceLock::new(),
            refresher: Refresher::default(),
            metrics,
            store: Store::new(&config),
            issuer: config.issuer.as_str().into(),
            config,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// `true` when `--ssl-insecure-skip-verify` is on (the provider's certificate
    /// is not verified).
    #[must_use]
    pub fn insecure_tls(&self) -> bool {
        self.inner.config.provider_tls.insecure_skip_verify
    }

    /// `true` once discovery has succeeded.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.inner.provider.get().is_some()
    }

    /// The session and revocation stores.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The path of the back-channel logout endpoint (`<prefix>/backchannel-logout`),
    /// which takes a POSTed `logout_token` (see [`Engine::backchannel_logout`]).
    #[must_use]
    pub fn backchannel_logout_path(&self) -> &str {
        &self.inner.routes.backchannel
    }

    /// The HTTP client used for the identity provider (discovery, JWKS, tokens).
    #[allow(dead_code)] // used by bearer-token validation
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The discovered provider, once ready.
    #[must_use]
    pub fn provider(&self) -> Option<&Provider> {
        self.inner.provider.get()
    }

    /// Runs discovery and fetches the JWKS once. Idempotent.
    pub async fn discover(&self) -> Result<(), ProviderError> {
        if self.is_ready() {
            return Ok(());
        }
        let c = &self.inner.config;
        let p =
            Provider::discover(self.inner.http.clone(), &c.issuer, c.jwks_refetch_interval).await?;
        tracing::info!(issuer = %p.endpoints().issuer, "identity provider discovered");
        let _ = self.inner.provider.set(p);
        Ok(())
    }

    /// Retries discovery with backoff (1 s doubling to 30 s) until it succeeds,
    /// logging each failure. Existing sessions are served meanwhile.
    pub async fn discover_until_ready(&self) {
        let mut delay = Duration::from_secs(1);
        loop {
            match self.discover().await {
                Ok(()) => return,
                Err(e) => {
                    self.inner.metrics.idp_errors.fetch_add(1, Relaxed);
                    if e.is_certificate_error() {
                        tracing::error!(issuer = %self.inner.config.issuer, error = %chain(&e), retry_in_s = delay.as_secs(), "OIDC discovery failed: the identity provider's TLS certificate is not trusted; give the CA that signs it with provider_ca_files (the adapter's --provider-ca-file; for testing only, ssl_insecure_skip_verify, the adapter's --ssl-insecure-skip-verify)");
                    } else {
                        tracing::error!(issuer = %self.inner.config.issuer, error = %chain(&e), retry_in_s = delay.as_secs(), "OIDC discovery failed");
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// `true` when the request needs no login: a `--skip-auth-route` or
    /// `--skip-auth-regex` rule matches its (decoded) path, or it is a CORS
    /// preflight and `--skip-auth-preflight` is on. Transports then let it
    /// through with every identity header removed ([`crate::headers::all_identity`]).
    #[must_use]
    pub fn skips_auth(&self, parts: &Parts) -> bool {
        let c = &self.inner.config;
        if parts
            .uri
            .path()
            .starts_with(self.inner.routes.prefix.as_str())
        {
            return false;
        }
        (c.skip_auth_preflight && crate::skip_auth::is_preflight(parts))
            || (!c.skip_auth.is_empty() && c.skip_auth.matches_request(parts))
    }

    /// Reads and checks a cookie-store session from the request. No I/O; with
    /// the Redis store (or revocations) use [`Engine::check`], which consults them.
    pub fn authenticate(&self, parts: &Parts) -> Result<Session, Unauthenticated> {
        match self.inner.sessions.read(&parts.headers, now()) {
            Ok(Some(s)) => Ok(self.adopt(s)),
            Ok(None) => Err(Unauthenticated::NoSession),
            Err(e) => Err(Unauthenticated::Invalid(e)),
        }
    }

    /// Decides what to do with a request: allow it with identity headers, or
    /// answer it (login redirect, 401, 403, or one of the engine's routes under
    /// the proxy prefix: start, callback, sign_in, sign_out, auth, userinfo).
    pub async fn check(&self, parts: &Parts) -> Decision {
        let started = Instant::now();
        let decision = self.decide(parts).await;
        self.inner.metrics.record(&decision, started.elapsed());
        decision
    }

    async fn decide(&self, parts: &Parts) -> Decision {
        if let Some(rest) = self.own_route(parts) {
            return match rest.strip_prefix('/') {
                Some(START) => self.start(parts),
                // Rare and deep: boxed so the per-request future stays small.
                Some(CALLBACK) => Box::pin(self.callback(parts)).await,
                Some(SIGN_IN) => self.sign_in(parts),
                Some(SIGN_OUT) => self.sign_out(parts).await,
                Some(AUTH) => self.auth_endpoint(parts).await,
                Some(USERINFO) => self.userinfo(parts).await,
                Some(BACKCHANNEL_LOGOUT) => self.backchannel_logout_check(parts),
                _ => deny(
                    DenyReason::Endpoint,
                    pages::json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
                ),
            };
        }
        self.protect(parts).await
    }

    async fn protect(&self, parts: &Parts) -> Decision {
        let now = now();
        let current = match self.load(parts, now).await {
            Ok(current) => current,
            Err(LoadFailure::Unauthenticated(why)) => return self.unauthenticated(parts, why),
            Err(LoadFailure::Down) => return store_unavailable(parts),
        };
        if !self.needs_refresh(&current.decoded.session, now) {
            return self.allow_decoded(parts, &current.decoded);
        }
        // Rare and deep: boxed so the per-request future stays small.
        Box::pin(self.refresh_and_allow(parts, current, now)).await
    }

    /// A cookie-store session from the request's session cookie(s): from the
    /// cache when these exact cookie bytes were decoded before, else decrypted,
    /// parsed and cached. Expiry is checked on every call, cached or not.
    fn cookie_session(&self, parts: &Parts, now: u64) -> Result<Arc<Decoded>, Unauthenticated> {
        let sessions = &self.inner.sessions;
        let presented = sessions
            .find(&parts.headers)
            .map_err(Unauthenticated::Invalid)?
            .ok_or(Unauthenticated::NoSession)?;
        let cache = &self.inner.decoded;
        let probe = cache.probe(&presented);
        if let Some(hit) = cache.get(&probe) {
            if hit.session.is_expired(now) {
                return Err(Unauthenticated::Invalid(SessionError::Expired));
            }
            return Ok(hit);
        }
        let session = sessions
            .open(&presented)
            .and_then(|plain| sessions.decode(&plain, now))
            .map_err(Unauthenticated::Invalid)?;
        let session = self.adopt(session);
        let headers = identity_headers(&self.inner.config, &session);
        Ok(cache.insert(&probe, Decoded::new(session, headers)))
    }

    /// The request's session: from the cookie, or from Redis by the cookie's
    /// ticket; revoked sessions (back-channel logout) are refused.
    async fn load(&self, parts: &Parts, now: u64) -> Result<Current, LoadFailure> {
        use LoadFailure::Unauthenticated as Unauth;
        let store = &self.inner.store;
        if store.tickets() {
            let raw = self
                .inner
                .sessions
                .read_raw(&parts.headers)
                .map_err(|e| Unauth(Unauthenticated::Invalid(e)))?
                .ok_or(Unauth(Unauthenticated::NoSession))?;
            let ticket = String::from_utf8(raw)
                .map_err(|_| Unauth(Unauthenticated::Invalid(SessionError::Format)))?;
            return match store.load_ticket(&ticket).await {
                Ok(Some(session)) if !session.is_expired(now) => {
                    let session = self.adopt(session);
                    let headers = identity_headers(&self.inner.config, &session);
                    Ok(Current {
                        decoded: Arc::new(Decoded::new(session, headers)),
                        ticket: Some(ticket),
                    })
                }
                Ok(_) => Err(Unauth(Unauthenticated::Invalid(SessionError::Expired))),
                Err(Down) => Err(LoadFailure::Down),
            };
        }
        let decoded = self.cookie_session(parts, now).map_err(Unauth)?;
        match store.is_revoked(&decoded.session).await {
            Ok(false) => Ok(Current {
                decoded,
                ticket: None,
            }),
            Ok(true) => Err(Unauth(Unauthenticated::Invalid(SessionError::Revoked))),
            Err(Down) => Err(LoadFailure::Down),
        }
    }

    /// `Set-Cookie` values for a new or refreshed session: the session itself
    /// (cookie store) or its ticket, after saving it in Redis.
    async fn store_session(
        &self,
        parts: &Parts,
        session: &Session,
        ticket: Option<&str>,
        now: u64,
    ) -> Result<Vec<HeaderValue>, Down> {
        let host = self.host(parts);
        let max_age = Duration::from_secs(session.expires_at.saturating_sub(now));
        if self.inner.store.tickets() {
            let ticket = self.inner.store.save(ticket, session, now).await?;
            return Ok(self.inner.sessions.write_raw(
                ticket.as_bytes(),
                &parts.headers,
                &self.inner.writer,
                host,
                max_age,
            ));
        }
        let minimal;
        let session = if self.inner.config.minimal_session {
            minimal = Session {
                id_token: None,
                access_token: None,
                refresh_token: None,
                ..session.clone()
            };
            &minimal
        } else {
            session
        };
        Ok(self
            .inner
            .sessions
            .write(session, &parts.headers, &self.inner.writer, host, max_age))
    }

    fn allow_if_permitted(
        &self,
        parts: &Parts,
        session: Arc<Session>,
        response_headers: HeaderMap,
    ) -> Decision {
        let upstream_headers = identity_headers(&self.inner.config, &session);
        self.allow_with(
            parts,
            Allow {
                session: Some(session),
                upstream_headers,
                headers_to_remove: self.inner.remove,
                response_headers,
                bearer: None,
            },
        )
    }

    /// Decides a request that carries `Authorization: Bearer <token>` (oauth2-proxy's
    /// `--skip-jwt-bearer-tokens`); `None` when it carries none, or asks for one of the
    /// engine's own routes (then use [`Engine::check`]).
    ///
    /// The token is validated by `validator` (built from this engine) and cached while
    /// unexpired; its user is held to the same email, group, role and
    /// `--authorization-rule` checks as a session. A refused token gets
    /// [`BearerError::response`](crate::bearer::BearerError::response) (401, or 503 when its
    /// issuer cannot be reached); no session cookie is read or written.
    pub async fn check_bearer(
        &self,
        validator: &crate::bearer::BearerValidator,
        parts: &Parts,
    ) -> Option<Decision> {
        if self.own_route(parts).is_some() {
            return None;
        }
        let started = Instant::now();
        // `None` (no bearer token) returns; a malformed `Authorization: Bearer` is refused.
        let identity = match crate::bearer::token_from_headers(&parts.headers).transpose()? {
            Ok(token) => validator.identity(token, now()).await,
            Err(e) => Err(e),
        };
        let decision = match identity {
            Ok((upstream_headers, claims)) => self.allow_with(
                parts,
                Allow {
                    session: None,
                    upstream_headers,
                    headers_to_remove: self.inner.remove,
                    response_headers: HeaderMap::new(),
                    bearer: Some(claims),
                },
            ),
            Err(e) => {
                tracing::info!(reason = %e, path = parts.uri.path(), "bearer token refused");
                deny(DenyReason::Unauthenticated, e.response())
            }
        };
        self.inner.metrics.record(&decision, started.elapsed());
        Some(decision)
    }

    /// The client headers every allowed request must lose (identity headers this engine
    /// does not set, in every spelling): what [`Allow::headers_to_remove`] holds.
    #[must_use]
    pub fn headers_to_remove(&self) -> &'static [&'static str] {
        self.inner.remove
    }

    /// `true` for the engine's own routes (`<prefix>`, `<prefix>/...`), which
    /// [`Engine::check`] answers itself.
    #[must_use]
    pub fn is_own_route(&self, parts: &Parts) -> bool {
        self.own_route(parts).is_some()
    }

    /// `true` when the request carries the session cookie (whole or in chunks), readable
    /// or not: what a transport's fast path for public routes must hand to the engine.
    /// Reads the `Cookie` headers only; allocates nothing.
    #[must_use]
    pub fn has_session_cookie(&self, headers: &HeaderMap) -> bool {
        !matches!(self.inner.sessions.find(headers), Ok(None))
    }

    /// For `<prefix>` and `<prefix>/...` (the engine's own routes), the rest of the path.
    fn own_route<'p>(&self, parts: &'p Parts) -> Option<&'p str> {
        parts
            .uri
            .path()
            .strip_prefix(self.inner.routes.prefix.as_str())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Allows a decoded session, with its precomputed identity headers.
    fn allow_decoded(&self, parts: &Parts, decoded: &Decoded) -> Decision {
        self.allow_with(
            parts,
            Allow {
                session: Some(Arc::clone(&decoded.session)),
                upstream_headers: decoded.headers.clone(),
                headers_to_remove: self.inner.remove,
                response_headers: HeaderMap::new(),
                bearer: None,
            },
        )
    }

    /// `allow` (a session's or a bearer token's) unless the email rule,
    /// `--allowed-group`/`--allowed-role` or a route rule refuses its principal.
    fn allow_with(&self, parts: &Parts, allow: Allow) -> Decision {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let who = allow.principal();
        if let Some(missing) = self.refusal(parts, who, Some(target)) {
            return self.forbidden(parts, who, missing);
        }
        Decision::Allow(Box::new(allow))
    }

    /// A session read from a cookie or the store, with the engine's issuer: what the
    /// serialised form leaves out.
    fn adopt(&self, mut session: Session) -> Session {
        session.principal.issuer = Some(Arc::clone(&self.inner.issuer));
        session
    }

    /// Refresh when the access token is about to expire or `--cookie-refresh` has passed.
    fn needs_refresh(&self, s: &Session, now: u64) -> bool {
        if s.refresh_token.is_none() {
            return false;
        }
        let access_due = s
            .access_expires_at
            .is_some_and(|t| now + refresh::MARGIN_SECS >= t);
        let age_due = self
            .inner
            .config
            .cookie
            .refresh
            .is_some_and(|every| now >= s.refreshed_at.max(s.created_at) + every.as_secs());
        access_due || age_due
    }

    /// `Set-Cookie` values that store `session` in this engine's session
    /// cookie(s), for a request to `host`. For custom logins, tests and benchmarks.
    #[must_use]
    pub fn session_cookies(&self, session: &Session, host: Option<&str>) -> Vec<HeaderValue> {
        let max_age = Duration::from_secs(session.expires_at.saturating_sub(now()));
        self.inner.sessions.write(
            session,
            &HeaderMap::new(),
            &self.inner.writer,
            host,
            max_age,
        )
    }

    /// How many refresh-token grants this engine has sent to the provider.
    #[must_use]
    pub fn refresh_count(&self) -> u64 {
        self.inner.metrics.refreshes()
    }

    /// The engine's counters and latency histogram.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        if let Some(p) = self.inner.provider.get() {
            let fetches = p.jwks.fetches.load(Relaxed);
            self.inner.metrics.jwks_fetches.store(fetches, Relaxed);
        }
        &self.inner.metrics
    }

    async fn refresh_and_allow(&self, parts: &Parts, current: Current, now: u64) -> Decision {
        let (Some(provider), Some(rt)) = (
            self.inner.provider.get(),
            current.decoded.session.refresh_token.as_ref(),
        ) else {
            // Provider not discovered yet (e.g. after a restart during an outage): keep the session.
            return self.allow_decoded(parts, &current.decoded);
        };
        let loaded = Loaded {
            session: Session::clone(&current.decoded.session),
            ticket: current.ticket.clone(),
        };
        let session = &loaded.session;
        let key = refresh::key(rt);
        let outcome = self
            .inner
            .refresher
            .run(key, || async {
                let refresh = self.refresh_session(provider, session, rt);
                let outcome = self
                    .inner
                    .store
                    .refresh_once(&key, rt.expose(), &loaded, refresh)
                    .await;
                // Another replica's result comes from the store, without our issuer.
                match outcome {
                    Outcome::Refreshed(mut fresh) if fresh.principal.issuer.is_none() => {
                        Arc::make_mut(&mut fresh).principal.issuer =
                            Some(Arc::clone(&self.inner.issuer));
                        Outcome::Refreshed(fresh)
                    }
                    outcome => outcome,
                }
            })
            .await;
        match outcome {
            Outcome::Refreshed(fresh) => {
                let mut headers = HeaderMap::new();
                // In Redis the ticket stays the same: the cookie need not change.
                if !self.inner.store.tickets() {
                    match self
                        .store_session(parts, &fresh, loaded.ticket.as_deref(), now)
                        .await
                    {
                        Ok(cookies) => {
                            for c in cookies {
                                headers.append(header::SET_COOKIE, c);
                            }
                        }
                        Err(Down) => return store_unavailable(parts),
                    }
                }
                self.allow_if_permitted(parts, fresh, headers)
            }
            Outcome::Ended => {
                self.unauthenticated(parts, Unauthenticated::Invalid(SessionError::Expired))
            }
            Outcome::StoreDown => store_unavailable(parts),
            Outcome::Unavailable => {
                if session.refresh_expires_at.is_some_and(|t| now >= t) {
                    return self
                        .unauthenticated(parts, Unauthenticated::Invalid(SessionError::Expired));
                }
                // A brief provider outage must not log anyone out.
                self.allow_decoded(parts, &current.decoded)
            }
        }
    }

    async fn refresh_session(
        &self,
        provider: &Provider,
        old: &Session,
        refresh_token: &RefreshToken,
    ) -> Outcome {
        let c = &self.inner.config;
        self.inner.metrics.refreshes.fetch_add(1, Relaxed);
        let tokens = match provider.refresh(c, refresh_token).await {
            Ok(t) => t,
            Err(e) if e.is_invalid_grant() => {
                self.inner.metrics.refresh_failures.fetch_add(1, Relaxed);
                tracing::info!(sub = %old.principal.subject, error = %chain(&e), "refresh refused by the provider; session ended");
                return Outcome::Ended;
            }
            Err(e) => {
                self.inner.metrics.refresh_failures.fetch_add(1, Relaxed);
                self.inner.metrics.idp_errors.fetch_add(1, Relaxed);
                tracing::warn!(sub = %old.principal.subject, error = %chain(&e), "refresh failed; keeping the session for now");
                return Outcome::Unavailable;
            }
        };
        let now = now();
        let claims = match tokens.id_token.as_ref().map(IdToken::expose) {
            Some(id_token) => {
                let expected = Expected {
                    nonce: None,
                    access_token: tokens.access_token.as_ref().map(AccessToken::expose),
                    now,
                };
                match id_token::validate(id_token, provider, c, expected).await {
                    Ok(claims)
                        if claims.get("sub").and_then(Value::as_str)
                            == Some(old.principal.subject.as_str()) =>
                    {
                        claims
                    }
                    Ok(_) => {
                        tracing::warn!(sub = %old.principal.subject, "refreshed ID token names another subject; session ended");
                        return Outcome::Ended;
                    }
                    Err(e) => {
                        tracing::warn!(sub = %old.principal.subject, error = %chain(&e), "refreshed ID token refused; session ended");
                        return Outcome::Ended;
                    }
                }
            }
            None => Map::new(),
        };
        // The login's email rule holds at every refresh: a provider account whose address
        // changed to an unverified one, or to one the email rules refuse, signs in again
        // (and is judged) instead of carrying the new address upstream.
        if email_unverified(&claims) && !c.allow_unverified_email {
            tracing::warn!(sub = %old.principal.subject, "refreshed ID token has an unverified email; session ended");
            return Outcome::Ended;
        }
        let mut fresh = build_session(c, &self.inner.issuer, &claims, tokens, now);
        // Claims the refresh response did not repeat stay as they were.
        let (new, was) = (&mut fresh.principal, &old.principal);
        new.subject.clone_from(&was.subject);
        if claims.is_empty() {
            new.email.clone_from(&was.email);
            new.preferred_username.clone_from(&was.preferred_username);
            new.name.clone_from(&was.name);
            if new.groups.is_empty() {
                new.groups.clone_from(&was.groups);
            }
            fresh.sid.clone_from(&old.sid);
        }
        if fresh.id_token.is_none() {
            fresh.id_token.clone_from(&old.id_token);
        }
        if fresh.refresh_token.is_none() {
            fresh.refresh_token.clone_from(&old.refresh_token);
            fresh.refresh_expires_at = old.refresh_expires_at;
        }
        fresh.created_at = old.created_at;
        fresh.expires_at = old.expires_at;
        if fresh.principal.email != old.principal.email && !self.email_allowed(&fresh.principal) {
            tracing::warn!(sub = %old.principal.subject, "refreshed ID token has an email the email rules refuse; session ended");
            return Outcome::Ended;
        }
        tracing::info!(sub = %fresh.principal.subject, "session refreshed");
        Outcome::Refreshed(Arc::new(fresh))
    }

    /// 403 for a signed-in user.
    fn forbidden(&self, parts: &Parts, who: &Principal, missing: Missing<'_>) -> Decision {
        deny(
            DenyReason::Forbidden,
            self.forbidden_page(parts, who, missing),
        )
    }

    /// The 403 page, naming what is missing (never the user's claims).
    fn forbidden_page(
        &self,
        parts: &Parts,
        who: &Principal,
        missing: Missing<'_>,
    ) -> Response<Bytes> {
        let needs = match missing {
            Missing::Email => "an allowed email address".to_owned(),
            Missing::Rule(rule) => rule.to_string(),
        };
        tracing::info!(
            sub = %who.subject,
            path = parts.uri.path(),
            needs = %needs,
            "signed-in user refused"
        );
        crate::authz::forbidden_needing(parts, &needs)
    }

    /// The host the browser used, for URLs (`X-Forwarded-Host` only with `--reverse-proxy`,
    /// from a `--trusted-proxy-ip`).
    fn host<'p>(&self, parts: &'p Parts) -> Option<&'p str> {
        request::public_host(parts, &self.inner.config.trusted_proxies)
    }

    /// The scheme the browser used (`X-Forwarded-Proto` only from a `--trusted-proxy-ip`).
    fn scheme(&self, parts: &Parts) -> &'static str {
        request::public_scheme(parts, &self.inner.config.trusted_proxies)
    }

    fn unauthenticated(&self, parts: &Parts, why: Unauthenticated) -> Decision {
        if let Unauthenticated::Invalid(e) = why {
            tracing::info!(reason = %e, path = parts.uri.path(), "session cookie refused");
        }
        let mut decision = if request::is_navigation(parts) {
            let rd = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            if self.inner.config.skip_provider_button {
                self.login_redirect(parts, rd)
            } else {
                let start = self.start_url(rd);
                deny(
                    DenyReason::Unauthenticated,
                    pages::sign_in(StatusCode::UNAUTHORIZED, &start),
                )
            }
        } else {
            let mut r =
                pages::json_error(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            deny(DenyReason::Unauthenticated, r)
        };
        // Drop a refused session cookie so the browser stops sending it.
        if matches!(why, Unauthenticated::Invalid(_))
            && let Decision::Deny(d) = &mut decision
        {
            let host = self.host(parts);
            for v in self
                .inner
                .sessions
                .clear(&parts.headers, &self.inner.writer, host)
            {
                d.response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        decision
    }

    fn start_url(&self, rd: &str) -> String {
        let mut s = self.inner.routes.start.clone();
        s.push_str("?rd=");
        s.extend(url::form_urlencoded::byte_serialize(rd.as_bytes()));
        s
    }

    /// The callback URL for this request: `--redirect-url`, or derived from the request.
    fn redirect_uri(&self, parts: &Parts) -> String {
        if let Some(u) = &self.inner.config.redirect_url {
            return u.to_string();
        }
        let scheme = self.scheme(parts);
        let host = self.host(parts).unwrap_or("localhost");
        format!("{scheme}://{host}{}", self.inner.routes.callback)
    }

    /// A validated return target, or `/`.
    fn safe_rd<'a>(&self, rd: Option<&'a str>) -> &'a str {
        rd.and_then(|rd| self.inner.config.redirects.validate(rd))
            .unwrap_or("/")
    }

    fn start(&self, parts: &Parts) -> Decision {
        let rd = request::query_param(parts, "rd");
        let rd = self.safe_rd(rd.as_deref()).to_owned();
        self.login_redirect(parts, &rd)
    }

    fn login_redirect(&self, parts: &Parts, return_to: &str) -> Decision {
        let Some(provider) = self.inner.provider.get() else {
            return unavailable();
        };
        let host = self.host(parts);
        let started = self.inner.flows.start(
            &self.inner.config,
            &provider.endpoints().authorization,
            &self.redirect_uri(parts),
            return_to,
            &parts.headers,
            &self.inner.writer,
            host,
            now(),
        );
        let mut r = pages::redirect(started.authorize_url.as_str());
        for c in started.set_cookies {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        deny(DenyReason::Unauthenticated, r)
    }

    fn sign_in(&self, parts: &Parts) -> Decision {
        let rd = request::query_param(parts, "rd");
        let rd = self.safe_rd(rd.as_deref()).to_owned();
        if self.inner.config.skip_provider_button {
            return self.login_redirect(parts, &rd);
        }
        deny(
            DenyReason::Endpoint,
            pages::sign_in(StatusCode::OK, &self.start_url(&rd)),
        )
    }

    async fn callback(&self, parts: &Parts) -> Decision {
        let mut clear_flow = None;
        let result = self.finish_login(parts, &mut clear_flow).await;
        let mut response = match result {
            Ok((session, return_to)) => {
                match self.store_session(parts, &session, None, now()).await {
                    Ok(cookies) => {
                        self.inner.metrics.logins.fetch_add(1, Relaxed);
                        tracing::info!(sub = %session.principal.subject, email = session.principal.email.as_deref().unwrap_or(""), "login succeeded");
                        let mut r = pages::redirect(self.safe_rd(Some(&return_to)));
                        for c in cookies {
                            r.headers_mut().append(header::SET_COOKIE, c);
                        }
                        r
                    }
                    Err(Down) => unavailable_page(
                        "The session store cannot be reached right now. Please try again in a moment.",
                    ),
                }
            }
            Err(e) => {
                if matches!(e, LoginError::Exchange(_)) {
                    self.inner.metrics.idp_errors.fetch_add(1, Relaxed);
                }
                tracing::warn!(error = %chain(&e), "login refused; no session created");
                login_error_page(&e, &self.start_url("/"))
            }
        };
        if let Some(c) = clear_flow {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
        let reason = if response.status() == StatusCode::FOUND {
            DenyReason::Endpoint
        } else {
            DenyReason::LoginFailed
        };
        deny(reason, response)
    }

    async fn finish_login(
        &self,
        parts: &Parts,
        clear_flow: &mut Option<HeaderValue>,
    ) -> Result<(Session, String), LoginError> {
        let c = &self.inner.config;
        if let Some(err) = request::query_param(parts, "error") {
            let err: String = err
                .chars()
                .filter(|ch| ch.is_ascii_graphic())
                .take(64)
                .collect();
            return Err(LoginError::Provider(err));
        }
        let state =
            request::query_param(parts, "state").ok_or(LoginError::MissingParameter("state"))?;
        let code =
            request::query_param(parts, "code").ok_or(LoginError::MissingParameter("code"))?;
        let now = now();
        let (flow, clear) = self.inner.flows.take(
            &parts.headers,
            &state,
            c,
            &self.inner.writer,
            self.host(parts),
            now,
        )?;
        *clear_flow = Some(clear);
        let provider = self.inner.provider.get().ok_or(LoginError::NotReady)?;
        let tokens = provider
            .exchange_code(c, &code, &flow.redirect_uri, &flow.verifier)
            .await
            .map_err(LoginError::Exchange)?;
        // The tokens were issued during the exchange: judge them by the clock after it.
        let now = self::now();
        let id_token = tokens
            .id_token
            .as_ref()
            .map(IdToken::expose)
            .ok_or(LoginError::NoIdToken)?;
        let claims = id_token::validate(
            id_token,
            provider,
            c,
            Expected {
                nonce: (!c.skip_nonce).then_some(flow.nonce.as_str()),
                access_token: tokens.access_token.as_ref().map(AccessToken::expose),
                now,
            },
        )
        .await?;
        if email_unverified(&claims) && !c.allow_unverified_email {
            return Err(LoginError::EmailNotVerified);
        }
        let session = build_session(c, &self.inner.issuer, &claims, tokens, now);
        Ok((session, flow.return_to))
    }

    /// Clears the session cookies and redirects to a validated `rd` (or `/`).
    /// With RP-initiated logout on, the redirect goes to the provider's
    /// `end_session_endpoint` first, with `id_token_hint` and the absolute
    /// `rd` as `post_logout_redirect_uri` (Keycloak 18+ needs both).
    async fn sign_out(&self, parts: &Parts) -> Decision {
        let rd = request::query_param(parts, "rd");
        let target = self.safe_rd(rd.as_deref());
        let loaded = self.load(parts, now()).await.ok();
        if let Some(ticket) = loaded.as_ref().and_then(|l| l.ticket.as_deref()) {
            self.inner.store.delete(ticket).await;
        }
        let location = loaded
            .as_ref()
            .and_then(|l| self.provider_logout_url(parts, &l.decoded.session, target))
            .unwrap_or_else(|| target.to_owned());
        let mut r = pages::redirect(&location);
        let host = self.host(parts);
        for c in self
            .inner
            .sessions
            .clear(&parts.headers, &self.inner.writer, host)
        {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        deny(DenyReason::Endpoint, r)
    }

    fn provider_logout_url(
        &self,
        parts: &Parts,
        session: &Session,
        target: &str,
    ) -> Option<String> {
        if !self.inner.config.rp_initiated_logout {
            return None;
        }
        let end_session = self
            .inner
            .provider
            .get()?
            .endpoints()
            .end_session
            .as_ref()?;
        let id_token = session.id_token.as_ref()?.expose();
        let post_logout = if target.starts_with('/') {
            let scheme = self.scheme(parts);
            format!("{scheme}://{}{target}", self.host(parts)?)
        } else {
            target.to_owned()
        };
        let mut url = end_session.clone();
        url.query_pairs_mut()
            .append_pair("id_token_hint", id_token)
            .append_pair("post_logout_redirect_uri", &post_logout)
            .append_pair("client_id", &self.inner.config.client_id);
        Some(url.into())
    }

    /// nginx `auth_request`: 202 with identity headers, 401, or 403.
    ///
    /// The request being authorized is named by a trusted proxy's `X-Forwarded-Uri`;
    /// without one, every `--authorization-rule` with a path applies.
    async fn auth_endpoint(&self, parts: &Parts) -> Decision {
        let target = request::forwarded_uri(parts, &self.inner.config.trusted_proxies);
        let response = match self.load(parts, now()).await.map(|l| l.decoded) {
            Err(LoadFailure::Down) => return store_unavailable(parts),
            Ok(d) => match self.refusal(parts, &d.session.principal, target) {
                None => {
                    let mut r = Response::new(Bytes::new());
                    *r.status_mut() = StatusCode::ACCEPTED;
                    *r.headers_mut() = d.headers.clone();
                    r
                }
                Some(missing) => self.forbidden_page(parts, &d.session.principal, missing),
            },
            Err(_) => pages::json_error(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first"),
        };
        deny(DenyReason::Endpoint, response)
    }

    async fn userinfo(&self, parts: &Parts) -> Decision {
        let response = match self.load(parts, now()).await.map(|l| l.decoded) {
            Err(LoadFailure::Down) => return store_unavailable(parts),
            Ok(d) => pages::json(
                StatusCode::OK,
                &json!({
                    "user": d.session.user(),
                    "email": d.session.principal.email,
                    "preferredUsername": d.session.principal.preferred_username,
                    "groups": d.session.principal.groups,
                }),
            ),
            Err(_) => pages::json_error(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first"),
        };
        deny(DenyReason::Endpoint, response)
    }

    /// What refuses this signed-in user, if anything: the email rules, then
    /// `--allowed-group`/`--allowed-role`, then every `--authorization-rule` that applies
    /// to the request's host and `target` (`None`: unknown, so every path rule applies).
    fn refusal<'a>(
        &'a self,
        parts: &Parts,
        who: &Principal,
        target: Option<&str>,
    ) -> Option<Missing<'a>> {
        let c = &self.inner.config;
        if !self.email_allowed(who) {
            return Some(Missing::Email);
        }
        if !c.authorization.allows(who) {
            return Some(Missing::Rule(&c.authorization));
        }
        if c.authorization_rules.is_empty() {
            return None;
        }
        // The host Envoy routed by, never X-Forwarded-Host (a client writes that one).
        c.authorization_rules
            .refusing(request::routed_host(parts), target, who)
            .map(Missing::Rule)
    }

    /// `--email-domain`: `*` allows any; otherwise the address must have exactly
    /// one `@` and its domain must equal an entry (a leading `.` allows subdomains).
    fn email_allowed(&self, who: &Principal) -> bool {
        let domains = &self.inner.config.email_domains;
        if domains.iter().any(|d| d == "*") {
            return true;
        }
        let Some(email) = who.email.as_deref() else {
            return false;
        };
        let listed = &self.inner.config.authenticated_emails;
        if !listed.is_empty() && listed.iter().any(|e| e.eq_ignore_ascii_case(email)) {
            return true;
        }
        let mut parts = email.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        if local.is_empty() || domain.is_empty() {
            return false;
        }
        domains.iter().any(|d| match d.strip_prefix('.') {
            Some(parent) => {
                domain.len() > parent.len() + 1
                    && domain
                        .to_ascii_lowercase()
                        .ends_with(&format!(".{}", parent.to_ascii_lowercase()))
            }
            None => domain.eq_ignore_ascii_case(d),
        })
    }
}

fn deny(reason: DenyReason, response: Response<Bytes>) -> Decision {
    Decision::Deny(Box::new(Deny { reason, response }))
}

/// The request's session, decoded, with its identity headers.
struct Current {
    decoded: Arc<Decoded>,
    /// The Redis ticket (encoded) when the session lives in Redis.
    ticket: Option<String>,
}

/// Why no session could be loaded.
/// What a signed-in user lacks (the 403 names it).
#[derive(Clone, Copy)]
enum Missing<'a> {
    /// `--email-domain` / `--authenticated-emails-file`.
    Email,
    /// `--allowed-group`/`--allowed-role`, or an `--authorization-rule`.
    Rule(&'a crate::authz::Rule),
}

enum LoadFailure {
    Unauthenticated(Unauthenticated),
    /// The session store is down: fail closed.
    Down,
}

fn unavailable_page(message: &str) -> Response<Bytes> {
    pages::html(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        &format!("<p>{}</p>", pages::escape_html(message)),
    )
}

/// The session store is unreachable: 503, never an allow.
fn store_unavailable(parts: &Parts) -> Decision {
    let response = if request::is_navigation(parts) {
        unavailable_page(
            "The session store cannot be reached right now. Please try again in a moment.",
        )
    } else {
        pages::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the session store cannot be reached",
        )
    };
    deny(DenyReason::Unavailable, response)
}

fn unavailable() -> Decision {
    deny(
        DenyReason::Unavailable,
        pages::html(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "<p>The identity provider cannot be reached right now. Please try again in a moment.</p>",
        ),
    )
}

fn login_error_page(e: &LoginError, retry: &str) -> Response<Bytes> {
    let status = match e {
        LoginError::Exchange(p) if !p.is_invalid_grant() => StatusCode::BAD_GATEWAY,
        LoginError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        LoginError::MissingParameter(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    pages::html(
        status,
        "Sign-in failed",
        &format!(
            "<p>{}.</p><p><a href=\"{}\">Sign in again</a></p>",
            pages::escape_html(&e.to_string()),
            pages::escape_html(retry)
        ),
    )
}

fn build_session(
    c: &Config,
    issuer: &Arc<str>,
    claims: &Map<String, Value>,
    tokens: TokenResponse,
    now: u64,
) -> Session {
    let get = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    // Not verified: the access token came straight from the token endpoint over the back
    // channel, and only groups and roles are read from it.
    let access = tokens
        .access_token
        .as_ref()
        .and_then(|t| crate::jwt::claims_unverified(t.expose()));
    let mut groups = string_list(claims.get(&c.groups_claim));
    if groups.is_empty()
        && let Some(a) = &access
    {
        groups = string_list(a.get(&c.groups_claim));
    }
    let (realm_roles, client_roles) = access.as_ref().map(keycloak_roles).unwrap_or_default();
    Session {
        principal: Principal {
            subject: get("sub").unwrap_or_default(),
            email: get("email"),
            preferred_username: get("preferred_username"),
            name: get("name"),
            groups,
            realm_roles,
            client_roles,
            issuer: Some(Arc::clone(issuer)),
        },
        sid: get("sid"),
        id_token: tokens.id_token,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        created_at: now,
        expires_at: now + c.cookie.expire.as_secs(),
        access_expires_at: tokens.expires_in.map(|s| now + s),
        refresh_expires_at: tokens
            .refresh_expires_in
            .filter(|s| *s > 0)
            .map(|s| now + s),
        refreshed_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn engine() -> Engine {
        let config = Config::builder("https://idp.example.com/realms/test", "nginx")
            .cookie_secret("0123456789abcdef0123456789abcdef")
            .set_xauthrequest(true)
            .set_authorization_header(true)
            .email_domains(vec!["*".into()])
            .build()
            .unwrap();
        Engine::new(config).unwrap()
    }

    fn session(subject: &str, sid: &str, token_len: usize, now: u64) -> Session {
        Session {
            principal: Principal {
                email: Some(format!("{subject}@example.com")),
                ..Principal::new(subject)
            },
            sid: Some(sid.into()),
            id_token: Some(IdToken::new("i".repeat(token_len))),
            created_at: now,
            refreshed_at: now,
            expires_at: now + 100,
            ..Session::default()
        }
    }

    /// The `(name, value)` pairs a browser sends back for these `Set-Cookie` values.
    fn pairs(set: &[HeaderValue]) -> Vec<(String, String)> {
        set.iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next())
            .filter_map(|p| p.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    fn request(pairs: &[(String, String)]) -> Parts {
        let cookie: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        Request::get("/")
            .header(header::HOST, "app.example.com")
            .header(header::COOKIE, cookie.join("; "))
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    async fn subject(e: &Engine, parts: &Parts, now: u64) -> Result<String, Unauthenticated> {
        match e.load(parts, now).await {
            Ok(c) => Ok(c.decoded.session.principal.subject.clone()),
            Err(LoadFailure::Unauthenticated(u)) => Err(u),
            Err(LoadFailure::Down) => panic!("no store to be down"),
        }
    }

    fn cached(e: &Engine) -> usize {
        e.inner.decoded.len()
    }

    #[test]
    fn session_cookie_detection() {
        let e = engine();
        let name = e.config().cookie().name.clone();
        for (cookie, expected) in [
            (format!("{name}=x"), true),
            (format!("a=b; {name}=x"), true),
            (format!("a=b;{name}_0=x; {name}_1=y"), true),
            (format!("{name}_csrf_abc=x"), false),
            (format!("{name}_=x"), false),
            (format!("{name}x=1"), false),
            (format!("x{name}=1"), false),
            (format!("a={name}"), false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, cookie.parse().unwrap());
            assert_eq!(e.has_session_cookie(&h), expected, "{cookie}");
        }
        assert!(!e.has_session_cookie(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn cached_sessions_belong_to_their_exact_cookie() {
        let (e, now) = (engine(), now());
        for token_len in [50, 9000] {
            let alice = pairs(&e.session_cookies(&session("alice", "s-a", token_len, now), None));
            let bob = pairs(&e.session_cookies(&session("bob", "s-b", token_len, now), None));
            for _ in 0..2 {
                assert_eq!(subject(&e, &request(&alice), now).await.unwrap(), "alice");
                assert_eq!(subject(&e, &request(&bob), now).await.unwrap(), "bob");
            }
            let before = cached(&e);
            // One character of the cached cookie changed, anywhere.
            for i in [0, alice[0].1.len() / 2, alice[0].1.len() - 1] {
                let mut tampered = alice.clone();
                let mut v = tampered[0].1.clone().into_bytes();
                v[i] = if v[i] == b'A' { b'B' } else { b'A' };
                tampered[0].1 = String::from_utf8(v).unwrap();
                assert!(matches!(
                    subject(&e, &request(&tampered), now).await,
                    Err(Unauthenticated::Invalid(SessionError::Sealed(_)))
                ));
            }
            // Renamed: alice's value under another name.
            let renamed = vec![("other".to_owned(), alice[0].1.clone())];
            assert!(subject(&e, &request(&renamed), now).await.is_err());
            if alice.len() > 1 {
                // Chunks reordered, or mixed from two cached sessions.
                let mut swapped = alice.clone();
                let (a, b) = (swapped[0].1.clone(), swapped[1].1.clone());
                swapped[0].1 = b;
                swapped[1].1 = a;
                assert!(subject(&e, &request(&swapped), now).await.is_err());
                let mut mixed = alice.clone();
                mixed[1].1.clone_from(&bob[1].1);
                assert!(subject(&e, &request(&mixed), now).await.is_err());
                assert!(subject(&e, &request(&alice[..1]), now).await.is_err());
            } else {
                // One cookie sent as a chunk.
                let chunk = vec![("_oauth2_proxy_0".to_owned(), alice[0].1.clone())];
                assert!(subject(&e, &request(&chunk), now).await.is_err());
            }
            assert_eq!(cached(&e), before, "refused cookies are never cached");
        }
    }

    #[tokio::test]
    async fn cached_sessions_still_expire() {
        let (e, now) = (engine(), now());
        let s = session("alice", "s-a", 50, now);
        let expires = s.expires_at;
        let parts = request(&pairs(&e.session_cookies(&s, None)));
        assert!(subject(&e, &parts, expires - 1).await.is_ok());
        assert_eq!(cached(&e), 1);
        assert_eq!(
            subject(&e, &parts, expires).await,
            Err(Unauthenticated::Invalid(SessionError::Expired))
        );
        assert!(
            !e.check(&request(&[])).await.is_allow(),
            "no cookie, no session"
        );
    }

    #[tokio::test]
    async fn cached_sessions_are_still_revoked() {
        let (e, now) = (engine(), now());
        let parts = request(&pairs(
            &e.session_cookies(&session("alice", "s-a", 50, now), None),
        ));
        let other = request(&pairs(
            &e.session_cookies(&session("bob", "s-b", 50, now), None),
        ));
        assert!(e.check(&parts).await.is_allow());
        assert!(e.check(&other).await.is_allow());
        assert_eq!(cached(&e), 2);
        e.store().revoke(Some("s-a"), None, now).await.unwrap();
        assert_eq!(
            subject(&e, &parts, now).await,
            Err(Unauthenticated::Invalid(SessionError::Revoked))
        );
        assert!(!e.check(&parts).await.is_allow());
        assert!(e.check(&other).await.is_allow());
    }

    #[tokio::test]
    async fn cached_identity_headers_are_the_sessions() {
        let (e, now) = (engine(), now());
        for who in ["alice", "bob", "alice"] {
            let parts = request(&pairs(
                &e.session_cookies(&session(who, who, 50, now), None),
            ));
            for _ in 0..2 {
                let Decision::Allow(allow) = e.check(&parts).await else {
                    panic!("allowed");
                };
                let session = allow.session.as_deref().expect("a session allowed it");
                assert_eq!(allow.principal().subject, who);
                assert_eq!(
                    allow.principal().issuer(),
                    Some("https://idp.example.com/realms/test")
                );
                assert_eq!(allow.upstream_headers["x-auth-request-user"], who);
                assert_eq!(
                    allow.upstream_headers["x-auth-request-email"],
                    format!("{who}@example.com").as_str()
                );
                assert_eq!(
                    allow.upstream_headers,
                    identity_headers(e.config(), session)
                );
            }
        }
    }

    #[tokio::test]
    async fn no_token_shows_in_a_session_or_decision_debug() {
        let config = Config::builder("https://idp.example.com/realms/test", "nginx")
            .cookie_secret("0123456789abcdef0123456789abcdef")
            .pass_access_token(true)
            .set_authorization_header(true)
            .email_domains(vec!["*".into()])
            .build()
            .unwrap();
        let (e, now) = (Engine::new(config).unwrap(), now());
        let mut s = session("alice", "s-a", 0, now);
        s.id_token = Some(IdToken::new("secret-id-token-value"));
        s.access_token = Some(AccessToken::new("secret-access-token-value"));
        s.refresh_token = Some(RefreshToken::new("secret-refresh-token-value"));
        let parts = request(&pairs(&e.session_cookies(&s, None)));
        let decision = e.check(&parts).await;
        let Decision::Allow(allow) = &decision else {
            panic!("allowed: {decision:?}");
        };
        // The tokens are there, and go upstream...
        assert_eq!(
            allow.upstream_headers["x-auth-request-access-token"],
            "secret-access-token-value"
        );
        let session = allow.session.as_deref().unwrap();
        assert_eq!(session.refresh_token, s.refresh_token);
        // ...but no Debug shows them.
        for shown in [
            format!("{s:?}"),
            format!("{session:?}"),
            format!("{decision:?}"),
        ] {
            assert!(shown.contains("alice"), "{shown}");
            assert!(shown.contains("IdToken(<redacted>)"), "{shown}");
            assert!(!shown.contains("-token-value"), "{shown}");
        }
    }
}
