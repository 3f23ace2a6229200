//! Requests that carry `Authorization: Bearer`: the token's user, held to the same policy as
//! a session's.

use std::time::Instant;

use http::HeaderMap;
use http::request::Parts;

use crate::clock::unix_now;
use crate::decision::{Allow, Decision, DenyReason};
use crate::engine::answers::deny;
use crate::engine::state::State;
use crate::http::request;
use crate::token::bearer::header::token_from_headers;
use crate::token::bearer::validator::BearerValidator;

impl State {
    /// `Engine::check_bearer`: the token's user held to the session's policy; `None` without a
    /// bearer token or for the engine's own routes.
    pub(crate) async fn check_bearer(
        &self,
        validator: &BearerValidator,
        parts: &Parts,
    ) -> Option<Decision> {
        if self.own_route(parts).is_some() {
            return None;
        }
        let started = Instant::now();
        // `None` (no bearer token) returns; a malformed `Authorization: Bearer` is refused.
        let identity = match token_from_headers(&parts.headers).transpose()? {
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
                tracing::info!(reason = %e, path = parts.uri.path(), request_id = request::request_id(parts), "bearer token refused");
                deny(DenyReason::Unauthenticated, e.response())
            }
        };
        self.metrics.record(&decision, started.elapsed());
        Some(decision)
    }
}
