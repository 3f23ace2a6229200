//! [`Principal`]: who a request is from, whether a session cookie or a bearer token
//! said so.

use std::sync::Arc;

/// The signed-in user: one type for a browser session (`Session::principal`) and a
/// validated bearer token (`BearerClaims::principal`), what rules, the email rule and the
/// identity headers read.
///
/// `Debug` shows every field: a principal holds no token.
///
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// Subject (`sub`) at the issuer.
    pub subject: String,
    /// Email address (`email`), if the provider released one.
    pub email: Option<String>,
    /// `preferred_username`.
    pub preferred_username: Option<String>,
    /// Display name (`name`).
    pub name: Option<String>,
    /// Groups, from the configured groups claim.
    pub groups: Vec<String>,
    /// Keycloak realm roles (`realm_access.roles`).
    pub realm_roles: Vec<String>,
    /// Keycloak client roles, each as `client:role` (`resource_access.<client>.roles`).
    pub client_roles: Vec<String>,
    /// The issuer that vouches for the user: a bearer token's `iss`, or the engine's
    /// configured issuer for a session (not stored in the session cookie). `None` for a
    /// principal built by hand.
    pub issuer: Option<Arc<str>>,
}

impl Principal {
    /// A principal with only a subject.
    #[must_use]
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            ..Self::default()
        }
    }

    /// The subject (`sub`) at the issuer.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The email address, if the provider released one.
    #[must_use]
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// `preferred_username`.
    #[must_use]
    pub fn preferred_username(&self) -> Option<&str> {
        self.preferred_username.as_deref()
    }

    /// The display name (`name`).
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A name to show: `preferred_username`, else `email`, else the subject.
    #[must_use]
    pub fn username(&self) -> &str {
        self.preferred_username()
            .or_else(|| self.email())
            .unwrap_or(&self.subject)
    }

    /// Groups, from the configured groups claim.
    #[must_use]
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Keycloak realm roles.
    #[must_use]
    pub fn realm_roles(&self) -> &[String] {
        &self.realm_roles
    }

    /// Keycloak client roles, each as `client:role`.
    #[must_use]
    pub fn client_roles(&self) -> &[String] {
        &self.client_roles
    }

    /// The issuer, when known: a bearer token's `iss`, or the engine's issuer for a session.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// `true` when the user is in `group`.
    #[must_use]
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// `true` when the user has the realm role `role`.
    #[must_use]
    pub fn has_realm_role(&self, role: &str) -> bool {
        self.realm_roles.iter().any(|r| r == role)
    }

    /// `true` when the user has the client role `role` of `client`.
    #[must_use]
    pub fn has_client_role(&self, client: &str, role: &str) -> bool {
        self.client_roles.iter().any(|cr| {
            cr.strip_prefix(client)
                .and_then(|rest| rest.strip_prefix(':'))
                == Some(role)
        })
    }
}

impl AsRef<Principal> for Principal {
    fn as_ref(&self) -> &Principal {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_and_membership() {
        let mut p = Principal::new("sub-1");
        assert_eq!(p.username(), "sub-1");
        p.email = Some("alice@example.com".into());
        assert_eq!(p.username(), "alice@example.com");
        p.preferred_username = Some("alice".into());
        assert_eq!(p.username(), "alice");
        p.groups = vec!["admins".into()];
        p.realm_roles = vec!["admin".into()];
        p.client_roles = vec!["nginx:editor".into()];
        assert!(p.in_group("admins") && !p.in_group("admin"));
        assert!(p.has_realm_role("admin") && !p.has_realm_role("admins"));
        assert!(p.has_client_role("nginx", "editor"));
        assert!(!p.has_client_role("nginx", "edito"));
        assert!(!p.has_client_role("ngin", "x:editor"));
        assert!(!p.has_client_role("nginx:editor", ""));
        assert_eq!(p.issuer(), None);
    }
}
