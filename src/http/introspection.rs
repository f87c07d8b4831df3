//! Token introspection (RFC 7662) for the client that holds the token: whether it is active, and what
//! it stands for. Expired, revoked, unknown and other clients' tokens all answer `{"active": false}`,
//! alike, so the endpoint cannot be used to tell them apart.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::params::RequestParams;
use super::{SharedState, client_auth, reply};
use crate::crypto;
use crate::model::{Client, Lookup};
use crate::protocol::{ErrorCode, OAuthError, Params};

/// RFC 7800 3.1 `cnf`, with RFC 9449 6.1's `jkt`.
#[derive(Serialize)]
struct Confirmation {
    jkt: String,
}

/// RFC 7662 2.2.
#[derive(Serialize, Default)]
struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    /// RFC 9449 6.2 (RFC 7800): the key a DPoP-bound token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
}

pub async fn introspect(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RequestParams(params): RequestParams,
) -> Response {
    reply::json_or_error(handle(&state, &headers, params).await)
}

async fn handle(
    state: &SharedState,
    headers: &HeaderMap,
    params: Result<Params, OAuthError>,
) -> Result<Introspection, OAuthError> {
    let params = params?;
    let client = client_auth::authenticate(state, headers, &params).await?;
    // RFC 7662 2.1 requires authorization: a public client proves nothing, so introspection would be an
    // oracle for anyone who knows its id.
    if client.is_public() {
        return Err(OAuthError::new(ErrorCode::InvalidClient, "public clients cannot introspect tokens"));
    }
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let hash = crypto::token_hash(token);
    let now = state.now();
    let store = &state.store;
    // Access tokens first, then refresh tokens; `token_type_hint` is optional (RFC 7662 2.1) and not needed.
    if let Some(access) = store.access_token(&hash, now).await.map_err(reply::internal)? {
        if access.client_id != client.id {
            return Ok(Introspection::default());
        }
        let mut answer =
            active(state, &client, access.user_id.as_deref(), access.scope.to_string(), access.expires_at).await?;
        answer.token_type = Some(if access.jkt.is_some() { "DPoP" } else { "Bearer" });
        answer.cnf = access.jkt.map(|jkt| Confirmation { jkt });
        return Ok(answer);
    }
    if let Lookup::Live(refresh) = store.refresh_token(&hash, &client.id, now).await.map_err(reply::internal)? {
        let mut answer =
            active(state, &client, Some(&refresh.user_id), refresh.scope.to_string(), refresh.expires_at).await?;
        answer.token_type = Some("refresh_token");
        answer.cnf = refresh.jkt.clone().map(|jkt| Confirmation { jkt });
        return Ok(answer);
    }
    Ok(Introspection::default())
}

/// What an active token of `client` says: its user as the client sees them (Core 8), scope and expiry.
async fn active(
    state: &SharedState,
    client: &Client,
    user_id: Option<&str>,
    scope: String,
    exp: i64,
) -> Result<Introspection, OAuthError> {
    let (sub, username) = match user_id {
        Some(id) => match state.store.user(id).await.map_err(reply::internal)? {
            // A token of a disabled or deleted user no longer stands for anyone.
            Some(user) if !user.disabled => (Some(state.subject(client, id)), Some(user.username)),
            _ => return Ok(Introspection::default()),
        },
        // client_credentials: the client acts for itself.
        None => (None, None),
    };
    Ok(Introspection {
        active: true,
        scope: Some(scope),
        client_id: Some(client.id.to_string()),
        username,
        token_type: None,
        cnf: None,
        exp: Some(exp),
        sub,
        aud: Some(client.id.to_string()),
        iss: Some(state.config.issuer.clone()),
    })
}
