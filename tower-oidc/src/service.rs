//! [`OidcService`] and [`RequireRule`]: the middleware services.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode, Uri, header};
use oidc_core::Rule;
use oidc_core::http::forbidden_response;
use oidc_core::token::bearer::{self, BearerValidator};
use oidc_core::{Allow, Decision, Engine};
use tower::Service;

use crate::future::{Authorized, ResponseFuture};
use crate::identity::{AccessToken, Identity, IdentitySource};

/// What an [`OidcLayer`](crate::OidcLayer) was configured with.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) engine: Engine,
    pub(crate) bearer: Option<BearerValidator>,
    pub(crate) sessions: bool,
    pub(crate) rule: Rule,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcLayer")
            .field("issuer", &self.engine.config().issuer().as_str())
            .field("client_id", &self.engine.config().client_id())
            .field("bearer", &self.bearer)
            .field("sessions", &self.sessions)
            .field("rule", &self.rule)
            .finish()
    }
}

/// Left in the extensions of a request that an [`OidcService`] let through
/// without an [`Identity`], so that a [`RequireRule`] or an extractor further
/// in can still answer it as the layer would have (login redirect or 401).
#[derive(Clone)]
pub(crate) struct Anonymous {
    settings: Arc<Settings>,
    /// The URI the layer saw (routers may strip a nesting prefix later).
    uri: Uri,
    /// The engine's answer to a refused bearer token, when one was sent.
    refusal: Option<Arc<Response<Bytes>>>,
}

/// Middleware that authenticates requests with OpenID Connect; see
/// [`OidcLayer`](crate::OidcLayer).
#[derive(Clone)]
pub struct OidcService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> OidcService<S> {
    pub(crate) fn new(inner: S, settings: Arc<Settings>) -> Self {
        Self { inner, settings }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for OidcService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcService")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OidcService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Take the service that was driven to readiness, leave a clone.
        let clone = self.inner.clone();
        let service = mem::replace(&mut self.inner, clone);
        let (mut parts, body) = req.into_parts();
        let s = &self.settings;
        if s.engine.config().trusted_proxies().depends_on_peer() {
            peer_from_connect_info(&mut parts);
        }

        // An outer OidcLayer already decided who this is: apply our rule only.
        if let Some(decided) = decided_by_outer_layer(&s.rule, &parts) {
            return decided.future(service, parts, body);
        }
        // Identity headers come from this layer only: a client's copies, in any
        // spelling, go before anything else (public routes and bearer tokens too).
        oidc_core::http::headers::strip_identity(&mut parts.headers);
        let engine_route = s.sessions && s.engine.is_own_route(&parts);
        // Fast path: a public route and nothing to authenticate with.
        let has_credentials = (s.bearer.is_some()
            && parts.headers.contains_key(header::AUTHORIZATION))
            || (s.sessions && s.engine.has_session_cookie(&parts.headers));
        if !engine_route && s.rule.allows_anonymous() && !has_credentials {
            parts.extensions.insert(Anonymous {
                settings: Arc::clone(s),
                uri: parts.uri.clone(),
                refusal: None,
            });
            return ResponseFuture::calling(service, Request::from_parts(parts, body));
        }
        let auth = Box::pin(authorize(Arc::clone(s), parts, engine_route));
        ResponseFuture::authorizing(auth, service, body)
    }
}

/// What a layer further in does when an outer layer already authenticated.
enum Decided {
    Forward,
    Respond(Response<Bytes>),
    /// Nobody signed in and the rule needs someone: answer like the outer layer.
    Unauthenticated(Anonymous),
}

impl Decided {
    fn future<S, ReqBody>(
        self,
        service: S,
        parts: Parts,
        body: ReqBody,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        match self {
            Decided::Forward => ResponseFuture::calling(service, Request::from_parts(parts, body)),
            Decided::Respond(r) => ResponseFuture::responding(r),
            Decided::Unauthenticated(anonymous) => {
                let auth = Box::pin(async move {
                    let mut parts = parts;
                    Authorized::Respond(unauthenticated(&anonymous, &mut parts).await)
                });
                ResponseFuture::authorizing(auth, service, body)
            }
        }
    }
}

/// With `reverse_proxy` and a `trusted_proxy_ips` list, the engine believes `X-Forwarded-*`
/// only from a peer it knows: the one in a
/// [`PeerAddr`](oidc_core::http::trusted_proxy::PeerAddr) extension, else the address axum's
/// `into_make_service_with_connect_info::<SocketAddr>()` records. Without either, forwarded
/// headers are ignored (fail closed).
fn peer_from_connect_info(parts: &mut http::request::Parts) {
    use oidc_core::http::trusted_proxy::PeerAddr;
    if parts.extensions.get::<PeerAddr>().is_some() {
        return;
    }
    #[cfg(feature = "axum")]
    if let Some(info) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        let ip = info.0.ip();
        parts.extensions.insert(PeerAddr(ip));
    }
}

/// `Some` when an outer [`OidcService`] left its verdict in the extensions.
fn decided_by_outer_layer(rule: &Rule, parts: &Parts) -> Option<Decided> {
    if let Some(identity) = parts.extensions.get::<Identity>() {
        return Some(if rule.allows(identity) {
            Decided::Forward
        } else {
            Decided::Respond(forbidden(identity, parts, rule))
        });
    }
    let anonymous = parts.extensions.get::<Anonymous>()?;
    Some(if rule.allows_anonymous() {
        Decided::Forward
    } else {
        Decided::Unauthenticated(anonymous.clone())
    })
}

fn forbidden(identity: &Identity, parts: &Parts, rule: &Rule) -> Response<Bytes> {
    tracing::info!(
        sub = identity.subject(),
        path = parts.uri.path(),
        rule = %rule,
        "signed-in user refused by rule"
    );
    match identity.source() {
        IdentitySource::Bearer => bearer::forbidden_response(),
        _ => forbidden_response(parts),
    }
}

/// The answer for a request that needs a user when none is signed in, as
/// the layer that let it through anonymously would have given it.
async fn unauthenticated(anonymous: &Anonymous, parts: &mut Parts) -> Response<Bytes> {
    if let Some(refusal) = &anonymous.refusal {
        let mut r = Response::new(refusal.body().clone());
        *r.status_mut() = refusal.status();
        *r.headers_mut() = refusal.headers().clone();
        return r;
    }
    if !anonymous.settings.sessions {
        return bearer::missing_token_response();
    }
    let seen = mem::replace(&mut parts.uri, anonymous.uri.clone());
    let decision = anonymous.settings.engine.check(parts).await;
    parts.uri = seen;
    match decision {
        Decision::Deny(deny) => deny.response,
        // A session the outer layer did not use (it preferred a bearer token).
        Decision::Allow(_) => bearer::missing_token_response(),
    }
}

/// For the extractors: the answer when a handler needs an [`Identity`] that
/// is not there.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) async fn missing_identity(parts: &mut Parts) -> Response<Bytes> {
    match parts.extensions.get::<Anonymous>().cloned() {
        Some(anonymous) => unauthenticated(&anonymous, parts).await,
        None => {
            tracing::error!(
                path = parts.uri.path(),
                "a handler asks for the signed-in user, but no OidcLayer is in front of it"
            );
            not_configured()
        }
    }
}

/// 500: a route needs a user but no `OidcLayer` authenticates for it.
fn not_configured() -> Response<Bytes> {
    let mut r = Response::new(Bytes::from_static(
        b"{\"error\":\"server_error\",\"message\":\"authentication is not configured for this route\"}",
    ));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// The asynchronous part of [`OidcService::call`]: the engine's one check
/// ([`Engine::judge`]) mapped onto the request; the layer decides nothing itself.
async fn authorize(settings: Arc<Settings>, parts: Parts, engine_route: bool) -> Authorized {
    let s = &*settings;
    if engine_route {
        return match s.engine.check(&parts).await {
            Decision::Deny(deny) => Authorized::Respond(deny.response),
            Decision::Allow(allow) => forward_allowed(parts, *allow),
        };
    }
    // A bearer-only layer (no sessions) never sends anyone to a login page: without a
    // token (or with another scheme) the request is anonymous.
    let has_token =
        s.bearer.is_some() && !matches!(bearer::token_from_headers(&parts.headers), Ok(None));
    if !s.sessions && !has_token {
        if !s.rule.allows_anonymous() {
            return Authorized::Respond(bearer::missing_token_response());
        }
        return forward_anonymous(&settings, parts, None);
    }
    let public = s.rule.allows_anonymous();
    let rule = (!public).then_some(&s.rule);
    match s.engine.judge(&parts, s.bearer.as_ref(), rule).await {
        Decision::Allow(allow) => forward_allowed(parts, *allow),
        // Public: greet a signed-in user, but never answer for the engine; a refused
        // token's answer is kept for a handler that needs a user after all.
        Decision::Deny(deny) if public => {
            let refusal = (has_token && deny.reason == oidc_core::DenyReason::Unauthenticated)
                .then(|| Arc::new(deny.response));
            forward_anonymous(&settings, parts, refusal)
        }
        Decision::Deny(deny) => Authorized::Respond(deny.response),
    }
}

fn forward(parts: Parts) -> Authorized {
    Authorized::Forward {
        parts,
        response_headers: HeaderMap::new(),
    }
}

fn forward_anonymous(
    settings: &Arc<Settings>,
    mut parts: Parts,
    refusal: Option<Arc<Response<Bytes>>>,
) -> Authorized {
    parts.extensions.insert(Anonymous {
        settings: Arc::clone(settings),
        uri: parts.uri.clone(),
        refusal,
    });
    forward(parts)
}

/// Applies an engine `Allow` to the request: identity headers set (the client's copies were
/// removed before judging, as the adapter has Envoy do), `Identity` and `AccessToken` in the
/// extensions, response headers kept for the response.
fn forward_allowed(mut parts: Parts, allow: Allow) -> Authorized {
    // `allow.headers_to_remove` names every spelling of the identity headers the gate does
    // not set: `OidcService::call` stripped them all (`strip_identity`) before judging.
    let mut current = None;
    for (name, value) in allow.upstream_headers {
        match name {
            Some(name) => {
                parts.headers.insert(&name, value);
                current = Some(name);
            }
            None => {
                if let Some(name) = &current {
                    parts.headers.append(name, value);
                }
            }
        }
    }
    if let Some(claims) = allow.bearer {
        if let Some(h) = parts.headers.get(header::AUTHORIZATION).cloned() {
            parts.extensions.insert(AccessToken::from_authorization(h));
        }
        parts.extensions.insert(Identity::from_bearer(claims));
    } else if let Some(session) = allow.session {
        if let Some(token) = AccessToken::from_session(&session) {
            parts.extensions.insert(token);
        }
        parts.extensions.insert(Identity::from_session(session));
    }
    Authorized::Forward {
        parts,
        response_headers: allow.response_headers,
    }
}

/// Middleware that applies a [`Rule`] to requests an outer
/// [`OidcLayer`](crate::OidcLayer) has authenticated; see
/// [`RequireRuleLayer`](crate::RequireRuleLayer).
#[derive(Clone)]
pub struct RequireRule<S> {
    inner: S,
    rule: Arc<Rule>,
}

impl<S> RequireRule<S> {
    pub(crate) fn new(inner: S, rule: Arc<Rule>) -> Self {
        Self { inner, rule }
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for RequireRule<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireRule")
            .field("inner", &self.inner)
            .field("rule", &self.rule)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireRule<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let service = mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        match decided_by_outer_layer(&self.rule, &parts) {
            Some(decided) => decided.future(service, parts, body),
            None => {
                tracing::error!(
                    path = parts.uri.path(),
                    rule = %self.rule,
                    "RequireRule without an OidcLayer in front of it: refusing the request"
                );
                ResponseFuture::responding(not_configured())
            }
        }
    }
}
