//! Password reset by email: "forgot your password?" mails a link to the account's address, whatever
//! was typed gets the same answer (no one learns which accounts or addresses exist), and the link's
//! page sets a new password. Bounded per client IP and per address; off without `smtp_url`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use serde::Deserialize;

use super::account::{checked_form, locale};
use super::params::RequestParams;
use super::{SharedState, cookies, reply};
use crate::audit;
use crate::mail::{Mail, MailKind, Mailer};
use crate::model::{AuditEvent, AuditKind, Timestamp, User, canonical_username};
use crate::protocol::email_link::{EmailLink, LinkError, LinkPurpose, fingerprint};
use crate::protocol::{OAuthError, Params};
use crate::store::StoreError;
use crate::ui::Locale;

const FORGOT_FLOW: &str = "password-forgot";
const RESET_FLOW: &str = "password-reset";

/// The `?token=` of a mailed link.
#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    pub token: String,
}

/// The pages of a mailed-link flow when `smtp_url` is not set.
pub(super) fn turned_off(state: &SharedState, locale: &Locale) -> Response {
    let e = OAuthError::invalid_request(locale.text("mail_off").to_owned());
    reply::error_page_in(state, &e, locale)
}

/// Whether one more mail may go to `address` now (`mail_max_per_address` per `login_throttle_window`).
pub(super) async fn mail_allowed(state: &SharedState, address: &str) -> Result<bool, StoreError> {
    let key = format!("mail-to:{}", fingerprint(&address.to_lowercase()));
    let window = state.config.login_throttle_window as i64;
    state.store.reserve_attempt(&key, state.now(), window, state.config.mail_max_per_address).await
}

/// Whether the client IP may ask for one more mail (`mail_max_per_ip` per `login_throttle_window`).
pub(super) async fn mail_request_allowed(state: &SharedState, client_ip: IpAddr) -> Result<bool, StoreError> {
    let window = state.config.login_throttle_window as i64;
    let key = format!("mail-ip:{client_ip}");
    state.store.reserve_attempt(&key, state.now(), window, state.config.mail_max_per_ip).await
}

/// A mail of `template`, in `locale`, with the link `url` for `user`.
pub(super) fn compose(
    state: &SharedState,
    locale: &Locale,
    kind: MailKind,
    to: &str,
    user: &User,
    url: &str,
    lifetime: u64,
) -> Option<Mail> {
    let (template, subject) = match kind {
        MailKind::PasswordReset => ("mail_password_reset.txt", "mail_password_reset_subject"),
        MailKind::EmailVerification => ("mail_email_verification.txt", "mail_email_verification_subject"),
    };
    let ctx = context! {
        username => &user.username,
        link => url,
        minutes => lifetime.div_ceil(60),
        issuer => &state.config.issuer,
        t => locale.messages(),
    };
    match state.pages.render(template, ctx) {
        Ok(body) => Some(Mail { kind, to: to.to_owned(), subject: locale.text(subject).to_owned(), body }),
        Err(e) => {
            tracing::error!(error = %e, template, "mail rendering failed");
            None
        }
    }
}

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

fn mailer(state: &SharedState) -> Option<Arc<Mailer>> {
    state.mailer.clone()
}

/// `GET /password/forgot`.
pub async fn forgot_page(State(state): State<SharedState>, headers: HeaderMap, jar: CookieJar) -> Response {
    let locale = locale(&state, &headers);
    if mailer(&state).is_none() {
        return turned_off(&state, locale);
    }
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
    let Some(mailer) = mailer(&state) else { return turned_off(&state, locale) };
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
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client_ip = state.config.client_ip(peer.ip(), forwarded);
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
    let link = match EmailLink::open(token, &state.csrf_key, LinkPurpose::PasswordReset, state.now()) {
        Ok(link) => link,
        Err(LinkError::Expired) => return Ok(Err("link_expired")),
        Err(LinkError::Invalid) => return Ok(Err("link_invalid")),
    };
    match state.store.user(&link.user_id).await? {
        Some(user) if !user.disabled && link.is_for(&user.password_hash) => Ok(Ok((link, user))),
        Some(_) => Ok(Err("link_used")),
        None => Ok(Err("link_invalid")),
    }
}

/// `GET /password/reset?token=`: the new-password form, or why the link no longer works.
pub async fn reset_page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<LinkQuery>,
) -> Response {
    let locale = locale(&state, &headers);
    if mailer(&state).is_none() {
        return turned_off(&state, locale);
    }
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
    if mailer(&state).is_none() {
        return turned_off(&state, locale);
    }
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
        let problem = if Some(new) != repeated {
            Some("signup_password_mismatch")
        } else if crate::password::check_length(new).is_err() {
            Some("signup_password_length")
        } else {
            None
        };
        if let Some(error) = problem {
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
        state.logout_delivery.notify_one();
        state.store.clear_attempts(&format!("account:{}", user.username)).await?;
        let event = AuditEvent::new(now, AuditKind::UserChanged, "password reset with a mailed link")
            .user(Some(&user.id), Some(&user.username));
        audit::record(state.store.as_ref(), event).await;
        Ok(ResetPage { done: true, ..page }.render(&state, jar, StatusCode::OK))
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}
