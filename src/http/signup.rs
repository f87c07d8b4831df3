//! Self-service sign-up (Initiating User Registration via OpenID Connect 1.0): the page `prompt=create`
//! leads to, also linked from the login page. A new account is signed in at once and the flow goes on.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;

use super::authorize::load_pending;
use super::email_verification::send_verification;
use super::interaction::{AfterLogin, PageQuery, SignedInUser, Submitted, continue_signed_in, page_locale, submitted};
use super::params::RequestParams;
use super::{SharedState, cookies, reply};
use crate::audit;
use crate::model::LoginMethod;
use crate::model::{AuditEvent, AuditKind, User, new_username};
use crate::password::{self, PasswordError};
use crate::protocol::OAuthError;
use crate::store::StoreError;
use crate::ui::Locale;

/// What the person typed, given back to the form when something must be fixed (never the password).
#[derive(Default)]
struct Entered<'a> {
    username: &'a str,
    email: &'a str,
    name: &'a str,
}

/// The sign-up form of one flow, in its language.
struct Page<'a> {
    request_id: &'a str,
    client_name: &'a str,
    locale: &'a Locale,
}

/// `error` is a catalogue key.
fn form(
    state: &SharedState,
    jar: CookieJar,
    status: StatusCode,
    page: &Page<'_>,
    entered: &Entered<'_>,
    error: Option<&str>,
) -> Response {
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, page.request_id);
    let ctx = context! {
        client_name => page.client_name,
        request_id => page.request_id,
        csrf_token => csrf_token,
        username => entered.username,
        email => entered.email,
        name => entered.name,
        error => error.map(|key| page.locale.text(key)),
        t => page.locale.messages(),
        lang => &page.locale.tag,
    };
    (jar, reply::page(state, status, "signup.html", ctx)).into_response()
}

fn turned_off(state: &SharedState) -> Response {
    reply::error_page(state, &OAuthError::invalid_request("sign-up is turned off on this server"))
}

pub async fn signup_page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<PageQuery>,
) -> Response {
    if !state.config.self_registration {
        return turned_off(&state);
    }
    match load_pending(&state, &q.request).await {
        Ok((_, request, client)) => {
            let locale = page_locale(&state, &request, &headers);
            let page = Page { request_id: &q.request, client_name: &client.name, locale };
            form(&state, jar, StatusCode::OK, &page, &Entered::default(), None)
        }
        Err(response) => response,
    }
}

/// Why a sign-up was not accepted: the catalogue key of the words for the person filling in the form.
fn check(username: &str, email: &str, password: &str, confirm: &str) -> Result<String, &'static str> {
    // One canonical form (RFC 8265), one script at a time: no look-alike of another user's name.
    let username = new_username(username).map_err(|_| "signup_username_invalid")?;
    if !email.is_empty() && (email.len() > 254 || !email.contains('@') || email.chars().any(char::is_whitespace)) {
        return Err("signup_email_invalid");
    }
    match super::account::new_password_problem(password, Some(confirm)) {
        Some(problem) => Err(problem),
        None => Ok(username),
    }
}

pub async fn signup_submit(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    if !state.config.self_registration {
        return turned_off(&state);
    }
    let submission = match submitted(&state, &jar, params).await {
        Ok(submission) => submission,
        Err(response) => return response,
    };
    let Submitted { params, request, client, .. } = &submission;
    let request_id = submission.request_id();
    let locale = page_locale(&state, request, &headers);
    let page = Page { request_id, client_name: &client.name, locale };
    let entered = Entered {
        username: params.get("username").unwrap_or_default().trim(),
        email: params.get("email").unwrap_or_default().trim(),
        name: params.get("name").unwrap_or_default().trim(),
    };
    let password = params.get("password").unwrap_or_default();
    let retry = |jar, status, error| form(&state, jar, status, &page, &entered, Some(error));
    let username =
        match check(entered.username, entered.email, password, params.get("password_confirm").unwrap_or_default()) {
            Ok(username) => username,
            Err(problem) => return retry(jar, StatusCode::BAD_REQUEST, problem),
        };

    let client_ip = state.client_ip(peer.ip(), &headers);
    match create_account(&state, &username, &entered, password, client_ip).await {
        Ok(Ok(user_id)) => {
            // The new address gets its verification link (when mail is set up).
            match state.store.user(&user_id).await {
                Ok(Some(user)) => {
                    if let Err(e) = send_verification(&state, &user, locale).await {
                        tracing::error!(error = %e, "no verification link for a new account");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "no verification link for a new account"),
            }
            let login = SignedInUser {
                user_id,
                client_ip,
                headers: &headers,
                then: AfterLogin::Flow(request_id),
                method: LoginMethod::Password,
            };
            continue_signed_in(&state, jar, login).await
        }
        Ok(Err(problem)) => retry(jar, StatusCode::BAD_REQUEST, problem),
        Err(e) => reply::error_page(&state, &e),
    }
}

/// Creates the account, within the per-IP allowance (counted in the login throttle's window); returns
/// its id, or the catalogue key of what the person must change. Every attempt that gets as far as
/// hashing counts against the allowance, a taken username too, so the form cannot be used to probe
/// for usernames beyond the bound; and both answers cost the same password hash.
async fn create_account(
    state: &SharedState,
    username: &str,
    entered: &Entered<'_>,
    password: &str,
    client_ip: std::net::IpAddr,
) -> Result<Result<String, &'static str>, OAuthError> {
    let now = state.now();
    let window = state.config.login_throttle_window as i64;
    let limit = state.config.signup_max_per_ip;
    let ip_key = format!("signup:{client_ip}");
    if !state.store.reserve_attempt(&ip_key, now, window, limit).await.map_err(reply::internal)? {
        return Ok(Err("signup_throttled"));
    }
    let password_hash = match password::hash(password.to_owned()).await {
        Ok(hash) => hash,
        Err(PasswordError::Length) => return Ok(Err("signup_password_length")),
        Err(PasswordError::Hashing) => {
            tracing::error!("password hashing failed");
            return Err(OAuthError::server_error());
        }
    };
    let user = User {
        id: User::new_id(),
        username: username.to_owned(),
        password_hash,
        email: (!entered.email.is_empty()).then(|| entered.email.to_owned()),
        name: (!entered.name.is_empty()).then(|| entered.name.to_owned()),
        created_at: now,
        updated_at: now,
        ..User::default()
    };
    match state.store.insert_user(&user).await {
        Err(StoreError::Conflict) => return Ok(Err("signup_username_taken")),
        other => other.map_err(reply::internal)?,
    }
    let ip = ip_key.trim_start_matches("signup:");
    let event =
        AuditEvent::new(now, AuditKind::SignedUp, "self-service sign-up").user(Some(&user.id), Some(username)).ip(ip);
    audit::record(state.store.as_ref(), event).await;
    Ok(Ok(user.id))
}
