//! What the HTTP and gRPC servers ask about each request: the [`Engine`], and with
//! `--skip-jwt-bearer-tokens` a [`BearerValidator`] that decides requests carrying
//! `Authorization: Bearer <JWT>` first (oauth2-proxy's behaviour: a valid token stands in
//! for a session, with the same email, group, role and per-route checks).
//!
//! ```no_run
//! # async fn run(engine: oidc_core::Engine, parts: http::request::Parts) {
//! use ext_authz_adapter::authorizer::Authorizer;
//!
//! let bearer = engine.bearer_validator().build().expect("default audiences");
//! let authorizer = Authorizer::new(engine).with_bearer(bearer);
//! let decision = authorizer.check(&parts).await;
//! # }
//! ```

use http::request::Parts;
use oidc_core::token::bearer::BearerValidator;
use oidc_core::{Decision, Engine};

/// The engine and, optionally, a bearer-token validator. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Authorizer {
    engine: Engine,
    bearer: Option<BearerValidator>,
}

impl From<Engine> for Authorizer {
    fn from(engine: Engine) -> Self {
        Self::new(engine)
    }
}

impl Authorizer {
    /// Sessions only.
    #[must_use]
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            bearer: None,
        }
    }

    /// Also accepts `Authorization: Bearer <JWT>` validated by `validator` (built from the
    /// same engine).
    #[must_use]
    pub fn with_bearer(mut self, validator: BearerValidator) -> Self {
        self.bearer = Some(validator);
        self
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// [`Engine::skips_auth`].
    #[must_use]
    pub fn skips_auth(&self, parts: &Parts) -> bool {
        self.engine.skips_auth(parts)
    }

    /// The engine's one check ([`Engine::judge`]), with this authorizer's bearer validator.
    pub async fn check(&self, parts: &Parts) -> Decision {
        self.engine.judge(parts, self.bearer.as_ref(), None).await
    }
}
