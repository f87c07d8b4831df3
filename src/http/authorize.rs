//! The authorization endpoint (Core 3.1.2) and the resumption of a request after login or consent.

use axum::extract::{Query, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::issuance::{self, IdTokenContents};
use super::params::RequestParams;
use super::{SharedState, client_auth, cookies, reply};
use crate::crypto;
use crate::jose::request_object;
use crate::protocol::authorize::{self, AuthorizationRequest, NextStep, Policy, Rejection, SignedIn};
use crate::protocol::claims::{self, ClaimsRequest};
use crate::protocol::{ErrorCode, OAuthError, Params};
use crate::store::{BrowserSession, Client, CodeGrant, PendingAuthorization, StoreError, now};

pub async fn authorize(
    State(state): State<SharedState>,
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
    let client = match state.store.client(&client_id).await {
        Ok(c) => c,
        Err(e) => return reply::error_page(&state, &reply::internal(e)),
    };
    let params = match with_request_object(&state, params, client.as_ref()).await {
        Ok(p) => p,
        Err(rejection) => return reject(&state, &rejection),
    };
    let keys = state.keys.get();
    let verify_hint = |hint: &str| hinted_subject(&keys, &state.config.issuer, hint);
    let policy = Policy {
        require_pkce_for_all_clients: state.config.require_pkce_for_all_clients,
        scopes: &state.scope_claims,
        self_registration: state.config.self_registration,
        acr: &state.config.password_acr,
    };
    let request = match authorize::validate(&params, client.as_ref(), policy, verify_hint) {
        Ok(r) => r,
        Err(rejection) => return reject(&state, &rejection),
    };
    let client = client.expect("validate succeeds only for a known client");
    proceed(&state, &jar, &client, request, None).await
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
    proceed(&state, &jar, &client, request, Some(&pending)).await
}

/// Core 6: merges the request object given by value (`request`) or by reference (`request_uri`) into
/// the request's parameters, its values winning (Core 6.3.3).
async fn with_request_object(
    state: &SharedState,
    params: Params,
    client: Option<&Client>,
) -> Result<Params, Rejection> {
    // An unknown client is reported by validation, before anything is fetched.
    let Some(client) = client else { return Ok(params) };
    let fail = |code, description: String| authorize::reject(&params, Some(client), OAuthError::new(code, description));
    let jwt = match (params.get("request"), params.get("request_uri")) {
        (None, None) => return Ok(params),
        (Some(_), Some(_)) => {
            return Err(fail(ErrorCode::InvalidRequest, "request and request_uri cannot be used together".into()));
        }
        (Some(jwt), None) => jwt.to_owned(),
        (None, Some(uri)) => {
            // Core 6.2: only URIs the client registered, compared without their fragment.
            let without_fragment = |u: &str| u.split('#').next().unwrap_or_default().to_owned();
            if !client.metadata.request_uris.iter().any(|r| without_fragment(r) == without_fragment(uri)) {
                return Err(fail(ErrorCode::InvalidRequestUri, "request_uri is not registered for this client".into()));
            }
            let body = state.fetcher.get(uri).await.map_err(|e| {
                fail(ErrorCode::InvalidRequestUri, format!("the request object could not be fetched: {e}"))
            })?;
            String::from_utf8(body.to_vec())
                .map_err(|_| fail(ErrorCode::InvalidRequestUri, "the request object is not text".into()))?
                .trim()
                .to_owned()
        }
    };
    let jwks = client_auth::client_jwks(state, client)
        .await
        .map_err(|e| fail(ErrorCode::InvalidRequestObject, format!("the client's keys are unavailable: {e}")))?;
    let op = (state.config.issuer.as_str(), &state.decryption);
    let claims = request_object::verify(&jwt, client, jwks.as_deref(), op, now())
        .map_err(|e| fail(ErrorCode::InvalidRequestObject, e.0.to_owned()))?;
    params.clone().with_request_object(claims).map_err(|e| fail(ErrorCode::InvalidRequestObject, e.to_owned()))
}

fn reject(state: &SharedState, rejection: &Rejection) -> Response {
    match rejection {
        Rejection::Page(e) => reply::error_page(state, e),
        Rejection::Redirect(e) => reply::error_redirect(state, e),
    }
}

/// The `sub` of an ID Token this OP issued (Core 3.1.2.1: it may have expired).
fn hinted_subject(keys: &crate::jose::KeyRing, issuer: &str, hint: &str) -> Option<String> {
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
) -> Result<(PendingAuthorization, AuthorizationRequest, Client), Response> {
    let expired = || {
        reply::error_page(
            state,
            &OAuthError::invalid_request(
                "this sign-in request has expired or is unknown; return to the application and start again",
            ),
        )
    };
    let pending = match state.store.pending(id, now()).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(expired()),
        Err(e) => return Err(reply::error_page(state, &reply::internal(e))),
    };
    let Ok(request) = serde_json::from_str::<AuthorizationRequest>(&pending.request_json) else {
        return Err(expired());
    };
    match state.store.client(&pending.client_id).await {
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
    match cookies::session_hash(jar) {
        Some(hash) => state.store.session(&hash, now()).await,
        None => Ok(None),
    }
}

/// The claims a `claims` parameter asks to have in the ID Token (Core 5.5).
pub(super) fn requested_id_token_claims(claims: Option<&ClaimsRequest>) -> impl Iterator<Item = &str> {
    claims.into_iter().flat_map(|c| c.id_token.keys().map(String::as_str))
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
    pending: Option<&PendingAuthorization>,
) -> Response {
    let result: Result<Response, StoreError> = async {
        let now = now();
        let session = current_session(state, jar).await?;
        let consented = match &session {
            Some(s) => settle_consent(state, client, &s.user_id, &mut request).await?,
            None => false,
        };
        let subject = session.as_ref().map(|s| state.subject(client, &s.user_id));
        let signed_in = session.as_ref().zip(subject.as_deref()).map(|(s, sub)| signed_in(s, sub, pending));
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
                if let Some(p) = pending {
                    state.store.delete_pending(&p.id).await?;
                }
                issue_response(state, client, &request, &session).await?
            }
            Ok(step) => {
                let id = match pending {
                    Some(p) => p.id.clone(),
                    None => save_pending(state, &request, now).await?,
                };
                let page = match step {
                    NextStep::Login => "/login",
                    NextStep::SignUp => "/signup",
                    _ => "/consent",
                };
                reply::see_other(&format!("{page}?request={id}"))
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
    }
}

async fn save_pending(state: &SharedState, request: &AuthorizationRequest, now: i64) -> Result<String, StoreError> {
    let pending = PendingAuthorization {
        id: crypto::random_token(),
        client_id: request.client_id.clone(),
        request_json: serde_json::to_string(request).expect("request serializes"),
        login_sid: None,
        created_at: now,
        expires_at: now + state.config.interaction_lifetime as i64,
    };
    state.store.insert_pending(&pending).await?;
    Ok(pending.id)
}

/// Answers a request the user has approved (Core 3.1.2.5, 3.2.2.5, 3.3.2.5): a code, an access
/// token and/or an ID Token as the response type asks, with `state` and `iss` (RFC 9207). Everything
/// issued here shares one grant id, so a replayed code revokes it all.
pub(super) async fn issue_response(
    state: &SharedState,
    client: &Client,
    request: &AuthorizationRequest,
    session: &BrowserSession,
) -> Result<Response, StoreError> {
    match authorization_response_params(state, client, request, session).await {
        Ok(params) => {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Ok(reply::authorization_response(state, &request.redirect_uri, request.response_mode, &params))
        }
        Err(IssueError::Store(e)) => Err(e),
        Err(IssueError::OAuth(e)) => Ok(reply::error_redirect(state, &request.error(e))),
    }
}

enum IssueError {
    Store(StoreError),
    OAuth(OAuthError),
}

impl From<StoreError> for IssueError {
    fn from(e: StoreError) -> Self {
        IssueError::Store(e)
    }
}

impl From<OAuthError> for IssueError {
    fn from(e: OAuthError) -> Self {
        IssueError::OAuth(e)
    }
}

async fn authorization_response_params(
    state: &SharedState,
    client: &Client,
    request: &AuthorizationRequest,
    session: &BrowserSession,
) -> Result<Vec<(&'static str, String)>, IssueError> {
    let response_type = request.response_type;
    let grant_id = crypto::random_token();
    let auth = session.authentication();
    let mut params = Vec::new();

    let code = if response_type.has_code() {
        let code = crypto::random_token();
        let grant = CodeGrant {
            client_id: request.client_id.clone(),
            user_id: session.user_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            claims: request.claims.clone(),
            auth: auth.clone(),
            grant_id: grant_id.clone(),
            expires_at: now() + state.config.code_lifetime as i64,
        };
        state.store.insert_code(&crypto::token_hash(&code), &grant).await?;
        Some(code)
    } else {
        None
    };

    let access_token = if response_type.has_token() {
        let (token, record) = issuance::access_token(
            state,
            client,
            Some(&session.user_id),
            request.scope.clone(),
            &grant_id,
            request.claims.as_ref(),
        );
        issuance::store_tokens(state, &token, &record, None).await?;
        params.push(("token_type", "Bearer".to_owned()));
        params.push(("expires_in", state.config.access_token_lifetime.to_string()));
        Some(token)
    } else {
        None
    };

    if response_type.has_id_token() {
        let user = match state.store.user(&session.user_id).await? {
            Some(user) if !user.disabled => user,
            _ => return Err(OAuthError::new(ErrorCode::LoginRequired, "the user is no longer active").into()),
        };
        // Core 5.4: without an access token there is no UserInfo call, so the scopes' claims go here;
        // Core 5.5: plus those the claims parameter asks for in the ID Token.
        let by_scope =
            access_token.is_none().then(|| state.scope_claims.claims_for(&request.scope)).into_iter().flatten();
        let locales = request.claims.as_ref().map_or(&[][..], |c| &c.locales);
        let claims =
            claims::release(&user, by_scope.chain(requested_id_token_claims(request.claims.as_ref())), locales);
        let contents = IdTokenContents {
            auth: &auth,
            nonce: request.nonce.as_deref(),
            access_token: access_token.as_deref(),
            code: code.as_deref(),
            claims,
        };
        params.push(("id_token", issuance::id_token(state, client, &user, contents).await?));
    }
    if let Some(code) = code {
        params.push(("code", code));
    }
    if let Some(token) = access_token {
        params.push(("access_token", token));
    }
    if let Some(s) = &request.state {
        params.push(("state", s.clone()));
    }
    Ok(params)
}
