//! RP-Initiated Logout 1.0: the end-session endpoint, the confirmation it asks for when the request
//! cannot be tied to the browser's session, and the signed-out page that loads the clients'
//! Front-Channel Logout iframes before going back to the client.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minijinja::context;

use super::accounts::BrowserAccounts;
use super::params::RequestParams;
use super::{SharedState, cookies, reply};
use crate::audit;
use crate::crypto;
use crate::model::{AuditEvent, AuditKind, BrowserSession, Client, EndedSession, RedirectUri};
use crate::protocol::logout::{self, EndSessionRequest, HintedSession};
use crate::protocol::{OAuthError, Params};
use crate::store::{SessionsToEnd, StoreError};
use crate::ui::Locale;

/// The flow id CSRF tokens of the confirmation form are bound to.
const CSRF_FLOW: &str = "logout";

/// The parameters a confirmation carries over to its form (RP-Initiated Logout 2).
const CARRIED: [&str; 6] =
    ["id_token_hint", "logout_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales"];

/// A logout request checked against the client's registration.
struct Checked {
    request: EndSessionRequest,
    client: Option<Arc<Client>>,
    /// Where to send the browser afterwards: a registered `post_logout_redirect_uri`.
    redirect: Option<RedirectUri>,
}

fn locale<'a>(state: &'a SharedState, params: Option<&Params>, headers: &HeaderMap) -> &'a Locale {
    let accept_language = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    state.pages.locale(params.and_then(|p| p.get("ui_locales")), accept_language)
}

/// `end_session_endpoint` (RP-Initiated Logout 2), GET or POST. Ends the browser's session at once when
/// a valid `id_token_hint` names it; otherwise asks the user first, so that no page elsewhere can log
/// them out by a link.
pub async fn end_session(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    logout(&state, &headers, jar, params, false).await
}

/// The confirmation form's submission: the user chose to sign out.
pub async fn confirm(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    logout(&state, &headers, jar, params, true).await
}

/// A logout request, `confirmed` by the user on our form (its CSRF token checked) or not.
async fn logout(
    state: &SharedState,
    headers: &HeaderMap,
    jar: CookieJar,
    params: Result<Params, OAuthError>,
    confirmed: bool,
) -> Response {
    let locale = locale(state, params.as_ref().ok(), headers);
    let params = match params {
        Ok(p) => p,
        Err(e) => return reply::error_page_in(state, &e, locale),
    };
    if confirmed && !cookies::csrf_valid(&state.config, &state.csrf_key, &jar, CSRF_FLOW, params.get("csrf_token")) {
        return reply::error_page_in(state, &reply::form_expired(), locale);
    }
    let result: Result<Response, StoreError> = async {
        let checked = match check(state, &params).await? {
            Ok(checked) => checked,
            Err(e) => return Ok(reply::error_page_in(state, &e, locale)),
        };
        let mut browser = BrowserAccounts::load(state, &jar).await?;
        // The hint's `sid` names one of the browser's sessions: that one ends at once, the browser's
        // other accounts stay. Otherwise the user confirms signing out of the account `logout_hint`
        // names, or of every account of the browser.
        let hinted = checked.request.hint.as_ref().and_then(|hint| browser.find(&hint.sid));
        let ending: Vec<BrowserSession> = match hinted {
            Some(account) => vec![account.session.clone()],
            None => {
                let mut accounts = Vec::new();
                for account in &browser.accounts {
                    if let Some(user) = state.store.user(&account.session.user_id).await? {
                        accounts.push((user.username, account.session.clone()));
                    }
                }
                let logout_hint = checked.request.logout_hint.as_deref();
                if let Some(i) = accounts.iter().position(|(username, _)| Some(username.as_str()) == logout_hint) {
                    accounts = vec![accounts.swap_remove(i)];
                }
                if !confirmed && !accounts.is_empty() {
                    let usernames = accounts.into_iter().map(|(username, _)| username).collect();
                    return Ok(confirmation(state, jar, &params, usernames, locale));
                }
                accounts.into_iter().map(|(_, session)| session).collect()
            }
        };
        let ended = end(state, &ending, &checked).await?;
        browser.remove(&ending.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>());
        let jar = browser.write(state, jar);
        finish(state, jar, &checked, ended, locale).await
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(state, &reply::internal(e), locale))
}

/// The claims of an ID Token this OP signed (RP-Initiated Logout 2: expired ones too).
fn hinted_session(state: &SharedState, keys: &crate::jose::KeyRing, token: &str) -> Option<HintedSession> {
    let payload = keys.verify_own(token).ok()?;
    let hint: HintedSession = serde_json::from_slice(&payload).ok()?;
    (hint.iss == state.config.issuer).then_some(hint)
}

/// Parses the request and checks its client and `post_logout_redirect_uri` (RP-Initiated Logout 3);
/// the inner error is for the user's page.
async fn check(state: &SharedState, params: &Params) -> Result<Result<Checked, OAuthError>, StoreError> {
    let keys = state.keys.get();
    let request = match logout::parse_end_session(params, |token| hinted_session(state, &keys, token)) {
        Ok(request) => request,
        Err(e) => return Ok(Err(e)),
    };
    let client = match &request.client_id {
        Some(id) => match state.client(id).await? {
            Some(client) => Some(client),
            None => return Ok(Err(OAuthError::invalid_request("unknown client_id"))),
        },
        None => None,
    };
    let redirect = match (&client, &request.post_logout_redirect_uri) {
        (Some(client), Some(uri)) => match logout::post_logout_redirect(client, uri) {
            Ok(redirect) => Some(redirect),
            Err(e) => return Ok(Err(e)),
        },
        _ => None,
    };
    Ok(Ok(Checked { request, client, redirect }))
}

/// Ends browser sessions, each in one transaction: its grants (but offline ones) and Back-Channel
/// Logout notifications to every client signed in through it.
async fn end(
    state: &SharedState,
    sessions: &[BrowserSession],
    checked: &Checked,
) -> Result<Vec<EndedSession>, StoreError> {
    let now = state.now();
    let by = checked.client.as_ref().map_or_else(|| "logout".to_owned(), |c| format!("logout requested by {}", c.id));
    let mut ended = Vec::new();
    for session in sessions {
        let logout = state.config.logout(now);
        ended.extend(state.store.end_sessions(SessionsToEnd::IdHash(&session.id_hash), logout).await?);
        let event = AuditEvent::new(now, AuditKind::SessionEnded, by.as_str()).user(Some(&session.user_id), None);
        audit::record(state.store.as_ref(), event).await;
    }
    state.logout_notifications_queued(&ended);
    Ok(ended)
}

/// Asks the user whether to sign out of `usernames` (a CSRF-protected form carrying the request over).
fn confirmation(
    state: &SharedState,
    jar: CookieJar,
    params: &Params,
    usernames: Vec<String>,
    locale: &Locale,
) -> Response {
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, CSRF_FLOW);
    let fields: Vec<_> =
        CARRIED.iter().filter_map(|&name| params.get(name).map(|value| context! { name, value })).collect();
    let ctx = context! {
        usernames,
        csrf_token,
        fields,
        t => locale.messages(),
        lang => &locale.tag,
    };
    (jar, reply::page(state, StatusCode::OK, "logout_confirm.html", ctx)).into_response()
}

/// Goes on to the client once the signed-out page has loaded each client's front-channel logout
/// iframe (or after a few seconds, for one that never loads). Allowed by its hash in the page's CSP.
const CONTINUE_SCRIPT: &str = "(function(){var go=function(){location.replace(document.getElementById('continue').href)};\
var frames=document.querySelectorAll('iframe.logout-frame'),left=frames.length;\
frames.forEach(function(f){f.addEventListener('load',function(){if(--left===0)go()})});setTimeout(go,5000)})();";

/// After a logout: the signed-out page with the Front-Channel Logout iframes of the clients signed in
/// through the ended sessions (Front-Channel Logout 2, 4), going on to the `post_logout_redirect_uri`
/// with `state` (RP-Initiated Logout 3); straight there when no client needs an iframe.
async fn finish(
    state: &SharedState,
    jar: CookieJar,
    checked: &Checked,
    ended: Vec<EndedSession>,
    locale: &Locale,
) -> Result<Response, StoreError> {
    let mut frames = Vec::new();
    for session in &ended {
        for client_id in &session.clients {
            let Some(client) = state.client(client_id).await? else { continue };
            if let Some(front) = &client.metadata.frontchannel_logout {
                let url = logout::frontchannel_logout_url(
                    &front.uri,
                    front.session_required,
                    &state.config.issuer,
                    &session.sid,
                );
                frames.push(url);
            }
        }
    }
    let continue_to = checked.redirect.as_ref().map(|uri| match &checked.request.state {
        Some(s) => uri.with_query(&[("state", s)]),
        None => uri.as_str().to_owned(),
    });
    if let (Some(to), true) = (&continue_to, frames.is_empty()) {
        return Ok((jar, reply::see_other(to)).into_response());
    }
    let script = (continue_to.is_some() && !frames.is_empty()).then_some(CONTINUE_SCRIPT);
    let ctx = context! {
        frames => &frames,
        continue_to,
        script,
        t => locale.messages(),
        lang => &locale.tag,
    };
    let mut response = reply::page(state, StatusCode::OK, "logged_out.html", ctx);
    // The page frames exactly the clients' logout pages and runs only its own script; it is itself
    // never framed.
    let frame_sources: Vec<String> =
        frames.iter().filter_map(|f| url::Url::parse(f).ok()).map(|u| u.origin().ascii_serialization()).collect();
    let script_hash = STANDARD.encode(crypto::sha256(CONTINUE_SCRIPT.as_bytes()));
    let frame_src = if frame_sources.is_empty() { "'none'".to_owned() } else { frame_sources.join(" ") };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-src {frame_src}; script-src 'sha256-{script_hash}'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok((jar, response).into_response())
}
