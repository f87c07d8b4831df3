//! Which user claims a scope releases (Core 5.4), for UserInfo.

use serde_json::{Map, Value, json};

use crate::store::User;
use crate::types::ScopeSet;

/// The UserInfo response (Core 5.3.2): `sub` always, other claims as the scopes allow; claims the user
/// does not have are omitted rather than sent as null (Core 5.3.2).
pub fn userinfo_claims(user: &User, scope: &ScopeSet) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id));
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(v) = value {
            claims.insert(name.into(), v);
        }
    };
    if scope.contains("profile") {
        put("name", user.name.as_ref().map(|v| json!(v)));
        put("given_name", user.given_name.as_ref().map(|v| json!(v)));
        put("family_name", user.family_name.as_ref().map(|v| json!(v)));
        put("preferred_username", Some(json!(user.username)));
        put("updated_at", Some(json!(user.updated_at)));
    }
    if scope.contains("email") {
        if let Some(email) = &user.email {
            put("email", Some(json!(email)));
            put("email_verified", Some(json!(user.email_verified)));
        }
    }
    if scope.contains("phone") {
        if let Some(phone) = &user.phone_number {
            put("phone_number", Some(json!(phone)));
            put("phone_number_verified", Some(json!(user.phone_number_verified)));
        }
    }
    if scope.contains("address") {
        put("address", user.address.as_deref().and_then(|a| serde_json::from_str(a).ok()));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_release_only_their_claims() {
        let user = User {
            id: "u1".into(),
            username: "alice".into(),
            email: Some("a@example.com".into()),
            email_verified: true,
            name: Some("Alice A".into()),
            ..User::default()
        };
        let c = userinfo_claims(&user, &ScopeSet::parse("openid").unwrap());
        assert_eq!(Value::Object(c), json!({"sub": "u1"}));
        let c = userinfo_claims(&user, &ScopeSet::parse("openid email").unwrap());
        assert_eq!(c["email"], "a@example.com");
        assert_eq!(c["email_verified"], true);
        assert!(!c.contains_key("name"));
        let c = userinfo_claims(&user, &ScopeSet::parse("openid profile phone").unwrap());
        assert_eq!(c["name"], "Alice A");
        assert_eq!(c["preferred_username"], "alice");
        assert!(!c.contains_key("given_name") && !c.contains_key("phone_number"));
    }
}
