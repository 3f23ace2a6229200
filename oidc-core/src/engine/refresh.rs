//! Refreshing a session whose access token is about to expire (or whose refresh interval
//! passed): once per session across concurrent requests and replicas, with the login's
//! checks applied again to the refreshed tokens.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use http::request::Parts;
use http::{HeaderMap, header};
use serde_json::{Map, Value};

use crate::clock::unix_now;
use crate::decision::Decision;
use crate::engine::answers::store_unavailable;
use crate::engine::credentials::{Current, Unauthenticated};
use crate::engine::login::build_session;
use crate::engine::state::State;
use crate::error::chain::chain;
use crate::identity::claims::email_unverified;
use crate::identity::tokens::{AccessToken, IdToken, RefreshToken};
use crate::policy::email::email_allowed;
use crate::provider::discovered::Provider;
use crate::refresh::{self, Outcome};
use crate::session::cookie::SessionError;
use crate::session::model::Session;
use crate::store::backend::{Down, Loaded};
use crate::token::id_token::{self, Expected};

impl State {
    pub(crate) async fn refresh_and_allow(
        &self,
        parts: &Parts,
        current: Current,
        now: u64,
    ) -> Decision {
        let (Some(provider), Some(rt)) = (
            self.provider.get(),
            current.decoded.session.refresh_token.as_ref(),
        ) else {
            // Provider not discovered yet (e.g. after a restart during an outage): keep the session.
            return self.allow_decoded(parts, &current.decoded);
        };
        let loaded = Loaded {
            session: Session::clone(&current.decoded.session),
            ticket: current.ticket.clone(),
        };
        let session = &loaded.session;
        let key = refresh::key(rt);
        let outcome = self
            .refresher
            .run(key, || async {
                let refresh = self.refresh_session(provider, session, rt);
                let outcome = self
                    .store
                    .refresh_once(&key, rt.expose(), &loaded, refresh)
                    .await;
                // Another replica's result comes from the store, without our issuer.
                match outcome {
                    Outcome::Refreshed(mut fresh) if fresh.principal.issuer.is_none() => {
                        Arc::make_mut(&mut fresh).principal.issuer = Some(Arc::clone(&self.issuer));
                        Outcome::Refreshed(fresh)
                    }
                    outcome => outcome,
                }
            })
            .await;
        match outcome {
            Outcome::Refreshed(fresh) => {
                let mut headers = HeaderMap::new();
                // In Redis the ticket stays the same: the cookie need not change.
                if !self.store.tickets() {
                    match self
                        .store_session(parts, &fresh, loaded.ticket.as_deref(), now)
                        .await
                    {
                        Ok(cookies) => {
                            for c in cookies {
                                headers.append(header::SET_COOKIE, c);
                            }
                        }
                        Err(Down) => return store_unavailable(parts),
                    }
                }
                self.allow_if_permitted(parts, fresh, headers)
            }
            Outcome::Ended => {
                self.unauthenticated(parts, Unauthenticated::Invalid(SessionError::Expired))
            }
            Outcome::StoreDown => store_unavailable(parts),
            Outcome::Unavailable => {
                if session.refresh_expires_at.is_some_and(|t| now >= t) {
                    return self
                        .unauthenticated(parts, Unauthenticated::Invalid(SessionError::Expired));
                }
                // A brief provider outage must not log anyone out.
                self.allow_decoded(parts, &current.decoded)
            }
        }
    }

    pub(crate) async fn refresh_session(
        &self,
        provider: &Provider,
        old: &Session,
        refresh_token: &RefreshToken,
    ) -> Outcome {
        let c = &self.config;
        self.metrics.refreshes.fetch_add(1, Relaxed);
        let tokens = match provider.refresh(c, refresh_token).await {
            Ok(t) => t,
            Err(e) if e.is_invalid_grant() => {
                self.metrics.refresh_failures.fetch_add(1, Relaxed);
                tracing::info!(sub = %old.principal.subject, error = %chain(&e), "refresh refused by the provider; session ended");
                return Outcome::Ended;
            }
            Err(e) => {
                self.metrics.refresh_failures.fetch_add(1, Relaxed);
                self.metrics.idp_errors.fetch_add(1, Relaxed);
                tracing::warn!(sub = %old.principal.subject, error = %chain(&e), "refresh failed; keeping the session for now");
                return Outcome::Unavailable;
            }
        };
        let now = unix_now();
        let claims = match tokens.id_token.as_ref().map(IdToken::expose) {
            Some(id_token) => {
                let expected = Expected {
                    nonce: None,
                    access_token: tokens.access_token.as_ref().map(AccessToken::expose),
                    now,
                };
                match id_token::validate(id_token, provider, c, expected).await {
                    Ok(claims)
                        if claims.get("sub").and_then(Value::as_str)
                            == Some(old.principal.subject.as_str()) =>
                    {
                        claims
                    }
                    Ok(_) => {
                        tracing::warn!(sub = %old.principal.subject, "refreshed ID token names another subject; session ended");
                        return Outcome::Ended;
                    }
                    Err(e) => {
                        tracing::warn!(sub = %old.principal.subject, error = %chain(&e), "refreshed ID token refused; session ended");
                        return Outcome::Ended;
                    }
                }
            }
            None => Map::new(),
        };
        // The login's email rule holds at every refresh: a provider account whose address
        // changed to an unverified one, or to one the email rules refuse, signs in again
        // (and is judged) instead of carrying the new address upstream.
        if email_unverified(&claims) && !c.allow_unverified_email {
            tracing::warn!(sub = %old.principal.subject, "refreshed ID token has an unverified email; session ended");
            return Outcome::Ended;
        }
        let mut fresh = build_session(c, &self.issuer, &claims, tokens, now);
        // Claims the refresh response did not repeat stay as they were.
        let (new, was) = (&mut fresh.principal, &old.principal);
        new.subject.clone_from(&was.subject);
        if claims.is_empty() {
            new.email.clone_from(&was.email);
            new.preferred_username.clone_from(&was.preferred_username);
            new.name.clone_from(&was.name);
            if new.groups.is_empty() {
                new.groups.clone_from(&was.groups);
            }
            fresh.sid.clone_from(&old.sid);
        }
        if fresh.id_token.is_none() {
            fresh.id_token.clone_from(&old.id_token);
        }
        if fresh.refresh_token.is_none() {
            fresh.refresh_token.clone_from(&old.refresh_token);
            fresh.refresh_expires_at = old.refresh_expires_at;
        }
        fresh.created_at = old.created_at;
        fresh.expires_at = old.expires_at;
        if fresh.principal.email != old.principal.email
            && !email_allowed(
                &self.config.email_domains,
                &self.config.authenticated_emails,
                &fresh.principal,
            )
        {
            tracing::warn!(sub = %old.principal.subject, "refreshed ID token has an email the email rules refuse; session ended");
            return Outcome::Ended;
        }
        tracing::info!(sub = %fresh.principal.subject, "session refreshed");
        Outcome::Refreshed(Arc::new(fresh))
    }
}
