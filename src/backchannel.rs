//! Back-Channel Logout delivery (Back-Channel Logout 1.0 2.5): every node works through the outbox
//! the store keeps. A logout only queues its notifications (in the transaction that ends the session),
//! so the user never waits on an RP; a node claims a few at a time (a lease: no other node takes them
//! meanwhile), POSTs each client a freshly signed Logout Token through the public-address-only fetcher
//! with a bounded timeout, and deletes it when delivered. Failures are tried again with exponential
//! backoff until `backchannel_logout_retry_period` has passed, then kept as undeliverable for the
//! operator (`oxid session notifications --undeliverable`) and counted in `/metrics`. A node that stops
//! mid-delivery loses nothing: its lease runs out and another node (or itself, restarted) delivers.

use std::time::Duration;

use crate::http::SharedState;
use crate::http::issuance::encrypt_to_client;
use crate::model::{Client, LogoutNotification};
use crate::protocol::logout::{LOGOUT_TOKEN_TYPE, LogoutTokenClaims, is_retryable_status, retry_delay};

/// How often a node looks for notifications queued elsewhere (other nodes, the command line) or due
/// for another attempt.
const POLL: Duration = Duration::from_secs(1);
/// Notifications one node claims at once.
const BATCH: u32 = 16;

/// Delivers notifications until the server stops: at once when a logout on this node queued some,
/// otherwise every `POLL`.
pub async fn deliver_continuously(state: SharedState) {
    loop {
        deliver_due(&state).await;
        tokio::select! {
            _ = state.logout_delivery.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Delivers what is due now, a batch at a time, each notification of a batch concurrently.
async fn deliver_due(state: &SharedState) {
    // Longer than an attempt can take, so that no other node starts the same one meanwhile.
    let lease = state.config.backchannel_logout_timeout as i64 + 30;
    loop {
        let claimed = match state.store.claim_logout_notifications(state.now(), lease, BATCH).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim logout notifications");
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        let full = claimed.len() == BATCH as usize;
        let mut attempts = tokio::task::JoinSet::new();
        for notification in claimed {
            let state = state.clone();
            attempts.spawn(async move { deliver(&state, notification).await });
        }
        attempts.join_all().await;
        if !full {
            return;
        }
    }
}

enum Outcome {
    Delivered,
    /// The client has no back-channel logout URI (any more): nothing to deliver.
    NotWanted,
    Failed {
        error: String,
        retryable: bool,
    },
}

async fn deliver(state: &SharedState, notification: LogoutNotification) {
    let outcome = attempt(state, &notification).await;
    let store = state.store.as_ref();
    let recorded = match outcome {
        Outcome::Delivered => {
            metrics::counter!("oxid_logout_notifications_delivered_total").increment(1);
            store.delete_logout_notification(notification.id).await
        }
        Outcome::NotWanted => store.delete_logout_notification(notification.id).await,
        Outcome::Failed { error, retryable } => {
            let now = state.now();
            let retry_at = now + retry_delay(notification.attempts);
            let retry = (retryable && retry_at <= notification.give_up_at).then_some(retry_at);
            if retry.is_none() {
                metrics::counter!("oxid_logout_notifications_undeliverable_total").increment(1);
                tracing::warn!(client_id = %notification.client_id, %error, "back-channel logout given up");
            } else {
                tracing::info!(client_id = %notification.client_id, %error, "back-channel logout failed; will retry");
            }
            store.logout_notification_failed(notification.id, retry, now, &error).await
        }
    };
    if let Err(e) = recorded {
        // The lease runs out and the notification is tried again.
        tracing::warn!(error = %e, "could not record a logout notification's outcome");
    }
}

async fn attempt(state: &SharedState, notification: &LogoutNotification) -> Outcome {
    let failed = |error: String, retryable: bool| Outcome::Failed { error, retryable };
    let client = match state.client(&notification.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return Outcome::NotWanted,
        Err(e) => return failed(format!("store: {e}"), true),
    };
    let Some(endpoint) = client.metadata.backchannel_logout.clone() else { return Outcome::NotWanted };
    let token = match logout_token(state, &client, notification).await {
        Ok(token) => token,
        Err(e) => return failed(e, true),
    };
    let timeout = Duration::from_secs(state.config.backchannel_logout_timeout);
    match state.fetcher.post_form(endpoint.uri.as_str(), &[("logout_token", &token)], timeout).await {
        Ok(()) => Outcome::Delivered,
        Err(crate::fetch::FetchError::Status(status)) => {
            failed(format!("the client answered {status}"), is_retryable_status(status))
        }
        Err(crate::fetch::FetchError::Refused(why)) => failed(why.to_owned(), false),
        Err(e) => failed(e.to_string(), true),
    }
}

/// A Logout Token for `client` (Back-Channel Logout 2.4), signed (and encrypted, when the client
/// registered ID Token encryption) as its ID Tokens are.
async fn logout_token(state: &SharedState, client: &Client, n: &LogoutNotification) -> Result<String, String> {
    let sub = state.subject(client, &n.user_id);
    let claims = LogoutTokenClaims::new(&state.config.issuer, client.id.as_str(), &sub, &n.sid, state.now());
    let alg = client.id_token_signed_response_alg;
    let signed = state.keys.get().sign_typed(alg, LOGOUT_TOKEN_TYPE, &claims).map_err(|e| format!("signing: {e}"))?;
    match client.metadata.id_token_encryption {
        Some(encryption) => encrypt_to_client(state, client, signed.as_bytes(), true, encryption)
            .await
            .map_err(|e| e.description.into_owned()),
        None => Ok(signed),
    }
}
