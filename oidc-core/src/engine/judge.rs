//! Policy applied to an identified user: the email rule, the allowed groups and roles, the
//! route rules; the allow that passes them, or the 403 that names what is missing.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Response};

use crate::decision::{Allow, Decision, DenyReason};
use crate::engine::answers::deny;
use crate::engine::state::State;
use crate::http::forbidden::forbidden_needing;
use crate::http::headers::identity_headers;
use crate::http::request;
use crate::identity::principal::Principal;
use crate::policy::email::email_allowed;
use crate::session::cache::Decoded;
use crate::session::model::Session;

/// Why no session could be loaded.
/// What a signed-in user lacks (the 403 names it).
#[derive(Clone, Copy)]
pub(crate) enum Missing<'a> {
    /// `--email-domain` / `--authenticated-emails-file`.
    Email,
    /// `--allowed-group`/`--allowed-role`, or an `--authorization-rule`.
    Rule(&'a crate::policy::rule::Rule),
}

impl State {
    pub(crate) fn allow_if_permitted(
        &self,
        parts: &Parts,
        session: Arc<Session>,
        response_headers: HeaderMap,
    ) -> Decision {
        let upstream_headers = identity_headers(&self.config, &session);
        self.allow_with(
            parts,
            Allow {
                session: Some(session),
                upstream_headers,
                headers_to_remove: self.remove,
                response_headers,
                bearer: None,
            },
        )
    }

    /// Allows a decoded session, with its precomputed identity headers.
    pub(crate) fn allow_decoded(&self, parts: &Parts, decoded: &Decoded) -> Decision {
        self.allow_with(
            parts,
            Allow {
                session: Some(Arc::clone(&decoded.session)),
                upstream_headers: decoded.headers.clone(),
                headers_to_remove: self.remove,
                response_headers: HeaderMap::new(),
                bearer: None,
            },
        )
    }

    /// `allow` (a session's or a bearer token's) unless the email rule,
    /// `--allowed-group`/`--allowed-role` or a route rule refuses its principal.
    pub(crate) fn allow_with(&self, parts: &Parts, allow: Allow) -> Decision {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let who = allow.principal();
        if let Some(missing) = self.refusal(parts, who, Some(target)) {
            return self.forbidden(parts, who, missing);
        }
        Decision::Allow(Box::new(allow))
    }

    /// 403 for a signed-in user.
    pub(crate) fn forbidden(
        &self,
        parts: &Parts,
        who: &Principal,
        missing: Missing<'_>,
    ) -> Decision {
        deny(
            DenyReason::Forbidden,
            self.forbidden_page(parts, who, missing),
        )
    }

    /// The 403 page, naming what is missing (never the user's claims).
    pub(crate) fn forbidden_page(
        &self,
        parts: &Parts,
        who: &Principal,
        missing: Missing<'_>,
    ) -> Response<Bytes> {
        let needs = match missing {
            Missing::Email => "an allowed email address".to_owned(),
            Missing::Rule(rule) => rule.to_string(),
        };
        tracing::info!(
            sub = %who.subject,
            path = parts.uri.path(),
            needs = %needs,
            request_id = request::request_id(parts),
            "signed-in user refused"
        );
        forbidden_needing(parts, &needs)
    }

    /// What refuses this signed-in user, if anything: the email rules, then
    /// `--allowed-group`/`--allowed-role`, then every `--authorization-rule` that applies
    /// to the request's host and `target` (`None`: unknown, so every path rule applies).
    pub(crate) fn refusal<'a>(
        &'a self,
        parts: &Parts,
        who: &Principal,
        target: Option<&str>,
    ) -> Option<Missing<'a>> {
        let c = &self.config;
        if !email_allowed(
            &self.config.email_domains,
            &self.config.authenticated_emails,
            who,
        ) {
            return Some(Missing::Email);
        }
        if !c.authorization.allows(who) {
            return Some(Missing::Rule(&c.authorization));
        }
        if c.authorization_rules.is_empty() {
            return None;
        }
        // The host Envoy routed by, never X-Forwarded-Host (a client writes that one).
        c.authorization_rules
            .refusing(request::routed_host(parts), target, who)
            .map(Missing::Rule)
    }
}
