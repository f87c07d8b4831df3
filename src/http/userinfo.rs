//! The UserInfo endpoint (Core 5.3) with bearer tokens (RFC 6750).

use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use serde_json::{Map, Value};

use super::params::is_form;
use super::{SharedState, dpop, issuance, reply};
use crate::crypto;
use crate::model::Client;
use crate::protocol::claims::userinfo_claims;
use crate::protocol::{ErrorCode, OAuthError, Params};

/// How the access token was presented: as a bearer token (RFC 6750) or bound to a DPoP proof (RFC 9449 7).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// The access token from the Authorization header or, for POST, the form body (RFC 6750 2.1, 2.2;
/// RFC 9449 7.1 for the `DPoP` scheme).
async fn presented_token(req: Request) -> Result<Option<(Scheme, String)>, OAuthError> {
    let from_header = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
            let (scheme, token) = v.split_once(' ').unwrap_or((v, ""));
            let scheme = if scheme.eq_ignore_ascii_case("bearer") {
                Scheme::Bearer
            } else if scheme.eq_ignore_ascii_case("dpop") {
                Scheme::Dpop
            } else {
                return Err(OAuthError::invalid_request("the Authorization scheme must be Bearer or DPoP"));
            };
            Some((scheme, token.trim().to_owned()))
        }
    };
    let from_body = if req.method() == Method::POST && is_form(req.headers()) {
        let body = Bytes::from_request(req, &())
            .await
            .map_err(|_| OAuthError::invalid_request("the request body is too large or unreadable"))?;
        Params::parse(&body)?.get("access_token").map(|t| (Scheme::Bearer, t.to_owned()))
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request("the token must be sent in one place only")),
        (h, b) => Ok(h.or(b)),
    }
}

pub async fn userinfo(State(state): State<SharedState>, req: Request) -> Response {
    let (method, headers) = (req.method().clone(), req.headers().clone());
    let (scheme, token) = match presented_token(req).await {
        Ok(Some(t)) => t,
        Ok(None) => return reply::bearer_challenge(StatusCode::UNAUTHORIZED, None),
        Err(e) => return reply::bearer_challenge(StatusCode::BAD_REQUEST, Some(&e)),
    };
    let invalid = |d| OAuthError::new(ErrorCode::InvalidToken, d);
    let access = match state.store.access_token(&crypto::token_hash(&token), state.now()).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return reply::bearer_challenge(
                StatusCode::UNAUTHORIZED,
                Some(&invalid("the access token is invalid or expired")),
            );
        }
        Err(e) => return reply::json_error(&reply::internal(e)),
    };
    // RFC 9449 7.1: a bound token needs the DPoP scheme and a proof of its key for this request; a
    // bearer token cannot be presented as DPoP either.
    match (scheme, &access.jkt) {
        (Scheme::Bearer, None) => {}
        (Scheme::Bearer, Some(_)) => {
            return dpop::challenge(&state, &invalid("this access token is DPoP-bound: present it with a DPoP proof"));
        }
        (Scheme::Dpop, None) => return dpop::challenge(&state, &invalid("this access token is not DPoP-bound")),
        (Scheme::Dpop, Some(jkt)) => {
            let htu = format!("{}/userinfo", state.config.issuer);
            match dpop::proof(&state, &headers, method.as_str(), &htu, Some(&token)).await {
                Ok(Some(proof)) if proof.jkt == *jkt => {}
                Ok(Some(_)) => return dpop::challenge(&state, &invalid("the DPoP proof is not of the token's key")),
                Ok(None) => {
                    let missing = OAuthError::new(ErrorCode::InvalidDpopProof, "a DPoP proof is required");
                    return dpop::challenge(&state, &missing);
                }
                Err(e) => return dpop::challenge(&state, &e),
            }
        }
    }
    let (Some(user_id), true) = (&access.user_id, access.scope.contains("openid")) else {
        let e = OAuthError::new(ErrorCode::InsufficientScope, "the access token lacks the openid scope");
        return reply::bearer_challenge(StatusCode::FORBIDDEN, Some(&e));
    };
    // The client decides how it sees the user (Core 8 subject type).
    match tokio::try_join!(state.user(user_id), state.client(&access.client_id)) {
        Ok((Some(user), Some(client))) if !user.disabled => {
            let subject = state.subject(&client, &user.id);
            let claims = userinfo_claims(&subject, &user, &state.scope_claims, &access.scope, access.claims.as_ref());
            respond(&state, &client, claims).await
        }
        Ok(_) => {
            reply::bearer_challenge(StatusCode::UNAUTHORIZED, Some(&invalid("the user or client is no longer active")))
        }
        Err(e) => reply::json_error(&reply::internal(e)),
    }
}

/// Core 5.3.2: plain JSON, or, as the client registered, a JWT signed by the OP (with `iss` and `aud`)
/// and/or encrypted to the client.
async fn respond(state: &SharedState, client: &Client, mut claims: Map<String, Value>) -> Response {
    let metadata = &client.metadata;
    if metadata.userinfo_signed_response_alg.is_none() && metadata.userinfo_encryption.is_none() {
        return ([reply::NO_STORE], axum::Json(claims)).into_response();
    }
    claims.insert("iss".into(), Value::from(state.config.issuer.as_str()));
    claims.insert("aud".into(), Value::from(client.id.as_str()));
    let body = match metadata.userinfo_signed_response_alg {
        Some(alg) => match state.keys.get().sign(alg, &claims) {
            Ok(jwt) => jwt,
            Err(e) => {
                tracing::error!(error = %e, "UserInfo signing failed");
                return reply::json_error(&OAuthError::server_error());
            }
        },
        None => Value::Object(claims).to_string(),
    };
    let body = match metadata.userinfo_encryption {
        Some(encryption) => {
            let nested = metadata.userinfo_signed_response_alg.is_some();
            match issuance::encrypt_to_client(state, client, body.as_bytes(), nested, encryption).await {
                Ok(jwe) => jwe,
                Err(e) => return reply::json_error(&e),
            }
        }
        None => body,
    };
    ([reply::NO_STORE, (header::CONTENT_TYPE, "application/jwt")], body).into_response()
}
