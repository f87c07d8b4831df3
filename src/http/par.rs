//! Pushed Authorization Requests (RFC 9126): the client sends its authorization request straight to
//! the OP (authenticated, request objects allowed) and gets a one-time `request_uri` to send the browser
//! with; the authorization endpoint then uses the pushed parameters, on whichever node it runs.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::params::RequestParams;
use super::{SharedState, client_auth, reply, request_object};
use crate::crypto;
use crate::model::Client;
use crate::protocol::authorize::{self, Policy, Rejection};
use crate::protocol::{ErrorCode, OAuthError, Params};

/// RFC 9126 2.2: the `request_uri` scheme of pushed requests.
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Seconds a pushed request stays usable (RFC 9126 2.2: short-lived; the browser goes there at once).
const LIFETIME: i64 = 60;

/// The error of a rejected request, as the pushed-request endpoint answers it (JSON, RFC 9126 2.3).
fn rejection_error(rejection: Rejection) -> OAuthError {
    match rejection {
        Rejection::UnknownClient => OAuthError::invalid_request("unknown client_id"),
        Rejection::Page(e) => e,
        Rejection::Redirect(r) => r.error,
    }
}

/// The policy requests are validated under, here and at the authorization endpoint.
pub(super) fn policy(state: &SharedState) -> Policy<'_> {
    Policy {
        require_pkce_for_all_clients: state.config.require_pkce_for_all_clients,
        scopes: &state.scope_claims,
        self_registration: state.config.self_registration,
        acr: &state.config.password_acr,
        mfa_acr: &state.config.mfa_acr,
        phishing_resistant_acr: state.passkeys.as_ref().map(|_| state.config.phishing_resistant_acr.as_str()),
        second_factor_required: state.config.require_second_factor,
        passkey_required: state.config.require_passkey,
        second_factor_enrolment: state.config.second_factor_enrolment,
    }
}

/// `POST /par` (RFC 9126 2).
pub async fn push(
    State(state): State<SharedState>,
    headers: HeaderMap,
    RequestParams(params): RequestParams,
) -> Response {
    let result: Result<Response, OAuthError> = async {
        let params = params?;
        let client = client_auth::authenticate(&state, &headers, &params).await?;
        // RFC 9126 2.1: a pushed request cannot itself point elsewhere.
        if params.contains("request_uri") {
            return Err(OAuthError::invalid_request("request_uri cannot be pushed"));
        }
        if params.get("client_id").is_some_and(|id| id != client.id.as_str()) {
            return Err(OAuthError::invalid_request("client_id is not the authenticated client"));
        }
        let params =
            request_object::with_request_object(&state, params, Some(&client)).await.map_err(rejection_error)?;
        let keys = state.keys.get();
        let verify_hint = |hint: &str| super::authorize::hinted_subject(&keys, &state.config.issuer, hint);
        // Checked now, so the client hears of a bad request at once (RFC 9126 2.3); and again when used.
        let mut request =
            authorize::validate(&params, Some(&client), policy(&state), verify_hint).map_err(rejection_error)?;
        super::issuance::resolve_resources(&state, &params, &mut request).await?;
        let reference = crypto::random_token();
        let params_json = serde_json::to_string(&params).expect("parameters serialize");
        let expires_at = state.now() + LIFETIME;
        state
            .store
            .push_request(&crypto::token_hash(&reference), &client.id, &params_json, expires_at)
            .await
            .map_err(reply::internal)?;
        let body = json!({"request_uri": format!("{REQUEST_URI_PREFIX}{reference}"), "expires_in": LIFETIME});
        Ok((StatusCode::CREATED, reply::json_no_store(body)).into_response())
    }
    .await;
    result.unwrap_or_else(|e| reply::json_error(&e))
}

/// At the authorization endpoint: the parameters of the pushed request `params` names (RFC 9126 4:
/// they replace the query's), taken once; `None` when the request was not pushed. Refused when the
/// client or the OP requires pushed requests (RFC 9126 5, 6).
pub(super) async fn pushed_params(
    state: &SharedState,
    params: &Params,
    client: &Client,
) -> Result<Option<Params>, Rejection> {
    let Some(reference) = params.get("request_uri").and_then(|uri| uri.strip_prefix(REQUEST_URI_PREFIX)) else {
        if state.config.require_pushed_authorization_requests || client.metadata.require_pushed_authorization_requests {
            let e = OAuthError::invalid_request("authorization requests of this client must be pushed first (PAR)");
            return Err(authorize::reject(params, Some(client), e));
        }
        return Ok(None);
    };
    let gone = || {
        Rejection::Page(OAuthError::new(
            ErrorCode::InvalidRequestUri,
            "request_uri is unknown, expired or already used; the application must push the request again",
        ))
    };
    let taken = state
        .store
        .take_pushed_request(&crypto::token_hash(reference), state.now())
        .await
        .map_err(|e| Rejection::Page(reply::internal(e)))?;
    match taken {
        Some((pushed_by, json)) if pushed_by == client.id => serde_json::from_str(&json).map(Some).map_err(|_| gone()),
        // Another client's reference: refused (and spent, so it cannot be probed).
        _ => Err(gone()),
    }
}
