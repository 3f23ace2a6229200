//! The engine: classifies each request once (own endpoint, skip, protected), then walks
//! credentials -> policy -> answer. The only module that ties the others together; none
//! of them imports it.
//!
//! From the top: `gate` (the public [`Engine`]: classify and dispatch), then the steps,
//! `own_routes`, `backchannel`, `refresh`, `login`, `bearer`, `judge` (policy) and
//! `credentials` (the session), over `state` (what the engine holds), `answers` and `routes`.

mod answers;
mod backchannel;
mod bearer;
mod credentials;
mod gate;
mod judge;
mod login;
mod own_routes;
mod refresh;
mod routes;
mod state;

pub use credentials::Unauthenticated;
pub use gate::Engine;

/// The engine's own endpoints under its proxy prefix.
pub mod endpoints {
    pub use super::routes::{
        AUTH, BACKCHANNEL_LOGOUT, CALLBACK, ENDPOINTS, SIGN_IN, SIGN_OUT, START, USERINFO,
    };
}
