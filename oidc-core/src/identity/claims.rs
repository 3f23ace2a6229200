//! Reading JWT claims: groups, Keycloak's realm and client roles, and whether the email
//! is verified.

use serde_json::{Map, Value};

/// A claim that is a list of strings (non-strings skipped), or one string.
pub(crate) fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Keycloak's roles in an access token: the realm roles (`realm_access.roles`) and the
/// client roles, each as `client:role` (`resource_access.<client>.roles`).
pub(crate) fn keycloak_roles(claims: &Map<String, Value>) -> (Vec<String>, Vec<String>) {
    let realm = string_list(claims.get("realm_access").and_then(|r| r.get("roles")));
    let mut client = Vec::new();
    if let Some(Value::Object(resources)) = claims.get("resource_access") {
        for (name, v) in resources {
            for role in string_list(v.get("roles")) {
                client.push(format!("{name}:{role}"));
            }
        }
    }
    (realm, client)
}

/// `true` when the claims carry an `email` and say it is not verified
/// (`email_verified` is `false` or `"false"`). No `email_verified` at all counts as
/// verified, as in oauth2-proxy (many providers never send it). The one rule for the
/// login, every refresh and bearer tokens.
pub(crate) fn email_unverified(claims: &Map<String, Value>) -> bool {
    let is_false = |v: &Value| {
        matches!(v, Value::Bool(false))
            || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("false"))
    };
    claims.get("email").and_then(Value::as_str).is_some()
        && claims.get("email_verified").is_some_and(is_false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_and_roles() {
        assert_eq!(string_list(Some(&json!(["a", 1, "b"]))), ["a", "b"]);
        assert_eq!(string_list(Some(&json!("a"))), ["a"]);
        assert!(string_list(Some(&json!({"a": 1}))).is_empty());
        assert!(string_list(None).is_empty());
        let claims = json!({
            "realm_access": {"roles": ["admin"]},
            "resource_access": {"nginx": {"roles": ["editor", "viewer"]}, "x": {"roles": "one"}}
        });
        let (realm, client) = keycloak_roles(claims.as_object().unwrap());
        assert_eq!(realm, ["admin"]);
        assert_eq!(client, ["nginx:editor", "nginx:viewer", "x:one"]);
    }
}
