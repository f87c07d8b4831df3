//! The browser-facing cookies: the session cookie and the CSRF cookie.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::config::Config;
use crate::crypto;

pub const SESSION: &str = "oxid_session";
const CSRF: &str = "oxid_csrf";

fn build(config: &Config, name: &'static str, value: String, max_age: Option<u64>) -> Cookie<'static> {
    let mut cookie = Cookie::build((name, value))
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

/// The hash under which the current browser session is stored, if the browser sent one.
pub fn session_hash(jar: &CookieJar) -> Option<String> {
    jar.get(SESSION).map(|c| crypto::token_hash(c.value()))
}

/// Makes sure the browser has a CSRF secret; returns the jar to send and the secret.
pub fn ensure_csrf_secret(config: &Config, jar: CookieJar) -> (CookieJar, String) {
    match jar.get(CSRF) {
        Some(c) if c.value().len() == 43 => {
            let value = c.value().to_owned();
            (jar, value)
        }
        _ => {
            let value = crypto::random_token();
            (jar.add(build(config, CSRF, value.clone(), None)), value)
        }
    }
}

/// The token a form carries: bound to this browser's CSRF secret and to the flow it belongs to, so it
/// can be neither forged nor moved to another browser or flow (signed double-submit).
pub fn csrf_token(secret: &str, request_id: &str) -> String {
    crypto::b64url(&crypto::hmac_sha256(secret.as_bytes(), request_id.as_bytes()))
}

pub fn csrf_valid(jar: &CookieJar, request_id: &str, token: Option<&str>) -> bool {
    match (jar.get(CSRF), token) {
        (Some(secret), Some(token)) => {
            let expected = csrf_token(secret.value(), request_id);
            crypto::constant_time_eq(expected.as_bytes(), token.as_bytes())
        }
        _ => false,
    }
}
