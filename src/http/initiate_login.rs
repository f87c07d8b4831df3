//! Third-party initiated login (Core 4): the OP sends the browser to a client's registered
//! `initiate_login_uri` with `iss`, and the `login_hint` and `target_link_uri` it was given, so that the
//! client starts an authentication request of its own (for example from a list of the user's apps).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{SharedState, reply};
use crate::model::ClientId;
use crate::protocol::OAuthError;

/// The longest `login_hint` or `target_link_uri` passed on.
const MAX_HINT_LEN: usize = 2048;

#[derive(Deserialize)]
pub struct InitiateQuery {
    login_hint: Option<String>,
    target_link_uri: Option<String>,
}

pub async fn initiate_login(
    State(state): State<SharedState>,
    Path(client_id): Path<String>,
    Query(q): Query<InitiateQuery>,
) -> Response {
    let not_found = || {
        let mut page = reply::error_page(
            &state,
            &OAuthError::invalid_request("no application with third-party initiated login by that name"),
        );
        *page.status_mut() = StatusCode::NOT_FOUND;
        page
    };
    let Ok(client_id) = client_id.parse::<ClientId>() else { return not_found() };
    let client = match state.client(&client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return not_found(),
        Err(e) => return reply::error_page(&state, &reply::internal(e)),
    };
    let Some(initiate) = client.metadata.initiate_login_uri.as_deref() else { return not_found() };
    if [&q.login_hint, &q.target_link_uri].iter().any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_HINT_LEN)) {
        return reply::error_page(&state, &OAuthError::invalid_request("login_hint or target_link_uri is too long"));
    }
    // Only the hint given in the request is passed on: any client with an initiate_login_uri could send
    // the browser here, so the signed-in user's name must not be (it would tell who is signed in).
    let login_hint = q.login_hint;
    let mut url = match url::Url::parse(initiate) {
        Ok(url) => url,
        Err(_) => return not_found(),
    };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("iss", &state.config.issuer);
        if let Some(hint) = &login_hint {
            query.append_pair("login_hint", hint);
        }
        if let Some(target) = &q.target_link_uri {
            query.append_pair("target_link_uri", target);
        }
    }
    reply::see_other(url.as_str())
}
