//! The login: the answer to a request without a session (a redirect to the provider, the
//! sign-in page, or 401), the start and sign-in endpoints, and the callback that turns a code
//! into a session.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value};

use crate::clock::unix_now;
use crate::config::builder::Config;
use crate::decision::{Decision, DenyReason};
use crate::engine::answers::{deny, unavailable, unavailable_page};
use crate::engine::credentials::Unauthenticated;
use crate::engine::state::State;
use crate::error::chain::chain;
use crate::http::pages;
use crate::http::request;
use crate::identity::claims::{email_unverified, keycloak_roles, string_list};
use crate::identity::principal::Principal;
use crate::identity::tokens::{AccessToken, IdToken};
use crate::login::error::LoginError;
use crate::provider::token::TokenResponse;
use crate::session::model::Session;
use crate::store::backend::Down;
use crate::token::id_token::{self, Expected};

impl State {
    pub(crate) fn unauthenticated(&self, parts: &Parts, why: Unauthenticated) -> Decision {
        if let Unauthenticated::Invalid(e) = why {
            tracing::info!(reason = %e, path = parts.uri.path(), request_id = request::request_id(parts), "session cookie refused");
        }
        let mut decision = if request::is_navigation(parts) {
            let rd = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            if self.config.skip_provider_button {
                self.login_redirect(parts, rd)
            } else {
                let start = self.start_url(rd);
                deny(
                    DenyReason::Unauthenticated,
                    pages::sign_in(StatusCode::UNAUTHORIZED, &start),
                )
            }
        } else {
            let mut r =
                pages::json_error(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            deny(DenyReason::Unauthenticated, r)
        };
        // Drop a refused session cookie so the browser stops sending it.
        if matches!(why, Unauthenticated::Invalid(_))
            && let Decision::Deny(d) = &mut decision
        {
            let host = self.host(parts);
            for v in self.sessions.clear(&parts.headers, &self.writer, host) {
                d.response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        decision
    }

    pub(crate) fn start_url(&self, rd: &str) -> String {
        let mut s = self.routes.start.clone();
        s.push_str("?rd=");
        s.extend(url::form_urlencoded::byte_serialize(rd.as_bytes()));
        s
    }

    /// The callback URL for this request: `--redirect-url`, or derived from the request.
    pub(crate) fn redirect_uri(&self, parts: &Parts) -> String {
        if let Some(u) = &self.config.redirect_url {
            return u.to_string();
        }
        let scheme = self.scheme(parts);
        let host = self.host(parts).unwrap_or("localhost");
        format!("{scheme}://{host}{}", self.routes.callback)
    }

    /// A validated return target, or `/`.
    pub(crate) fn safe_rd<'a>(&self, rd: Option<&'a str>) -> &'a str {
        rd.and_then(|rd| self.config.redirects.validate(rd))
            .unwrap_or("/")
    }

    pub(crate) fn start(&self, parts: &Parts) -> Decision {
        let rd = request::query_param(parts, "rd");
        let rd = self.safe_rd(rd.as_deref()).to_owned();
        self.login_redirect(parts, &rd)
    }

    pub(crate) fn login_redirect(&self, parts: &Parts, return_to: &str) -> Decision {
        let Some(provider) = self.provider.get() else {
            return unavailable();
        };
        let host = self.host(parts);
        let started = self.flows.start(
            &self.config,
            &provider.endpoints().authorization,
            &self.redirect_uri(parts),
            return_to,
            &parts.headers,
            &self.writer,
            host,
            unix_now(),
        );
        let mut r = pages::redirect(started.authorize_url.as_str());
        for c in started.set_cookies {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        deny(DenyReason::Unauthenticated, r)
    }

    pub(crate) fn sign_in(&self, parts: &Parts) -> Decision {
        let rd = request::query_param(parts, "rd");
        let rd = self.safe_rd(rd.as_deref()).to_owned();
        if self.config.skip_provider_button {
            return self.login_redirect(parts, &rd);
        }
        deny(
            DenyReason::Endpoint,
            pages::sign_in(StatusCode::OK, &self.start_url(&rd)),
        )
    }

    pub(crate) async fn callback(&self, parts: &Parts) -> Decision {
        let mut clear_flow = None;
        let result = self.finish_login(parts, &mut clear_flow).await;
        let mut response = match result {
            Ok((session, return_to)) => {
                match self.store_session(parts, &session, None, unix_now()).await {
                    Ok(cookies) => {
                        self.metrics.logins.fetch_add(1, Relaxed);
                        tracing::info!(sub = %session.principal.subject, email = session.principal.email.as_deref().unwrap_or(""), request_id = request::request_id(parts), "login succeeded");
                        let mut r = pages::redirect(self.safe_rd(Some(&return_to)));
                        for c in cookies {
                            r.headers_mut().append(header::SET_COOKIE, c);
                        }
                        r
                    }
                    Err(Down) => unavailable_page(
                        "The session store cannot be reached right now. Please try again in a moment.",
                    ),
                }
            }
            Err(e) => {
                if matches!(e, LoginError::Exchange(_)) {
                    self.metrics.idp_errors.fetch_add(1, Relaxed);
                }
                tracing::warn!(error = %chain(&e), request_id = request::request_id(parts), "login refused; no session created");
                login_error_page(&e, &self.start_url("/"))
            }
        };
        if let Some(c) = clear_flow {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
        let reason = if response.status() == StatusCode::FOUND {
            DenyReason::Endpoint
        } else {
            DenyReason::LoginFailed
        };
        deny(reason, response)
    }

    pub(crate) async fn finish_login(
        &self,
        parts: &Parts,
        clear_flow: &mut Option<HeaderValue>,
    ) -> Result<(Session, String), LoginError> {
        let c = &self.config;
        if let Some(err) = request::query_param(parts, "error") {
            let err: String = err
                .chars()
                .filter(|ch| ch.is_ascii_graphic())
                .take(64)
                .collect();
            return Err(LoginError::Provider(err));
        }
        let state =
            request::query_param(parts, "state").ok_or(LoginError::MissingParameter("state"))?;
        let code =
            request::query_param(parts, "code").ok_or(LoginError::MissingParameter("code"))?;
        let now = unix_now();
        let (flow, clear) = self.flows.take(
            &parts.headers,
            &state,
            c,
            &self.writer,
            self.host(parts),
            now,
        )?;
        *clear_flow = Some(clear);
        let provider = self.provider.get().ok_or(LoginError::NotReady)?;
        let tokens = provider
            .exchange_code(c, &code, &flow.redirect_uri, &flow.verifier)
            .await
            .map_err(LoginError::Exchange)?;
        // The tokens were issued during the exchange: judge them by the clock after it.
        let now = unix_now();
        let id_token = tokens
            .id_token
            .as_ref()
            .map(IdToken::expose)
            .ok_or(LoginError::NoIdToken)?;
        let claims = id_token::validate(
            id_token,
            provider,
            c,
            Expected {
                nonce: (!c.skip_nonce).then_some(flow.nonce.as_str()),
                access_token: tokens.access_token.as_ref().map(AccessToken::expose),
                now,
            },
        )
        .await?;
        if email_unverified(&claims) && !c.allow_unverified_email {
            return Err(LoginError::EmailNotVerified);
        }
        let session = build_session(c, &self.issuer, &claims, tokens, now);
        Ok((session, flow.return_to))
    }
}

pub(crate) fn login_error_page(e: &LoginError, retry: &str) -> Response<Bytes> {
    let status = match e {
        LoginError::Exchange(p) if !p.is_invalid_grant() => StatusCode::BAD_GATEWAY,
        LoginError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        LoginError::MissingParameter(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    pages::html(
        status,
        "Sign-in failed",
        &format!(
            "<p>{}.</p><p><a href=\"{}\">Sign in again</a></p>",
            pages::escape_html(&e.to_string()),
            pages::escape_html(retry)
        ),
    )
}

pub(crate) fn build_session(
    c: &Config,
    issuer: &Arc<str>,
    claims: &Map<String, Value>,
    tokens: TokenResponse,
    now: u64,
) -> Session {
    let get = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    // Not verified: the access token came straight from the token endpoint over the back
    // channel, and only groups and roles are read from it.
    let access = tokens
        .access_token
        .as_ref()
        .and_then(|t| crate::identity::jwt::claims_unverified(t.expose()));
    let mut groups = string_list(claims.get(&c.groups_claim));
    if groups.is_empty()
        && let Some(a) = &access
    {
        groups = string_list(a.get(&c.groups_claim));
    }
    let (realm_roles, client_roles) = access.as_ref().map(keycloak_roles).unwrap_or_default();
    Session {
        principal: Principal {
            subject: get("sub").unwrap_or_default(),
            email: get("email"),
            preferred_username: get("preferred_username"),
            name: get("name"),
            groups,
            realm_roles,
            client_roles,
            issuer: Some(Arc::clone(issuer)),
        },
        sid: get("sid"),
        id_token: tokens.id_token,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        created_at: now,
        expires_at: now + c.cookie.expire.as_secs(),
        access_expires_at: tokens.expires_in.map(|s| now + s),
        refresh_expires_at: tokens
            .refresh_expires_in
            .filter(|s| *s > 0)
            .map(|s| now + s),
        refreshed_at: now,
    }
}
