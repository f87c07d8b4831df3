//! The device authorization grant at the token endpoint (RFC 8628 3.4, 3.5): the device polls with its
//! device code until the user has decided on another device; the tokens are issued once.

use super::issue::{Grant, active_user, issue};
use super::{TokenResponse, invalid_grant, required};
use crate::crypto;
use crate::http::{SharedState, reply};
use crate::jose::dpop::Proof;
use crate::model::{Client, DeviceDecision, DevicePoll};
use crate::protocol::{ErrorCode, OAuthError, Params};
use crate::store::Spent;

/// RFC 8628 3.5: seconds added to the interval of a device that polls too fast.
const SLOW_DOWN_BY: i64 = 5;

pub(super) async fn exchange(
    state: &SharedState,
    client: &Client,
    params: &Params,
    proof: Option<&Proof>,
) -> Result<TokenResponse, OAuthError> {
    let hash = crypto::token_hash(required(params, "device_code")?);
    let poll = state.store.poll_device_authorization(&hash, &client.id, state.now(), SLOW_DOWN_BY).await;
    let device = match poll.map_err(reply::internal)? {
        DevicePoll::Waiting(device) => device,
        DevicePoll::Unknown => return Err(invalid_grant("device_code is invalid or was used")),
        DevicePoll::Expired => return Err(OAuthError::new(ErrorCode::ExpiredToken, "the device code has expired")),
        DevicePoll::SlowDown => {
            return Err(OAuthError::new(ErrorCode::SlowDown, "polling too fast: wait 5 seconds longer between polls"));
        }
    };
    match &device.decision {
        DeviceDecision::Pending => {
            Err(OAuthError::new(ErrorCode::AuthorizationPending, "the user has not finished yet"))
        }
        DeviceDecision::Denied => Err(OAuthError::new(ErrorCode::AccessDenied, "the user denied the request")),
        DeviceDecision::Approved { user_id, auth } => {
            let user = active_user(state, user_id).await?;
            let grant = Grant {
                user: &user,
                scope: device.scope.clone(),
                id: &device.grant_id,
                auth,
                nonce: None,
                claims: None,
            };
            issue(state, client, grant, device.scope.clone(), Spent::DeviceCode(&hash), proof).await
        }
    }
}
