//! Request objects (Core 6, RFC 9101): the authorization request as a JWT, signed with the client's
//! keys, or unsigned (`alg` `none`) for a client that registered exactly that.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::client_keys::{self, Audience, CLOCK_SKEW};
use super::decryption::DecryptionKeys;
use crate::model::{Client, RequestObjectAlg, SigningAlg, Timestamp};

/// Why a request object was refused; reported as `invalid_request_object` (Core 3.1.2.6).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct RequestObjectError(pub &'static str);

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Registered {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    client_id: Option<String>,
}

fn decode(part: &str) -> Result<Vec<u8>, RequestObjectError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| RequestObjectError("the request object is not a JWT"))
}

/// Checks a request object for `client` (whose public keys are `jwks`) and returns its claims: first
/// decrypted with the OP's keys if it is a JWE (Core 6.1: signed, then encrypted), then the signature or
/// a registered `none`, and, where present, `iss` = `client_id` = the client, `aud` naming this OP
/// (RFC 9101 6.3), `exp` and `nbf`.
pub fn verify(
    jwt: &str,
    client: &Client,
    jwks: Option<&str>,
    op: (&str, &DecryptionKeys),
    now: Timestamp,
) -> Result<Map<String, Value>, RequestObjectError> {
    let (issuer, decryption) = op;
    let decrypted;
    let jwt = if jwt.split('.').count() == 5 {
        let inner = decryption.decrypt(jwt).map_err(RequestObjectError)?;
        decrypted =
            String::from_utf8(inner).map_err(|_| RequestObjectError("the decrypted request object is not a JWT"))?;
        decrypted.as_str()
    } else {
        jwt
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(RequestObjectError("the request object is not a JWT"));
    };
    let header: Header = serde_json::from_slice(&decode(header)?)
        .map_err(|_| RequestObjectError("the request object header is malformed"))?;
    let registered = client.metadata.request_object_signing_alg;
    let payload = if header.alg == "none" {
        // Core 6.1: unsigned only where the client registered `none`.
        if registered != Some(RequestObjectAlg::None) {
            return Err(RequestObjectError("unsigned request objects are not accepted from this client"));
        }
        if !signature.is_empty() {
            return Err(RequestObjectError("an unsigned request object has no signature"));
        }
        decode(payload)?
    } else {
        let alg: SigningAlg =
            header.alg.parse().map_err(|_| RequestObjectError("unsupported request object signing algorithm"))?;
        if registered.is_some_and(|r| r != RequestObjectAlg::Signed(alg)) {
            return Err(RequestObjectError("the request object is not signed with the registered algorithm"));
        }
        let jwks = jwks.ok_or(RequestObjectError("the client has no keys to verify its request object"))?;
        let verifiers = client_keys::verifiers(jwks).map_err(RequestObjectError)?;
        client_keys::verify(jwt, &verifiers).ok_or(RequestObjectError("the request object signature is invalid"))?
    };
    let claims: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| RequestObjectError("the request object claims are malformed"))?;
    let checked: Registered = serde_json::from_value(Value::Object(claims.clone()))
        .map_err(|_| RequestObjectError("the request object claims are malformed"))?;
    let id = client.id.as_str();
    if checked.iss.as_deref().is_some_and(|iss| iss != id) {
        return Err(RequestObjectError("the request object iss must be the client_id"));
    }
    if checked.client_id.as_deref().is_some_and(|c| c != id) {
        return Err(RequestObjectError("the request object client_id does not match"));
    }
    if checked.aud.as_ref().is_some_and(|aud| !aud.names(issuer)) {
        return Err(RequestObjectError("the request object aud must be this OP's issuer"));
    }
    // Saturating: `exp` and `nbf` come from the client and may be any i64.
    if checked.exp.is_some_and(|exp| exp.saturating_add(CLOCK_SKEW) <= now) {
        return Err(RequestObjectError("the request object has expired"));
    }
    if checked.nbf.is_some_and(|nbf| nbf.saturating_sub(CLOCK_SKEW) > now) {
        return Err(RequestObjectError("the request object is not yet valid"));
    }
    Ok(claims)
}
