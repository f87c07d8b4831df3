//! The `claims` request parameter (Core 5.5) and `claims_locales` (Core 5.2): what a grant asks to know
//! about the user beyond its scopes. Parsed once at the authorization endpoint, then carried by the grant.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Claims that describe the token or the authentication, never the user: they cannot be stored as
/// user claims, and the user's claims can never override them in an ID Token.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "sid",
    "cnf",
    "scope",
    "client_id",
];

/// The most claims one `claims` parameter may name (bounded work per request).
const MAX_REQUESTED_CLAIMS: usize = 64;

/// One entry of the `claims` parameter (Core 5.5.1): null, or an object with these members.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub essential: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
}

impl ClaimRequest {
    /// Whether `candidate` is acceptable under `value` / `values` (no constraint: anything is).
    pub fn accepts(&self, candidate: &Value) -> bool {
        match (&self.value, &self.values) {
            (None, None) => true,
            (value, values) => {
                value.as_ref() == Some(candidate) || values.as_ref().is_some_and(|vs| vs.contains(candidate))
            }
        }
    }
}

/// What a request asks to know about the user beyond its scopes: the `claims` parameter (Core 5.5),
/// individual claims for the ID Token and for UserInfo, and `claims_locales` (Core 5.2), the languages
/// wanted for claim values. It belongs to the grant, so it holds for every token issued from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimsRequest {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub userinfo: BTreeMap<String, ClaimRequest>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub id_token: BTreeMap<String, ClaimRequest>,
    /// `claims_locales`, in order of preference (lower-case BCP 47 tags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locales: Vec<String>,
}

impl ClaimsRequest {
    /// Parses the parameter's JSON. Members other than `userinfo` and `id_token` are ignored
    /// (Core 5.5: "other members MAY be present ... and MUST be ignored if not understood").
    pub fn parse(json: &str) -> Result<Self, &'static str> {
        let Ok(Value::Object(top)) = serde_json::from_str::<Value>(json) else {
            return Err("claims must be a JSON object");
        };
        let mut request = Self::default();
        for (member, entries) in top {
            let target = match member.as_str() {
                "userinfo" => &mut request.userinfo,
                "id_token" => &mut request.id_token,
                _ => continue,
            };
            let Value::Object(entries) = entries else {
                return Err("claims.userinfo and claims.id_token must be JSON objects");
            };
            for (name, entry) in entries {
                let entry = match entry {
                    Value::Null => ClaimRequest::default(),
                    entry @ Value::Object(_) => serde_json::from_value(entry)
                        .map_err(|_| "each requested claim must be null or {essential, value, values}")?,
                    _ => return Err("each requested claim must be null or {essential, value, values}"),
                };
                target.insert(name, entry);
            }
        }
        if request.userinfo.len() + request.id_token.len() > MAX_REQUESTED_CLAIMS {
            return Err("claims names too many claims");
        }
        Ok(request)
    }

    /// Every user claim the request names, for consent. Reserved claims (`sub`, `acr`, …) are about
    /// the authentication, not personal data.
    pub fn user_claims(&self) -> BTreeSet<&str> {
        self.userinfo
            .keys()
            .chain(self.id_token.keys())
            .map(String::as_str)
            .filter(|c| !RESERVED_CLAIMS.contains(c))
            .collect()
    }

    /// Core 5.5.1: `sub` with a value asks for that particular user.
    pub fn required_subject(&self) -> Option<&str> {
        self.id_token.get("sub").and_then(|r| r.value.as_ref()).and_then(Value::as_str)
    }
}
