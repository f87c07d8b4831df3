//! The decoupled grants at the token endpoint: the device authorization grant (RFC 8628 3.4, 3.5) and
//! CIBA (10.1, 11): the client polls with its device code or `auth_req_id` until the user has decided
//! elsewhere; the tokens are issued once.

use super::issue::{Grant, active_user, issue};
use super::{TokenResponse, invalid_grant, required};
use crate::crypto;
use crate::http::{SharedState, reply};
use crate::jose::dpop::Proof;
use crate::model::{Client, DecoupledPoll, UserDecision};
use crate::protocol::{ErrorCode, OAuthError, Params};
use crate::store::Spent;

/// RFC 8628 3.5, CIBA 11: seconds added to the interval of a client that polls too fast.
const SLOW_DOWN_BY: i64 = 5;

pub(super) async fn exchange(
    state: &SharedState,
    client: &Client,
    params: &Params,
    proof: Option<&Proof>,
    code_param: &'static str,
) -> Result<TokenResponse, OAuthError> {
    let hash = crypto::token_hash(required(params, code_param)?);
    let poll = state.store.poll_decoupled_authorization(&hash, &client.id, state.now(), SLOW_DOWN_BY).await;
    let device = match poll.map_err(reply::internal)? {
        DecoupledPoll::Waiting(device) => device,
        DecoupledPoll::Unknown => return Err(invalid_grant("the code is invalid or was used")),
        DecoupledPoll::Expired => return Err(OAuthError::new(ErrorCode::ExpiredToken, "the code has expired")),
        DecoupledPoll::SlowDown => {
            return Err(OAuthError::new(ErrorCode::SlowDown, "polling too fast: wait 5 seconds longer between polls"));
        }
    };
    match &device.decision {
        UserDecision::Pending => Err(OAuthError::new(ErrorCode::AuthorizationPending, "the user has not finished yet")),
        UserDecision::Denied => Err(OAuthError::new(ErrorCode::AccessDenied, "the user denied the request")),
        UserDecision::Approved { user_id, auth } => {
            let user = active_user(state, user_id).await?;
            let grant = Grant {
                user: &user,
                scope: device.scope.clone(),
                id: &device.grant_id,
                auth,
                nonce: None,
                claims: None,
                resources: None,
            };
            let spent = Spent::Decoupled(&hash);
            issue(state, client, grant, device.scope.clone(), spent, proof, params.get("resource")).await
        }
    }
}
