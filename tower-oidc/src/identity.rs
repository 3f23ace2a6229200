//! What handlers get: the signed-in user's [`Identity`] and [`AccessToken`].

use std::fmt;
use std::sync::{Arc, OnceLock};

use http::HeaderValue;
use oidc_core::Rule;
use oidc_core::token::bearer::BearerClaims;
use oidc_core::{Principal, Session};
use serde_json::{Map, Value};

/// The signed-in user of a request, put into the request extensions by
/// [`OidcLayer`](crate::OidcLayer).
///
/// The core's [`Principal`] and where it came from: the browser session or a validated
/// bearer token; the accessors read the same way for both. Cheap to clone (one
/// reference count). Its `Debug` shows who, never a token.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    /// The raw claims of a session, parsed from its ID token on first use.
    session_claims: OnceLock<Map<String, Value>>,
}

enum Source {
    Session(Arc<Session>),
    Bearer(Arc<BearerClaims>),
}

/// Where an [`Identity`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentitySource {
    /// The browser session cookie.
    Session,
    /// An `Authorization: Bearer` access token.
    Bearer,
}

impl Identity {
    /// An identity for a browser session.
    #[must_use]
    pub fn from_session(session: Arc<Session>) -> Self {
        Self::with(Source::Session(session))
    }

    /// An identity for a validated bearer token (its claims, or an `Arc` of them as
    /// [`BearerValidator::validate_shared`](oidc_core::token::bearer::BearerValidator::validate_shared)
    /// returns).
    #[must_use]
    pub fn from_bearer(claims: impl Into<Arc<BearerClaims>>) -> Self {
        Self::with(Source::Bearer(claims.into()))
    }

    fn with(source: Source) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                session_claims: OnceLock::new(),
            }),
        }
    }

    /// Where this identity came from.
    #[must_use]
    pub fn source(&self) -> IdentitySource {
        match self.inner.source {
            Source::Session(_) => IdentitySource::Session,
            Source::Bearer(_) => IdentitySource::Bearer,
        }
    }

    /// The user, as the core sees it (what rules judge).
    #[must_use]
    pub fn principal(&self) -> &Principal {
        match &self.inner.source {
            Source::Session(s) => &s.principal,
            Source::Bearer(c) => &c.principal,
        }
    }

    /// The subject (`sub`) at the issuer.
    #[must_use]
    pub fn subject(&self) -> &str {
        self.principal().subject()
    }

    /// The email address, if the provider released one.
    #[must_use]
    pub fn email(&self) -> Option<&str> {
        self.principal().email()
    }

    /// `preferred_username`.
    #[must_use]
    pub fn preferred_username(&self) -> Option<&str> {
        self.principal().preferred_username()
    }

    /// The display name (`name`).
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.principal().name()
    }

    /// A name to show: `preferred_username`, else `email`, else the subject.
    #[must_use]
    pub fn username(&self) -> &str {
        self.principal().username()
    }

    /// Groups, from the configured groups claim.
    #[must_use]
    pub fn groups(&self) -> &[String] {
        self.principal().groups()
    }

    /// Keycloak realm roles.
    #[must_use]
    pub fn realm_roles(&self) -> &[String] {
        self.principal().realm_roles()
    }

    /// Keycloak client roles, each as `client:role`.
    #[must_use]
    pub fn client_roles(&self) -> &[String] {
        self.principal().client_roles()
    }

    /// The issuer that vouches for the user: the token's `iss`, or the engine's issuer for
    /// a session.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.principal().issuer()
    }

    /// `true` when the user is in `group`.
    #[must_use]
    pub fn in_group(&self, group: &str) -> bool {
        self.principal().in_group(group)
    }

    /// `true` when the user has the realm role `role`.
    #[must_use]
    pub fn has_realm_role(&self, role: &str) -> bool {
        self.principal().has_realm_role(role)
    }

    /// `true` when the user has the client role `role` of `client`.
    #[must_use]
    pub fn has_client_role(&self, client: &str, role: &str) -> bool {
        self.principal().has_client_role(client, role)
    }

    /// `true` when `rule` lets this user through.
    #[must_use]
    pub fn satisfies(&self, rule: &Rule) -> bool {
        rule.allows(self.principal())
    }

    /// The raw claims: those of the access token for a bearer identity, those
    /// of the ID token (validated at login) for a session. Empty when the
    /// session kept no ID token.
    #[must_use]
    pub fn claims(&self) -> &Map<String, Value> {
        match &self.inner.source {
            Source::Bearer(c) => &c.claims,
            Source::Session(s) => self.inner.session_claims.get_or_init(|| {
                // The session's ID token was validated when the session was created.
                s.id_token
                    .as_ref()
                    .and_then(|t| oidc_core::identity::jwt::claims_unverified(t.expose()))
                    .unwrap_or_default()
            }),
        }
    }

    /// One raw claim, see [`Identity::claims`].
    #[must_use]
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }

    /// The session behind this identity, for a session identity.
    #[must_use]
    pub fn session(&self) -> Option<&Session> {
        match &self.inner.source {
            Source::Session(s) => Some(s),
            Source::Bearer(_) => None,
        }
    }

    /// The validated token claims, for a bearer identity.
    #[must_use]
    pub fn bearer_claims(&self) -> Option<&BearerClaims> {
        match &self.inner.source {
            Source::Bearer(c) => Some(c),
            Source::Session(_) => None,
        }
    }
}

impl AsRef<Principal> for Identity {
    fn as_ref(&self) -> &Principal {
        self.principal()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("source", &self.source())
            .field("subject", &self.subject())
            .field("email", &self.email())
            .field("preferred_username", &self.preferred_username())
            .field("groups", &self.groups())
            .field("realm_roles", &self.realm_roles())
            .field("client_roles", &self.client_roles())
            .finish_non_exhaustive()
    }
}

/// The signed-in user's access token, to call other services on their
/// behalf. Put into the request extensions next to the [`Identity`] when
/// there is one: the session's [`oidc_core::AccessToken`] (shared with the session, not
/// copied) or the request's own bearer token. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken(TokenRepr);

#[derive(Clone)]
enum TokenRepr {
    /// The session's access token (the session is shared, not copied).
    Session(Arc<Session>),
    /// The request's own `Authorization: Bearer` header.
    Header(HeaderValue),
}

impl AccessToken {
    pub(crate) fn from_session(session: &Arc<Session>) -> Option<Self> {
        session
            .access_token
            .is_some()
            .then(|| Self(TokenRepr::Session(Arc::clone(session))))
    }

    pub(crate) fn from_authorization(header: HeaderValue) -> Self {
        Self(TokenRepr::Header(header))
    }

    /// The token itself. Never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        match &self.0 {
            TokenRepr::Session(s) => s.access_token.as_ref().map_or("", |t| t.expose()),
            TokenRepr::Header(h) => std::str::from_utf8(h.as_bytes())
                .ok()
                .and_then(|v| v.get("bearer".len()..))
                .map_or("", str::trim),
        }
    }

    /// `Bearer <token>`, for the `Authorization` header of an outgoing call;
    /// marked sensitive so HTTP/2 header compression and loggers skip it.
    #[must_use]
    pub fn authorization(&self) -> HeaderValue {
        let mut v = match &self.0 {
            TokenRepr::Header(h) => h.clone(),
            TokenRepr::Session(_) => HeaderValue::try_from(format!("Bearer {}", self.expose()))
                .unwrap_or_else(|_| HeaderValue::from_static("")),
        };
        v.set_sensitive(true);
        v
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn session() -> Session {
        let mut s = Session::default();
        let p = &mut s.principal;
        p.subject = "sub-1".into();
        p.email = Some("alice@example.com".into());
        p.preferred_username = Some("alice".into());
        p.groups = vec!["admins".into()];
        p.realm_roles = vec!["admin".into()];
        p.client_roles = vec!["nginx:editor".into()];
        s.access_token = Some(oidc_core::AccessToken::new("at-secret"));
        // header {"alg":"RS256"}, payload {"sub":"sub-1","acr":"1"}
        s.id_token = Some(oidc_core::IdToken::new(format!(
            "e30.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"sub":"sub-1","acr":"1"}"#)
        )));
        s
    }

    #[test]
    fn session_identity_reads_the_session() {
        let s = Arc::new(session());
        let id = Identity::from_session(Arc::clone(&s));
        assert_eq!(id.source(), IdentitySource::Session);
        assert_eq!(id.subject(), "sub-1");
        assert_eq!(id.username(), "alice");
        assert!(id.in_group("admins") && !id.in_group("admin"));
        assert!(id.has_realm_role("admin"));
        assert!(id.has_client_role("nginx", "editor"));
        assert!(!id.has_client_role("nginx", "edito"));
        assert!(!id.has_client_role("ngin", "x:editor"));
        assert_eq!(id.claim("acr"), Some(&Value::from("1")));
        assert!(id.satisfies(&Rule::realm_role("admin")));
        assert!(!id.satisfies(&Rule::realm_role("root")));
        assert!(id.session().is_some() && id.bearer_claims().is_none());

        let dbg = format!("{id:?}");
        assert!(dbg.contains("alice") && !dbg.contains("at-secret"), "{dbg}");

        let t = AccessToken::from_session(&s).unwrap();
        assert_eq!(t.expose(), "at-secret");
        assert_eq!(t.authorization(), "Bearer at-secret");
        assert!(t.authorization().is_sensitive());
        assert_eq!(format!("{t:?}"), "AccessToken([redacted])");
        assert!(AccessToken::from_session(&Arc::new(Session::default())).is_none());
    }

    #[test]
    fn bearer_identity_reads_the_tokens_principal() {
        let mut c = BearerClaims::default();
        c.principal.subject = "svc".into();
        c.principal.issuer = Some("https://idp.example.com/realms/r".into());
        c.principal.client_roles = vec!["api:write".into()];
        c.claims.insert("azp".into(), "svc-client".into());
        let id = Identity::from_bearer(c);
        assert_eq!(id.source(), IdentitySource::Bearer);
        assert_eq!(id.username(), "svc");
        assert_eq!(id.issuer(), Some("https://idp.example.com/realms/r"));
        assert!(id.has_client_role("api", "write"));
        assert!(id.satisfies(&Rule::client_role("api", "write")));
        assert_eq!(id.claim("azp"), Some(&Value::from("svc-client")));
        assert!(id.session().is_none() && id.bearer_claims().is_some());
        assert_eq!(id.principal(), id.bearer_claims().unwrap().principal());
    }

    #[test]
    fn header_token_is_read_back() {
        let t = AccessToken::from_authorization(HeaderValue::from_static("bearer  abc.def.ghi"));
        assert_eq!(t.expose(), "abc.def.ghi");
        assert_eq!(t.authorization(), "bearer  abc.def.ghi");
    }
}
