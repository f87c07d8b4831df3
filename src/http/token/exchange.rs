//! Token Exchange (RFC 8693): a client the operator allowed (its `token-exchange` grant) trades a token
//! it received for one to a downstream resource server, acting for the token's user: the new token says
//! so in its `act` claim (4.1) and dies with the original's grant.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{TokenResponse, required};
use crate::crypto;
use crate::http::{SharedState, issuance, reply};
use crate::jose::dpop::Proof;
use crate::model::{Client, ScopeSet};
use crate::protocol::{ErrorCode, OAuthError, Params};

/// RFC 8693 3: token type identifiers.
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

fn invalid(description: &'static str) -> OAuthError {
    OAuthError::invalid_request(description)
}

/// What a presented token stands for.
struct Presented {
    user_id: String,
    /// The resources it is for (an access token's audience).
    audience: Vec<String>,
    /// What it may be narrowed from; None for a JWT, which carries no scope oxid granted.
    scope: Option<ScopeSet>,
    /// The grant it belongs to, so the exchanged token is revoked with it.
    grant_id: Option<String>,
    /// A delegation already recorded in it.
    act: Option<Value>,
}

#[derive(Deserialize)]
struct OwnJwt {
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    aud: Option<crate::jose::client_keys::Audience>,
    #[serde(default)]
    act: Option<Value>,
}

/// A token this OP issued and that is live: one of its access tokens (for a user), or an ID Token (of
/// this `client`) or other JWT it signed.
async fn presented(
    state: &SharedState,
    client: &Client,
    token: &str,
    token_type: &str,
) -> Result<Presented, OAuthError> {
    let now = state.now();
    match token_type {
        ACCESS_TOKEN => {
            let found = state.store.access_token(&crypto::token_hash(token), now).await.map_err(reply::internal)?;
            let access = found.ok_or(invalid("the token is not active"))?;
            let user_id = access.user_id.ok_or(invalid("the token stands for no user"))?;
            let (scope, grant_id) = (Some(access.scope), access.grant_id);
            Ok(Presented { user_id, audience: access.audience, scope, grant_id, act: None })
        }
        ID_TOKEN | JWT => {
            let payload =
                state.keys.get().verify_own(token).map_err(|_| invalid("the token is not one of this OP's"))?;
            let claims: OwnJwt =
                serde_json::from_slice(&payload).map_err(|_| invalid("the token's claims are unusable"))?;
            if claims.iss != state.config.issuer || claims.exp <= now {
                return Err(invalid("the token is not active"));
            }
            // An ID Token is for its audience only: another client's is not this client's to trade.
            if token_type == ID_TOKEN && !claims.aud.as_ref().is_some_and(|aud| aud.names(client.id.as_str())) {
                return Err(invalid("the ID Token was issued to another client"));
            }
            // A public subject is the user's id; a pairwise one names nobody here.
            match state.store.user(&claims.sub).await.map_err(reply::internal)? {
                Some(user) if !user.disabled => Ok(Presented {
                    user_id: user.id,
                    audience: Vec::new(),
                    scope: None,
                    grant_id: None,
                    act: claims.act,
                }),
                _ => Err(invalid("the token's subject is not a user of this OP")),
            }
        }
        _ => Err(invalid("the token type is not supported")),
    }
}

pub(super) async fn exchange(
    state: &SharedState,
    client: &Client,
    params: &Params,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    let subject_token = required(params, "subject_token")?;
    let subject = presented(state, client, subject_token, required(params, "subject_token_type")?).await?;
    // RFC 8693 4.1: the actor is the actor token's subject, else the client asking.
    let actor = match (params.get("actor_token"), params.get("actor_token_type")) {
        (Some(token), Some(token_type)) => presented(state, client, token, token_type).await?.user_id,
        (None, None) => client.id.to_string(),
        _ => return Err(invalid("actor_token and actor_token_type go together")),
    };
    let mut act = json!({"sub": actor});
    if let Some(earlier) = subject.act {
        act["act"] = earlier;
    }
    // The downstream resource (RFC 8693 2.1 `resource` or `audience`), which must be registered.
    let target = params.get("resource").or(params.get("audience")).ok_or(OAuthError::new(
        ErrorCode::InvalidTarget,
        "name the resource server the token is for (resource or audience)",
    ))?;
    let audience = issuance::audience(state, None, Some(target)).await?;
    let resource = &audience[0];
    // The scope: what was asked, within the subject token's (less what its own resources define) or,
    // for a JWT subject, the target resource's.
    let allowed = match &subject.scope {
        Some(scope) => issuance::scope_for_audience(state, scope.clone(), Some(&subject.audience), &audience).await?,
        None => resource.scopes.clone(),
    };
    let scope = match params.get("scope") {
        Some(asked) => {
            let asked: ScopeSet =
                asked.parse().map_err(|_| OAuthError::new(ErrorCode::InvalidScope, "scope is malformed"))?;
            if !asked.is_subset(&allowed) {
                return Err(OAuthError::new(ErrorCode::InvalidScope, "scope exceeds the subject token's"));
            }
            asked
        }
        None => allowed,
    };
    let issued_token_type = match params.get("requested_token_type") {
        None | Some(ACCESS_TOKEN) => ACCESS_TOKEN,
        Some(JWT) if resource.token_format == crate::model::TokenFormat::Jwt => JWT,
        Some(_) => return Err(invalid("requested_token_type cannot be issued for this resource")),
    };
    let grant_id = subject.grant_id.unwrap_or_else(crypto::ordered_token);
    let mut record = issuance::access_token(state, client, Some(&subject.user_id), scope, Some(&grant_id), None);
    record.jkt = proof.map(|p| p.jkt.clone());
    let user = Some((subject.user_id.as_str(), None));
    let (token, record) = issuance::for_audience(state, client, record, &audience, user, Some(act))?;
    super::issue::store(state, client, None, (&token, &record), None).await?;
    Ok(TokenResponse {
        access_token: token,
        token_type: super::token_type(proof),
        expires_in: super::expires_in(state, record.expires_at),
        refresh_token: None,
        id_token: None,
        scope: record.scope.to_string(),
        issued_token_type: Some(issued_token_type),
    })
}
