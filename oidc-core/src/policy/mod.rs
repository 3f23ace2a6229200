//! Policy: what a request needs, decided from data alone (no I/O): authorization [`Rule`]s
//! and per-route rules, the email rule, routes that skip authentication, and which
//! redirect targets are safe.

pub(crate) mod email;
pub mod redirect;
pub mod route_rules;
pub(crate) mod rule;
pub mod skip_auth;

pub use redirect::RedirectValidator;
pub use route_rules::RouteRules;
pub use rule::{Rule, Verdict};
pub use skip_auth::SkipAuthRoutes;
