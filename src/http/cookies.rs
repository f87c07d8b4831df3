//! The browser-facing cookies: the session cookie, the other accounts signed in on the browser, the CSRF
//! cookie and the OP browser state.
//!
//! When the issuer is https the names carry the `__Host-` prefix (RFC 6265bis 4.1.3.2): the browser
//! then accepts such a cookie only from this very host, over https, for path `/`, so a sibling
//! subdomain cannot plant one ("cookie tossing").

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::config::Config;
use crate::crypto::{self, HmacHash};

const SESSION: (&str, &str) = ("oxid_session", "__Host-oxid_session");
const CSRF: (&str, &str) = ("oxid_csrf", "__Host-oxid_csrf");
/// The session ids of the browser's other accounts (for the account chooser), dot-separated.
const ACCOUNTS: (&str, &str) = ("oxid_accounts", "__Host-oxid_accounts");
/// Between a login's password and its second factor: who passed the password, where to, until when.
const SECOND_FACTOR: (&str, &str) = ("oxid_second_factor", "__Host-oxid_second_factor");
/// A WebAuthn ceremony in progress: its state, MACed (see `http::passkeys`).
const PASSKEY_CEREMONY: (&str, &str) = ("oxid_passkey", "__Host-oxid_passkey");
/// Accounts a browser keeps besides the active one; signing in to one more ends the least recent.
pub const MAX_OTHER_ACCOUNTS: usize = 4;
/// The OP browser state (Session Management 1.0 3): read by script in `check_session_iframe`.
const BROWSER_STATE: (&str, &str) = ("oxid_browser_state", "__Host-oxid_browser_state");

fn name(config: &Config, names: (&'static str, &'static str)) -> &'static str {
    if config.secure_cookies() { names.1 } else { names.0 }
}

fn build(config: &Config, names: (&'static str, &'static str), value: String, max_age: Option<u64>) -> Cookie<'static> {
    let mut cookie = Cookie::build((name(config, names), value))
        .path("/")
        .http_only(true)
        // Lax: the session must reach /authorize on the top-level navigation from the client.
        .same_site(SameSite::Lax)
        .secure(config.secure_cookies())
        .build();
    if let Some(secs) = max_age {
        cookie.set_max_age(time_duration(secs));
    }
    cookie
}

fn time_duration(secs: u64) -> time::Duration {
    time::Duration::seconds(secs.min(i64::MAX as u64) as i64)
}

/// The session cookie for a new session id (the raw id; the store keeps only its hash).
pub fn session_cookie(config: &Config, session_id: String) -> Cookie<'static> {
    build(config, SESSION, session_id, Some(config.session_lifetime))
}

/// The OP browser state cookie (Session Management 1.0 3). `check_session_iframe` runs inside RPs' pages,
/// on their sites, so the cookie is a third-party one there: `SameSite=None` (which needs `Secure`;
/// browsers accept that on loopback http too) and readable by script (it is a MAC of the session id,
/// no credential).
pub fn browser_state_cookie(config: &Config, value: &str) -> Cookie<'static> {
    let mut cookie = Cookie::build((name(config, BROWSER_STATE), value.to_owned()))
        .path("/")
        .http_only(false)
        .same_site(SameSite::None)
        .secure(true)
        .build();
    cookie.set_max_age(time_duration(config.session_lifetime));
    cookie
}

/// Clears the OP browser state: the iframe then answers `changed` to every RP of the ended session.
pub fn clear_browser_state(config: &Config) -> Cookie<'static> {
    let mut cookie = browser_state_cookie(config, "");
    cookie.set_max_age(time::Duration::ZERO);
    cookie
}

/// The name of the browser state cookie, for the iframe's script.
pub fn browser_state_name(config: &Config) -> &'static str {
    name(config, BROWSER_STATE)
}

/// Ends the browser's session cookie.
pub fn clear_session(config: &Config) -> Cookie<'static> {
    build(config, SESSION, String::new(), Some(0))
}

/// The hash under which the current browser session is stored, if the browser sent one.
pub fn session_hash(config: &Config, jar: &CookieJar) -> Option<String> {
    session_id(config, jar).map(crypto::token_hash)
}

/// The browser's active session id (raw), if it sent one.
pub fn session_id<'a>(config: &Config, jar: &'a CookieJar) -> Option<&'a str> {
    jar.get(name(config, SESSION)).map(|c| c.value()).filter(|v| !v.is_empty())
}

/// The session ids of the browser's other accounts, most recently used first; malformed ones ignored.
pub fn other_session_ids<'a>(config: &Config, jar: &'a CookieJar) -> Vec<&'a str> {
    let Some(cookie) = jar.get(name(config, ACCOUNTS)) else { return Vec::new() };
    cookie.value().split('.').filter(|id| crypto::is_token_shaped(id)).take(MAX_OTHER_ACCOUNTS).collect()
}

/// The other accounts' cookie (a removal when there are none). It lives as long as a session can.
pub fn accounts_cookie(config: &Config, ids: &[&str]) -> Cookie<'static> {
    let max_age = if ids.is_empty() { 0 } else { config.session_lifetime };
    build(config, ACCOUNTS, ids.join("."), Some(max_age))
}

/// The pending second factor's cookie (a MACed value of `http::mfa`) for `max_age` seconds; a removal
/// with 0.
pub fn second_factor_cookie(config: &Config, value: String, max_age: u64) -> Cookie<'static> {
    build(config, SECOND_FACTOR, value, Some(max_age))
}

pub fn passkey_ceremony_cookie(config: &Config, value: String, max_age: u64) -> Cookie<'static> {
    build(config, PASSKEY_CEREMONY, value, Some(max_age))
}

pub fn passkey_ceremony<'a>(config: &Config, jar: &'a CookieJar) -> Option<&'a str> {
    jar.get(name(config, PASSKEY_CEREMONY)).map(|c| c.value())
}

/// The pending second factor's value, if the browser sent one.
pub fn second_factor<'a>(config: &Config, jar: &'a CookieJar) -> Option<&'a str> {
    jar.get(name(config, SECOND_FACTOR)).map(|c| c.value())
}

/// The browser's CSRF binding: a random value of ours (43 base64url characters), or nothing usable.
fn csrf_binding<'a>(config: &Config, jar: &'a CookieJar) -> Option<&'a str> {
    let value = jar.get(name(config, CSRF))?.value();
    crypto::is_token_shaped(value).then_some(value)
}

/// The CSRF token for a form of the flow `request_id`, and the jar to send (with a new binding cookie if
/// the browser had none). The token is a MAC under the OP's secret `key` (shared by the nodes) of the
/// browser's binding and the flow: nobody without the key can make one, and it is good for this
/// browser and this flow only (signed double-submit).
pub fn csrf_form_token(config: &Config, key: &[u8], jar: CookieJar, request_id: &str) -> (CookieJar, String) {
    let (jar, binding) = match csrf_binding(config, &jar) {
        Some(binding) => {
            let binding = binding.to_owned();
            (jar, binding)
        }
        None => {
            let binding = crypto::random_token();
            (jar.add(build(config, CSRF, binding.clone(), None)), binding)
        }
    };
    let token = csrf_token(key, &binding, request_id);
    (jar, token)
}

fn csrf_token(key: &[u8], binding: &str, request_id: &str) -> String {
    let message = format!("{binding}.{request_id}");
    crypto::b64url(&crypto::hmac(HmacHash::Sha256, key, message.as_bytes()))
}

/// Whether `token` is the CSRF token of this browser for the flow `request_id`. A missing, empty or
/// malformed cookie is simply not valid.
pub fn csrf_valid(config: &Config, key: &[u8], jar: &CookieJar, request_id: &str, token: Option<&str>) -> bool {
    match (csrf_binding(config, jar), token) {
        (Some(binding), Some(token)) => {
            crypto::constant_time_eq(csrf_token(key, binding, request_id).as_bytes(), token.as_bytes())
        }
        _ => false,
    }
}
