//! Authorization rules: who may use a route, decided from the groups and
//! roles of the signed-in user.
//!
//! A [`Rule`] is a small value built where the route is declared and
//! evaluated against a [`Principal`]: the user of a browser [`Session`](crate::session::model::Session) or
//! of a bearer token ([`BearerClaims`](crate::token::bearer::claims::BearerClaims)), or anything that
//! implements `AsRef<Principal>` (both do, and so does tower-oidc's `Identity`). Nothing here
//! knows about HTTP except [`Engine::check_rule`] and [`forbidden_response`], which turn a
//! refusal into the engine's usual answer.
//!
//! ```
//! use oidc_core::policy::{Rule, Verdict};
//! use oidc_core::Principal;
//!
//! let editors = Rule::realm_role("admin").or(Rule::client_role("nginx", "editor"));
//!
//! let mut alice = Principal::new("alice");
//! alice.client_roles.push("nginx:editor".to_owned());
//! assert_eq!(editors.evaluate(Some(&alice)), Verdict::Allow);
//! assert_eq!(editors.evaluate(Some(&Principal::new("bob"))), Verdict::Forbidden);
//! assert_eq!(editors.evaluate(None::<&Principal>), Verdict::Unauthenticated);
//! assert_eq!(Rule::public().evaluate(None::<&Principal>), Verdict::Allow);
//!
//! // oauth2-proxy's --allowed-group / --allowed-role: any one of them suffices.
//! let flags = Rule::oauth2_proxy(["admins"], ["admin", "nginx:editor"]);
//! assert!(flags.allows(&alice));
//! ```

use std::fmt;

use crate::identity::principal::Principal;

/// The outcome of a [`Rule`] for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Let the request through.
    Allow,
    /// Nobody is signed in and the rule needs someone: log in (302) or 401.
    Unauthenticated,
    /// Someone is signed in but the rule refuses them: 403.
    Forbidden,
}

/// Who may use a route.
///
/// Build one with the constructors and combine with [`Rule::or`],
/// [`Rule::and`], [`Rule::any_of`] and [`Rule::all_of`]. Matching is exact and
/// case-sensitive, like Keycloak's role and group names. Cheap to evaluate:
/// no allocation, no lock, no I/O.
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct Rule {
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Public,
    Authenticated,
    Group(Box<str>),
    RealmRole(Box<str>),
    /// `client:role`, joined once here so evaluation compares one string.
    ClientRole {
        joined: Box<str>,
        split: usize,
    },
    AnyOf(Box<[Rule]>),
    AllOf(Box<[Rule]>),
}

impl Rule {
    /// Anyone, signed in or not. A transport still recognises a signed-in
    /// user on a public route, so pages can greet them.
    pub fn public() -> Self {
        Self { kind: Kind::Public }
    }

    /// Any signed-in user.
    pub fn authenticated() -> Self {
        Self {
            kind: Kind::Authenticated,
        }
    }

    /// A signed-in user in this group (from the configured groups claim).
    pub fn group(name: impl Into<String>) -> Self {
        Self {
            kind: Kind::Group(name.into().into_boxed_str()),
        }
    }

    /// A signed-in user with this Keycloak realm role (`realm_access.roles`).
    pub fn realm_role(role: impl Into<String>) -> Self {
        Self {
            kind: Kind::RealmRole(role.into().into_boxed_str()),
        }
    }

    /// A signed-in user with this Keycloak client role
    /// (`resource_access.<client>.roles`).
    pub fn client_role(client: impl AsRef<str>, role: impl AsRef<str>) -> Self {
        let client = client.as_ref();
        let mut joined = String::with_capacity(client.len() + 1 + role.as_ref().len());
        joined.push_str(client);
        joined.push(':');
        joined.push_str(role.as_ref());
        Self {
            kind: Kind::ClientRole {
                joined: joined.into_boxed_str(),
                split: client.len(),
            },
        }
    }

    /// A role as oauth2-proxy's `--allowed-role` spells it: `role` is a realm
    /// role, `client:role` a client role (split at the first `:`).
    pub fn allowed_role(spec: &str) -> Self {
        match spec.split_once(':') {
            Some((client, role)) => Self::client_role(client, role),
            None => Self::realm_role(spec),
        }
    }

    /// oauth2-proxy's `--allowed-group` and `--allowed-role` flags together:
    /// a user in any one of the groups **or** with any one of the roles (see
    /// [`Rule::allowed_role`]) is allowed. With no groups and no roles, any
    /// signed-in user is.
    pub fn oauth2_proxy<G, R>(groups: G, roles: R) -> Self
    where
        G: IntoIterator,
        G::Item: Into<String>,
        R: IntoIterator,
        R::Item: AsRef<str>,
    {
        let rules: Vec<Rule> = groups
            .into_iter()
            .map(Self::group)
            .chain(roles.into_iter().map(|r| Self::allowed_role(r.as_ref())))
            .collect();
        if rules.is_empty() {
            Self::authenticated()
        } else {
            Self::any_of(rules)
        }
    }

    /// Allowed when at least one of `rules` allows. `any_of([])` allows no one.
    pub fn any_of(rules: impl IntoIterator<Item = Rule>) -> Self {
        let mut rules: Vec<Rule> = rules.into_iter().collect();
        if rules.len() == 1
            && let Some(only) = rules.pop()
        {
            return only;
        }
        Self {
            kind: Kind::AnyOf(rules.into_boxed_slice()),
        }
    }

    /// Allowed when every one of `rules` allows. `all_of([])` is
    /// [`Rule::authenticated`], never public.
    pub fn all_of(rules: impl IntoIterator<Item = Rule>) -> Self {
        let mut rules: Vec<Rule> = rules.into_iter().collect();
        match rules.len() {
            0 => Self::authenticated(),
            1 => rules.pop().unwrap_or_else(Self::authenticated),
            _ => Self {
                kind: Kind::AllOf(rules.into_boxed_slice()),
            },
        }
    }

    /// `self` or `other`.
    pub fn or(self, other: Rule) -> Self {
        match self.kind {
            Kind::AnyOf(rules) => {
                let mut rules = rules.into_vec();
                rules.push(other);
                Self::any_of(rules)
            }
            kind => Self::any_of([Self { kind }, other]),
        }
    }

    /// `self` and `other`.
    pub fn and(self, other: Rule) -> Self {
        match self.kind {
            Kind::AllOf(rules) => {
                let mut rules = rules.into_vec();
                rules.push(other);
                Self::all_of(rules)
            }
            kind => Self::all_of([Self { kind }, other]),
        }
    }

    /// `true` when the rule lets anonymous requests through (it is, or
    /// contains in an `or`, [`Rule::public`]).
    #[must_use]
    pub fn allows_anonymous(&self) -> bool {
        match &self.kind {
            Kind::Public => true,
            Kind::Authenticated | Kind::Group(_) | Kind::RealmRole(_) | Kind::ClientRole { .. } => {
                false
            }
            Kind::AnyOf(rules) => rules.iter().any(Rule::allows_anonymous),
            Kind::AllOf(rules) => rules.iter().all(Rule::allows_anonymous),
        }
    }

    /// `true` when the rule lets this signed-in user through: a [`Principal`], or what holds
    /// one (a [`Session`](crate::session::model::Session), [`BearerClaims`](crate::token::bearer::claims::BearerClaims)).
    #[must_use]
    pub fn allows<P: AsRef<Principal> + ?Sized>(&self, who: &P) -> bool {
        self.allows_principal(who.as_ref())
    }

    fn allows_principal(&self, who: &Principal) -> bool {
        match &self.kind {
            Kind::Public | Kind::Authenticated => true,
            Kind::Group(g) => who.groups.iter().any(|x| **x == **g),
            Kind::RealmRole(r) => who.realm_roles.iter().any(|x| **x == **r),
            Kind::ClientRole { joined, .. } => who.client_roles.iter().any(|x| **x == **joined),
            Kind::AnyOf(rules) => rules.iter().any(|r| r.allows_principal(who)),
            Kind::AllOf(rules) => rules.iter().all(|r| r.allows_principal(who)),
        }
    }

    /// The verdict for a request by `who` (`None`: nobody is signed in).
    #[must_use]
    pub fn evaluate<P: AsRef<Principal> + ?Sized>(&self, who: Option<&P>) -> Verdict {
        match who {
            None if self.allows_anonymous() => Verdict::Allow,
            None => Verdict::Unauthenticated,
            Some(p) if self.allows(p) => Verdict::Allow,
            Some(_) => Verdict::Forbidden,
        }
    }
}

impl Default for Rule {
    /// [`Rule::authenticated`].
    fn default() -> Self {
        Self::authenticated()
    }
}

impl fmt::Display for Rule {
    /// A readable form for logs: `realm_role(admin) or client_role(nginx:editor)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, rules: &[Rule], sep: &str) -> fmt::Result {
            if rules.is_empty() {
                return f.write_str("nobody");
            }
            for (i, r) in rules.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                if matches!(r.kind, Kind::AnyOf(_) | Kind::AllOf(_)) {
                    write!(f, "({r})")?;
                } else {
                    write!(f, "{r}")?;
                }
            }
            Ok(())
        }
        match &self.kind {
            Kind::Public => f.write_str("public"),
            Kind::Authenticated => f.write_str("authenticated"),
            Kind::Group(g) => write!(f, "group({g})"),
            Kind::RealmRole(r) => write!(f, "realm_role({r})"),
            Kind::ClientRole { joined, .. } => write!(f, "client_role({joined})"),
            Kind::AnyOf(rules) => list(f, rules, " or "),
            Kind::AllOf(rules) => list(f, rules, " and "),
        }
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::ClientRole { joined, split } => {
                let (client, role) = joined.split_at(*split);
                write!(f, "Rule::client_role({client:?}, {:?})", &role[1..])
            }
            _ => write!(f, "Rule({self})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(groups: &[&str], realm: &[&str], client: &[&str]) -> Principal {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        Principal {
            groups: v(groups),
            realm_roles: v(realm),
            client_roles: v(client),
            ..Principal::new("u")
        }
    }

    #[test]
    fn leaves() {
        let alice = user(&["admins"], &["admin"], &["nginx:editor"]);
        let bob = user(&["users"], &["user"], &["account:view-profile"]);
        assert!(Rule::public().allows(&bob));
        assert!(Rule::authenticated().allows(&bob));
        assert!(Rule::group("admins").allows(&alice));
        assert!(!Rule::group("admins").allows(&bob));
        assert!(Rule::realm_role("admin").allows(&alice));
        assert!(!Rule::realm_role("admin").allows(&bob));
        assert!(Rule::client_role("nginx", "editor").allows(&alice));
        assert!(!Rule::client_role("nginx", "editor").allows(&bob));
        // A realm role is not a client role of the same name, and vice versa.
        assert!(!Rule::realm_role("editor").allows(&alice));
        assert!(!Rule::client_role("other", "admin").allows(&alice));
        // Exact, case-sensitive.
        assert!(!Rule::group("Admins").allows(&alice));
        assert!(!Rule::client_role("nginx", "edit").allows(&alice));
    }

    #[test]
    fn sessions_and_tokens_are_judged_by_their_principal() {
        let admin = Rule::realm_role("admin");
        let mut session = crate::session::model::Session::default();
        let mut token = crate::token::bearer::claims::BearerClaims::default();
        assert!(!admin.allows(&session) && !admin.allows(&token));
        session.principal = user(&[], &["admin"], &[]);
        token.principal = user(&[], &["admin"], &[]);
        assert!(admin.allows(&session) && admin.allows(&token));
        assert_eq!(admin.evaluate(Some(&session)), Verdict::Allow);
    }

    #[test]
    fn verdicts() {
        let bob = user(&["users"], &[], &[]);
        let admin = Rule::realm_role("admin");
        assert_eq!(admin.evaluate(None::<&Principal>), Verdict::Unauthenticated);
        assert_eq!(admin.evaluate(Some(&bob)), Verdict::Forbidden);
        assert_eq!(Rule::public().evaluate(None::<&Principal>), Verdict::Allow);
        assert_eq!(Rule::public().evaluate(Some(&bob)), Verdict::Allow);
        assert_eq!(
            Rule::authenticated().evaluate(None::<&Principal>),
            Verdict::Unauthenticated
        );
    }

    #[test]
    fn combinators() {
        let alice = user(&["admins"], &["admin"], &["nginx:editor"]);
        let carol = user(&["users"], &[], &["nginx:editor"]);
        let r = Rule::group("admins").or(Rule::client_role("nginx", "editor"));
        assert!(r.allows(&alice) && r.allows(&carol));
        let r = Rule::group("admins").and(Rule::client_role("nginx", "editor"));
        assert!(r.allows(&alice) && !r.allows(&carol));
        assert!(!Rule::any_of([]).allows(&alice), "any_of([]) allows no one");
        assert_eq!(Rule::all_of([]), Rule::authenticated());
        assert!(!Rule::all_of([]).allows_anonymous());
        assert_eq!(Rule::any_of([Rule::group("g")]), Rule::group("g"));
        assert!(Rule::public().or(Rule::group("g")).allows_anonymous());
        assert!(!Rule::public().and(Rule::group("g")).allows_anonymous());
        let three = Rule::group("a").or(Rule::group("b")).or(Rule::group("c"));
        assert_eq!(three.to_string(), "group(a) or group(b) or group(c)");
        let nested = Rule::all_of([Rule::group("a"), Rule::realm_role("r").or(Rule::group("b"))]);
        assert_eq!(
            nested.to_string(),
            "group(a) and (realm_role(r) or group(b))"
        );
    }

    #[test]
    fn oauth2_proxy_flags_are_any_of() {
        let alice = user(&[], &["admin"], &[]);
        let carol = user(&[], &[], &["nginx:editor"]);
        let dave = user(&["ops"], &[], &[]);
        let bob = user(&["users"], &["user"], &["account:view-profile"]);
        let r = Rule::oauth2_proxy(["ops"], ["admin", "nginx:editor"]);
        for (who, ok) in [(&alice, true), (&carol, true), (&dave, true), (&bob, false)] {
            assert_eq!(r.allows(who), ok, "{who:?}");
        }
        let none: [&str; 0] = [];
        assert_eq!(
            Rule::oauth2_proxy(none, none),
            Rule::authenticated(),
            "no flags: any signed-in user"
        );
        assert_eq!(
            Rule::allowed_role("nginx:editor"),
            Rule::client_role("nginx", "editor")
        );
        assert_eq!(Rule::allowed_role("admin"), Rule::realm_role("admin"));
        assert_eq!(
            format!("{:?}", Rule::client_role("nginx", "editor")),
            "Rule::client_role(\"nginx\", \"editor\")"
        );
    }
}
