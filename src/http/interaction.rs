//! The login and consent pages.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use serde::Deserialize;

use super::accounts::{Account, BrowserAccounts};
use super::authorization_response::{self, Completing};
use super::authorize::{Stage, current_session, load_pending, proceed, signed_in};
use super::params::RequestParams;
use super::{SharedState, cookies, reply};
use crate::model::{
    AuditEvent, AuditKind, BrowserSession, Client, ClientOrigin, Device, Display, LoginMethod, PendingAuthorization,
    Prompt, ScopeSet, canonical_username, localized,
};
use crate::protocol::authorize::{AuthorizationRequest, NextStep, next_step};
use crate::protocol::{ErrorCode, OAuthError, Params};
use crate::store::{SessionStart, StoreError};
use crate::ui::Locale;
use crate::{audit, crypto, password, ui};

#[derive(Deserialize)]
pub struct PageQuery {
    pub(super) request: String,
}

/// The flow a page belongs to.
struct Flow<'a> {
    id: &'a str,
    request: &'a AuthorizationRequest,
    client: &'a Client,
}

/// The language of a flow's pages: the request's `ui_locales`, else the browser's `Accept-Language`.
pub(super) fn page_locale<'a>(
    state: &'a SharedState,
    request: &AuthorizationRequest,
    headers: &HeaderMap,
) -> &'a Locale {
    let accept_language = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    state.pages.locale(request.ui_locales.as_deref(), accept_language)
}

/// `error` is a catalogue key.
fn login_form(
    state: &SharedState,
    jar: CookieJar,
    status: StatusCode,
    flow: &Flow<'_>,
    locale: &Locale,
    username: Option<&str>,
    error: Option<&str>,
) -> Response {
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, flow.id);
    let (jar, passkey_options) = super::passkeys::sign_in_options(state, jar);
    let ctx = context! {
        passkey_options,
        client_name => flow.client.name_in(&[locale.tag.as_str()]),
        request_id => flow.id,
        csrf_token => csrf_token,
        login_hint => username.or(flow.request.login_hint.as_deref()),
        error => error.map(|key| locale.text(key)),
        signup => state.config.self_registration,
        t => locale.messages(),
        lang => &locale.tag,
        display => flow.request.display.map(Display::as_str),
    };
    (jar, reply::page(state, status, "login.html", ctx)).into_response()
}

pub async fn login_page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<PageQuery>,
) -> Response {
    match load_pending(&state, &q.request).await {
        Ok((_, request, client)) => {
            let flow = Flow { id: &q.request, request: &request, client: &client };
            let locale = page_locale(&state, &request, &headers);
            login_form(&state, jar, StatusCode::OK, &flow, locale, None, None)
        }
        Err(response) => response,
    }
}

/// A form submitted from one of a flow's pages.
pub(super) struct Submitted {
    pub params: Params,
    pub pending: PendingAuthorization,
    pub request: AuthorizationRequest,
    pub client: Arc<Client>,
}

impl Submitted {
    pub fn request_id(&self) -> &str {
        &self.pending.id
    }
}

/// Reads a submitted form: its CSRF token proven against the browser's cookie, then its flow; or the
/// page to show instead.
pub(super) async fn submitted(
    state: &SharedState,
    jar: &CookieJar,
    params: Result<Params, OAuthError>,
) -> Result<Submitted, Response> {
    let params = params.map_err(|e| reply::error_page(state, &e))?;
    let request_id = params.get("request").unwrap_or_default();
    if !cookies::csrf_valid(&state.config, &state.csrf_key, jar, request_id, params.get("csrf_token")) {
        return Err(reply::error_page(state, &reply::form_expired()));
    }
    let (pending, request, client) = load_pending(state, request_id).await?;
    Ok(Submitted { params, pending, request, client })
}

pub async fn login_submit(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let submission = match submitted(&state, &jar, params).await {
        Ok(submission) => submission,
        Err(response) => return response,
    };
    let Submitted { params, request, client, .. } = &submission;
    let request_id = submission.request_id();
    let username = params.get("username").unwrap_or_default().trim();
    let password = params.get("password").unwrap_or_default();
    let flow = Flow { id: request_id, request, client };
    let locale = page_locale(&state, request, &headers);
    let form = |jar, status, error| login_form(&state, jar, status, &flow, locale, Some(username), Some(error));

    let client_ip = state.client_ip(peer.ip(), &headers);
    let (checked, method) = match params.get("credential") {
        Some(answer) => (passkey_login(&state, &jar, client_ip, answer).await, LoginMethod::Passkey),
        None => (authenticate(&state, client_ip, username, password).await, LoginMethod::Password),
    };
    match checked {
        Ok(Some(user_id)) => {
            let login =
                SignedInUser { user_id, client_ip, headers: &headers, then: AfterLogin::Flow(request_id), method };
            continue_signed_in(&state, super::passkeys::end_ceremony(&state, jar), login).await
        }
        Ok(None) if method == LoginMethod::Passkey => form(jar, StatusCode::UNAUTHORIZED, "passkey_failed"),
        Ok(None) => form(jar, StatusCode::UNAUTHORIZED, "bad_credentials"),
        Err(LoginError::Throttled) => form(jar, StatusCode::TOO_MANY_REQUESTS, "throttled"),
        Err(LoginError::Store(e)) => reply::error_page(&state, &reply::internal(e)),
    }
}

/// The key of an account's failed-login count (`username` in its canonical form): passwords, refused
/// passkeys and password resets all count against, or clear, the same one.
pub(super) fn account_throttle_key(username: &str) -> String {
    format!("account:{username}")
}

/// A login with a passkey (the form's `credential`), as `authenticate` answers for a password.
pub(super) async fn passkey_login(
    state: &SharedState,
    jar: &CookieJar,
    client_ip: IpAddr,
    answer: &str,
) -> Result<Option<String>, LoginError> {
    super::passkeys::sign_in(state, jar, client_ip, answer).await.map_err(LoginError::Store)
}

pub(super) enum LoginError {
    Throttled,
    Store(StoreError),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Checks a username and password, with throttling per account and per client IP. Unknown users,
/// disabled users and wrong passwords are indistinguishable, in the answer and in its timing.
///
/// An attempt is reserved against both limits before the password is checked, so a burst of concurrent
/// logins can never have more than the limit checked (a success gives its reservation back).
pub(super) async fn authenticate(
    state: &SharedState,
    client_ip: IpAddr,
    username: &str,
    password: &str,
) -> Result<Option<String>, LoginError> {
    let config = &state.config;
    let store = &state.store;
    let now = state.now();
    let window = config.login_throttle_window as i64;
    // The canonical form (RFC 8265) is the account, for the lookup and the throttle alike; a name that
    // has none is no account, checked like an unknown one.
    let username = canonical_username(username).ok();
    let account_key = account_throttle_key(username.as_deref().unwrap_or_default());
    let ip_key = format!("ip:{client_ip}");
    let event = |kind, user_id: Option<&str>, detail: &str| {
        AuditEvent::new(now, kind, detail).user(user_id, username.as_deref()).ip(client_ip)
    };
    let throttled = if !store.reserve_attempt(&ip_key, now, window, config.login_max_failures_per_ip).await? {
        Some("too many attempts from this address")
    } else if !store.reserve_attempt(&account_key, now, window, config.login_max_failures_per_account).await? {
        store.release_attempt(&ip_key).await?;
        Some("too many attempts for this account")
    } else {
        None
    };
    if let Some(detail) = throttled {
        audit::record(store.as_ref(), event(AuditKind::LoginThrottled, None, detail)).await;
        return Err(LoginError::Throttled);
    }
    let user = match &username {
        Some(name) => store.user_by_username(name).await?,
        None => None,
    };
    let ok = password::verify(password.to_owned(), user.as_ref().map(|u| u.password_hash.clone())).await;
    // The operator may know why (the user never does: one answer for all).
    let checked = match user {
        None => Err((None, "unknown username")),
        Some(u) if u.disabled => Err((Some(u.id), "disabled account")),
        Some(u) if !ok => Err((Some(u.id), "wrong password")),
        Some(u) => Ok(u),
    };
    match checked {
        Ok(user) => {
            store.clear_attempts(&account_key).await?;
            store.release_attempt(&ip_key).await?;
            audit::record(store.as_ref(), event(AuditKind::LoginSucceeded, Some(&user.id), "password")).await;
            Ok(Some(user.id))
        }
        Err((user_id, reason)) => {
            crate::telemetry::failed_login();
            audit::record(store.as_ref(), event(AuditKind::LoginFailed, user_id.as_deref(), reason)).await;
            Ok(None)
        }
    }
}

/// Who just signed in, from where, and in which flow.
pub(super) struct SignedInUser<'a> {
    pub user_id: String,
    pub client_ip: IpAddr,
    pub headers: &'a HeaderMap,
    pub then: AfterLogin<'a>,
    /// How: a password alone is followed by the user's second factor, if they have one.
    pub method: LoginMethod,
}

/// Where a login leads.
pub(super) enum AfterLogin<'a> {
    /// Back to the authorization flow it happened in (the login counts for it: prompt=login, max_age).
    Flow(&'a str),
    /// To one of the OP's own pages (the account page, the device verification page), by its path.
    Page(String),
}

impl<'a> AfterLogin<'a> {
    /// As kept while a second factor is asked for (`flow:ID` or `page:PATH`).
    pub fn encode(&self) -> String {
        match self {
            AfterLogin::Flow(id) => format!("flow:{id}"),
            AfterLogin::Page(path) => format!("page:{path}"),
        }
    }

    pub fn decode(encoded: &'a str) -> Option<Self> {
        match encoded.split_once(':')? {
            ("flow", id) => Some(AfterLogin::Flow(id)),
            ("page", path) if path.starts_with('/') && !path.starts_with("//") => {
                Some(AfterLogin::Page(path.to_owned()))
            }
            _ => None,
        }
    }
}

/// After a login or sign-up: the new session, and back to the flow it happened in. A password login of
/// a user with an authenticator first asks for its code (`mfa`).
pub(super) async fn continue_signed_in(state: &SharedState, jar: CookieJar, login: SignedInUser<'_>) -> Response {
    if login.method == LoginMethod::Password {
        match super::mfa::has_second_factor(state, &login.user_id).await {
            Ok(true) => return super::mfa::ask_second_factor(state, jar, &login.user_id, &login.then),
            Ok(false) => {}
            Err(e) => return reply::error_page(state, &reply::internal(e)),
        }
    }
    let resume = match &login.then {
        AfterLogin::Flow(id) => format!("/authorize/resume?request={id}"),
        AfterLogin::Page(path) => path.clone(),
    };
    match start_session(state, jar, login).await {
        Ok(jar) => (jar, reply::see_other_within(state, &resume)).into_response(),
        Err(e) => reply::error_page(state, &reply::internal(e)),
    }
}

/// Starts a session for the user who just signed in, under a new cookie id (no session fixation), as
/// the browser's active account. The user's earlier session on this browser, if any, is continued (same
/// `sid`: the clients signed in through it keep their grants); the other accounts stay signed in for the
/// account chooser, up to `MAX_OTHER_ACCOUNTS` (the least recent beyond that ends, as a logout would).
/// Records the login on the flow it happened in, and sets the OP browser state that
/// `check_session_iframe` reads.
pub(super) async fn start_session(
    state: &SharedState,
    jar: CookieJar,
    login: SignedInUser<'_>,
) -> Result<CookieJar, StoreError> {
    let mut browser = BrowserAccounts::load(state, &jar).await?;
    let previous = browser.take_user(&login.user_id);
    let raw_id = crypto::random_token();
    let now = state.now();
    let sid = previous.as_ref().map_or_else(crypto::random_token, |p| p.session.sid.clone());
    let user_agent = login.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let session = BrowserSession {
        id_hash: crypto::token_hash(&raw_id),
        sid,
        user_id: login.user_id,
        auth_time: now,
        amr: login.method.amr(),
        acr: state.config.acr_of(login.method).to_owned(),
        expires_at: now + state.config.session_lifetime as i64,
        device: Device {
            ip: Some(login.client_ip.to_string()),
            // Shown on the account page; a long one says nothing more.
            user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
        },
    };
    let dropped = browser.push_active(Account { raw_id, session: session.clone() });
    let start = SessionStart {
        session: &session,
        replaced: previous.as_ref().or(dropped.as_ref()).map(|a| &a.session),
        logout: state.config.logout(now),
        pending_id: match login.then {
            AfterLogin::Flow(id) => Some(id),
            AfterLogin::Page(_) => None,
        },
    };
    let ended = state.store.start_session(&start).await?;
    state.logout_notifications_queued(&ended);
    Ok(browser.write(state, jar))
}

/// What each scope lets a client do, in the user's words (the consent page, the account page).
pub(super) fn scope_descriptions(state: &SharedState, locale: &Locale, scope: &ScopeSet) -> Vec<String> {
    let mut ordered: Vec<&str> = scope.iter().collect();
    ordered.sort_by_key(|scope| ui::consent_order(scope));
    ordered
        .into_iter()
        .map(|scope| match ui::scope_message(scope) {
            Some(key) => locale.text(key).to_owned(),
            // A custom scope: name what it releases; a resource server's scope releases no claims, so
            // it is shown by its name.
            None => {
                let claims: Vec<&str> = state.scope_claims.claims_of(scope).collect();
                if claims.is_empty() {
                    scope.to_owned()
                } else {
                    format!("{} {}", locale.text("scope_custom"), claims.join(", "))
                }
            }
        })
        .collect()
}

pub async fn consent_page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<PageQuery>,
) -> Response {
    let (pending, mut request, client) = match load_pending(&state, &q.request).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let found = async {
        let Some(session) = current_session(&state, &jar).await? else { return Ok(None) };
        let Some(user) = state.store.user(&session.user_id).await? else { return Ok(None) };
        let remembered = state.store.consent(&user.id, &client.id).await?;
        Ok::<_, StoreError>(Some((user, remembered)))
    }
    .await;
    let user = match found {
        Ok(Some((user, remembered))) => {
            // What the page asks for is what the decision will grant (Core 11).
            request.settle_offline_access(remembered.as_ref(), &client);
            user
        }
        // Signed out in the meantime: back through the decision, which asks for a login.
        Ok(None) => return proceed(&state, &jar, &client, request, Stage::Waiting(&pending)).await,
        Err(e) => return reply::error_page(&state, &reply::internal(e)),
    };
    let locale = page_locale(&state, &request, &headers);
    let mut scopes = scope_descriptions(&state, locale, &request.scope);
    let individually = request.claims_beyond_scope(&state.scope_claims);
    if !individually.is_empty() {
        let claims = individually.into_iter().collect::<Vec<_>>().join(", ");
        scopes.push(format!("{} {claims}", locale.text("individual_claims")));
    }
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, &q.request);
    // Registration 2.1: the client's name, logo and links in the page's language where it gave them.
    let shown = &client.metadata.presentation;
    let languages = [locale.tag.as_str()];
    let logo = localized(&shown.logo_uri, &languages).and_then(|l| url::Url::parse(l).ok());
    let ctx = context! {
        client_name => client.name_in(&languages),
        logo_uri => logo.as_ref().map(url::Url::as_str),
        client_uri => localized(&shown.client_uri, &languages),
        policy_uri => localized(&shown.policy_uri, &languages),
        tos_uri => localized(&shown.tos_uri, &languages),
        unverified => matches!(client.metadata.origin, ClientOrigin::Registration { .. }),
        scopes => scopes,
        username => &user.username,
        request_id => &q.request,
        csrf_token => csrf_token,
        t => locale.messages(),
        lang => &locale.tag,
        display => request.display.map(Display::as_str),
    };
    let mut response = reply::page(&state, StatusCode::OK, "consent.html", ctx);
    if let Some(logo) = &logo {
        reply::allow_images_from(&mut response, &logo.origin().ascii_serialization());
    }
    (jar, response).into_response()
}

pub async fn consent_submit(
    State(state): State<SharedState>,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let Submitted { params, pending, request, client } = match submitted(&state, &jar, params).await {
        Ok(submission) => submission,
        Err(response) => return response,
    };
    let result: Result<Response, StoreError> = async {
        let Some(session) = current_session(&state, &jar).await? else {
            return Ok(proceed(&state, &jar, &client, request, Stage::Waiting(&pending)).await);
        };
        if params.get("decision") != Some("allow") {
            state.store.delete_pending(&pending.id).await?;
            let denied = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            return Ok(reply::error_redirect(&state, &request.error(denied)));
        }
        // Consent is now given; every other condition (prompt=login, max_age, id_token_hint) must
        // still hold, so a form posted directly cannot skip a required login.
        let mut without_consent_prompt = request.clone();
        without_consent_prompt.prompt.retain(|p| *p != Prompt::Consent);
        let subject = state.subject(&client, &session.user_id);
        let signed_in = signed_in(&session, &subject, Some(&pending));
        match next_step(&without_consent_prompt, Some(signed_in), true, state.now()) {
            Ok(NextStep::IssueCode) => {
                let remembered = state.store.consent(&session.user_id, &client.id).await?;
                let mut request = request;
                request.settle_offline_access(remembered.as_ref(), &client);
                let consent = request.widen(remembered, &state.scope_claims);
                let completing = Completing { consent: Some(&consent), pending_id: Some(&pending.id) };
                let response = authorization_response::issue(&state, &client, &request, &session, completing).await?;
                let given = format!("scope {}", consent.scope);
                let event = AuditEvent::new(state.now(), AuditKind::ConsentGiven, given)
                    .user(Some(&session.user_id), None)
                    .client(client.id.as_str());
                audit::record(state.store.as_ref(), event).await;
                Ok(response)
            }
            _ => Ok(proceed(&state, &jar, &client, request, Stage::Waiting(&pending)).await),
        }
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page(&state, &reply::internal(e)))
}
