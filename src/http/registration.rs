//! Dynamic Client Registration: the registration endpoint (OpenID Connect Dynamic Client Registration
//! 1.0 3, RFC 7591 3) and the management of a registration with its registration access token
//! (RFC 7592): read, replace, delete.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{SharedState, reply};
use crate::audit;
use crate::config::RegistrationPolicy;
use crate::crypto;
use crate::model::{AuditEvent, AuditKind, Client, ClientId, ClientOrigin};
use crate::protocol::registration::{client_from_metadata, metadata_document};
use crate::protocol::{ErrorCode, OAuthError};
use crate::registration::{apply_software_statement, attach_secret, settle_sector_identifier};
use crate::store::StoreError;

/// What a registration request is answered with instead of its client.
enum Refusal {
    /// 400 with the RFC 7591 3.2.2 error.
    Invalid(OAuthError),
    /// 401 with a bearer challenge (RFC 6750 3.1): no, or no usable, token.
    Unauthorized(Option<OAuthError>),
    /// 429: `open` registration's allowance for this address is used up.
    TooMany,
    Store(StoreError),
}

impl From<OAuthError> for Refusal {
    fn from(e: OAuthError) -> Self {
        Self::Invalid(e)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid(e) => reply::json_error(&e),
            Self::Unauthorized(e) => reply::bearer_challenge(StatusCode::UNAUTHORIZED, e.as_ref()),
            Self::TooMany => {
                let e = OAuthError::new(ErrorCode::TemporarilyUnavailable, "too many registrations from this address");
                (StatusCode::TOO_MANY_REQUESTS, reply::json_error(&e)).into_response()
            }
            Self::Store(e) => reply::json_error(&reply::internal(e)),
        }
    }
}

fn invalid_token() -> Refusal {
    Refusal::Unauthorized(Some(OAuthError::new(ErrorCode::InvalidToken, "the access token is not valid")))
}

/// The bearer token of the Authorization header (RFC 6750 2.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim).filter(|t| !t.is_empty())
}

/// The request body as a JSON object (RFC 7591 3.1). Too large, not JSON, not an object: 400.
fn metadata(body: Result<Bytes, axum::extract::rejection::BytesRejection>) -> Result<Map<String, Value>, OAuthError> {
    let bad = |why: &str| OAuthError::new(ErrorCode::InvalidClientMetadata, why.to_owned());
    let body = body.map_err(|_| bad("the request body is too large or unreadable"))?;
    match serde_json::from_slice(&body) {
        Ok(Value::Object(doc)) => Ok(doc),
        Ok(_) => Err(bad("the request body must be a JSON object")),
        Err(_) => Err(bad("the request body is not JSON")),
    }
}

/// The registration's answer (RFC 7591 3.2.1, RFC 7592 3): the metadata, the secret when one was just
/// made, and how to manage the registration.
fn answer(
    state: &SharedState,
    status: StatusCode,
    client: &Client,
    secret: Option<&str>,
    access_token: &str,
) -> Response {
    let mut doc = metadata_document(client);
    if let Some(secret) = secret {
        doc.insert("client_secret".into(), json!(secret));
        // RFC 7591 3.2.1: 0, the secret does not expire.
        doc.insert("client_secret_expires_at".into(), json!(0));
    }
    doc.insert("registration_access_token".into(), json!(access_token));
    doc.insert("registration_client_uri".into(), json!(client_uri(state, &client.id)));
    (status, reply::json_no_store(doc)).into_response()
}

fn client_uri(state: &SharedState, id: &ClientId) -> String {
    format!("{}/register/{}", state.config.issuer, id)
}

/// Reads, checks and completes a client from registration metadata: the software statement applied,
/// the rules of `protocol::registration`, the pairwise sector settled.
async fn validated(
    state: &SharedState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    id: ClientId,
    created_at: i64,
) -> Result<Client, OAuthError> {
    let doc = metadata(body)?;
    let trusted = &state.config.registration_trusted_software_issuers;
    let doc = apply_software_statement(doc, trusted, &state.fetcher, state.now()).await?;
    let mut client = client_from_metadata(&doc, id, created_at)?;
    settle_sector_identifier(&mut client, &state.fetcher)
        .await
        .map_err(|e| OAuthError::new(ErrorCode::InvalidClientMetadata, e))?;
    Ok(client)
}

/// `POST /register`.
pub async fn register(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let now = state.now();
    let result: Result<Response, Refusal> = async {
        // RFC 7591 3: the initial access token, checked before anything else is looked at.
        let spending = match state.config.registration {
            RegistrationPolicy::Off => return Ok((StatusCode::NOT_FOUND, "not found").into_response()),
            RegistrationPolicy::Token => {
                let Some(token) = bearer(&headers) else { return Err(Refusal::Unauthorized(None)) };
                let hash = crypto::token_hash(token);
                if !state.store.initial_access_token_usable(&hash, now).await? {
                    return Err(invalid_token());
                }
                Some(hash)
            }
            RegistrationPolicy::Open => {
                let ip = state.client_ip(peer.ip(), &headers);
                let window = state.config.login_throttle_window as i64;
                let allowed = state.config.registration_max_per_ip;
                if !state.store.reserve_attempt(&format!("register:{ip}"), now, window, allowed).await? {
                    return Err(Refusal::TooMany);
                }
                None
            }
        };
        let id: ClientId = crypto::random_token()[..22].parse().expect("random tokens are valid client ids");
        let mut client = validated(&state, body, id, now).await?;
        let secret =
            attach_secret(&mut client, None).map_err(|e| OAuthError::new(ErrorCode::InvalidClientMetadata, e))?;
        let access_token = crypto::random_token();
        client.metadata.origin = ClientOrigin::Registration { access_token_hash: crypto::token_hash(&access_token) };
        if !state.store.register_client(&client, spending.as_deref(), now).await? {
            // The token was used up or revoked meanwhile.
            return Err(invalid_token());
        }
        audit_client(&state, &client.id, "registered").await;
        Ok(answer(&state, StatusCode::CREATED, &client, secret.as_deref(), &access_token))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The registered client `id` when `headers` carry its registration access token (RFC 7592 2). An
/// unknown client, one made by the operator, or another token: 401 alike, so nothing is disclosed.
async fn managed(state: &SharedState, headers: &HeaderMap, id: &str) -> Result<Client, Refusal> {
    let Some(token) = bearer(headers) else { return Err(Refusal::Unauthorized(None)) };
    let Ok(id) = id.parse::<ClientId>() else { return Err(invalid_token()) };
    // From the store, not this node's cache: each update replaces the registration access token, and the
    // replaced one must stop working on every node at once.
    let client = state.store.client(&id).await?.ok_or_else(invalid_token)?;
    match &client.metadata.origin {
        ClientOrigin::Registration { access_token_hash }
            if crypto::constant_time_eq(crypto::token_hash(token).as_bytes(), access_token_hash.as_bytes()) =>
        {
            Ok(client)
        }
        _ => Err(invalid_token()),
    }
}

/// `GET /register/{client_id}` (RFC 7592 2.1).
pub async fn read(State(state): State<SharedState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match managed(&state, &headers, &id).await {
        Ok(client) => {
            let token = bearer(&headers).unwrap_or_default();
            let secret = client.secret_for_jwt.clone();
            answer(&state, StatusCode::OK, &client, secret.as_deref(), token)
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// `PUT /register/{client_id}` (RFC 7592 2.2): the metadata replaced as a whole, by the same rules as a
/// registration. The registration access token is rotated; the secret is kept while the method still
/// uses one (a new one is made when the method starts to).
pub async fn replace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let result: Result<Response, Refusal> = async {
        let old = managed(&state, &headers, &id).await?;
        let body = body.map_err(|_| {
            OAuthError::new(ErrorCode::InvalidClientMetadata, "the request body is too large or unreadable")
        })?;
        // RFC 7592 2.2: the request names the client; a client_secret it carries must be the current one.
        let doc = metadata(Ok(body.clone()))?;
        if doc.get("client_id").and_then(Value::as_str) != Some(old.id.as_str()) {
            return Err(OAuthError::invalid_request("client_id must be the registered client's").into());
        }
        if let Some(given) = doc.get("client_secret").and_then(Value::as_str) {
            let same = old
                .secret_hash
                .as_deref()
                .is_some_and(|hash| crypto::constant_time_eq(crypto::token_hash(given).as_bytes(), hash.as_bytes()));
            if !same {
                return Err(OAuthError::invalid_request("client_secret is not the client's secret").into());
            }
        }
        let mut client = validated(&state, Ok(body), old.id.clone(), old.created_at).await?;
        let keeps_secret =
            old.secret_hash.is_some() && client.auth_method.uses_secret() && old.auth_method.uses_secret();
        let secret = if keeps_secret {
            client.secret_hash = old.secret_hash.clone();
            client.secret_for_jwt = old.secret_for_jwt.clone();
            client.secret_for_jwt.clone()
        } else {
            attach_secret(&mut client, None).map_err(|e| OAuthError::new(ErrorCode::InvalidClientMetadata, e))?
        };
        let access_token = crypto::random_token();
        client.metadata.origin = ClientOrigin::Registration { access_token_hash: crypto::token_hash(&access_token) };
        client.skip_consent = old.skip_consent;
        state.store.replace_client(&client).await?;
        state.forget_client(&client.id);
        audit_client(&state, &client.id, "registration replaced").await;
        Ok(answer(&state, StatusCode::OK, &client, secret.as_deref(), &access_token))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /register/{client_id}` (RFC 7592 2.3): the client and everything issued to it.
pub async fn delete(State(state): State<SharedState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result: Result<Response, Refusal> = async {
        let client = managed(&state, &headers, &id).await?;
        state.store.delete_client(&client.id).await?;
        state.forget_client(&client.id);
        audit_client(&state, &client.id, "registration deleted").await;
        Ok((StatusCode::NO_CONTENT, [reply::NO_STORE]).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn audit_client(state: &SharedState, id: &ClientId, what: &str) {
    let event = AuditEvent::new(state.now(), AuditKind::ClientChanged, what).client(id.as_str());
    audit::record(state.store.as_ref(), event).await;
}
