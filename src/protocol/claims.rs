//! User claims (Core 5): what each scope releases (5.4, configurable, custom scopes too), the `claims`
//! request parameter (5.5), and the claim sets of UserInfo responses and ID Tokens.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::model::{ClaimsRequest, RESERVED_CLAIMS, ScopeSet, User};

/// Core 5.4: the claims each standard scope requests.
const STANDARD_SCOPE_CLAIMS: &[(&str, &[&str])] = &[
    (
        "profile",
        &[
            "name",
            "family_name",
            "given_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
        ],
    ),
    ("email", &["email", "email_verified"]),
    ("address", &["address"]),
    ("phone", &["phone_number", "phone_number_verified"]),
];

/// Scopes that release no claims but mean something to the OP.
const PROTOCOL_SCOPES: &[&str] = &["openid", "offline_access"];

/// Whether `claim` is about the token or authentication rather than the user.
pub fn is_reserved(claim: &str) -> bool {
    RESERVED_CLAIMS.contains(&claim)
}

/// Claims with their own fields in the user model (set with `oxid user add` flags).
const MODELLED_CLAIMS: &[&str] = &[
    "preferred_username",
    "name",
    "given_name",
    "family_name",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
];

/// The scopes this OP understands and the user claims each releases: Core 5.4's, with the operator's
/// configuration replacing or adding entries (`scope_claims`).
#[derive(Debug, Clone)]
pub struct ScopeClaims(BTreeMap<String, Vec<String>>);

impl ScopeClaims {
    pub fn new(configured: &BTreeMap<String, Vec<String>>) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = STANDARD_SCOPE_CLAIMS
            .iter()
            .map(|(scope, claims)| (scope.to_string(), claims.iter().map(|c| c.to_string()).collect()))
            .collect();
        map.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self(map)
    }

    pub fn is_known(&self, scope: &str) -> bool {
        PROTOCOL_SCOPES.contains(&scope) || self.0.contains_key(scope)
    }

    /// Every scope the OP understands (Discovery `scopes_supported`).
    pub fn scopes(&self) -> Vec<&str> {
        PROTOCOL_SCOPES.iter().copied().chain(self.0.keys().map(String::as_str)).collect()
    }

    /// Every user claim some scope releases (for Discovery `claims_supported`).
    pub fn claims(&self) -> BTreeSet<&str> {
        self.0.values().flatten().map(String::as_str).collect()
    }

    /// The claims the scopes of `scope` release.
    pub fn claims_for<'a>(&'a self, scope: &'a ScopeSet) -> impl Iterator<Item = &'a str> + 'a {
        scope.iter().flat_map(|s| self.claims_of(s))
    }

    /// The claims one scope releases.
    pub fn claims_of<'a>(&'a self, scope: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.get(scope).into_iter().flatten().map(String::as_str)
    }
}

/// The user claims an ID Token carries: `by_scope` (Core 5.4, when no access token is issued) and those
/// the claims parameter asks to have there (Core 5.5), in its `claims_locales`.
pub fn id_token_claims<'a>(
    user: &User,
    by_scope: impl IntoIterator<Item = &'a str>,
    request: Option<&'a ClaimsRequest>,
) -> Map<String, Value> {
    let requested = request.into_iter().flat_map(|c| c.id_token.keys().map(String::as_str));
    release(user, by_scope.into_iter().chain(requested), request.map_or(&[], |c| &c.locales))
}

/// The value of claim `name` for `user`, if the user has one.
pub fn user_claim(user: &User, name: &str) -> Option<Value> {
    match name {
        "sub" => Some(json!(user.id)),
        "preferred_username" => Some(json!(user.username)),
        "name" => user.name.as_ref().map(|v| json!(v)),
        "given_name" => user.given_name.as_ref().map(|v| json!(v)),
        "family_name" => user.family_name.as_ref().map(|v| json!(v)),
        "email" => user.email.as_ref().map(|v| json!(v)),
        "email_verified" => user.email.as_ref().map(|_| json!(user.email_verified)),
        "phone_number" => user.phone_number.as_ref().map(|v| json!(v)),
        "phone_number_verified" => user.phone_number.as_ref().map(|_| json!(user.phone_number_verified)),
        "address" => user.address.as_deref().and_then(|a| serde_json::from_str(a).ok()),
        "updated_at" => Some(json!(user.updated_at)),
        other => user.claims.get(other).cloned(),
    }
}

/// The claims `names` of `user` (Core 5.2). With `locales` (`claims_locales`), each claim is given
/// once, untagged, in the first of those languages the user has it in (else as stored untagged);
/// without, every language-tagged form (`name#fr`) comes along. Claims the user does not have are left
/// out, never sent as null (Core 5.3.2).
pub fn release<'a>(user: &User, names: impl IntoIterator<Item = &'a str>, locales: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    for name in names {
        if RESERVED_CLAIMS.contains(&name) {
            continue;
        }
        let tagged = |tag: &str| user.claims.iter().find(|(k, _)| k.eq_ignore_ascii_case(&format!("{name}#{tag}")));
        let preferred = locales.iter().find_map(|tag| tagged(tag)).map(|(_, v)| v.clone());
        if let Some(v) = preferred.or_else(|| user_claim(user, name)) {
            claims.insert(name.to_owned(), v);
        }
        if locales.is_empty() && !name.contains('#') {
            let tagged = user.claims.iter().filter(|(k, _)| k.split_once('#').is_some_and(|(base, _)| base == name));
            claims.extend(tagged.map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    claims
}

/// The UserInfo response (Core 5.3.2): `sub` (as this client sees it, Core 8), the scopes' claims,
/// and the individually requested userinfo claims (Core 5.5).
pub fn userinfo_claims(
    subject: &str,
    user: &User,
    scopes: &ScopeClaims,
    scope: &ScopeSet,
    requested: Option<&ClaimsRequest>,
) -> Map<String, Value> {
    let individually = requested.into_iter().flat_map(|r| r.userinfo.keys().map(String::as_str));
    let locales = requested.map_or(&[][..], |r| &r.locales);
    let mut claims = release(user, scopes.claims_for(scope).chain(individually), locales);
    claims.insert("sub".into(), json!(subject));
    claims
}

/// Checks a claim an operator stores on a user: not reserved, not one with its own field, and of the
/// type Core 5.1 gives it (language-tagged forms included).
pub fn validate_user_claim(name: &str, value: &Value) -> Result<(), String> {
    let base = name.split_once('#').map_or(name, |(base, _)| base);
    if name.is_empty() || name.len() > 128 || base.is_empty() {
        return Err("a claim name must be 1 to 128 characters".into());
    }
    if RESERVED_CLAIMS.contains(&base) {
        return Err(format!("{name} describes the token, not the user"));
    }
    if MODELLED_CLAIMS.contains(&name) {
        return Err(format!("{name} has its own option"));
    }
    let standard_string = ["middle_name", "nickname", "profile", "picture", "website", "gender", "zoneinfo", "locale"];
    if standard_string.contains(&base) && !value.is_string() {
        return Err(format!("{name} must be a string (Core 5.1)"));
    }
    if base == "birthdate" {
        // Core 5.1: YYYY-MM-DD, or YYYY (year only), or 0000-MM-DD (year withheld).
        let ok = value.as_str().is_some_and(|s| {
            let b = s.as_bytes();
            let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
            (b.len() == 4 && digits(0..4))
                || (b.len() == 10 && digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10))
        });
        if !ok {
            return Err("birthdate must be YYYY-MM-DD or YYYY (Core 5.1)".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        let mut claims = Map::new();
        claims.insert("nickname".into(), json!("Ali"));
        claims.insert("name#fr".into(), json!("Alice l'Exemple"));
        claims.insert("groups".into(), json!(["admins"]));
        User {
            id: "u1".into(),
            username: "alice".into(),
            email: Some("a@example.com".into()),
            email_verified: true,
            name: Some("Alice A".into()),
            claims,
            ..User::default()
        }
    }

    fn scopes() -> ScopeClaims {
        ScopeClaims::new(&BTreeMap::from([("groups".to_owned(), vec!["groups".to_owned()])]))
    }

    #[test]
    fn scopes_release_only_their_claims() {
        let user = alice();
        let s = scopes();
        let c = userinfo_claims("u1", &user, &s, &ScopeSet::parse("openid").unwrap(), None);
        assert_eq!(Value::Object(c), json!({"sub": "u1"}));
        let c = userinfo_claims("u1", &user, &s, &ScopeSet::parse("openid email").unwrap(), None);
        assert_eq!(c["email"], "a@example.com");
        assert_eq!(c["email_verified"], true);
        assert!(!c.contains_key("name"));
        let c = userinfo_claims("u1", &user, &s, &ScopeSet::parse("openid profile phone").unwrap(), None);
        assert_eq!(c["name"], "Alice A");
        assert_eq!(c["name#fr"], "Alice l'Exemple", "language-tagged forms come along (Core 5.2)");
        assert_eq!(c["nickname"], "Ali");
        assert_eq!(c["preferred_username"], "alice");
        assert!(!c.contains_key("given_name") && !c.contains_key("phone_number"), "absent, not null");
        assert!(!c.contains_key("groups"));
        // A configured custom scope releases its claims.
        let c = userinfo_claims("u1", &user, &s, &ScopeSet::parse("openid groups").unwrap(), None);
        assert_eq!(c["groups"], json!(["admins"]));
        assert!(s.is_known("groups") && s.is_known("offline_access") && !s.is_known("bogus"));
    }

    #[test]
    fn claims_parameter_requests_individual_claims() {
        let r = ClaimsRequest::parse(
            r#"{"userinfo": {"email": {"essential": true}, "nickname": null},
                "id_token": {"sub": {"value": "u1"}, "acr": {"values": ["a", "b"]}}, "other": 1}"#,
        )
        .unwrap();
        assert!(r.userinfo["email"].essential);
        assert_eq!(r.required_subject(), Some("u1"));
        assert!(r.id_token["acr"].accepts(&json!("b")) && !r.id_token["acr"].accepts(&json!("c")));
        assert_eq!(r.user_claims(), BTreeSet::from(["email", "nickname"]));
        let c = userinfo_claims("u1", &alice(), &scopes(), &ScopeSet::parse("openid").unwrap(), Some(&r));
        assert_eq!(c["email"], "a@example.com");
        assert_eq!(c["nickname"], "Ali");
        let entry = "each requested claim must be null or {essential, value, values}";
        for (bad, why) in [
            ("[]", "claims must be a JSON object"),
            ("{\"userinfo\": []}", "claims.userinfo and claims.id_token must be JSON objects"),
            ("{\"id_token\": {\"email\": 1}}", entry),
            ("{\"userinfo\": {\"a\": {\"essential\": 1}}}", entry),
            ("x", "claims must be a JSON object"),
        ] {
            assert_eq!(ClaimsRequest::parse(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn claims_locales_pick_one_language() {
        let user = alice();
        let fr = release(&user, ["name", "nickname"], &["fr".to_owned()]);
        assert_eq!(Value::Object(fr), json!({"name": "Alice l'Exemple", "nickname": "Ali"}), "untagged, in French");
        let de = release(&user, ["name"], &["de".to_owned()]);
        assert_eq!(de["name"], "Alice A", "no German form: the stored one");
        assert!(!de.contains_key("name#fr"));
    }

    #[test]
    fn reserved_claims_are_never_released_from_user_data() {
        let mut user = alice();
        user.claims.insert("iss".into(), json!("https://evil.example"));
        assert!(!release(&user, ["iss", "nickname"], &[]).contains_key("iss"));
        assert_eq!(validate_user_claim("iss", &json!("x")).unwrap_err(), "iss describes the token, not the user");
        assert_eq!(validate_user_claim("email", &json!("x")).unwrap_err(), "email has its own option");
        assert!(validate_user_claim("birthdate", &json!("1990-02-30")).is_ok());
        let date = validate_user_claim("birthdate", &json!("Feb 1990")).unwrap_err();
        assert_eq!(date, "birthdate must be YYYY-MM-DD or YYYY (Core 5.1)");
        assert_eq!(validate_user_claim("picture", &json!(1)).unwrap_err(), "picture must be a string (Core 5.1)");
        assert!(validate_user_claim("nickname#de", &json!("Ali")).is_ok());
        assert!(validate_user_claim("groups", &json!(["a"])).is_ok());
    }
}
