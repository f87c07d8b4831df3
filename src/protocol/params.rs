//! Request parameters from a query string or form body, checked once at the edge.

use std::collections::HashMap;

use super::error::OAuthError;

/// Bounds that keep a hostile request from costing memory or time.
pub const MAX_PARAMS: usize = 64;
pub const MAX_VALUE_LEN: usize = 4096;
/// The one parameter that may be repeated (RFC 8707 2 `resource`).
const REPEATABLE: &str = "resource";

/// Whether `s` holds a C0 control character other than tab, line feed and carriage return, or DEL.
fn has_control(s: &str) -> bool {
    s.chars().any(|c| (c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}')
}

/// `application/x-www-form-urlencoded` parameters, each present at most once (RFC 6749 3.1, 3.2:
/// "Request and response parameters MUST NOT be included more than once"). Empty values count as
/// omitted (RFC 6749 3.1).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (count, (key, value)) in form_urlencoded::parse(input).enumerate() {
            if count >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            if value.len() > MAX_VALUE_LEN || key.len() > 128 {
                return Err(OAuthError::invalid_request(format!("parameter {key} is too long")));
            }
            // No OAuth or form value needs control characters, and NUL cannot even be stored (PostgreSQL
            // text): refused here, once, for every endpoint.
            if has_control(&key) || has_control(&value) {
                return Err(OAuthError::invalid_request(format!("parameter {key} contains control characters")));
            }
            if value.is_empty() {
                continue;
            }
            // RFC 8707 2: `resource` may be given several times. Its values are absolute URIs, which
            // hold no spaces, so they are kept space-separated (`all` splits them again).
            if key == REPEATABLE {
                if let Some(earlier) = map.get_mut(REPEATABLE) {
                    let earlier: &mut String = earlier;
                    earlier.push(' ');
                    earlier.push_str(&value);
                    continue;
                }
            }
            if map.insert(key.to_string(), value.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!("parameter {key} is repeated")));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every value of the repeatable `resource` parameter (RFC 8707 2).
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.get(REPEATABLE).into_iter().flat_map(|v| v.split(' '))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// These parameters with a request object's claims merged in, the object's values winning
    /// (Core 6.3.3). `response_type` and `client_id` must agree where both give them (Core 6.1); the
    /// JWT's own claims and nested request references are not parameters.
    pub fn with_request_object(
        mut self,
        claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, &'static str> {
        use serde_json::Value;
        self.0.remove("request");
        self.0.remove("request_uri");
        for (name, value) in claims {
            if matches!(name.as_str(), "iss" | "aud" | "exp" | "nbf" | "iat" | "jti" | "request" | "request_uri") {
                continue;
            }
            let value = match value {
                Value::Null => continue,
                Value::String(s) => s,
                // Objects (such as `claims`) travel as JSON text, as they would in a query.
                other => other.to_string(),
            };
            if value.len() > MAX_VALUE_LEN || name.len() > 128 {
                return Err("a request object parameter is too long");
            }
            if has_control(&name) || has_control(&value) {
                return Err("a request object parameter contains control characters");
            }
            if matches!(name.as_str(), "response_type" | "client_id") && self.get(&name).is_some_and(|v| v != value) {
                return Err("response_type and client_id must match the request's");
            }
            if value.is_empty() {
                continue;
            }
            self.0.insert(name, value);
            if self.0.len() > MAX_PARAMS {
                return Err("too many parameters");
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_rejected() {
        assert_eq!(Params::parse(b"a=1&a=2").unwrap_err().description, "parameter a is repeated");
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None, "empty means omitted");
        assert_eq!(p.get("c"), Some("x y"));
    }

    #[test]
    fn request_object_values_win() {
        let query = Params::parse(b"client_id=c&response_type=code&state=q&request=jwt").unwrap();
        let claims = serde_json::json!({"state": "o", "max_age": 60, "claims": {"userinfo": {"email": null}},
            "iss": "c", "aud": "op", "nonce": null});
        let merged = query.clone().with_request_object(claims.as_object().unwrap().clone()).unwrap();
        assert_eq!(merged.get("state"), Some("o"));
        assert_eq!(merged.get("max_age"), Some("60"));
        assert_eq!(merged.get("claims"), Some(r#"{"userinfo":{"email":null}}"#));
        assert_eq!(merged.get("iss"), None);
        assert_eq!(merged.get("request"), None);
        let mismatch = serde_json::json!({"client_id": "other"});
        let err = query.with_request_object(mismatch.as_object().unwrap().clone()).unwrap_err();
        assert_eq!(err, "response_type and client_id must match the request's");
    }

    #[test]
    fn control_characters_are_rejected() {
        for bad in [&b"state=a%00b"[..], b"x%01=1", b"nonce=%7F", b"login_hint=%1B%5B31m"] {
            let err = Params::parse(bad).unwrap_err();
            assert!(err.description.ends_with("contains control characters"), "{err:?}");
        }
        assert_eq!(Params::parse(b"address=1%0D%0A2%09x").unwrap().get("address"), Some("1\r\n2\tx"));
    }

    #[test]
    fn oversized_input_is_rejected() {
        let long = format!("a={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert_eq!(Params::parse(long.as_bytes()).unwrap_err().description, "parameter a is too long");
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert_eq!(Params::parse(many.join("&").as_bytes()).unwrap_err().description, "too many parameters");
    }
}
