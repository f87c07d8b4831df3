//! The device authorization grant (RFC 8628): the device authorization endpoint (3.1, 3.2) and the
//! verification page (3.3) where the user, on another device, types the code, signs in and decides.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::account::{OwnPage, checked_form, locale, own_login, own_login_form};
use super::authorize::current_session;
use super::interaction::scope_descriptions;
use super::params::RequestParams;
use super::{SharedState, client_auth, cookies, reply};
use crate::audit;
use crate::crypto;
use crate::model::{AuditEvent, AuditKind, BrowserSession, DecoupledAuthorization, GrantType, ScopeSet, UserDecision};
use crate::protocol::device;
use crate::protocol::{ErrorCode, OAuthError, Params};
use crate::store::StoreError;
use crate::ui::Locale;

/// Seconds a device code lives (RFC 8628 3.2 `expires_in`), and the polling interval it starts with.
const LIFETIME: i64 = 600;
const INTERVAL: i64 = 5;
/// Codes one address may look up without finding one, per `login_throttle_window` (RFC 8628 5.1:
/// guessing is bounded).
const MISSES_PER_IP: u32 = 10;
const CSRF_FLOW: &str = "device";
const DEVICE_PAGE: OwnPage<'static> =
    OwnPage { action: "device", csrf_flow: CSRF_FLOW, name_key: "device_title", user_code: None };

/// `POST /device_authorization` (RFC 8628 3.1): a client on a device without a browser asks to be
/// authorized; it gets a device code to poll with and a user code to show.
pub async fn authorize_device(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RequestParams(params): RequestParams,
) -> Response {
    reply::json_or_error(start(&state, &headers, params).await)
}

async fn start(
    state: &SharedState,
    headers: &HeaderMap,
    params: Result<Params, OAuthError>,
) -> Result<serde_json::Value, OAuthError> {
    let params = params?;
    let client = client_auth::authenticate(state, headers, &params).await?;
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "client may not use the device grant"));
    }
    let scope = match params.get("scope") {
        Some(s) => s.parse().map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed"))?,
        None => ScopeSet::parse("openid").expect("a valid scope"),
    };
    let device_code = crypto::random_token();
    let now = state.now();
    // A user code collides rarely; another is drawn then.
    for _ in 0..5 {
        let Some(user_code) = device::user_code(&crypto::random_bytes::<16>()) else { continue };
        let authorization = DecoupledAuthorization {
            code_hash: crypto::token_hash(&device_code),
            user_code: Some(user_code.clone()),
            for_user: None,
            client_id: client.id.clone(),
            scope: scope.clone(),
            grant_id: crypto::ordered_token(),
            expires_at: now + LIFETIME,
            interval: INTERVAL,
            decision: UserDecision::Pending,
            binding_message: None,
            ping: None,
        };
        match state.store.insert_decoupled_authorization(&authorization).await {
            Ok(()) => {
                let shown = device::display(&user_code);
                let verification_uri = format!("{}/device", state.config.issuer);
                return Ok(json!({
                    "device_code": device_code,
                    "user_code": shown,
                    "verification_uri": verification_uri,
                    "verification_uri_complete": format!("{verification_uri}?user_code={shown}"),
                    "expires_in": LIFETIME,
                    "interval": INTERVAL,
                }));
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(reply::internal(e)),
        }
    }
    Err(OAuthError::server_error())
}

#[derive(Deserialize)]
pub struct CodeQuery {
    user_code: Option<String>,
}

/// What the verification page shows.
enum Stage<'a> {
    /// Type the code (again, with a message: a catalogue key).
    Enter(Option<&'a str>),
    Confirm(&'a DecoupledAuthorization),
    Done {
        approved: bool,
    },
}

fn page(
    state: &SharedState,
    jar: CookieJar,
    status: StatusCode,
    locale: &Locale,
    stage: Stage<'_>,
    client_name: Option<String>,
    scopes: Vec<String>,
) -> Response {
    let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, CSRF_FLOW);
    let (stage_name, error, user_code, approved) = match stage {
        Stage::Enter(error) => ("enter", error.map(|key| locale.text(key)), None, false),
        Stage::Confirm(device) => ("confirm", None, device.user_code.as_deref().map(device::display), false),
        Stage::Done { approved } => ("done", None, None, approved),
    };
    let ctx = context! {
        stage => stage_name,
        error,
        user_code,
        approved,
        client_name,
        scopes,
        csrf_token,
        t => locale.messages(),
        lang => &locale.tag,
    };
    (jar, reply::page(state, status, "device.html", ctx)).into_response()
}

/// The pending authorization a typed code names, within the address's allowance of misses.
async fn look_up(
    state: &SharedState,
    ip: IpAddr,
    typed: &str,
) -> Result<Result<DecoupledAuthorization, &'static str>, StoreError> {
    let key = format!("device:{ip}");
    let now = state.now();
    if !state.store.reserve_attempt(&key, now, state.config.login_throttle_window as i64, MISSES_PER_IP).await? {
        return Ok(Err("device_code_throttled"));
    }
    let found = match device::normalize(typed) {
        Some(code) => state.store.pending_device_authorization(&code, now).await?,
        None => None,
    };
    match found {
        Some(device) => {
            state.store.release_attempt(&key).await?;
            Ok(Ok(device))
        }
        None => Ok(Err("device_code_unknown")),
    }
}

/// `GET /device[?user_code=…]` (RFC 8628 3.3): sign in first, then the code (from the link, or typed),
/// then the decision.
pub async fn verification_page(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<CodeQuery>,
) -> Response {
    let locale = locale(&state, &headers);
    let result: Result<Response, StoreError> = async {
        let typed = q.user_code.as_deref().filter(|c| !c.is_empty());
        if current_session(&state, &jar).await?.is_none() {
            let login = OwnPage { user_code: typed, ..DEVICE_PAGE };
            return Ok(own_login_form(&state, jar, StatusCode::OK, locale, &login, None));
        }
        let Some(typed) = typed else {
            return Ok(page(&state, jar, StatusCode::OK, locale, Stage::Enter(None), None, vec![]));
        };
        match look_up(&state, state.client_ip(peer.ip(), &headers), typed).await? {
            Ok(device) => {
                let client_name =
                    state.client(&device.client_id).await?.map(|c| c.name_in(&[locale.tag.as_str()]).to_owned());
                let scopes = scope_descriptions(&state, locale, &device.scope);
                Ok(page(&state, jar, StatusCode::OK, locale, Stage::Confirm(&device), client_name, scopes))
            }
            Err(problem) => {
                let status = if problem == "device_code_throttled" {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::BAD_REQUEST
                };
                Ok(page(&state, jar, status, locale, Stage::Enter(Some(problem)), None, vec![]))
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}

/// `POST /device/login`: the verification page's own login, then back to it with the code.
pub async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let back = |p: &Params| match p.get("user_code").and_then(device::normalize) {
        Some(code) => format!("/device?user_code={}", device::display(&code)),
        None => "/device".to_owned(),
    };
    own_login(&state, peer, &headers, jar, params, DEVICE_PAGE, back).await
}

/// `POST /device`: the typed code, to the page that looks it up.
pub async fn enter_code(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let locale = locale(&state, &headers);
    match checked_form(&state, &jar, params, CSRF_FLOW) {
        Ok(params) => {
            let typed: String = params
                .get("user_code")
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            reply::see_other_within(&state, &format!("/device?user_code={typed}"))
        }
        Err(e) => reply::error_page_in(&state, &e, locale),
    }
}

/// `POST /device/decide`: the signed-in user allows or denies the device.
pub async fn decide(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let locale = locale(&state, &headers);
    let params = match checked_form(&state, &jar, params, CSRF_FLOW) {
        Ok(params) => params,
        Err(e) => return reply::error_page_in(&state, &e, locale),
    };
    let result: Result<Response, StoreError> = async {
        let Some(session) = current_session(&state, &jar).await? else {
            return Ok(reply::see_other_within(&state, "/device"));
        };
        let Some(code) = params.get("user_code").and_then(device::normalize) else {
            return Ok(page(
                &state,
                jar,
                StatusCode::BAD_REQUEST,
                locale,
                Stage::Enter(Some("device_code_unknown")),
                None,
                vec![],
            ));
        };
        let approved = params.get("decision") == Some("allow");
        let decision = decision(&session, approved);
        if !state.store.decide_device_authorization(&code, &decision, state.now()).await? {
            return Ok(page(
                &state,
                jar,
                StatusCode::BAD_REQUEST,
                locale,
                Stage::Enter(Some("device_code_unknown")),
                None,
                vec![],
            ));
        }
        if approved {
            let event = AuditEvent::new(state.now(), AuditKind::ConsentGiven, "a device authorized (RFC 8628)")
                .user(Some(&session.user_id), None);
            audit::record(state.store.as_ref(), event).await;
        }
        Ok(page(&state, jar, StatusCode::OK, locale, Stage::Done { approved }, None, vec![]))
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page_in(&state, &reply::internal(e), locale))
}

fn decision(session: &BrowserSession, approved: bool) -> UserDecision {
    if approved {
        UserDecision::Approved { user_id: session.user_id.clone(), auth: session.authentication() }
    } else {
        UserDecision::Denied
    }
}
