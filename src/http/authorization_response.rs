//! What the authorization endpoint issues once the user has approved a request: a code, an access token
//! and/or an ID Token, as the response type asks (Core 3.1.2.5, 3.2.2.5, 3.3.2.5).

use axum::response::Response;

use super::issuance::{self, IdTokenContents};
use super::{SharedState, reply};
use crate::crypto;
use crate::model::{BrowserSession, Client, CodeGrant, Consent};
use crate::protocol::authorize::AuthorizationRequest;
use crate::protocol::{ErrorCode, OAuthError};
use crate::protocol::{claims, logout};
use crate::store::{Approval, SessionGrant, StoreError};

/// What else the approval completes, written in the same transaction as what it issues.
#[derive(Default)]
pub(super) struct Completing<'a> {
    /// Consent the user just gave, to remember.
    pub consent: Option<&'a Consent>,
    /// The flow the request waited in.
    pub pending_id: Option<&'a str>,
}

/// Answers a request the user has approved (Core 3.1.2.5, 3.2.2.5, 3.3.2.5): a code, an access
/// token and/or an ID Token as the response type asks, with `state` and `iss` (RFC 9207). Everything
/// issued here shares one grant id, so a replayed code revokes it all.
pub(super) async fn issue(
    state: &SharedState,
    client: &Client,
    request: &AuthorizationRequest,
    session: &BrowserSession,
    completing: Completing<'_>,
) -> Result<Response, StoreError> {
    match authorization_response_params(state, client, request, session, completing).await {
        Ok(params) => {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Ok(reply::authorization_response(state, &request.redirect_uri, request.response_mode, &params))
        }
        Err(IssueError::Store(e)) => Err(e),
        Err(IssueError::OAuth(e)) => Ok(reply::error_redirect(state, &request.error(e))),
    }
}

enum IssueError {
    Store(StoreError),
    OAuth(OAuthError),
}

impl From<StoreError> for IssueError {
    fn from(e: StoreError) -> Self {
        IssueError::Store(e)
    }
}

impl From<OAuthError> for IssueError {
    fn from(e: OAuthError) -> Self {
        IssueError::OAuth(e)
    }
}

async fn authorization_response_params(
    state: &SharedState,
    client: &Client,
    request: &AuthorizationRequest,
    session: &BrowserSession,
    completing: Completing<'_>,
) -> Result<Vec<(&'static str, String)>, IssueError> {
    let response_type = request.response_type;
    let grant_id = crypto::ordered_token();
    let auth = session.authentication();
    let mut params = Vec::new();

    let code = response_type.has_code().then(|| {
        let code = crypto::ordered_token();
        let grant = CodeGrant {
            client_id: request.client_id.clone(),
            user_id: session.user_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            claims: request.claims.clone(),
            auth: auth.clone(),
            grant_id: grant_id.clone(),
            expires_at: state.now() + state.config.code_lifetime as i64,
            dpop_jkt: request.dpop_jkt.clone(),
            resources: request.resources.clone(),
        };
        (crypto::token_hash(&code), grant, code)
    });

    let access_token = response_type.has_token().then(|| {
        let record = issuance::access_token(
            state,
            client,
            Some(&session.user_id),
            request.scope.clone(),
            Some(&grant_id),
            request.claims.as_ref(),
        );
        let token = issuance::opaque_token(&record);
        (crypto::token_hash(&token), record, token)
    });
    if access_token.is_some() {
        params.push(("token_type", "Bearer".to_owned()));
        params.push(("expires_in", state.config.access_token_lifetime.to_string()));
    }

    if response_type.has_id_token() {
        let user = match state.store.user(&session.user_id).await? {
            Some(user) if !user.disabled => user,
            _ => return Err(OAuthError::new(ErrorCode::LoginRequired, "the user is no longer active").into()),
        };
        // Core 5.4: without an access token there is no UserInfo call, so the scopes' claims go here;
        // Core 5.5: plus those the claims parameter asks for in the ID Token.
        let by_scope =
            access_token.is_none().then(|| state.scope_claims.claims_for(&request.scope)).into_iter().flatten();
        let claims = claims::id_token_claims(&user, by_scope, request.claims.as_ref());
        let contents = IdTokenContents {
            auth: &auth,
            nonce: request.nonce.as_deref(),
            access_token: access_token.as_ref().map(|(_, _, token)| token.as_str()),
            code: code.as_ref().map(|(_, _, code)| code.as_str()),
            claims,
        };
        params.push(("id_token", issuance::id_token(state, client, &user, contents).await?));
    }
    // Everything is written at once, before the browser is sent on with it.
    let approval = Approval {
        user_id: &session.user_id,
        client_id: &client.id,
        session: SessionGrant {
            sid: &session.sid,
            grant_id: &grant_id,
            offline: request.scope.contains("offline_access"),
        },
        consent: completing.consent,
        pending_id: completing.pending_id,
        code: code.as_ref().map(|(hash, grant, _)| (hash.as_str(), grant)),
        access_token: access_token.as_ref().map(|(hash, record, _)| (hash.as_str(), record)),
    };
    state.store.approve(&approval).await?;
    if let Some((_, _, code)) = code {
        params.push(("code", code));
    }
    if let Some((_, _, token)) = access_token {
        params.push(("access_token", token));
    }
    if let Some(s) = &request.state {
        params.push(("state", s.clone()));
    }
    // Session Management 1.0 3: what the RP's check_session_iframe calls compare against.
    let salt = crypto::random_token()[..16].to_owned();
    let origin = logout::origin_of(&request.redirect_uri);
    let browser_state = state.browser_state(&session.sid);
    params.push(("session_state", logout::session_state(client.id.as_str(), &origin, &browser_state, &salt)));
    Ok(params)
}
