//! Client authentication at the token endpoint (RFC 6749 2.3, Core 9, RFC 7523).

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::SharedState;
use super::reply;
use crate::crypto;
use crate::fetch::FetchError;
use crate::jose::assertion;
use crate::model::{Client, ClientAuthMethod, ClientId};
use crate::protocol::{ErrorCode, OAuthError, Params};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the request presented as proof of the client's identity.
enum Credentials {
    Secret { id: String, secret: String, method: ClientAuthMethod },
    Assertion { assertion: String },
    NoneButId { id: String },
}

fn invalid_client(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, description)
}

/// RFC 6749 2.3.1: the id and secret are form-urlencoded before being joined for Basic.
pub(super) fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || invalid_client("malformed Basic authorization header");
    let value = value.to_str().map_err(|_| malformed())?;
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return Err(invalid_client("unsupported authorization scheme at the token endpoint"));
    };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let decode = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Ok(Some((decode(id).ok_or_else(malformed)?, decode(secret).unwrap_or_default())))
}

fn presented(headers: &HeaderMap, params: &Params) -> Result<Credentials, OAuthError> {
    let basic = basic_credentials(headers)?;
    let post_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let used = [basic.is_some(), post_secret.is_some(), assertion.is_some()].iter().filter(|b| **b).count();
    if used > 1 {
        // RFC 6749 2.3: a client MUST NOT use more than one authentication method per request.
        return Err(OAuthError::invalid_request("more than one client authentication method was used"));
    }
    let body_id = params.get("client_id");
    if let Some((id, secret)) = basic {
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request("client_id does not match the authenticated client"));
        }
        return Ok(Credentials::Secret { id, secret, method: ClientAuthMethod::ClientSecretBasic });
    }
    if let Some(assertion) = assertion {
        if params.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_request("client_assertion_type must be jwt-bearer (RFC 7523)"));
        }
        return Ok(Credentials::Assertion { assertion: assertion.to_owned() });
    }
    let id = body_id.ok_or_else(|| invalid_client("client authentication is missing"))?.to_owned();
    Ok(match post_secret {
        Some(secret) => {
            Credentials::Secret { id, secret: secret.to_owned(), method: ClientAuthMethod::ClientSecretPost }
        }
        None => Credentials::NoneButId { id },
    })
}

async fn load(state: &SharedState, id: &str) -> Result<Arc<Client>, OAuthError> {
    let id: ClientId = id.parse().map_err(|_| invalid_client("unknown client"))?;
    match state.client(&id).await {
        Ok(Some(client)) => Ok(client),
        Ok(None) => Err(invalid_client("unknown client")),
        Err(e) => Err(reply::internal(e)),
    }
}

/// Authenticates the client with the method it registered; any other method is refused.
pub async fn authenticate(
    state: &SharedState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Arc<Client>, OAuthError> {
    match presented(headers, params)? {
        Credentials::Secret { id, secret, method } => {
            let client = load(state, &id).await?;
            let stored = client.secret_hash.as_deref().filter(|_| client.auth_method == method);
            let Some(stored) = stored else {
                return Err(invalid_client("client authentication failed"));
            };
            let given = crypto::token_hash(&secret);
            if !crypto::constant_time_eq(given.as_bytes(), stored.as_bytes()) {
                return Err(invalid_client("client authentication failed"));
            }
            Ok(client)
        }
        Credentials::Assertion { assertion } => {
            let id = assertion::claimed_client_id(&assertion)
                .ok_or_else(|| invalid_client("client assertion is malformed"))?;
            let client = load(state, &id).await?;
            let audiences = [state.token_endpoint.as_str(), state.config.issuer.as_str()];
            let now = state.now();
            let jwks = match client.auth_method {
                ClientAuthMethod::PrivateKeyJwt => client_jwks(state, &client).await.map_err(|e| {
                    tracing::warn!(client = %client.id, error = %e, "client keys unavailable");
                    invalid_client("the client's keys are unavailable")
                })?,
                _ => None,
            };
            let verified = assertion::verify(&assertion, &client, jwks.as_deref(), &audiences, now)
                .map_err(|e| invalid_client(e.0))?;
            // RFC 7523 3 item 7: a jti is accepted once.
            let key = format!("jti:{}:{}", client.id, verified.jti);
            match state.store.first_use(&key, verified.exp, now).await {
                Ok(true) => Ok(client),
                Ok(false) => Err(invalid_client("client assertion was already used")),
                Err(e) => Err(reply::internal(e)),
            }
        }
        Credentials::NoneButId { id } => {
            let client = load(state, &id).await?;
            if client.auth_method != ClientAuthMethod::None {
                return Err(invalid_client("client authentication is missing"));
            }
            Ok(client)
        }
    }
}

/// The client's public keys: registered inline, or fetched (and cached) from its `jwks_uri`.
pub(super) async fn client_jwks(state: &SharedState, client: &Client) -> Result<Option<String>, FetchError> {
    if let Some(jwks) = &client.jwks {
        return Ok(Some(jwks.clone()));
    }
    match &client.metadata.jwks_uri {
        Some(uri) => Ok(Some(String::from_utf8_lossy(&state.fetcher.get_cached(uri).await?).into_owned())),
        None => Ok(None),
    }
}
