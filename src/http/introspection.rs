//! Token introspection (RFC 7662) for the client that holds the token, and for the resource servers a
//! token is for (RFC 8707 audience): whether it is active, and what it stands for. Expired, revoked,
//! unknown and other parties' tokens all answer `{"active": false}`, alike, so the endpoint cannot be
//! used to tell them apart. Answered as JSON, or as a signed JWT when asked for one (RFC 9701).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::params::RequestParams;
use super::{SharedState, client_auth, reply};
use crate::crypto;
use crate::jose::client_keys;
use crate::model::{Client, Lookup, ResourceServer, SigningAlg};
use crate::protocol::authorize::is_resource_indicator;
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
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    /// The `jti` of a JWT access token (RFC 9068).
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
}

/// Who asks: a confidential client, about its own tokens, or a resource server, about tokens for it.
enum Caller {
    Client(Arc<Client>),
    Resource(Arc<ResourceServer>),
}

impl Caller {
    fn id(&self) -> &str {
        match self {
            Caller::Client(c) => c.id.as_str(),
            Caller::Resource(r) => &r.identifier,
        }
    }
}

/// RFC 9701 4: the media type of a JWT introspection response.
const JWT_RESPONSE: &str = "application/token-introspection+jwt";

pub async fn introspect(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RequestParams(params): RequestParams,
) -> Response {
    let as_jwt = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with(JWT_RESPONSE)));
    match handle(&state, &headers, params).await {
        Ok((caller, answer)) if as_jwt => signed(&state, &caller, answer),
        Ok((_, answer)) => reply::json_no_store(answer),
        Err(e) => reply::json_error(&e),
    }
}

/// RFC 9701 5: the answer as a JWT signed by the OP, for the caller.
fn signed(state: &SharedState, caller: &Caller, answer: Introspection) -> Response {
    let claims = serde_json::json!({
        "iss": state.config.issuer,
        "aud": caller.id(),
        "iat": state.now(),
        "token_introspection": answer,
    });
    match state.keys.get().sign_typed(SigningAlg::RS256, "token-introspection+jwt", &claims) {
        Ok(jwt) => ([reply::NO_STORE, (header::CONTENT_TYPE, JWT_RESPONSE)], jwt).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "introspection response signing failed");
            reply::json_error(&OAuthError::server_error())
        }
    }
}

/// A resource server's signed assertion (RFC 7523, as `private_key_jwt`): `iss` and `sub` its identifier,
/// `aud` this endpoint or the issuer, unexpired, its `jti` used once.
async fn resource_by_assertion(
    state: &SharedState,
    assertion: &str,
) -> Result<Option<Arc<ResourceServer>>, OAuthError> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        sub: String,
        aud: client_keys::Audience,
        exp: i64,
        jti: String,
    }
    let invalid = || OAuthError::new(ErrorCode::InvalidClient, "client authentication failed");
    let Some(claimed) = crate::jose::assertion::claimed_client_id(assertion) else { return Ok(None) };
    if !is_resource_indicator(&claimed) {
        return Ok(None);
    }
    let resource = state.resource(&claimed).await.map_err(reply::internal)?.ok_or_else(invalid)?;
    let jwks = resource.jwks.as_deref().ok_or_else(invalid)?;
    let verifiers = client_keys::verifiers(jwks).map_err(|_| invalid())?;
    let payload = client_keys::verify(assertion, &verifiers).ok_or_else(invalid)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| invalid())?;
    let now = state.now();
    let endpoint = format!("{}/introspect", state.config.issuer);
    let audience_ok = claims.aud.names(&endpoint) || claims.aud.names(&state.config.issuer);
    if claims.iss != resource.identifier || claims.sub != resource.identifier || !audience_ok || claims.exp <= now {
        return Err(invalid());
    }
    let key = format!("jti:{}:{}", resource.identifier, claims.jti);
    if !state.store.first_use(&key, claims.exp, now).await.map_err(reply::internal)? {
        return Err(invalid());
    }
    Ok(Some(resource))
}

/// The caller: a resource server by its identifier and secret (HTTP Basic, RFC 6749 2.3.1) or signed
/// assertion, else a client authenticated as at the token endpoint. Public clients prove nothing (RFC 7662 2.1 requires
/// authorization), so introspection would be an oracle for anyone who knows their id.
async fn caller(state: &SharedState, headers: &HeaderMap, params: &Params) -> Result<Caller, OAuthError> {
    let invalid = || OAuthError::new(ErrorCode::InvalidClient, "client authentication failed");
    if let Some((id, secret)) = client_auth::basic_credentials(headers)? {
        if is_resource_indicator(&id) {
            let resource = state.resource(&id).await.map_err(reply::internal)?.ok_or_else(invalid)?;
            let stored = resource.secret_hash.as_deref().ok_or_else(invalid)?;
            let given = crypto::token_hash(&secret);
            if !crypto::constant_time_eq(given.as_bytes(), stored.as_bytes()) {
                return Err(invalid());
            }
            return Ok(Caller::Resource(resource));
        }
    }
    let jwt_bearer =
        params.get("client_assertion_type") == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    if let (Some(assertion), true) = (params.get("client_assertion"), jwt_bearer) {
        if let Some(resource) = resource_by_assertion(state, assertion).await? {
            return Ok(Caller::Resource(resource));
        }
    }
    let client = client_auth::authenticate(state, headers, params).await?;
    if client.is_public() {
        return Err(OAuthError::new(ErrorCode::InvalidClient, "public clients cannot introspect tokens"));
    }
    Ok(Caller::Client(client))
}

async fn handle(
    state: &SharedState,
    headers: &HeaderMap,
    params: Result<Params, OAuthError>,
) -> Result<(Caller, Introspection), OAuthError> {
    let params = params?;
    let caller = caller(state, headers, &params).await?;
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let hash = crypto::token_hash(token);
    let now = state.now();
    let store = &state.store;
    // Access tokens first, then refresh tokens; `token_type_hint` is optional (RFC 7662 2.1) and not needed.
    if let Some(access) = store.access_token(&hash, now).await.map_err(reply::internal)? {
        let visible = match &caller {
            Caller::Client(client) => access.client_id == client.id,
            Caller::Resource(resource) => access.audience.contains(&resource.identifier),
        };
        // A client caller is the token's client: no need to load it again.
        let token_client = match &caller {
            Caller::Client(client) if visible => Some(Arc::clone(client)),
            _ if visible => state.client(&access.client_id).await.map_err(reply::internal)?,
            _ => None,
        };
        let Some(token_client) = token_client else { return Ok((caller, Introspection::default())) };
        let mut answer =
            active(state, &token_client, access.user_id.as_deref(), access.scope.to_string(), access.expires_at)
                .await?;
        answer.token_type = Some(if access.jkt.is_some() { "DPoP" } else { "Bearer" });
        answer.cnf = access.jkt.map(|jkt| Confirmation { jkt });
        if answer.active {
            if !access.audience.is_empty() {
                answer.aud = Some(serde_json::json!(access.audience));
            }
            (answer.iat, answer.nbf) = (access.issued_at, access.issued_at);
            // A JWT access token found by its digest is one of ours: its payload is read as is.
            answer.jti = crypto::jwt_id(token);
        }
        return Ok((caller, answer));
    }
    let Caller::Client(client) = &caller else { return Ok((caller, Introspection::default())) };
    if let Lookup::Live(refresh) = store.refresh_token(&hash, &client.id, now).await.map_err(reply::internal)? {
        let mut answer =
            active(state, client, Some(&refresh.user_id), refresh.scope.to_string(), refresh.expires_at).await?;
        answer.token_type = Some("refresh_token");
        answer.cnf = refresh.jkt.clone().map(|jkt| Confirmation { jkt });
        return Ok((caller, answer));
    }
    Ok((caller, Introspection::default()))
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
        Some(id) => match state.user(id).await.map_err(reply::internal)? {
            // A token of a disabled or deleted user no longer stands for anyone.
            Some(user) if !user.disabled => (Some(state.subject(client, id)), Some(user.username.clone())),
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
        iat: None,
        nbf: None,
        jti: None,
        sub,
        aud: Some(serde_json::json!(client.id.as_str())),
        iss: Some(state.config.issuer.clone()),
    })
}
