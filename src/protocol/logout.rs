//! Ending sessions: RP-Initiated Logout requests (RP-Initiated Logout 1.0), Logout Tokens (Back-Channel
//! Logout 1.0), front-channel logout URLs (Front-Channel Logout 1.0), the session state of Session
//! Management 1.0, and how delivery is retried.

use serde::{Deserialize, Serialize};

use super::{OAuthError, Params};
use crate::crypto;
use crate::model::{Client, ClientId, RedirectUri, Timestamp};

/// What an ID Token this OP issued says about the session it was issued in; `id_token_hint` at the
/// end-session endpoint (RP-Initiated Logout 2: expired ones too). Every ID Token oxid issues has a `sid`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct HintedSession {
    pub iss: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub sid: String,
}

/// `aud` is a string or an array of strings (RFC 7519 4.1.3).
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(deserializer)? {
        Aud::One(one) => vec![one],
        Aud::Many(many) => many,
    })
}

/// A logout request as RP-Initiated Logout 1.0 2 defines it, checked as far as it can be without the
/// client's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndSessionRequest {
    /// The session the RP names (from a verified `id_token_hint`).
    pub hint: Option<HintedSession>,
    /// The client asking: `client_id`, or the hint's audience.
    pub client_id: Option<ClientId>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    /// The account the user is logging out of, as the RP knows it (RP-Initiated Logout 2): oxid
    /// compares it with the usernames of the browser's accounts.
    pub logout_hint: Option<String>,
}

/// Parses an end-session request. `verify_hint` verifies an ID Token as this OP's (signature and
/// issuer; expiry does not matter) and returns its claims. Every error is shown to the user, never
/// redirected: until the client and its `post_logout_redirect_uri` are known good there is nowhere
/// safe to send one (RP-Initiated Logout 3, 4).
pub fn parse_end_session(
    params: &Params,
    verify_hint: impl Fn(&str) -> Option<HintedSession>,
) -> Result<EndSessionRequest, OAuthError> {
    let hint = match params.get("id_token_hint") {
        Some(token) => Some(
            verify_hint(token)
                .ok_or_else(|| OAuthError::invalid_request("id_token_hint is not an ID Token issued by this OP"))?,
        ),
        None => None,
    };
    let given_client: Option<ClientId> = params
        .get("client_id")
        .map(str::parse)
        .transpose()
        .map_err(|_| OAuthError::invalid_request("client_id is not a valid client identifier"))?;
    // RP-Initiated Logout 2: a client_id given with a hint must be one of the hint's audience.
    let client_id = match (&hint, given_client) {
        (Some(h), Some(given)) if !h.aud.iter().any(|a| a == given.as_str()) => {
            return Err(OAuthError::invalid_request("client_id is not the audience of id_token_hint"));
        }
        (_, Some(given)) => Some(given),
        (Some(h), None) => match h.aud.as_slice() {
            [one] => Some(one.parse().map_err(|_| OAuthError::invalid_request("id_token_hint has no valid aud"))?),
            _ => return Err(OAuthError::invalid_request("id_token_hint has several audiences: give client_id")),
        },
        (None, None) => None,
    };
    let post_logout_redirect_uri = params.get("post_logout_redirect_uri").map(str::to_owned);
    if post_logout_redirect_uri.is_some() && client_id.is_none() {
        // RP-Initiated Logout 3: without knowing the client the URI cannot be checked.
        return Err(OAuthError::invalid_request("post_logout_redirect_uri needs id_token_hint or client_id"));
    }
    Ok(EndSessionRequest {
        hint,
        client_id,
        post_logout_redirect_uri,
        state: params.get("state").map(str::to_owned),
        logout_hint: params.get("logout_hint").map(str::to_owned),
    })
}

/// The registered `post_logout_redirect_uri` the request names, compared exactly (RP-Initiated Logout 3;
/// RFC 9700 2.1 for the same rule on redirect URIs), or the error to show.
pub fn post_logout_redirect(client: &Client, requested: &str) -> Result<RedirectUri, OAuthError> {
    client
        .metadata
        .post_logout_redirect_uris
        .iter()
        .find(|registered| registered.as_str() == requested)
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("post_logout_redirect_uri is not registered for this client"))
}

/// The Back-Channel Logout event (Back-Channel Logout 2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a Logout Token is valid: it is made at each attempt, so a short life suffices (Back-Channel
/// Logout 2.4 recommends at most two minutes).
pub const LOGOUT_TOKEN_LIFETIME: i64 = 120;

/// The claims of a Logout Token (Back-Channel Logout 2.4): never a `nonce`, so that it cannot pass for
/// an ID Token.
#[derive(Debug, Serialize)]
pub struct LogoutTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub iat: Timestamp,
    pub exp: Timestamp,
    pub jti: String,
    pub sid: &'a str,
    pub events: serde_json::Value,
}

impl<'a> LogoutTokenClaims<'a> {
    /// The token telling client `aud` that the session `sid` of its user `sub` has ended. Both `sub` and
    /// `sid` are always given (2.4 allows both), so it serves RPs that need either.
    pub fn new(iss: &'a str, aud: &'a str, sub: &'a str, sid: &'a str, now: Timestamp) -> Self {
        Self {
            iss,
            sub,
            aud,
            iat: now,
            exp: now + LOGOUT_TOKEN_LIFETIME,
            jti: crypto::random_token(),
            sid,
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        }
    }
}

/// The header `typ` of a Logout Token (Back-Channel Logout 2.4, RFC 8725 3.11).
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// Seconds before the next attempt after `failures` failed ones: 5 s doubling, at most an hour.
pub fn retry_delay(failures: u32) -> i64 {
    5i64.saturating_mul(1i64 << failures.min(20)).min(3600)
}

/// Whether an answer from the RP is worth trying again: server errors, timeouts and rate limits are
/// passing; any other client error means it refused this token and would refuse it again
/// (Back-Channel Logout 2.8: 400 for a token it cannot validate).
pub fn is_retryable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// The URL the OP's page loads in an iframe to log the client out (Front-Channel Logout 2): the
/// registered URI, its query kept, with `iss` and `sid` when the client asked for them.
pub fn frontchannel_logout_url(uri: &RedirectUri, session_required: bool, iss: &str, sid: &str) -> String {
    if session_required { uri.with_query(&[("iss", iss), ("sid", sid)]) } else { uri.as_str().to_owned() }
}

/// The `session_state` of an authentication response (Session Management 1.0 3): a salted hash of
/// the client, the RP's origin and the OP browser state, which `check_session_iframe` computes again
/// from the cookie to tell whether anything changed. Hex SHA-256 as in the spec's example, so the
/// iframe's script (Web Crypto) computes the same.
pub fn session_state(client_id: &str, rp_origin: &str, browser_state: &str, salt: &str) -> String {
    let digest = crypto::sha256(format!("{client_id} {rp_origin} {browser_state} {salt}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{salt}")
}

/// The origin of a redirect URI (scheme, host, port), as the RP's page reports it in `postMessage`.
pub fn origin_of(uri: &RedirectUri) -> String {
    url::Url::parse(uri.as_str()).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(aud: &[&str]) -> HintedSession {
        HintedSession {
            iss: "https://op.example".into(),
            aud: aud.iter().map(|a| a.to_string()).collect(),
            sid: "s1".into(),
        }
    }

    fn parse(query: &str, verified: Option<HintedSession>) -> Result<EndSessionRequest, OAuthError> {
        parse_end_session(&Params::parse(query.as_bytes()).unwrap(), |_| verified.clone())
    }

    #[test]
    fn end_session_requests() {
        // RP-Initiated Logout 2: nothing is required.
        let bare = parse("", None).unwrap();
        assert_eq!((bare.client_id, bare.hint), (None, None));
        // The hint names the client.
        let hinted = parse("id_token_hint=x&state=s", Some(hint(&["app"]))).unwrap();
        assert_eq!(hinted.client_id.unwrap().as_str(), "app");
        assert_eq!(hinted.state.as_deref(), Some("s"));
        // An unverifiable hint is an error, as is a client_id outside its audience.
        assert!(parse("id_token_hint=forged", None).unwrap_err().description.contains("not an ID Token"));
        assert!(parse("id_token_hint=x&client_id=other", Some(hint(&["app"]))).is_err());
        assert!(parse("id_token_hint=x&client_id=app", Some(hint(&["app", "api"]))).is_ok());
        assert!(parse("id_token_hint=x", Some(hint(&["app", "api"]))).is_err(), "several audiences, no client_id");
        // RP-Initiated Logout 3: a redirect needs a known client.
        assert!(parse("post_logout_redirect_uri=https%3A%2F%2Frp%2Fbye", None).is_err());
        assert!(parse("client_id=app&post_logout_redirect_uri=https%3A%2F%2Frp%2Fbye", None).is_ok());
    }

    #[test]
    fn post_logout_redirect_uris_match_exactly() {
        use crate::model::{ClientAuthMethod, ClientMetadata, SigningAlg};
        let client = Client {
            id: "app".parse().unwrap(),
            name: "App".into(),
            secret_hash: None,
            secret_for_jwt: None,
            redirect_uris: vec!["https://rp.example/cb".parse().unwrap()],
            grant_types: Vec::new(),
            auth_method: ClientAuthMethod::None,
            id_token_signed_response_alg: SigningAlg::RS256,
            jwks: None,
            skip_consent: false,
            created_at: 0,
            metadata: ClientMetadata {
                post_logout_redirect_uris: vec!["https://rp.example/bye".parse().unwrap()],
                ..ClientMetadata::default()
            },
        };
        assert!(post_logout_redirect(&client, "https://rp.example/bye").is_ok());
        for near in
            ["https://rp.example/bye/", "https://rp.example/bye?x=1", "https://RP.example/bye", "http://rp.example/bye"]
        {
            assert!(post_logout_redirect(&client, near).is_err(), "{near}");
        }
    }

    #[test]
    fn logout_token_has_the_event_and_no_nonce() {
        let claims = LogoutTokenClaims::new("https://op", "app", "alice", "s1", 1000);
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["events"], serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
        assert_eq!((json["iat"].as_i64(), json["exp"].as_i64()), (Some(1000), Some(1120)));
        assert!(json.get("nonce").is_none());
        assert_ne!(claims.jti, LogoutTokenClaims::new("https://op", "app", "alice", "s1", 1000).jti);
    }

    #[test]
    fn retries_back_off() {
        assert_eq!((retry_delay(0), retry_delay(1), retry_delay(2)), (5, 10, 20));
        assert_eq!(retry_delay(30), 3600);
        assert!(is_retryable_status(503) && is_retryable_status(429) && !is_retryable_status(400));
    }

    #[test]
    fn frontchannel_urls_keep_their_query() {
        let uri: RedirectUri = "https://rp.example/logout?app=1".parse().unwrap();
        assert_eq!(frontchannel_logout_url(&uri, false, "https://op", "s1"), "https://rp.example/logout?app=1");
        assert_eq!(
            frontchannel_logout_url(&uri, true, "https://op", "s 1"),
            "https://rp.example/logout?app=1&iss=https%3A%2F%2Fop&sid=s+1"
        );
    }

    #[test]
    fn session_state_is_the_salted_hash_of_client_origin_and_state() {
        let state = session_state("app", "https://rp.example", "opbs", "salt");
        let (hash, salt) = state.split_once('.').unwrap();
        assert_eq!(salt, "salt");
        assert_eq!(hash.len(), 64);
        assert_ne!(state, session_state("app", "https://rp.example", "other", "salt"), "browser state changes it");
        assert_ne!(state, session_state("app", "https://evil.example", "opbs", "salt"), "origin changes it");
        let uri: RedirectUri = "https://rp.example:8443/cb?x=1".parse().unwrap();
        assert_eq!(origin_of(&uri), "https://rp.example:8443");
    }
}
