//! Passkeys on the OP's pages: added, named and removed on the account page; signing in without a
//! username or password (the login page's passkey button, and the browser's autofill); and as the
//! second step after a password.
//!
//! A page that starts a ceremony carries its options for `assets/passkeys.js`, and the browser a
//! cookie with the ceremony's state under a MAC (nothing is stored until it succeeds, so any node
//! finishes it); the answer comes back as the `credential` field of an ordinary form, and each
//! ceremony is spent once.

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;

use super::interaction::account_throttle_key;
use super::mfa::{enrolled_during_sign_in, setup_step};
use super::params::RequestParams;
use super::{SharedState, cookies, reply};
use crate::audit;
use crate::crypto::{self, HmacHash};
use crate::model::{AuditEvent, AuditKind, LoginMethod, Timestamp};
use crate::passkeys::Ceremony;
use crate::protocol::OAuthError;
use crate::store::StoreError;

/// Seconds a ceremony may take (the authenticator's own timeout is five minutes).
const CEREMONY_LIFETIME: i64 = 300;
/// Passkeys one account may have: the second step's ceremony carries all of them (about 0.6 KB each in
/// its cookie, 1 KB with one), and a cookie holds 4 KB.
const MAX_PASSKEYS: usize = 5;
const SETUP_FLOW: &str = "account";

/// What a ceremony is for; part of what its MAC covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CeremonyKind {
    Register,
    SignIn,
    SecondFactor,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Register => "register",
            CeremonyKind::SignIn => "sign-in",
            CeremonyKind::SecondFactor => "second-factor",
        }
    }
}

fn mac(key: &[u8], payload: &str) -> String {
    crypto::b64url(&crypto::hmac(HmacHash::Sha256, key, format!("passkey-ceremony.{payload}").as_bytes()))
}

/// Starts carrying `ceremony` (for `user_id`, or anyone): the jar with its cookie, and the options
/// for the page.
fn carry(
    state: &SharedState,
    jar: CookieJar,
    kind: CeremonyKind,
    user_id: &str,
    ceremony: Ceremony,
) -> (CookieJar, minijinja::Value) {
    let payload = format!(
        "{}.{}.{}.{}",
        kind.as_str(),
        state.now() + CEREMONY_LIFETIME,
        crypto::b64url(user_id.as_bytes()),
        crypto::b64url(ceremony.state.as_bytes())
    );
    let value = format!("{payload}.{}", mac(&state.csrf_key, &payload));
    let jar = jar.add(cookies::passkey_ceremony_cookie(&state.config, value, CEREMONY_LIFETIME as u64));
    (jar, script_json(&ceremony.options))
}

/// `options` as JSON to put inside the page's `<script type="application/json">`: `<`, `>` and `&`
/// written as JSON escapes, so no value (a user's display name) can end the script element.
fn script_json(options: &serde_json::Value) -> minijinja::Value {
    let json = options.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    minijinja::Value::from_safe_string(json)
}

/// A ceremony the browser carries.
struct Carried {
    user_id: String,
    state: String,
    expires_at: Timestamp,
    /// The cookie's value, by which the ceremony is spent.
    value: String,
}

/// The ceremony of `kind` the browser carries, if we made it and it has not expired.
fn carried(state: &SharedState, jar: &CookieJar, kind: CeremonyKind) -> Option<Carried> {
    let value = cookies::passkey_ceremony(&state.config, jar)?;
    let (payload, tag) = value.rsplit_once('.')?;
    if !crypto::constant_time_eq(mac(&state.csrf_key, payload).as_bytes(), tag.as_bytes()) {
        return None;
    }
    let mut parts = payload.split('.');
    let (carried_kind, expires_at, user_id, ceremony) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let expires_at: Timestamp = expires_at.parse().ok()?;
    if carried_kind != kind.as_str() || expires_at <= state.now() {
        return None;
    }
    let text = |b64: &str| crypto::b64url_decode(b64).and_then(|bytes| String::from_utf8(bytes).ok());
    Some(Carried { user_id: text(user_id)?, state: text(ceremony)?, expires_at, value: value.to_owned() })
}

/// Spends a ceremony: true the first time (on any node), false after.
async fn spend(state: &SharedState, carried: &Carried) -> Result<bool, StoreError> {
    let key = format!("passkey-ceremony:{}", crypto::token_hash(&carried.value));
    state.store.first_use(&key, carried.expires_at, state.now()).await
}

/// The options of a sign-in without a username, for a login page (none when passkeys are off).
pub(super) fn sign_in_options(state: &SharedState, jar: CookieJar) -> (CookieJar, Option<minijinja::Value>) {
    let Some(passkeys) = &state.passkeys else { return (jar, None) };
    match passkeys.start_sign_in() {
        Ok(ceremony) => {
            let (jar, options) = carry(state, jar, CeremonyKind::SignIn, "", ceremony);
            (jar, Some(options))
        }
        Err(e) => {
            tracing::error!(error = %e, "no passkey sign-in offered");
            (jar, None)
        }
    }
}

/// A sign-in with a passkey: the user whose passkey answered the login page's ceremony (`answer`, the
/// form's `credential`); none if it did not (the login form then says so). Recorded in the audit log
/// like a password login.
pub(super) async fn sign_in(
    state: &SharedState,
    jar: &CookieJar,
    client_ip: std::net::IpAddr,
    answer: &str,
) -> Result<Option<String>, StoreError> {
    let now = state.now();
    let event = |kind, user_id: Option<&str>, detail: &str| {
        AuditEvent::new(now, kind, detail).user(user_id, None).ip(client_ip)
    };
    let (Some(passkeys), Some(carried)) = (&state.passkeys, carried(state, jar, CeremonyKind::SignIn)) else {
        return Ok(None);
    };
    let (answer, credential_id) = match passkeys.answer_credential(answer) {
        Ok(found) => found,
        Err(e) => {
            tracing::info!(error = %e, "a passkey sign-in was refused");
            return Ok(None);
        }
    };
    let Some(stored) = state.store.passkey(&credential_id).await? else {
        audit::record(state.store.as_ref(), event(AuditKind::LoginFailed, None, "unknown passkey")).await;
        return Ok(None);
    };
    let Some(user) = state.store.user(&stored.user_id).await?.filter(|u| !u.disabled) else {
        audit::record(state.store.as_ref(), event(AuditKind::LoginFailed, Some(&stored.user_id), "disabled account"))
            .await;
        return Ok(None);
    };
    let checked = passkeys.finish_sign_in(&answer, &carried.state, &stored);
    // The same answer twice (a replayed form) signs in once.
    let refused = match &checked {
        Ok(_) if !spend(state, &carried).await? => Some("passkey answer replayed".to_owned()),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    if let Some(reason) = refused {
        tracing::info!(%reason, "a passkey sign-in was refused");
        // Counted against the account's throttle, as a wrong password is (the limit is the login's).
        let window = state.config.login_throttle_window as i64;
        let limit = state.config.login_max_failures_per_account;
        state.store.reserve_attempt(&account_throttle_key(&user.username), now, window, limit).await?;
        crate::telemetry::failed_login();
        audit::record(state.store.as_ref(), event(AuditKind::LoginFailed, Some(&user.id), "passkey refused")).await;
        return Ok(None);
    }
    let Ok(updated) = checked else { return Ok(None) };
    state.store.passkey_used(&credential_id, &updated, now).await?;
    let succeeded = event(AuditKind::LoginSucceeded, Some(&stored.user_id), "passkey");
    audit::record(state.store.as_ref(), succeeded).await;
    Ok(Some(stored.user_id))
}

/// The ceremony of the second step after a password, for a user with passkeys (none otherwise).
pub(super) async fn second_factor_options(
    state: &SharedState,
    jar: CookieJar,
    user_id: &str,
) -> Result<(CookieJar, Option<minijinja::Value>), StoreError> {
    let Some(passkeys) = &state.passkeys else { return Ok((jar, None)) };
    let stored = state.store.passkeys(user_id).await?;
    if stored.is_empty() {
        return Ok((jar, None));
    }
    match passkeys.start_second_factor(&stored) {
        Ok(ceremony) => {
            let (jar, options) = carry(state, jar, CeremonyKind::SecondFactor, user_id, ceremony);
            Ok((jar, Some(options)))
        }
        Err(e) => {
            tracing::error!(error = %e, "no passkey offered as the second factor");
            Ok((jar, None))
        }
    }
}

/// Whether `answer` is a passkey of `user_id` answering the second-step ceremony the browser carries.
pub(super) async fn second_factor(
    state: &SharedState,
    jar: &CookieJar,
    user_id: &str,
    answer: &str,
) -> Result<bool, StoreError> {
    let Some(passkeys) = &state.passkeys else { return Ok(false) };
    let Some(carried) = carried(state, jar, CeremonyKind::SecondFactor).filter(|c| c.user_id == user_id) else {
        return Ok(false);
    };
    let stored = state.store.passkeys(user_id).await?;
    let (credential_id, updated) = match passkeys.finish_second_factor(answer, &carried.state, &stored) {
        Ok(used) => used,
        Err(e) => {
            tracing::info!(error = %e, "a passkey as second factor was refused");
            return Ok(false);
        }
    };
    if !spend(state, &carried).await? {
        return Ok(false);
    }
    state.store.passkey_used(&credential_id, &updated, state.now()).await?;
    Ok(true)
}

/// The jar without the ceremony's cookie, once a ceremony has ended.
pub(super) fn end_ceremony(state: &SharedState, jar: CookieJar) -> CookieJar {
    jar.add(cookies::passkey_ceremony_cookie(&state.config, String::new(), 0))
}

/// The passkeys of a user as the account page lists them.
pub(super) async fn listed(state: &SharedState, user_id: &str) -> Result<Vec<minijinja::Value>, StoreError> {
    let moment = super::account::moment;
    Ok(state
        .store
        .passkeys(user_id)
        .await?
        .into_iter()
        .map(|p| {
            context! {
                id => p.credential_id,
                name => p.name,
                created_at => moment(p.created_at),
                last_used_at => p.last_used_at.map(moment),
            }
        })
        .collect())
}

fn setup_page(
    state: &SharedState,
    jar: CookieJar,
    locale: &crate::ui::Locale,
    options: &minijinja::Value,
    flow: Option<&str>,
    error: Option<&str>,
) -> Response {
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, SETUP_FLOW);
    let ctx = context! {
        passkey_options => options,
        request_id => flow,
        csrf_token,
        error => error.map(|key| locale.text(key)),
        t => locale.messages(),
        lang => &locale.tag,
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    (jar, reply::page(state, status, "passkey_setup.html", ctx)).into_response()
}

/// Starts registering a passkey for `user_id`: the setup page, with the ceremony. Within the sign-in
/// `flow` that needs it, the flow goes on once the passkey is made.
pub(super) async fn registration_page(
    state: &SharedState,
    jar: CookieJar,
    locale: &crate::ui::Locale,
    user_id: &str,
    flow: Option<&str>,
    error: Option<&str>,
) -> Result<Response, OAuthError> {
    let Some(passkeys) = &state.passkeys else { return Ok(reply::see_other_within(state, "/account")) };
    let user = state.store.user(user_id).await.map_err(reply::internal)?.ok_or_else(OAuthError::server_error)?;
    let existing = state.store.passkeys(user_id).await.map_err(reply::internal)?;
    if existing.len() >= MAX_PASSKEYS {
        return Ok(reply::see_other_within(state, "/account"));
    }
    let ceremony = passkeys.start_registration(&user, &existing).map_err(|e| {
        tracing::error!(error = %e, "passkey registration could not start");
        OAuthError::server_error()
    })?;
    let (jar, options) = carry(state, jar, CeremonyKind::Register, user_id, ceremony);
    Ok(setup_page(state, jar, locale, &options, flow, error))
}

/// `POST /account/passkeys/new`: the page that makes a passkey (after a recent login).
pub async fn begin(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    setup_step(&state, &headers, jar, params, async |jar, locale, user_id, _| {
        registration_page(&state, jar, locale, &user_id, None, None).await
    })
    .await
}

/// `POST /account/passkeys/add`: the authenticator's answer; the passkey is kept under the name given.
/// Made during a sign-in that needs one (`request`), it is the session's second factor and the sign-in
/// goes on.
pub async fn add(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    setup_step(&state, &headers, jar, params, async |jar, locale, user_id, params| {
        let Some(passkeys) = &state.passkeys else { return Ok(reply::see_other_within(&state, "/account")) };
        let flow = params.get("request").filter(|id| crypto::is_token_shaped(id));
        let name: String = params.get("name").unwrap_or_default().trim().chars().take(64).collect();
        let name = if name.is_empty() { locale.text("passkey_default_name").to_owned() } else { name };
        let carried = carried(&state, &jar, CeremonyKind::Register).filter(|c| c.user_id == user_id);
        let Some(carried) = carried else {
            return registration_page(&state, jar, locale, &user_id, flow, Some("passkey_failed")).await;
        };
        let now = state.now();
        let answer = params.get("credential").unwrap_or_default();
        let passkey = match passkeys.finish_registration(answer, &carried.state, &user_id, &name, now) {
            Ok(passkey) => passkey,
            Err(e) => {
                tracing::info!(error = %e, "a passkey registration was refused");
                return registration_page(&state, jar, locale, &user_id, flow, Some("passkey_failed")).await;
            }
        };
        if !spend(&state, &carried).await.map_err(reply::internal)? {
            return Ok(reply::see_other_within(&state, "/account"));
        }
        match state.store.insert_passkey(&passkey).await {
            Ok(()) => {}
            // Registered already (the authenticator should have refused; it is kept once).
            Err(StoreError::Conflict) => return Ok(reply::see_other_within(&state, "/account")),
            Err(e) => return Err(reply::internal(e)),
        }
        let event = AuditEvent::new(now, AuditKind::UserChanged, format!("a passkey was added: {}", passkey.name))
            .user(Some(&user_id), None);
        audit::record(state.store.as_ref(), event).await;
        let jar = end_ceremony(&state, jar);
        let Some(id) = flow else { return Ok((jar, reply::see_other_within(&state, "/account")).into_response()) };
        let method = LoginMethod::PasswordAndPasskey;
        let jar = enrolled_during_sign_in(&state, jar, (peer, &headers), user_id, id, method).await?;
        Ok((jar, reply::see_other_within(&state, &format!("/authorize/resume?request={id}"))).into_response())
    })
    .await
}

/// `POST /account/passkeys/remove`: one of the user's passkeys goes.
pub async fn remove(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    setup_step(&state, &headers, jar, params, async |_, _, user_id, params| {
        let id = params.get("passkey").unwrap_or_default();
        if state.store.delete_passkey(&user_id, id).await.map_err(reply::internal)? {
            let event = AuditEvent::new(state.now(), AuditKind::UserChanged, "a passkey was removed")
                .user(Some(&user_id), None);
            audit::record(state.store.as_ref(), event).await;
        }
        Ok(reply::see_other_within(&state, "/account"))
    })
    .await
}

/// Whether the user has a passkey to sign in with (only where passkeys work).
pub(super) async fn has_passkey(state: &SharedState, user_id: &str) -> Result<bool, StoreError> {
    if state.passkeys.is_none() {
        return Ok(false);
    }
    Ok(!state.store.passkeys(user_id).await?.is_empty())
}
