//! The engine's own endpoints under its proxy prefix, by name.

/// The engine's own endpoints under its proxy prefix (`<prefix>/<endpoint>`), answered by
/// `Engine::check` itself: what gateways must route to it (and the linter looks for).
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
