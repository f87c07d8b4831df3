//! Password reset by email: "forgot your password?" mails a link to the account's address, whatever
//! was typed gets the same answer (no one learns which accounts or addresses exist), and the link's
//! page sets a new password. Bounded per client IP and per address; off without `smtp_url`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;

use super::account::{checked_form, locale, new_password_problem};
use super::interaction::account_throttle_key;
use super::mailed_link::{LinkQuery, compose, mail_allowed, mail_request_allowed, open_link};
use super::params::RequestParams;
use super::{SharedState, cookies, reply};
use crate::audit;
use crate::mail::{MailKind, Mailer};
use crate::model::{AuditEvent, AuditKind, Timestamp, User, canonical_username};
use crate::protocol::email_link::{EmailLink, LinkPurpose, fingerprint};
use crate::protocol::{OAuthError, Params};
use crate::store::StoreError;
use crate::ui::Locale;

const FORGOT_FLOW: &str = "password-forgot";
const RESET_FLOW: &str = "password-reset";

/// The page of this flow in one of its states; `error` and `problem` are catalogue keys.
struct ResetPage<'a> {
    template: &'static str,
    csrf_flow: &'static str,
    locale: &'a Locale,
    /// The form is to be filled in (again).
    token: Option<&'a str>,
    sent: bool,
    done: bool,
    problem: Option<&'a str>,
    error: Option<&'a str>,
}

impl<'a> ResetPage<'a> {
    fn new(template: &'static str, csrf_flow: &'static str, locale: &'a Locale) -> Self {
        Self { template, csrf_flow, locale, token: None, sent: false, done: false, problem: None, error: None }
    }

    fn render(&self, state: &SharedState, jar: CookieJar, status: StatusCode) -> Response {
        let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, self.csrf_flow);
        let text = |key: Option<&str>| key.map(|k| self.locale.text(k).to_owned());
        let ctx = context! {
            csrf_token,
            token => self.token,
            sent => self.sent,
            done => self.done,
            problem => text(self.problem),
            error => text(self.error),
            t => self.locale.messages(),
            lang => &self.locale.tag,
        };
        (jar, reply::page(state, status, self.template, ctx)).into_response()
    }
}

/// `GET /password/forgot`.
pub async fn forgot_page(State(state): State<SharedState>, headers: HeaderMap, jar: CookieJar) -> Response {
    let locale = locale(&state, &headers);
    ResetPage::new("password_forgot.html", FORGOT_FLOW, locale).render(&state, jar, StatusCode::OK)
}

/// The accounts `typed` names: by username, else (for an address) every account with that address.
async fn accounts_named(state: &SharedState, typed: &str) -> Result<Vec<User>, StoreError> {
    if let Ok(username) = canonical_username(typed)
        && let Some(user) = state.store.user_by_username(&username).await?
    {
        return Ok(vec![user]);
    }
    if typed.contains('@') { state.store.users_by_email(typed).await } else { Ok(Vec::new()) }
}

/// `POST /password/forgot`: mails a reset link to each account the form names that has an address.
pub async fn forgot_submit(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let locale = locale(&state, &headers);
    // Always there: `mailed_link::only_with_mail` serves this page only with a mailer.
    let Some(mailer) = state.mailer.clone() else {
        return reply::error_page_in(&state, &OAuthError::server_error(), locale);
    };
    let params = match checked_form(&state, &jar, params, FORGOT_FLOW) {
        Ok(params) => params,
        Err(e) => return reply::error_page_in(&state, &e, locale),
    };
    let page = ResetPage::new("password_forgot.html", FORGOT_FLOW, locale);
    let typed = params.get("account").unwrap_or_default().trim();
    if typed.is_empty() || typed.len() > 254 {
        return ResetPage { error: Some("forgot_account_missing"), ..page }.render(
            &state,
            jar,
            StatusCode::BAD_REQUEST,
        );
    }
    let client_ip = state.client_ip(peer.ip(), &headers);
    let result: Result<Response, StoreError> = async {
        if !mail_request_allowed(&state, client_ip).await? {
            let page = ResetPage { error: Some("mail_throttled"), ..page };
            return Ok(page.render(&state, jar, StatusCode::TOO_MANY_REQUESTS));
        }
        // Looked up and mailed after the answer, so that neither its content nor its timing tells
        // whether the account exists.
        let (background, typed, tag) = (state.clone(), typed.to_owned(), locale.tag.clone());
        tokio::spawn(async move {
            if let Err(e) = mail_reset_links(&background, &mailer, &typed, &tag).await {
                tracing::error!(error = %e, "password reset links not sent");
            }
        });
        Ok(ResetPage { sent: true, ..page }.render(&state, jar, StatusCode::OK))
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}

/// Mails a reset link (in the language `tag` of the page that asked) to each account `typed` names
/// that has an address and is not disabled, within each address's allowance.
async fn mail_reset_links(state: &SharedState, mailer: &Mailer, typed: &str, tag: &str) -> Result<(), StoreError> {
    let locale = state.pages.locale(Some(tag), None);
    let now = state.now();
    let lifetime = state.config.password_reset_lifetime;
    for user in accounts_named(state, typed).await? {
        let Some(address) = user.email.as_deref().filter(|_| !user.disabled) else { continue };
        if !mail_allowed(state, address).await? {
            continue;
        }
        let link = EmailLink {
            purpose: LinkPurpose::PasswordReset,
            user_id: user.id.clone(),
            expires_at: now + lifetime as Timestamp,
            binding: fingerprint(&user.password_hash),
        };
        let url = format!("{}/password/reset?token={}", state.config.issuer, link.seal(&state.csrf_key));
        if let Some(mail) = compose(state, locale, MailKind::PasswordReset, address, &user, &url, lifetime) {
            mailer.deliver(mail).await;
        }
    }
    Ok(())
}

/// The account a reset link is for, if the link still works: made by us, not expired, and made for
/// the password the account has now (a changed password, by this link or otherwise, ends it).
async fn link_account(state: &SharedState, token: &str) -> Result<Result<(EmailLink, User), &'static str>, StoreError> {
    Ok(match open_link(state, token, LinkPurpose::PasswordReset).await? {
        Ok((link, user)) if !user.disabled && link.is_for(&user.password_hash) => Ok((link, user)),
        Ok(_) => Err("link_used"),
        Err(problem) => Err(problem),
    })
}

/// `GET /password/reset?token=`: the new-password form, or why the link no longer works.
pub async fn reset_page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<LinkQuery>,
) -> Response {
    let locale = locale(&state, &headers);
    let page = ResetPage::new("password_reset.html", RESET_FLOW, locale);
    match link_account(&state, &q.token).await {
        Ok(Ok(_)) => ResetPage { token: Some(&q.token), ..page }.render(&state, jar, StatusCode::OK),
        Ok(Err(problem)) => ResetPage { problem: Some(problem), ..page }.render(&state, jar, StatusCode::BAD_REQUEST),
        Err(e) => reply::error_page_in(&state, &reply::internal(e), locale),
    }
}

/// `POST /password/reset`: sets the new password, once per link. As with a password change, every
/// session of the user ends (their RPs are told) and the account's failed-login count is cleared.
pub async fn reset_submit(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let locale = locale(&state, &headers);
    let params: Params = match checked_form(&state, &jar, params, RESET_FLOW) {
        Ok(params) => params,
        Err(e) => return reply::error_page_in(&state, &e, locale),
    };
    let token = params.get("token").unwrap_or_default();
    let page = ResetPage::new("password_reset.html", RESET_FLOW, locale);
    let result: Result<Response, StoreError> = async {
        let (link, user) = match link_account(&state, token).await? {
            Ok(found) => found,
            Err(problem) => {
                return Ok(ResetPage { problem: Some(problem), ..page }.render(&state, jar, StatusCode::BAD_REQUEST));
            }
        };
        let (new, repeated) = (params.get("new_password").unwrap_or_default(), params.get("new_password_repeat"));
        if let Some(error) = new_password_problem(new, repeated) {
            return Ok(ResetPage { token: Some(token), error: Some(error), ..page }.render(
                &state,
                jar,
                StatusCode::BAD_REQUEST,
            ));
        }
        let now = state.now();
        // Two submissions of one link at once: the first spends it.
        if !state.store.first_use(&EmailLink::spent_key(token), link.expires_at, now).await? {
            return Ok(ResetPage { problem: Some("link_used"), ..page }.render(&state, jar, StatusCode::BAD_REQUEST));
        }
        let Ok(hash) = crate::password::hash(new.to_owned()).await else {
            return Ok(reply::error_page_in(&state, &OAuthError::server_error(), locale));
        };
        state.store.set_password_hash(&user.username, &hash, false, state.config.logout(now)).await?;
        state.forget_user(&user.id);
        state.logout_delivery.notify_one();
        state.store.clear_attempts(&account_throttle_key(&user.username)).await?;
        let event = AuditEvent::new(now, AuditKind::UserChanged, "password reset with a mailed link")
            .user(Some(&user.id), Some(&user.username));
        audit::record(state.store.as_ref(), event).await;
        Ok(ResetPage { done: true, ..page }.render(&state, jar, StatusCode::OK))
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}
