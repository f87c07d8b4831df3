//! Email verification: a mailed link (sent at sign-up and from the account page) whose page, after
//! one click, marks the address verified (`email_verified`, Core 5.1). The click is a form: mail
//! scanners that fetch every link in a message must not verify anything. Off without `smtp_url`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;

use super::account::{self, checked_form, locale};
use super::authorize::current_session;
use super::mailed_link::{LinkQuery, compose, mail_allowed, open_link};
use super::params::RequestParams;
use super::{SharedState, cookies, reply};
use crate::audit;
use crate::mail::MailKind;
use crate::model::{AuditEvent, AuditKind, Timestamp, User};
use crate::protocol::email_link::{EmailLink, LinkPurpose, fingerprint};
use crate::store::StoreError;
use crate::ui::Locale;

const VERIFY_FLOW: &str = "email-verify";

/// Mails `user` a link that verifies their address, if there is one to verify and the address's
/// allowance is not spent; whether a mail went.
pub(super) async fn send_verification(state: &SharedState, user: &User, locale: &Locale) -> Result<bool, StoreError> {
    let Some(mailer) = state.mailer.clone() else { return Ok(false) };
    let Some(address) = user.email.as_deref().filter(|_| !user.email_verified) else { return Ok(false) };
    if !mail_allowed(state, address).await? {
        return Ok(false);
    }
    let lifetime = state.config.email_verification_lifetime;
    let link = EmailLink {
        purpose: LinkPurpose::EmailVerification,
        user_id: user.id.clone(),
        expires_at: state.now() + lifetime as Timestamp,
        binding: fingerprint(address),
    };
    let url = format!("{}/email/verify?token={}", state.config.issuer, link.seal(&state.csrf_key));
    let Some(mail) = compose(state, locale, MailKind::EmailVerification, address, user, &url, lifetime) else {
        return Ok(false);
    };
    tokio::spawn(async move { mailer.deliver(mail).await });
    Ok(true)
}

/// `POST /account/email/verify`: the signed-in user asks for a verification link.
pub async fn request(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let locale = locale(&state, &headers);
    if let Err(e) = checked_form(&state, &jar, params, account::CSRF_FLOW) {
        return reply::error_page_in(&state, &e, locale);
    }
    let result: Result<Response, StoreError> = async {
        let Some(session) = current_session(&state, &jar).await? else {
            return Ok(reply::see_other_within(&state, "/account"));
        };
        let Some(user) = state.store.user(&session.user_id).await? else {
            return Ok(reply::see_other_within(&state, "/account"));
        };
        let outcome = if send_verification(&state, &user, locale).await? { "sent" } else { "not-sent" };
        Ok(reply::see_other_within(&state, &format!("/account?verification={outcome}")))
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}

/// The page in one of its states: `confirm` carries the token to the form; `problem` is a catalogue key.
fn verify_page(
    state: &SharedState,
    jar: CookieJar,
    status: StatusCode,
    locale: &Locale,
    confirm: Option<&str>,
    problem: Option<&str>,
) -> Response {
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, VERIFY_FLOW);
    let ctx = context! {
        csrf_token,
        token => confirm,
        done => confirm.is_none() && problem.is_none(),
        problem => problem.map(|key| locale.text(key)),
        t => locale.messages(),
        lang => &locale.tag,
    };
    (jar, reply::page(state, status, "email_verify.html", ctx)).into_response()
}

/// What a verification link names, if it still works: the account and the address it verifies (the
/// one the account has now; a link for an earlier address does nothing).
async fn link_account(state: &SharedState, token: &str) -> Result<Result<(EmailLink, User), &'static str>, StoreError> {
    Ok(match open_link(state, token, LinkPurpose::EmailVerification).await? {
        Ok((link, user)) if user.email.as_deref().is_some_and(|address| link.is_for(address)) => Ok((link, user)),
        Ok(_) => Err("link_invalid"),
        Err(problem) => Err(problem),
    })
}

/// `GET /email/verify?token=`: one button that verifies the address.
pub async fn confirm_page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<LinkQuery>,
) -> Response {
    let locale = locale(&state, &headers);
    match link_account(&state, &q.token).await {
        Ok(Ok((_, user))) if user.email_verified => verify_page(&state, jar, StatusCode::OK, locale, None, None),
        Ok(Ok(_)) => verify_page(&state, jar, StatusCode::OK, locale, Some(&q.token), None),
        Ok(Err(problem)) => verify_page(&state, jar, StatusCode::BAD_REQUEST, locale, None, Some(problem)),
        Err(e) => reply::error_page_in(&state, &reply::internal(e), locale),
    }
}

/// `POST /email/verify`: marks the address verified, once per link.
pub async fn verify(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let locale = locale(&state, &headers);
    let params = match checked_form(&state, &jar, params, VERIFY_FLOW) {
        Ok(params) => params,
        Err(e) => return reply::error_page_in(&state, &e, locale),
    };
    let token = params.get("token").unwrap_or_default();
    let result: Result<Response, StoreError> = async {
        let (link, user) = match link_account(&state, token).await? {
            Ok(found) => found,
            Err(problem) => return Ok(verify_page(&state, jar, StatusCode::BAD_REQUEST, locale, None, Some(problem))),
        };
        let now = state.now();
        if !state.store.first_use(&EmailLink::spent_key(token), link.expires_at, now).await? {
            return Ok(verify_page(&state, jar, StatusCode::BAD_REQUEST, locale, None, Some("link_used")));
        }
        let address = user.email.as_deref().unwrap_or_default();
        if state.store.verify_email(&user.id, address, now).await? {
            state.forget_user(&user.id);
            let event = AuditEvent::new(now, AuditKind::UserChanged, "email address verified with a mailed link")
                .user(Some(&user.id), Some(&user.username));
            audit::record(state.store.as_ref(), event).await;
        }
        Ok(verify_page(&state, jar, StatusCode::OK, locale, None, None))
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}
