//! [`OidcLayer`] and [`RequireRuleLayer`].

use std::fmt;
use std::sync::Arc;

use oidc_core::Rule;
use oidc_core::token::bearer::BearerValidator;
use oidc_core::{Config, Engine};
use tower::Layer;

use crate::error::SetupError;
use crate::service::{OidcService, RequireRule, Settings};

/// Protects a service with OpenID Connect: browser sessions and bearer tokens.
///
/// For every request the layer
///
/// - serves the engine's own routes under the proxy prefix (`/oauth2/start`,
///   `/oauth2/callback`, `/oauth2/sign_out`, ... ; `--proxy-prefix`);
/// - authenticates an `Authorization: Bearer <JWT>` access token with its
///   [`BearerValidator`], or else the session cookie with the [`Engine`];
/// - applies its [`Rule`] ([`Rule::authenticated`] unless set with
///   [`OidcLayer::require`]): nobody signed in gets a `302` to the identity
///   provider for a browser navigation and a `401` with `WWW-Authenticate:
///   Bearer` for an API call; a signed-in user the rule refuses gets `403`;
/// - lets allowed requests through with an [`Identity`](crate::Identity) and
///   an [`AccessToken`](crate::AccessToken) in the request extensions, and
///   writes a refreshed session cookie onto the response.
///
/// On a route whose rule [allows anonymous requests](Rule::allows_anonymous)
/// the layer never answers by itself: a signed-in user still gets an
/// `Identity`, an anonymous one none (use `Option<Identity>`), and a
/// [`RequireRuleLayer`] or the `Identity` extractor further in answers as
/// this layer would have.
///
/// The layer's own answers are `http::Response<Bytes>` converted with
/// `ResBody: From<Bytes>`, which axum's `Body`, `http_body_util::Full` and
/// `String`-like bodies satisfy. Its error type is the inner service's: every
/// failure becomes a response.
#[derive(Clone)]
#[must_use]
pub struct OidcLayer {
    settings: Arc<Settings>,
}

impl OidcLayer {
    /// A layer for an engine, accepting sessions and bearer tokens (audience:
    /// the client id) and requiring a signed-in user.
    ///
    /// The engine must be discovered ([`Engine::discover`] or
    /// [`Engine::discover_until_ready`] in a task) for logins and bearer
    /// tokens to work; until then they answer `503`.
    pub fn new(engine: Engine) -> Self {
        Self {
            settings: Arc::new(Settings {
                bearer: Some(engine.default_bearer_validator()),
                sessions: true,
                rule: Rule::authenticated(),
                engine,
            }),
        }
    }

    /// Builds the engine for `config`, runs discovery once, and returns a
    /// layer for it (see [`OidcLayer::new`]).
    pub async fn discover(config: Config) -> Result<Self, SetupError> {
        let engine = Engine::new(config)?;
        engine.discover().await?;
        Ok(Self::new(engine))
    }

    /// The rule every request must pass. A new layer sharing the same
    /// engine and validator: use one layer per rule.
    pub fn require(mut self, rule: Rule) -> Self {
        Arc::make_mut(&mut self.settings).rule = rule;
        self
    }

    /// Validates bearer tokens with this validator (other audiences, trusted
    /// issuers) instead of the default one.
    pub fn bearer(mut self, validator: BearerValidator) -> Self {
        Arc::make_mut(&mut self.settings).bearer = Some(validator);
        self
    }

    /// Ignores `Authorization: Bearer` headers: browser sessions only.
    pub fn without_bearer(mut self) -> Self {
        Arc::make_mut(&mut self.settings).bearer = None;
        self
    }

    /// Ignores session cookies and passes the engine's routes through:
    /// bearer tokens only, `401` without one (an API).
    pub fn without_sessions(mut self) -> Self {
        Arc::make_mut(&mut self.settings).sessions = false;
        self
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.settings.engine
    }

    /// The rule every request must pass.
    pub fn rule(&self) -> &Rule {
        &self.settings.rule
    }
}

impl fmt::Debug for OidcLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.settings.fmt(f)
    }
}

impl<S> Layer<S> for OidcLayer {
    type Service = OidcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OidcService::new(inner, Arc::clone(&self.settings))
    }
}

/// Applies a [`Rule`] to one route or sub-router, behind an [`OidcLayer`].
///
/// The outer layer authenticates (usually with [`Rule::public`], so public
/// pages stay public); this one only reads the [`Identity`](crate::Identity)
/// it left and answers like it: `302`/`401` when nobody is signed in, `403`
/// when the rule refuses. Without an `OidcLayer` in front it answers `500`
/// (and logs why) rather than let anything through.
///
/// ```
/// use tower_oidc::{RequireRuleLayer, Rule};
/// # let _: axum::Router =
/// axum::Router::new()
///     .route("/admin", axum::routing::get(|| async { "admin" }))
///     .route_layer(RequireRuleLayer::new(Rule::realm_role("admin")));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireRuleLayer {
    rule: Arc<Rule>,
}

impl RequireRuleLayer {
    /// A layer requiring `rule`.
    pub fn new(rule: Rule) -> Self {
        Self {
            rule: Arc::new(rule),
        }
    }
}

impl From<Rule> for RequireRuleLayer {
    fn from(rule: Rule) -> Self {
        Self::new(rule)
    }
}

impl<S> Layer<S> for RequireRuleLayer {
    type Service = RequireRule<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireRule::new(inner, Arc::clone(&self.rule))
    }
}
