//! Request parameters from a query string or form body, checked once at the edge.

use std::collections::HashMap;

use super::error::OAuthError;

/// Bounds that keep a hostile request from costing memory or time.
pub const MAX_PARAMS: usize = 64;
pub const MAX_VALUE_LEN: usize = 4096;

/// `application/x-www-form-urlencoded` parameters, each present at most once (RFC 6749 3.1, 3.2:
/// "Request and response parameters MUST NOT be included more than once"). Empty values count as
/// omitted (RFC 6749 3.1).
#[derive(Debug, Default, Clone)]
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
            if value.is_empty() {
                continue;
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

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_rejected() {
        assert!(Params::parse(b"a=1&a=2").is_err());
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None, "empty means omitted");
        assert_eq!(p.get("c"), Some("x y"));
    }

    #[test]
    fn oversized_input_is_rejected() {
        let long = format!("a={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert!(Params::parse(long.as_bytes()).is_err());
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert!(Params::parse(many.join("&").as_bytes()).is_err());
    }
}
