//! The authorization endpoint (Core 3.1.2) and the resumption of a request after login or consent.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::authorization_response::{self, Completing};
use super::interaction::AfterLogin;
use super::params::RequestParams;
use super::{SharedState, cookies, issuance, mfa, par, reply, request_object};
use crate::crypto;
use crate::model::{BrowserSession, Client, PendingAuthorization};
use crate::protocol::authorize::{self, AuthorizationRequest, NextStep, Rejection, SecondFactor, SignedIn};
use crate::protocol::{ErrorCode, OAuthError};
use crate::store::StoreError;

pub async fn authorize(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    // Until the client and redirect_uri are known good, errors are shown, never redirected.
    let params = match params {
        Ok(p) => p,
        Err(e) => return reply::error_page(&state, &e),
    };
    let client_id = match authorize::client_id(&params) {
        Ok(id) => id,
        Err(rejection) => return reject(&state, &rejection),
    };
    let client = match state.client(&client_id).await {
        Ok(c) => c,
        Err(e) => return reply::error_page(&state, &reply::internal(e)),
    };
    // A pushed request (RFC 9126 4) brings its own parameters, request object already applied.
    let pushed = match &client {
        Some(client) => par::pushed_params(&state, &params, client).await,
        None => Ok(None),
    };
    let params = match pushed {
        Ok(Some(pushed)) => pushed,
        Ok(None) => match request_object::with_request_object(&state, params, client.as_deref()).await {
            Ok(p) => p,
            Err(rejection) => return reject(&state, &rejection),
        },
        Err(rejection) => return reject(&state, &rejection),
    };
    let keys = state.keys.get();
    let verify_hint = |hint: &str| hinted_subject(&keys, &state.config.issuer, hint);
    let mut request = match authorize::validate(&params, client.as_deref(), par::policy(&state), verify_hint) {
        Ok(r) => r,
        Err(rejection) => return reject(&state, &rejection),
    };
    if let Err(e) = issuance::resolve_resources(&state, &params, &mut request).await {
        return reply::error_redirect(&state, &request.error(e));
    }
    let client = client.expect("validate succeeds only for a known client");
    let client_ip = state.client_ip(peer.ip(), &headers);
    proceed(&state, &jar, &client, request, Stage::New { client_ip }).await
}

/// Where a request stands in its flow: just arrived, or waiting for the user as a pending request.
#[derive(Clone, Copy)]
pub(super) enum Stage<'a> {
    New { client_ip: IpAddr },
    Waiting(&'a PendingAuthorization),
}

impl<'a> Stage<'a> {
    fn pending(self) -> Option<&'a PendingAuthorization> {
        match self {
            Stage::Waiting(pending) => Some(pending),
            Stage::New { .. } => None,
        }
    }
}

#[derive(Deserialize)]
pub struct ResumeQuery {
    request: String,
}

/// Continues a pending request once the user has signed in.
pub async fn resume(State(state): State<SharedState>, jar: CookieJar, Query(q): Query<ResumeQuery>) -> Response {
    let (pending, request, client) = match load_pending(&state, &q.request).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    proceed(&state, &jar, &client, request, Stage::Waiting(&pending)).await
}

fn reject(state: &SharedState, rejection: &Rejection) -> Response {
    match rejection {
        Rejection::UnknownClient => reply::explained_error_page(
            state,
            &OAuthError::invalid_request("unknown client_id"),
            "error_unknown_client",
        ),
        Rejection::Page(e) => reply::error_page(state, e),
        Rejection::Redirect(e) => reply::error_redirect(state, e),
    }
}

/// The `sub` of an ID Token this OP issued (Core 3.1.2.1: it may have expired).
pub(super) fn hinted_subject(keys: &crate::jose::KeyRing, issuer: &str, hint: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Hint {
        iss: String,
        sub: String,
    }
    let payload = keys.verify_own(hint).ok()?;
    let hint: Hint = serde_json::from_slice(&payload).ok()?;
    (hint.iss == issuer).then_some(hint.sub)
}

/// Finds a pending request, its parsed form and its client; or the page to show when it is gone.
pub(super) async fn load_pending(
    state: &SharedState,
    id: &str,
) -> Result<(PendingAuthorization, AuthorizationRequest, Arc<Client>), Response> {
    let expired = || {
        reply::error_page(
            state,
            &OAuthError::invalid_request(
                "this sign-in request has expired or is unknown; return to the application and start again",
            ),
        )
    };
    if !crypto::is_token_shaped(id) {
        return Err(expired());
    }
    let pending = match state.store.pending(id, state.now()).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(expired()),
        Err(e) => return Err(reply::error_page(state, &reply::internal(e))),
    };
    let Ok(request) = serde_json::from_str::<AuthorizationRequest>(&pending.request_json) else {
        return Err(expired());
    };
    match state.client(&pending.client_id).await {
        Ok(Some(client)) => Ok((pending, request, client)),
        Ok(None) => Err(expired()),
        Err(e) => Err(reply::error_page(state, &reply::internal(e))),
    }
}

/// The browser's current session, if it has a live one.
pub(super) async fn current_session(
    state: &SharedState,
    jar: &CookieJar,
) -> Result<Option<BrowserSession>, StoreError> {
    match cookies::session_hash(&state.config, jar) {
        Some(hash) => state.store.session(&hash, state.now()).await,
        None => Ok(None),
    }
}

/// Settles `offline_access` (Core 11) against the user's remembered consent, and tells whether that
/// consent (or the client's trust) covers everything the request asks for.
async fn settle_consent(
    state: &SharedState,
    client: &Client,
    user_id: &str,
    request: &mut AuthorizationRequest,
) -> Result<bool, StoreError> {
    let remembered = if client.skip_consent { None } else { state.store.consent(user_id, &client.id).await? };
    request.settle_offline_access(remembered.as_ref(), client);
    Ok(client.skip_consent || remembered.is_some_and(|c| request.is_covered_by(&c, &state.scope_claims)))
}

/// Takes a validated request to its next step: a login or consent page, a code, or an error redirect.
pub(super) async fn proceed(
    state: &SharedState,
    jar: &CookieJar,
    client: &Client,
    mut request: AuthorizationRequest,
    stage: Stage<'_>,
) -> Response {
    let pending = stage.pending();
    let result: Result<Response, StoreError> = async {
        let now = state.now();
        let session = current_session(state, jar).await?;
        let consented = match &session {
            Some(s) => settle_consent(state, client, &s.user_id, &mut request).await?,
            None => false,
        };
        let subject = session.as_ref().map(|s| state.subject(client, &s.user_id));
        let mut signed_in = session.as_ref().zip(subject.as_deref()).map(|(s, sub)| signed_in(s, sub, pending));
        // Whether there is a second factor to step up with is looked up only when the request wants one.
        if let (Some(s), Some(session)) = (signed_in.as_mut(), &session) {
            let reached = if request.phishing_resistant { s.with_passkey } else { s.with_second_factor };
            if request.second_factor != SecondFactor::NotAsked && !reached {
                s.has_second_factor = if request.phishing_resistant {
                    super::passkeys::has_passkey(state, &session.user_id).await?
                } else {
                    super::mfa::has_second_factor(state, &session.user_id).await?
                };
            }
        }
        let step = authorize::next_step(&request, signed_in, consented, now);
        Ok(match step {
            Err(e) => {
                if let Some(p) = pending {
                    state.store.delete_pending(&p.id).await?;
                }
                reply::error_redirect(state, &request.error(e))
            }
            Ok(NextStep::IssueCode) => {
                let session = session.expect("a code is issued only with a session");
                let completing = Completing { pending_id: pending.map(|p| p.id.as_str()), ..Completing::default() };
                authorization_response::issue(state, client, &request, &session, completing).await?
            }
            Ok(step) => {
                let id = match stage {
                    Stage::Waiting(p) => p.id.clone(),
                    Stage::New { client_ip } => match save_pending(state, &request, now, client_ip).await? {
                        Some(id) => id,
                        None => {
                            let busy = OAuthError::new(
                                ErrorCode::TemporarilyUnavailable,
                                "too many sign-in requests from this address; try again later",
                            );
                            return Ok(reply::error_redirect(state, &request.error(busy)));
                        }
                    },
                };
                if step == NextStep::SecondFactor {
                    let user_id = &session.as_ref().expect("a step-up has a session").user_id;
                    return Ok(mfa::ask_second_factor(state, jar.clone(), user_id, &AfterLogin::Flow(&id)));
                }
                let page = match step {
                    NextStep::Login => "/login",
                    NextStep::EnrolSecondFactor => "/login/enrol",
                    NextStep::SelectAccount => "/select_account",
                    NextStep::SignUp => "/signup",
                    _ => "/consent",
                };
                reply::see_other_within(state, &format!("{page}?request={id}"))
            }
        })
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page(state, &reply::internal(e)))
}

/// The session as the next-step decision sees it.
pub(super) fn signed_in<'a>(
    session: &BrowserSession,
    subject: &'a str,
    pending: Option<&PendingAuthorization>,
) -> SignedIn<'a> {
    SignedIn {
        subject,
        auth_time: session.auth_time,
        logged_in_during_flow: pending.and_then(|p| p.login_sid.as_deref()) == Some(session.sid.as_str()),
        chosen_during_flow: pending.and_then(|p| p.chosen_sid.as_deref()) == Some(session.sid.as_str()),
        // RFC 8176: more than one factor was part of the login; a key held by an authenticator was.
        with_second_factor: session.amr.iter().any(|m| m == "mfa"),
        with_passkey: session.amr.iter().any(|m| m == "hwk"),
        has_second_factor: false,
    }
}

/// Stores a request that waits for the user, within the client IP's allowance of pending requests per
/// `interaction_lifetime` (unauthenticated state is bounded per address); None when it is used up.
async fn save_pending(
    state: &SharedState,
    request: &AuthorizationRequest,
    now: i64,
    client_ip: IpAddr,
) -> Result<Option<String>, StoreError> {
    let window = state.config.interaction_lifetime as i64;
    let allowance = state.config.pending_requests_per_ip;
    if !state.store.reserve_attempt(&format!("pending:{client_ip}"), now, window, allowance).await? {
        tracing::info!(%client_ip, "pending sign-in requests per address exceeded");
        return Ok(None);
    }
    let pending = PendingAuthorization {
        id: crypto::random_token(),
        client_id: request.client_id.clone(),
        request_json: serde_json::to_string(request).expect("request serializes"),
        login_sid: None,
        chosen_sid: None,
        created_at: now,
        expires_at: now + state.config.interaction_lifetime as i64,
    };
    state.store.insert_pending(&pending).await?;
    Ok(Some(pending.id))
}
