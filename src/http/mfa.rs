//! Second factors: the login's second step (an authenticator's one-time code, RFC 6238, or a recovery
//! code) and their setup on the account page.
//!
//! Between the password and the code nothing is stored: the browser carries which user passed the
//! password and where the login leads, in a short-lived cookie MACed under the key every node shares.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;

use super::account::{checked_form, locale};
use super::authorize::{current_session, load_pending};
use super::interaction::{AfterLogin, SignedInUser, continue_signed_in, start_session};
use super::params::RequestParams;
use super::{SharedState, cookies, passkeys, reply};
use crate::audit;
use crate::crypto::{self, HmacHash};
use crate::model::{AuditEvent, AuditKind, LoginMethod, Timestamp};
use crate::protocol::{OAuthError, Params, totp};
use crate::store::{FactorsToRemove, StoreError};
use crate::ui::Locale;

const CSRF_FLOW: &str = "second-factor";
const SETUP_FLOW: &str = "account";
/// Seconds the user has to type the code after the password.
const LIFETIME: i64 = 300;
const RECOVERY_CODES: usize = 10;

fn mac(key: &[u8], payload: &str) -> String {
    crypto::b64url(&crypto::hmac(HmacHash::Sha256, key, format!("second-factor.{payload}").as_bytes()))
}

/// Who passed the password, where the login leads, until when: `user_id expires then` and a MAC.
struct Pending {
    user_id: String,
    then: String,
}

fn pending(state: &SharedState, jar: &CookieJar) -> Option<Pending> {
    let value = cookies::second_factor(&state.config, jar)?;
    let (payload, tag) = value.rsplit_once('~')?;
    if !crypto::constant_time_eq(mac(&state.csrf_key, payload).as_bytes(), tag.as_bytes()) {
        return None;
    }
    let mut parts = payload.splitn(3, ' ');
    let (user_id, expires_at, then) = (parts.next()?, parts.next()?.parse::<Timestamp>().ok()?, parts.next()?);
    (expires_at > state.now()).then(|| Pending { user_id: user_id.to_owned(), then: then.to_owned() })
}

/// After the password of a user with an authenticator (or for a step-up of their session): remember
/// who and where to, and ask for the code.
pub(super) fn ask_second_factor(state: &SharedState, jar: CookieJar, user_id: &str, then: &AfterLogin<'_>) -> Response {
    let payload = format!("{} {} {}", user_id, state.now() + LIFETIME, then.encode());
    let value = format!("{payload}~{}", mac(&state.csrf_key, &payload));
    let jar = jar.add(cookies::second_factor_cookie(&state.config, value, LIFETIME as u64));
    (jar, reply::see_other_within(state, "/login/second-factor")).into_response()
}

/// Whether the user has a second factor to be asked for: an authenticator app, or a passkey.
pub(super) async fn has_second_factor(state: &SharedState, user_id: &str) -> Result<bool, StoreError> {
    Ok(state.store.totp(user_id).await?.is_some_and(|t| t.confirmed) || passkeys::has_passkey(state, user_id).await?)
}

/// Whether only a passkey will do: the sign-in's request asks for the phishing-resistant `acr`.
async fn passkey_only(state: &SharedState, pending: &Pending) -> bool {
    match AfterLogin::decode(&pending.then) {
        Some(AfterLogin::Flow(id)) => {
            load_pending(state, id).await.is_ok_and(|(_, request, _)| request.phishing_resistant)
        }
        _ => false,
    }
}

/// The second step's page: the authenticator's code if the user has an app (and the sign-in does not
/// need a passkey), a passkey button if they have passkeys.
async fn code_form(
    state: &SharedState,
    jar: CookieJar,
    status: StatusCode,
    locale: &Locale,
    pending: &Pending,
    error: Option<&str>,
) -> Response {
    let user_id = pending.user_id.as_str();
    let passkey_only = passkey_only(state, pending).await;
    let found = async {
        let code = !passkey_only && state.store.totp(user_id).await?.is_some_and(|t| t.confirmed);
        let (jar, passkey_options) = passkeys::second_factor_options(state, jar, user_id).await?;
        Ok::<_, StoreError>((jar, code, passkey_options))
    };
    let (jar, code, passkey_options) = match found.await {
        Ok(found) => found,
        Err(e) => return reply::error_page_in(state, &reply::internal(e), locale),
    };
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, CSRF_FLOW);
    let ctx = context! {
        code,
        passkey_options,
        csrf_token,
        error => error.map(|key| locale.text(key)),
        t => locale.messages(),
        lang => &locale.tag,
    };
    (jar, reply::page(state, status, "second_factor.html", ctx)).into_response()
}

/// `GET /login/second-factor`.
pub async fn second_factor_page(State(state): State<SharedState>, headers: HeaderMap, jar: CookieJar) -> Response {
    let locale = locale(&state, &headers);
    match pending(&state, &jar) {
        Some(pending) => code_form(&state, jar, StatusCode::OK, locale, &pending, None).await,
        None => reply::error_page_in(&state, &expired(), locale),
    }
}

fn expired() -> OAuthError {
    OAuthError::invalid_request("the sign-in has expired; go back to the application and start again")
}

/// `POST /login/second-factor`: the authenticator's code or a recovery code, throttled like passwords
/// (per account); each TOTP time step and each recovery code works once. Or a passkey's answer (the
/// form's `credential`).
pub async fn second_factor_submit(
    State(state): State<SharedState>,
    connect: axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let locale = locale(&state, &headers);
    let params = match checked_form(&state, &jar, params, CSRF_FLOW) {
        Ok(params) => params,
        Err(e) => return reply::error_page_in(&state, &e, locale),
    };
    let Some(pending) = pending(&state, &jar) else { return reply::error_page_in(&state, &expired(), locale) };
    let Some(then) = AfterLogin::decode(&pending.then) else { return reply::error_page_in(&state, &expired(), locale) };
    let code = params.get("code").unwrap_or_default().trim();
    let mut method = LoginMethod::PasswordAndCode;
    let result: Result<Option<&'static str>, StoreError> = async {
        let now = state.now();
        let key = format!("second-factor:{}", pending.user_id);
        let window = state.config.login_throttle_window as i64;
        if !state.store.reserve_attempt(&key, now, window, state.config.login_max_failures_per_account).await? {
            return Ok(Some("throttled"));
        }
        if let Some(answer) = params.get("credential") {
            if !passkeys::second_factor(&state, &jar, &pending.user_id, answer).await? {
                return Ok(Some("passkey_failed"));
            }
            state.store.clear_attempts(&key).await?;
            method = LoginMethod::PasswordAndPasskey;
            return Ok(None);
        }
        if passkey_only(&state, &pending).await {
            return Ok(Some("passkey_needed"));
        }
        let Some(totp) = state.store.totp(&pending.user_id).await?.filter(|t| t.confirmed) else {
            return Ok(Some("second_factor_wrong"));
        };
        let by_code = match totp::matching_step(&totp.secret, code, now) {
            Some(step) => state.store.use_totp_step(&pending.user_id, step, now).await?,
            None => false,
        };
        let accepted = by_code || state.store.use_recovery_code(&pending.user_id, &recovery_hash(code)).await?;
        if !accepted {
            return Ok(Some("second_factor_wrong"));
        }
        state.store.clear_attempts(&key).await?;
        if !by_code {
            let event = AuditEvent::new(now, AuditKind::LoginSucceeded, "a recovery code was used")
                .user(Some(&pending.user_id), None);
            audit::record(state.store.as_ref(), event).await;
        }
        Ok(None)
    }
    .await;
    match result {
        Ok(None) => {
            let client_ip = state.client_ip(connect.0.ip(), &headers);
            let jar = jar.add(cookies::second_factor_cookie(&state.config, String::new(), 0));
            let jar = passkeys::end_ceremony(&state, jar);
            let login = SignedInUser { user_id: pending.user_id, client_ip, headers: &headers, then, method };
            continue_signed_in(&state, jar, login).await
        }
        Ok(Some(problem)) => {
            let status = if problem == "throttled" { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::UNAUTHORIZED };
            code_form(&state, jar, status, locale, &pending, Some(problem)).await
        }
        Err(e) => reply::error_page_in(&state, &reply::internal(e), locale),
    }
}

/// Recovery codes are compared by hash, case and dashes aside.
fn recovery_hash(code: &str) -> String {
    let normalized: String =
        code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    crypto::token_hash(&normalized)
}

/// Ten new recovery codes (`xxxxx-xxxxx`, 50 random bits each), stored by hash; shown once.
async fn new_recovery_codes(state: &SharedState, user_id: &str) -> Result<Vec<String>, StoreError> {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let raw = crypto::random_token().to_ascii_lowercase().replace(['-', '_'], "");
            format!("{}-{}", &raw[..5], &raw[5..10])
        })
        .collect();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
    state.store.replace_recovery_codes(user_id, &hashes).await?;
    Ok(codes)
}

/// Seconds since the login within which second factors may be changed; later, the password again.
const RECENT_LOGIN: i64 = 600;

/// Where a setup step cannot go on: signed out (to the account page), or a login too long ago (the
/// account page's login form, which leads back to it).
enum NotNow {
    SignedOut,
    LoginAgain,
}

/// The account page's setup steps, for the signed-in user who signed in recently (CSRF-checked forms
/// of the account page).
async fn signed_in_user(
    state: &SharedState,
    jar: &CookieJar,
    params: Result<Params, OAuthError>,
) -> Result<Result<(String, Params), NotNow>, OAuthError> {
    let params = checked_form(state, jar, params, SETUP_FLOW)?;
    let session = current_session(state, jar).await.map_err(reply::internal)?;
    Ok(match session {
        None => Err(NotNow::SignedOut),
        Some(s) if state.now() - s.auth_time > RECENT_LOGIN => Err(NotNow::LoginAgain),
        Some(s) => Ok((s.user_id, params)),
    })
}

fn not_now(state: &SharedState, jar: CookieJar, locale: &Locale, why: NotNow) -> Response {
    match why {
        NotNow::SignedOut => reply::see_other_within(state, "/account"),
        NotNow::LoginAgain => {
            let page = super::account::ACCOUNT_PAGE;
            super::account::own_login_form(state, jar, StatusCode::OK, locale, &page, Some("recent_login_needed"))
        }
    }
}

/// Runs a setup step of the account page (a CSRF-checked form) for the signed-in user who signed in
/// recently; otherwise the account page, or its login form.
pub(super) async fn setup_step(
    state: &SharedState,
    headers: &HeaderMap,
    jar: CookieJar,
    params: Result<Params, OAuthError>,
    step: impl AsyncFnOnce(CookieJar, &Locale, String, Params) -> Result<Response, OAuthError>,
) -> Response {
    let locale = locale(state, headers);
    let result = async {
        match signed_in_user(state, &jar, params).await? {
            Ok((user_id, params)) => step(jar, locale, user_id, params).await,
            Err(why) => Ok(not_now(state, jar, locale, why)),
        }
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(state, &e, locale))
}

fn setup_page(
    state: &SharedState,
    jar: CookieJar,
    locale: &Locale,
    (user, secret, request): (&str, &str, Option<&str>),
    error: Option<&str>,
) -> Response {
    let uri = totp::provisioning_uri(secret, &state.config.issuer, user).unwrap_or_default();
    // Rendered here, as SVG inside the page: no image service sees the secret.
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map(|code| code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build())
        .unwrap_or_default();
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, SETUP_FLOW);
    let ctx = context! {
        qr => minijinja::Value::from_safe_string(qr),
        secret,
        request_id => request,
        csrf_token,
        error => error.map(|key| locale.text(key)),
        t => locale.messages(),
        lang => &locale.tag,
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    (jar, reply::page(state, status, "totp_setup.html", ctx)).into_response()
}

fn codes_page(
    state: &SharedState,
    jar: CookieJar,
    locale: &Locale,
    codes: &[String],
    resume: Option<&str>,
) -> Response {
    let ctx = context! { codes => codes.to_vec(), resume, t => locale.messages(), lang => &locale.tag };
    (jar, reply::page(state, StatusCode::OK, "recovery_codes.html", ctx)).into_response()
}

/// `POST /account/totp/begin`: a new secret, shown as a QR code to scan.
pub async fn begin(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    setup_step(&state, &headers, jar, params, async |jar, locale, user_id, _| {
        let user = state.store.user(&user_id).await.map_err(reply::internal)?.ok_or_else(expired)?;
        let secret = totp::new_secret();
        if !state.store.begin_totp(&user_id, &secret).await.map_err(reply::internal)? {
            return Ok(reply::see_other_within(&state, "/account"));
        }
        Ok(setup_page(&state, jar, locale, (&user.username, &secret, None), None))
    })
    .await
}

/// `POST /account/totp/confirm`: the first code sets the authenticator up; recovery codes are shown once.
pub async fn confirm(
    State(state): State<SharedState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    setup_step(&state, &headers, jar, params, async |jar, locale, user_id, params| {
        let internal = reply::internal;
        let Some(pending) = state.store.totp(&user_id).await.map_err(internal)?.filter(|t| !t.confirmed) else {
            return Ok(reply::see_other_within(&state, "/account"));
        };
        let now = state.now();
        let step = totp::matching_step(&pending.secret, params.get("code").unwrap_or_default(), now);
        let confirmed = match step {
            Some(step) => state.store.use_totp_step(&user_id, step, now).await.map_err(internal)?,
            None => false,
        };
        if !confirmed {
            let user = state.store.user(&user_id).await.map_err(internal)?.ok_or_else(expired)?;
            let shown = (user.username.as_str(), pending.secret.as_str(), params.get("request"));
            return Ok(setup_page(&state, jar, locale, shown, Some("second_factor_wrong")));
        }
        let codes = new_recovery_codes(&state, &user_id).await.map_err(internal)?;
        let event =
            AuditEvent::new(now, AuditKind::UserChanged, "an authenticator app was set up").user(Some(&user_id), None);
        audit::record(state.store.as_ref(), event).await;
        // Set up during a sign-in that needs it: the confirmed code is the session's second factor, and
        // the sign-in goes on after the codes are noted.
        let flow = params.get("request").filter(|id| crypto::is_token_shaped(id));
        let jar = match flow {
            Some(id) => {
                let method = LoginMethod::PasswordAndCode;
                enrolled_during_sign_in(&state, jar, (peer, &headers), user_id, id, method).await?
            }
            None => jar,
        };
        let resume = flow.map(|id| format!("/authorize/resume?request={id}"));
        Ok(codes_page(&state, jar, locale, &codes, resume.as_deref()))
    })
    .await
}

/// A second factor set up during the sign-in `flow` that needs it is that sign-in's second factor:
/// the session goes on with `method` (from the browser at `peer` with `headers`).
pub(super) async fn enrolled_during_sign_in(
    state: &SharedState,
    jar: CookieJar,
    (peer, headers): (std::net::SocketAddr, &HeaderMap),
    user_id: String,
    flow: &str,
    method: LoginMethod,
) -> Result<CookieJar, OAuthError> {
    let client_ip = state.client_ip(peer.ip(), headers);
    let login = SignedInUser { user_id, client_ip, headers, then: AfterLogin::Flow(flow), method };
    start_session(state, jar, login).await.map_err(reply::internal)
}

/// `GET /login/enrol?request=…`: a sign-in needs a second factor the user does not have yet: set one
/// up now (the flow goes on once it is confirmed).
pub async fn enrol(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    axum::extract::Query(q): axum::extract::Query<super::interaction::PageQuery>,
) -> Response {
    let locale = locale(&state, &headers);
    let result: Result<Response, StoreError> = async {
        let Some(session) = current_session(&state, &jar).await? else {
            return Ok(reply::error_page_in(&state, &expired(), locale));
        };
        let Some(user) = state.store.user(&session.user_id).await? else {
            return Ok(reply::error_page_in(&state, &expired(), locale));
        };
        // The phishing-resistant level: a passkey, made now.
        if load_pending(&state, &q.request).await.is_ok_and(|(_, request, _)| request.phishing_resistant) {
            let page = passkeys::registration_page(&state, jar, locale, &user.id, Some(&q.request), None).await;
            return Ok(page.unwrap_or_else(|e| reply::error_page_in(&state, &e, locale)));
        }
        let secret = totp::new_secret();
        if !state.store.begin_totp(&user.id, &secret).await? {
            // Set up meanwhile (another tab): on with the flow, which asks for a code.
            return Ok(reply::see_other_within(&state, &format!("/authorize/resume?request={}", q.request)));
        }
        Ok(setup_page(&state, jar, locale, (&user.username, &secret, Some(&q.request)), None))
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}

/// `POST /account/recovery-codes`: new recovery codes (the old ones stop working), shown once.
pub async fn regenerate(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    setup_step(&state, &headers, jar, params, async |jar, locale, user_id, _| {
        if !state.store.totp(&user_id).await.map_err(reply::internal)?.is_some_and(|t| t.confirmed) {
            return Ok(reply::see_other_within(&state, "/account"));
        }
        let codes = new_recovery_codes(&state, &user_id).await.map_err(reply::internal)?;
        Ok(codes_page(&state, jar, locale, &codes, None))
    })
    .await
}

/// `POST /account/totp/remove`: the authenticator and the recovery codes go.
pub async fn remove(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    setup_step(&state, &headers, jar, params, async |_, _, user_id, _| {
        if state
            .store
            .remove_second_factors(&user_id, FactorsToRemove::AuthenticatorApp)
            .await
            .map_err(reply::internal)?
        {
            let event = AuditEvent::new(state.now(), AuditKind::UserChanged, "the authenticator app was removed")
                .user(Some(&user_id), None);
            audit::record(state.store.as_ref(), event).await;
        }
        Ok(reply::see_other_within(&state, "/account"))
    })
    .await
}
