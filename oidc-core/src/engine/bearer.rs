//! Requests that carry `Authorization: Bearer`: the token's user, held to the same policy as
//! a session's.

use std::time::Instant;

use http::HeaderMap;
use http::request::Parts;

use crate::clock::unix_now;
use crate::decision::{Allow, Decision, DenyReason};
use crate::engine::answers::deny;
use crate::engine::state::State;

impl State {
    /// Decides a request that carries `Authorization: Bearer <token>` (oauth2-proxy's
    /// `--skip-jwt-bearer-tokens`); `None` when it carries none, or asks for one of the
    /// engine's own routes (then use [`Engine::check`]).
    ///
    /// The token is validated by `validator` (built from this engine) and cached while
    /// unexpired; its user is held to the same email, group, role and
    /// `--authorization-rule` checks as a session. A refused token gets
    /// [`BearerError::response`](crate::token::bearer::BearerError::response) (401, or 503 when its
    /// issuer cannot be reached); no session cookie is read or written.
    pub(crate) async fn check_bearer(
        &self,
        validator: &crate::token::bearer::BearerValidator,
        parts: &Parts,
    ) -> Option<Decision> {
        if self.own_route(parts).is_some() {
            return None;
        }
        let started = Instant::now();
        // `None` (no bearer token) returns; a malformed `Authorization: Bearer` is refused.
        let identity = match crate::token::bearer::token_from_headers(&parts.headers).transpose()? {
            Ok(token) => validator.identity(token, unix_now()).await,
            Err(e) => Err(e),
        };
        let decision = match identity {
            Ok((upstream_headers, claims)) => self.allow_with(
                parts,
                Allow {
                    session: None,
                    upstream_headers,
                    headers_to_remove: self.remove,
                    response_headers: HeaderMap::new(),
                    bearer: Some(claims),
                },
            ),
            Err(e) => {
                tracing::info!(reason = %e, path = parts.uri.path(), "bearer token refused");
                deny(DenyReason::Unauthenticated, e.response())
            }
        };
        self.metrics.record(&decision, started.elapsed());
        Some(decision)
    }
}
