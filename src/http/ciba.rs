//! Client-Initiated Backchannel Authentication (OpenID Connect CIBA Core 1.0), poll and ping modes:
//! a client (a call centre, a till) asks the OP to authenticate a user it names; the user decides on
//! their account page; the client polls the token endpoint, or is pinged first.
//!
//! oxid's only channel to the user is the account page (its list of sign-in requests, shown when they
//! sign in). A deployment that needs the user to be told at once adds a push channel (an app, a text
//! message) pointing at that page.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::params::RequestParams;
use super::{SharedState, client_auth, reply};
use crate::crypto;
use crate::model::{
    CibaDelivery, Client, DecoupledAuthorization, GrantType, Ping, ScopeSet, UserDecision, canonical_username,
};
use crate::protocol::{ErrorCode, OAuthError, Params};

/// Seconds a request lives when the client asks for no other (`requested_expiry`), and at most.
const DEFAULT_EXPIRY: i64 = 300;
const MAX_EXPIRY: i64 = 600;
/// Seconds a polling client waits between polls (CIBA 7.3 `interval`).
const INTERVAL: i64 = 5;
/// CIBA 7.1 `binding_message`: short, to be shown on both devices.
const MAX_BINDING_MESSAGE: usize = 100;

/// `POST /bc-authorize` (CIBA 7).
pub async fn backchannel_authentication(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RequestParams(params): RequestParams,
) -> Response {
    reply::json_or_error(authenticate_request(&state, &headers, params).await)
}

async fn authenticate_request(
    state: &SharedState,
    headers: &HeaderMap,
    params: Result<Params, OAuthError>,
) -> Result<serde_json::Value, OAuthError> {
    let params = params?;
    let client = client_auth::authenticate(state, headers, &params).await?;
    let Some(delivery) = client.metadata.ciba.clone().filter(|_| client.allows_grant(GrantType::Ciba)) else {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "the client is not registered for CIBA"));
    };
    // CIBA 7.1: an OpenID request, for one user named by exactly one hint.
    let scope: ScopeSet = params
        .get("scope")
        .ok_or(OAuthError::new(ErrorCode::InvalidRequest, "scope is missing"))?
        .parse()
        .map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed"))?;
    if !scope.contains("openid") {
        return Err(OAuthError::new(ErrorCode::InvalidScope, "scope must include openid"));
    }
    let user_id = hinted_user(state, &client, &params).await?;
    let binding_message = params.get("binding_message").map(str::to_owned);
    if binding_message
        .as_ref()
        .is_some_and(|m| m.chars().count() > MAX_BINDING_MESSAGE || m.chars().any(char::is_control))
    {
        return Err(OAuthError::new(ErrorCode::InvalidBindingMessage, "binding_message must be short, printable text"));
    }
    let expires_in = match params.get("requested_expiry") {
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|secs| (1..=MAX_EXPIRY).contains(secs))
            .ok_or(OAuthError::new(ErrorCode::InvalidRequest, "requested_expiry must be 1 to 600 seconds"))?,
        None => DEFAULT_EXPIRY,
    };
    let auth_req_id = crypto::random_token();
    // CIBA 7.1: ping mode clients give the bearer token of their notification.
    let ping = match delivery {
        CibaDelivery::Ping { .. } => {
            let token = params.get("client_notification_token").ok_or(OAuthError::new(
                ErrorCode::InvalidRequest,
                "client_notification_token is required in ping mode",
            ))?;
            Some(Ping { client_notification_token: token.to_owned(), auth_req_id: auth_req_id.clone() })
        }
        CibaDelivery::Poll => None,
    };
    let request = DecoupledAuthorization {
        code_hash: crypto::token_hash(&auth_req_id),
        user_code: None,
        for_user: Some(user_id),
        client_id: client.id.clone(),
        scope,
        grant_id: crypto::ordered_token(),
        expires_at: state.now() + expires_in,
        interval: INTERVAL,
        decision: UserDecision::Pending,
        binding_message,
        ping,
    };
    state.store.insert_decoupled_authorization(&request).await.map_err(reply::internal)?;
    Ok(json!({"auth_req_id": auth_req_id, "expires_in": expires_in, "interval": INTERVAL}))
}

/// The user the request names (CIBA 7.1): `login_hint` (a username) or `id_token_hint` (an ID Token
/// this OP issued to this client, with a public subject). `login_hint_token` is not offered.
async fn hinted_user(state: &SharedState, client: &Client, params: &Params) -> Result<String, OAuthError> {
    let hints = ["login_hint", "id_token_hint", "login_hint_token"].iter().filter(|h| params.contains(h)).count();
    if hints != 1 {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "give exactly one of login_hint, id_token_hint, login_hint_token",
        ));
    }
    if params.contains("login_hint_token") {
        return Err(OAuthError::new(ErrorCode::InvalidRequest, "login_hint_token is not supported"));
    }
    let unknown = || OAuthError::new(ErrorCode::UnknownUserId, "no such user");
    let user = if let Some(hint) = params.get("login_hint") {
        let username = canonical_username(hint).map_err(|_| unknown())?;
        state.store.user_by_username(&username).await.map_err(reply::internal)?
    } else {
        let token = params.get("id_token_hint").unwrap_or_default();
        let keys = state.keys.get();
        let sub = super::authorize::hinted_subject(&keys, &state.config.issuer, token).ok_or(unknown())?;
        match state.store.user(&sub).await.map_err(reply::internal)? {
            // The client must see this user under that subject (a pairwise client's hint names no id).
            Some(user) if state.subject(client, &user.id) == sub => Some(user),
            _ => None,
        }
    };
    match user {
        Some(user) if !user.disabled => Ok(user.id),
        _ => Err(unknown()),
    }
}

/// After the user decided on a ping-mode request: tell the client (CIBA 10.2), once, through the
/// public-address-only fetcher. A client that is not reached still gets its tokens by polling.
pub(super) fn ping(state: &SharedState, client: &Client, request: &DecoupledAuthorization) {
    let (Some(CibaDelivery::Ping { notification_endpoint }), Some(ping)) = (&client.metadata.ciba, &request.ping)
    else {
        return;
    };
    let (state, endpoint, ping) = (state.clone(), notification_endpoint.clone(), ping.clone());
    tokio::spawn(async move {
        let body = json!({"auth_req_id": ping.auth_req_id});
        let timeout = Duration::from_secs(state.config.backchannel_logout_timeout);
        if let Err(e) = state.fetcher.post_json(&endpoint, &ping.client_notification_token, &body, timeout).await {
            tracing::warn!(error = %e, "the CIBA ping was not delivered; the client can still poll");
        }
    });
}
