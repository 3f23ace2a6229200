//! The claims of a validated access token and the [`Principal`] read from them.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::identity::claims::{keycloak_roles, string_list};
use crate::identity::principal::Principal;

/// The claims of a validated access token, with the usual ones parsed out.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct BearerClaims {
    /// The token's user: `sub`, `email`, `preferred_username`, `name`, the groups (from the
    /// engine's configured groups claim), Keycloak's realm and client roles, and `iss`.
    pub principal: Principal,
    /// `azp`: the client the token was issued to, when present.
    pub authorized_party: Option<String>,
    /// `scope`, split at spaces.
    pub scopes: Vec<String>,
    /// `exp` (Unix seconds).
    pub expires_at: u64,
    /// Every claim of the token, as sent.
    pub claims: Map<String, Value>,
}

impl BearerClaims {
    pub(crate) fn from_claims(claims: Map<String, Value>, groups_claim: &str) -> Self {
        let get = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        let (realm_roles, client_roles) = keycloak_roles(&claims);
        Self {
            principal: Principal {
                subject: get("sub").unwrap_or_default(),
                email: get("email"),
                preferred_username: get("preferred_username"),
                name: get("name"),
                groups: string_list(claims.get(groups_claim)),
                realm_roles,
                client_roles,
                issuer: claims.get("iss").and_then(Value::as_str).map(Arc::from),
            },
            authorized_party: get("azp"),
            scopes: claims
                .get("scope")
                .and_then(Value::as_str)
                .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            expires_at: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
            claims,
        }
    }

    /// The token's user.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

impl AsRef<Principal> for BearerClaims {
    fn as_ref(&self) -> &Principal {
        &self.principal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_are_parsed_for_an_identity() {
        let c = BearerClaims::from_claims(
            json!({
                "iss": "i", "sub": "s", "azp": "nginx", "exp": 5,
                "email": "a@example.com", "preferred_username": "alice", "name": "Alice A",
                "groups": ["g1"], "scope": "openid email",
                "realm_access": {"roles": ["admin", "user"]},
                "resource_access": {"nginx": {"roles": ["editor"]}, "account": {"roles": ["view-profile"]}}
            })
            .as_object()
            .unwrap()
            .clone(),
            "groups",
        );
        let p = &c.principal;
        assert_eq!(p.subject, "s");
        assert_eq!(p.issuer(), Some("i"));
        assert_eq!(p.preferred_username.as_deref(), Some("alice"));
        assert_eq!(p.name.as_deref(), Some("Alice A"));
        assert_eq!(p.email.as_deref(), Some("a@example.com"));
        assert_eq!(p.realm_roles, ["admin", "user"]);
        assert!(p.client_roles.contains(&"nginx:editor".to_owned()));
        assert!(p.client_roles.contains(&"account:view-profile".to_owned()));
        assert_eq!(c.scopes, ["openid", "email"]);
        assert_eq!(c.authorized_party.as_deref(), Some("nginx"));
        assert_eq!(p.groups, ["g1"]);
        assert_eq!(c.expires_at, 5);
    }
}
