//! The signed-in user's account page: where they are signed in (device, address, time, the apps signed
//! in through each session) and which apps they have allowed; they can end a session or take an app's
//! access away. A browser without a session gets the login form first.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;

use super::accounts::BrowserAccounts;
use super::authorize::current_session;
use super::interaction::{
    AfterLogin, LoginError, SignedInUser, authenticate, continue_signed_in, passkey_login, scope_descriptions,
};
use super::params::RequestParams;
use super::{SharedState, cookies, reply};
use crate::audit;
use crate::model::LoginMethod;
use crate::model::{AuditEvent, AuditKind, BrowserSession, ClientId, Timestamp, UserDecision};
use crate::protocol::{OAuthError, Params};
use crate::store::{SessionsToEnd, StoreError};
use crate::ui::Locale;

/// The flow id the page's CSRF tokens are bound to.
pub(super) const CSRF_FLOW: &str = "account";
/// Sessions listed at most (the newest).
const MAX_SESSIONS: u32 = 50;

/// The user's language on the OP's own pages: the browser's `Accept-Language`.
pub(super) fn locale<'a>(state: &'a SharedState, headers: &HeaderMap) -> &'a Locale {
    let accept_language = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    state.pages.locale(None, accept_language)
}

/// A moment as the page shows it (UTC, to the minute).
pub(super) fn moment(at: Timestamp) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at) {
        Ok(t) => format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()),
        Err(_) => String::new(),
    }
}

/// `?verification=sent|not-sent`: what became of the last request for a verification link.
#[derive(serde::Deserialize)]
pub struct PageQuery {
    verification: Option<String>,
}

/// `GET /account`.
pub async fn page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<PageQuery>,
) -> Response {
    let locale = locale(&state, &headers);
    let result: Result<Response, StoreError> = async {
        let browser = BrowserAccounts::load(&state, &jar).await?;
        let Some(session) = browser.active() else { return Ok(login_form(&state, jar, locale)) };
        let Some(user) = state.store.user(&session.user_id).await? else {
            return Ok(login_form(&state, jar, locale));
        };
        let mut sessions = Vec::new();
        for s in state.store.sessions(Some(&user.id), state.now(), MAX_SESSIONS).await? {
            let mut apps = Vec::new();
            for client_id in state.store.session_clients(&s.sid).await? {
                apps.push(state.client(&client_id).await?.map_or_else(|| client_id.to_string(), |c| c.name.clone()));
            }
            sessions.push(context! {
                this_device => browser.find(&s.sid).is_some(),
                signed_in_at => moment(s.auth_time),
                user_agent => s.device.user_agent,
                ip => s.device.ip,
                apps,
                sid => s.sid,
            });
        }
        let apps: Vec<_> = state
            .store
            .consented_apps(&user.id)
            .await?
            .into_iter()
            .map(|app| {
                context! {
                    client_id => app.client_id.as_str(),
                    name => app.client_name,
                    scopes => scope_descriptions(&state, locale, &app.consent.scope),
                    allowed_at => moment(app.granted_at),
                }
            })
            .collect();
        // CIBA: what clients asked this user to approve.
        let mut requests = Vec::new();
        for request in state.store.backchannel_requests_for(&user.id, state.now()).await? {
            let client = state.client(&request.client_id).await?;
            requests.push(context! {
                id => request.code_hash,
                client_name => client.as_ref().map(|c| c.name_in(&[locale.tag.as_str()]).to_owned()),
                binding_message => request.binding_message,
                scopes => scope_descriptions(&state, locale, &request.scope),
                expires_at => moment(request.expires_at),
            });
        }
        let second_factor = state.store.totp(&user.id).await?.is_some_and(|t| t.confirmed);
        let passkeys = super::passkeys::listed(&state, &user.id).await?;
        let recovery_codes_left = if second_factor { state.store.recovery_codes_left(&user.id).await? } else { 0 };
        let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, CSRF_FLOW);
        let ctx = context! {
            passkeys_on => state.passkeys.is_some(),
            passkeys,
            second_factor,
            recovery_codes_left,
            username => user.username,
            email => user.email,
            email_verified => user.email_verified,
            verification => q.verification.as_deref().filter(|v| ["sent", "not-sent"].contains(v)),
            requests,
            sessions,
            apps,
            csrf_token,
            t => locale.messages(),
            lang => &locale.tag,
        };
        Ok((jar, reply::page(&state, StatusCode::OK, "account.html", ctx)).into_response())
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}

/// One of the OP's own pages with a login form of its own (not an authorization flow's).
pub(super) struct OwnPage<'a> {
    /// `account` or `device`: the form posts to `/{action}/login`.
    pub action: &'static str,
    /// The flow the page's CSRF tokens are bound to.
    pub csrf_flow: &'static str,
    /// What the user signs in to, as the form's heading names it: a catalogue key.
    pub name_key: &'static str,
    /// Carried through the login (the device verification page's code).
    pub user_code: Option<&'a str>,
}

pub(super) const ACCOUNT_PAGE: OwnPage<'static> =
    OwnPage { action: "account", csrf_flow: CSRF_FLOW, name_key: "your_account", user_code: None };

/// The login form of one of the OP's own pages. `error` is a catalogue key.
pub(super) fn own_login_form(
    state: &SharedState,
    jar: CookieJar,
    status: StatusCode,
    locale: &Locale,
    page: &OwnPage<'_>,
    error: Option<&str>,
) -> Response {
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, page.csrf_flow);
    let (jar, passkey_options) = super::passkeys::sign_in_options(state, jar);
    let ctx = context! {
        passkey_options,
        login_action => page.action,
        client_name => locale.text(page.name_key),
        user_code => page.user_code,
        csrf_token,
        error => error.map(|key| locale.text(key)),
        signup => false,
        t => locale.messages(),
        lang => &locale.tag,
    };
    (jar, reply::page(state, status, "login.html", ctx)).into_response()
}

fn login_form(state: &SharedState, jar: CookieJar, locale: &Locale) -> Response {
    own_login_form(state, jar, StatusCode::OK, locale, &ACCOUNT_PAGE, None)
}

/// Reads a form of one of the OP's own pages: its parameters, CSRF token (of `csrf_flow`) checked.
pub(super) fn checked_form(
    state: &SharedState,
    jar: &CookieJar,
    params: Result<Params, OAuthError>,
    csrf_flow: &str,
) -> Result<Params, OAuthError> {
    let params = params?;
    if !cookies::csrf_valid(&state.config, &state.csrf_key, jar, csrf_flow, params.get("csrf_token")) {
        return Err(reply::form_expired());
    }
    Ok(params)
}

/// A login posted from one of the OP's own pages: the same checks and throttling as every login; on
/// success to the path `then` gives for the form's parameters, else the page's login form again.
pub(super) async fn own_login(
    state: &SharedState,
    peer: SocketAddr,
    headers: &HeaderMap,
    jar: CookieJar,
    params: Result<Params, OAuthError>,
    page: OwnPage<'static>,
    then: fn(&Params) -> String,
) -> Response {
    let locale = locale(state, headers);
    let params = match checked_form(state, &jar, params, page.csrf_flow) {
        Ok(params) => params,
        Err(e) => return reply::error_page_in(state, &e, locale),
    };
    let username = params.get("username").unwrap_or_default().trim();
    let password = params.get("password").unwrap_or_default();
    let client_ip = state.client_ip(peer.ip(), headers);
    let page = OwnPage { user_code: params.get("user_code"), ..page };
    let form = |jar, status, error| own_login_form(state, jar, status, locale, &page, Some(error));
    let (checked, method) = match params.get("credential") {
        Some(answer) => (passkey_login(state, &jar, client_ip, answer).await, LoginMethod::Passkey),
        None => (authenticate(state, client_ip, username, password).await, LoginMethod::Password),
    };
    match checked {
        Ok(Some(user_id)) => {
            let login = SignedInUser { user_id, client_ip, headers, then: AfterLogin::Page(then(&params)), method };
            continue_signed_in(state, super::passkeys::end_ceremony(state, jar), login).await
        }
        Ok(None) if method == LoginMethod::Passkey => form(jar, StatusCode::UNAUTHORIZED, "passkey_failed"),
        Ok(None) => form(jar, StatusCode::UNAUTHORIZED, "bad_credentials"),
        Err(LoginError::Throttled) => form(jar, StatusCode::TOO_MANY_REQUESTS, "throttled"),
        Err(LoginError::Store(e)) => reply::error_page_in(state, &reply::internal(e), locale),
    }
}

/// `POST /account/login`.
pub async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    own_login(&state, peer, &headers, jar, params, ACCOUNT_PAGE, |_| "/account".into()).await
}

/// Runs `act` for a form of the page posted by the signed-in user (CSRF token checked), with the
/// browser's accounts and the active session; then back to the page, with the cookies `act` left.
async fn act_signed_in(
    state: &SharedState,
    headers: &HeaderMap,
    jar: CookieJar,
    params: Result<Params, OAuthError>,
    act: impl AsyncFnOnce(&mut BrowserAccounts, BrowserSession, Params) -> Result<(), StoreError>,
) -> Response {
    let locale = locale(state, headers);
    let params = match checked_form(state, &jar, params, CSRF_FLOW) {
        Ok(params) => params,
        Err(e) => return reply::error_page_in(state, &e, locale),
    };
    let result: Result<CookieJar, StoreError> = async {
        let mut browser = BrowserAccounts::load(state, &jar).await?;
        // Signed out meanwhile: the page shows the login form.
        let Some(active) = browser.active().cloned() else { return Ok(jar) };
        act(&mut browser, active, params).await?;
        Ok(browser.write(state, jar))
    }
    .await;
    match result {
        Ok(jar) => (jar, reply::see_other_within(state, "/account")).into_response(),
        Err(e) => reply::error_page_in(state, &reply::internal(e), locale),
    }
}

/// `POST /account/sessions/end`: ends one of the user's sessions (on any device), as a logout would.
pub async fn end_session(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    act_signed_in(&state, &headers, jar, params, async |browser, active, params| {
        let sid = params.get("sid").unwrap_or_default();
        let now = state.now();
        // Only the user's own sessions.
        let own = state.store.sessions(Some(&active.user_id), now, MAX_SESSIONS).await?;
        if !own.iter().any(|s| s.sid == sid) {
            return Ok(());
        }
        let ended = state.store.end_sessions(SessionsToEnd::Sid(sid), state.config.logout(now)).await?;
        state.logout_notifications_queued(&ended);
        let event = AuditEvent::new(now, AuditKind::SessionEnded, "ended on the account page")
            .user(Some(&active.user_id), None);
        audit::record(state.store.as_ref(), event).await;
        browser.remove(&[sid]);
        Ok(())
    })
    .await
}

/// `POST /account/apps/revoke`: takes an app's access away: the consent, and every grant the user made
/// it (refresh tokens for offline access too). It asks for consent again next time.
pub async fn revoke_app(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    act_signed_in(&state, &headers, jar, params, async |_, active, params| {
        let Ok(client_id) = params.get("client_id").unwrap_or_default().parse::<ClientId>() else { return Ok(()) };
        if state.store.revoke_app(&active.user_id, &client_id).await? {
            let event = AuditEvent::new(state.now(), AuditKind::ConsentRevoked, "revoked on the account page")
                .user(Some(&active.user_id), None)
                .client(client_id.as_str());
            audit::record(state.store.as_ref(), event).await;
        }
        Ok(())
    })
    .await
}

/// `POST /account/requests/decide`: the user approves or denies a client's backchannel authentication
/// request (CIBA) addressed to them; a ping-mode client is then told.
pub async fn decide_request(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    act_signed_in(&state, &headers, jar, params, async |_, active, params| {
        let Some(id) = params.get("request") else { return Ok(()) };
        let decision = match params.get("decision") {
            Some("allow") => UserDecision::Approved { user_id: active.user_id.clone(), auth: active.authentication() },
            _ => UserDecision::Denied,
        };
        let now = state.now();
        let Some(request) = state.store.decide_backchannel_request(id, &active.user_id, &decision, now).await? else {
            return Ok(());
        };
        if matches!(decision, UserDecision::Approved { .. }) {
            let event =
                AuditEvent::new(now, AuditKind::ConsentGiven, "a backchannel authentication request approved (CIBA)")
                    .user(Some(&active.user_id), None)
                    .client(request.client_id.as_str());
            audit::record(state.store.as_ref(), event).await;
        }
        if let Some(client) = state.client(&request.client_id).await? {
            super::ciba::ping(&state, &client, &request);
        }
        Ok(())
    })
    .await
}

/// Why a new password typed twice (`repeated`) is not accepted, as a catalogue key; none if it is.
pub(super) fn new_password_problem(new: &str, repeated: Option<&str>) -> Option<&'static str> {
    if Some(new) != repeated {
        Some("signup_password_mismatch")
    } else if crate::password::check_length(new).is_err() {
        Some("signup_password_length")
    } else {
        None
    }
}

/// `POST /account/password`: a new password, the current one required (checked and throttled as at
/// login). Every session of the user ends with it (its RPs are told), this one too: they sign in again.
pub async fn change_password(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let locale = locale(&state, &headers);
    let params = match checked_form(&state, &jar, params, CSRF_FLOW) {
        Ok(params) => params,
        Err(e) => return reply::error_page_in(&state, &e, locale),
    };
    let problem = |key: &str| {
        let e = OAuthError::invalid_request(locale.text(key).to_owned());
        reply::error_page_in(&state, &e, locale)
    };
    let result: Result<Response, StoreError> = async {
        let Some(session) = current_session(&state, &jar).await? else {
            return Ok(reply::see_other_within(&state, "/account"));
        };
        let Some(user) = state.store.user(&session.user_id).await? else {
            return Ok(reply::see_other_within(&state, "/account"));
        };
        let (new, repeated) = (params.get("new_password").unwrap_or_default(), params.get("new_password_repeat"));
        if let Some(key) = new_password_problem(new, repeated) {
            return Ok(problem(key));
        }
        let client_ip = state.client_ip(peer.ip(), &headers);
        let current = params.get("current_password").unwrap_or_default();
        match authenticate(&state, client_ip, &user.username, current).await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(problem("bad_credentials")),
            Err(LoginError::Throttled) => return Ok(problem("throttled")),
            Err(LoginError::Store(e)) => return Err(e),
        }
        let Ok(hash) = crate::password::hash(new.to_owned()).await else {
            return Ok(reply::error_page_in(&state, &OAuthError::server_error(), locale));
        };
        let now = state.now();
        state.store.set_password_hash(&user.username, &hash, false, state.config.logout(now)).await?;
        state.forget_user(&user.id);
        state.logout_delivery.notify_one();
        let event = AuditEvent::new(now, AuditKind::UserChanged, "password changed on the account page")
            .user(Some(&user.id), Some(&user.username));
        audit::record(state.store.as_ref(), event).await;
        Ok(reply::see_other_within(&state, "/account"))
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}
