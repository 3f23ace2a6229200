//! The engine's own endpoints that read the session: sign-out (with RP-initiated logout),
//! nginx's `auth_request` endpoint and userinfo.

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode, header};
use serde_json::json;

use crate::clock::unix_now;
use crate::decision::{Decision, DenyReason};
use crate::engine::answers::{deny, store_unavailable};
use crate::engine::credentials::LoadFailure;
use crate::engine::state::State;
use crate::http::pages;
use crate::http::request;
use crate::session::model::Session;

impl State {
    /// Clears the session cookies and redirects to a validated `rd` (or `/`).
    /// With RP-initiated logout on, the redirect goes to the provider's
    /// `end_session_endpoint` first, with `id_token_hint` and the absolute
    /// `rd` as `post_logout_redirect_uri` (Keycloak 18+ needs both).
    pub(crate) async fn sign_out(&self, parts: &Parts) -> Decision {
        let rd = request::query_param(parts, "rd");
        let target = self.safe_rd(rd.as_deref());
        let loaded = self.load(parts, unix_now()).await.ok();
        if let Some(ticket) = loaded.as_ref().and_then(|l| l.ticket.as_deref()) {
            self.store.delete(ticket).await;
        }
        let location = loaded
            .as_ref()
            .and_then(|l| self.provider_logout_url(parts, &l.decoded.session, target))
            .unwrap_or_else(|| target.to_owned());
        let mut r = pages::redirect(&location);
        let host = self.host(parts);
        for c in self.sessions.clear(&parts.headers, &self.writer, host) {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        deny(DenyReason::Endpoint, r)
    }

    pub(crate) fn provider_logout_url(
        &self,
        parts: &Parts,
        session: &Session,
        target: &str,
    ) -> Option<String> {
        if !self.config.rp_initiated_logout {
            return None;
        }
        let end_session = self.provider.get()?.endpoints().end_session.as_ref()?;
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
            .append_pair("client_id", &self.config.client_id);
        Some(url.into())
    }

    /// nginx `auth_request`: 202 with identity headers, 401, or 403.
    ///
    /// The request being authorized is named by a trusted proxy's `X-Forwarded-Uri`;
    /// without one, every `--authorization-rule` with a path applies.
    pub(crate) async fn auth_endpoint(&self, parts: &Parts) -> Decision {
        let target = request::forwarded_uri(parts, &self.config.trusted_proxies);
        let response = match self.load(parts, unix_now()).await.map(|l| l.decoded) {
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

    pub(crate) async fn userinfo(&self, parts: &Parts) -> Decision {
        let response = match self.load(parts, unix_now()).await.map(|l| l.decoded) {
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
}
