//! What the pages reached by mailed links share (password reset, email verification): the link's
//! query, opening it, composing the mail, the per-address and per-IP bounds, and the page shown when
//! the server sends no mail.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use super::{SharedState, reply};
use crate::mail::{Mail, MailKind};
use crate::model::User;
use crate::protocol::OAuthError;
use crate::protocol::email_link::{EmailLink, LinkError, LinkPurpose, fingerprint};
use crate::store::StoreError;
use crate::ui::Locale;

/// The `?token=` of a mailed link.
#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    pub token: String,
}

/// Middleware: the pages of mailed links are served only when `smtp_url` is set; otherwise each says
/// that this server sends no mail.
pub(super) async fn only_with_mail(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    if state.mailer.is_some() {
        return next.run(request).await;
    }
    let locale = super::account::locale(&state, request.headers());
    let e = OAuthError::invalid_request(locale.text("mail_off").to_owned());
    reply::error_page_in(&state, &e, locale)
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

/// The link `token` names and its account, if this OP made it for `purpose` and it has not expired;
/// else the catalogue key of why not. What the link may change is for the caller to check.
pub(super) async fn open_link(
    state: &SharedState,
    token: &str,
    purpose: LinkPurpose,
) -> Result<Result<(EmailLink, User), &'static str>, StoreError> {
    let link = match EmailLink::open(token, &state.csrf_key, purpose, state.now()) {
        Ok(link) => link,
        Err(LinkError::Expired) => return Ok(Err("link_expired")),
        Err(LinkError::Invalid) => return Ok(Err("link_invalid")),
    };
    Ok(state.store.user(&link.user_id).await?.map(|user| (link, user)).ok_or("link_invalid"))
}
