//! The [`Engine`]: what transports hold. Each request is classified once (an own endpoint,
//! a route that skips authentication, or a protected one), then walks credentials -> policy
//! -> answer; the steps live in the files beside this one.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::clock::unix_now;
use crate::config::builder::Config;
use crate::config::error::ConfigError;
use crate::decision::{Decision, Deny, DenyReason};
use crate::engine::answers::{deny, store_unavailable};
use crate::engine::credentials::{LoadFailure, Unauthenticated};
use crate::engine::routes::{
    AUTH, BACKCHANNEL_LOGOUT, CALLBACK, SIGN_IN, SIGN_OUT, START, USERINFO,
};
use crate::engine::state::State;
use crate::error::chain::chain;
use crate::http::forbidden::forbidden_for;
use crate::http::headers::HeadersToRemove;
use crate::http::pages;
use crate::http::request;
use crate::metrics::Metrics;
use crate::policy::rule::Rule;
use crate::policy::skip_auth::is_preflight;
use crate::provider::discovered::Provider;
use crate::provider::error::ProviderError;
use crate::session::model::Session;
use crate::token::bearer::header::forbidden_response as bearer_forbidden;
use crate::token::bearer::validator::{BearerBuilder, BearerValidator, Issuer};

/// The OpenID Connect relying-party engine. Cheap to clone; share one per process.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) inner: Arc<State>,
}

impl Engine {
    /// Builds the engine. No network I/O happens here: call
    /// [`Engine::discover`] (or [`Engine::discover_until_ready`]) next.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        Ok(Self {
            inner: Arc::new(State::new(config)?),
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

    /// The path of the back-channel logout endpoint (`<prefix>/backchannel-logout`),
    /// which takes a POSTed `logout_token` (see [`Engine::backchannel_logout`]).
    #[must_use]
    pub fn backchannel_logout_path(&self) -> &str {
        &self.inner.routes.backchannel
    }

    /// The discovered provider, once ready.
    #[must_use]
    pub fn provider(&self) -> Option<&Provider> {
        self.inner.provider.get()
    }

    /// Runs discovery and fetches the JWKS once. Idempotent.
    pub async fn discover(&self) -> Result<(), ProviderError> {
        self.inner.provider.discover().await
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
    /// through with every identity header removed ([`crate::http::headers::all_identity`]).
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
        (c.skip_auth_preflight && is_preflight(parts))
            || (!c.skip_auth.is_empty() && c.skip_auth.matches_request(parts))
    }

    /// Reads and checks a cookie-store session from the request. No I/O; with
    /// the Redis store (or revocations) use [`Engine::check`], which consults them.
    pub fn authenticate(&self, parts: &Parts) -> Result<Session, Unauthenticated> {
        match self.inner.sessions.read(&parts.headers, unix_now()) {
            Ok(Some(s)) => Ok(self.inner.adopt(s)),
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
        if let Some(rest) = self.inner.own_route(parts) {
            return match rest.strip_prefix('/') {
                Some(START) => self.inner.start(parts),
                // Rare and deep: boxed so the per-request future stays small.
                Some(CALLBACK) => Box::pin(self.inner.callback(parts)).await,
                Some(SIGN_IN) => self.inner.sign_in(parts),
                Some(SIGN_OUT) => self.inner.sign_out(parts).await,
                Some(AUTH) => self.inner.auth_endpoint(parts).await,
                Some(USERINFO) => self.inner.userinfo(parts).await,
                Some(BACKCHANNEL_LOGOUT) => self.inner.backchannel_logout_check(parts),
                _ => deny(
                    DenyReason::Endpoint,
                    pages::json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
                ),
            };
        }
        self.protect(parts).await
    }

    async fn protect(&self, parts: &Parts) -> Decision {
        let now = unix_now();
        let current = match self.inner.load(parts, now).await {
            Ok(current) => current,
            Err(LoadFailure::Unauthenticated(why)) => {
                return self.inner.unauthenticated(parts, why);
            }
            Err(LoadFailure::Down) => return store_unavailable(parts),
        };
        if !self.inner.needs_refresh(&current.decoded.session, now) {
            return self.inner.allow_decoded(parts, &current.decoded);
        }
        // Rare and deep: boxed so the per-request future stays small.
        Box::pin(self.inner.refresh_and_allow(parts, current, now)).await
    }

    /// The client headers every allowed request must lose (identity headers this engine
    /// does not set, in every spelling): what [`Allow::headers_to_remove`](crate::decision::Allow::headers_to_remove) holds.
    #[must_use]
    pub fn headers_to_remove(&self) -> HeadersToRemove {
        self.inner.remove
    }

    /// `true` for the engine's own routes (`<prefix>`, `<prefix>/...`), which
    /// [`Engine::check`] answers itself.
    #[must_use]
    pub fn is_own_route(&self, parts: &Parts) -> bool {
        self.inner.own_route(parts).is_some()
    }

    /// `true` when the request carries the session cookie (whole or in chunks), readable
    /// or not: what a transport's fast path for public routes must hand to the engine.
    /// Reads the `Cookie` headers only; allocates nothing.
    #[must_use]
    pub fn has_session_cookie(&self, headers: &HeaderMap) -> bool {
        !matches!(self.inner.sessions.find(headers), Ok(None))
    }

    /// `Set-Cookie` values that store `session` in this engine's session
    /// cookie(s), for a request to `host`. For custom logins, tests and benchmarks.
    #[must_use]
    pub fn session_cookies(&self, session: &Session, host: Option<&str>) -> Vec<HeaderValue> {
        let max_age = Duration::from_secs(session.expires_at.saturating_sub(unix_now()));
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

    /// Decides a request that carries `Authorization: Bearer <token>` (oauth2-proxy's
    /// `--skip-jwt-bearer-tokens`); `None` when it carries none, or asks for one of the
    /// engine's own routes (then use [`Engine::check`]).
    ///
    /// The token is validated by `validator` (built from this engine) and cached while
    /// unexpired; its user is held to the same email, group, role and
    /// `--authorization-rule` checks as a session. A refused token gets
    /// [`BearerError::response`](crate::token::bearer::BearerError::response) (401, or 503
    /// when its issuer cannot be reached); no session cookie is read or written.
    pub async fn check_bearer(
        &self,
        validator: &BearerValidator,
        parts: &Parts,
    ) -> Option<Decision> {
        self.inner.check_bearer(validator, parts).await
    }

    /// The one check every transport runs (the adapter's HTTP and gRPC servers, tower-oidc):
    ///
    /// 1. the engine's own routes (`<prefix>/...`) are answered;
    /// 2. with a `bearer` validator, a request carrying `Authorization: Bearer` is judged by
    ///    its token ([`Engine::check_bearer`]), otherwise by its session ([`Engine::check`]);
    /// 3. either way the user is held to the email rule, `--allowed-group`/`--allowed-role`
    ///    and the `--authorization-rule`s;
    /// 4. then to the caller's `rule`, if any: a refused user gets [`forbidden_for`] (or the
    ///    bearer form of it), carrying any refreshed session cookie.
    ///
    /// A [`Decision::Allow`] always carries a user, so a rule that
    /// [allows anonymous requests](Rule::allows_anonymous) cannot let an anonymous request
    /// through here: transports decide what a public route does with a denial.
    pub async fn judge(
        &self,
        parts: &Parts,
        bearer: Option<&BearerValidator>,
        rule: Option<&Rule>,
    ) -> Decision {
        let checked = match bearer {
            Some(validator) => match self.check_bearer(validator, parts).await {
                Some(decision) => decision,
                None => self.check(parts).await,
            },
            None => self.check(parts).await,
        };
        match (checked, rule) {
            (Decision::Allow(allow), Some(rule)) if !rule.allows(allow.principal()) => {
                tracing::info!(
                    sub = %allow.principal().subject,
                    path = parts.uri.path(),
                    rule = %rule,
                    request_id = request::request_id(parts),
                    "signed-in user refused by rule"
                );
                let mut response = if allow.bearer.is_some() {
                    bearer_forbidden()
                } else {
                    forbidden_for(parts, rule)
                };
                for (name, value) in &allow.response_headers {
                    if name == header::SET_COOKIE {
                        response.headers_mut().append(name, value.clone());
                    }
                }
                Decision::Deny(Box::new(Deny {
                    reason: DenyReason::Forbidden,
                    response,
                }))
            }
            (decision, _) => decision,
        }
    }

    /// [`Engine::judge`] for sessions only: [`Engine::check`], then `rule`.
    pub async fn check_rule(&self, parts: &Parts, rule: &Rule) -> Decision {
        self.judge(parts, None, Some(rule)).await
    }

    /// Handles a back-channel logout request body
    /// (`application/x-www-form-urlencoded` with `logout_token`): 200 when the
    /// sessions are revoked, 400 with `invalid_request` when the token is
    /// refused, 503 when it cannot be processed now (the provider retries).
    pub async fn backchannel_logout(&self, form_body: &[u8]) -> Response<Bytes> {
        self.inner.backchannel_logout(form_body).await
    }

    /// A [`BearerBuilder`] for this engine's issuer: its keys (the engine's own JWKS cache,
    /// so rotation behaves as for ID tokens), its clock leeway and its revocations. By
    /// default it accepts the client id as audience and trusts no other issuer.
    pub fn bearer_validator(&self) -> BearerBuilder {
        BearerBuilder::new(Issuer {
            config: Arc::clone(&self.inner.config),
            provider: Arc::clone(&self.inner.provider),
            store: Arc::clone(&self.inner.store),
        })
    }

    /// A [`BearerValidator`] with the defaults of [`Engine::bearer_validator`]: this
    /// engine's issuer, the client id as audience, no other issuer.
    #[must_use]
    pub fn default_bearer_validator(&self) -> BearerValidator {
        self.bearer_validator()
            .build()
            .unwrap_or_else(|_| unreachable!("the default bearer configuration is valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::headers::identity_headers;
    use crate::identity::principal::Principal;
    use crate::identity::tokens::{AccessToken, IdToken, RefreshToken};
    use crate::session::cookie::SessionError;
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
        match e.inner.load(parts, now).await {
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
        let (e, now) = (engine(), unix_now());
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
        let (e, now) = (engine(), unix_now());
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
        let (e, now) = (engine(), unix_now());
        let parts = request(&pairs(
            &e.session_cookies(&session("alice", "s-a", 50, now), None),
        ));
        let other = request(&pairs(
            &e.session_cookies(&session("bob", "s-b", 50, now), None),
        ));
        assert!(e.check(&parts).await.is_allow());
        assert!(e.check(&other).await.is_allow());
        assert_eq!(cached(&e), 2);
        e.inner.store.revoke(Some("s-a"), None, now).await.unwrap();
        assert_eq!(
            subject(&e, &parts, now).await,
            Err(Unauthenticated::Invalid(SessionError::Revoked))
        );
        assert!(!e.check(&parts).await.is_allow());
        assert!(e.check(&other).await.is_allow());
    }

    #[tokio::test]
    async fn cached_identity_headers_are_the_sessions() {
        let (e, now) = (engine(), unix_now());
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
        let (e, now) = (Engine::new(config).unwrap(), unix_now());
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
