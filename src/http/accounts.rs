//! Several accounts in one browser: the active session (the session cookie) and the other accounts
//! signed in on it (the accounts cookie), and the account chooser of `prompt=select_account`
//! (Core 3.1.2.1).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;

use super::authorize::{Stage, proceed};
use super::interaction::{PageQuery, Submitted, page_locale, submitted};
use super::params::RequestParams;
use super::{SharedState, cookies, reply};
use crate::crypto;
use crate::model::{BrowserSession, Display};
use crate::store::StoreError;

/// A session this browser holds, with the raw id its cookie carries.
pub(super) struct Account {
    pub raw_id: String,
    pub session: BrowserSession,
}

/// The live sessions of this browser: the active one first, then the others, most recently used first.
#[derive(Default)]
pub(super) struct BrowserAccounts {
    pub accounts: Vec<Account>,
}

impl BrowserAccounts {
    /// The browser's accounts whose sessions are still live (ended or expired ones drop out).
    pub async fn load(state: &SharedState, jar: &CookieJar) -> Result<Self, StoreError> {
        let now = state.now();
        let active = cookies::session_id(&state.config, jar);
        let mut accounts = Vec::new();
        for raw_id in active.into_iter().chain(cookies::other_session_ids(&state.config, jar)) {
            if let Some(session) = state.store.session(&crypto::token_hash(raw_id), now).await? {
                if !accounts.iter().any(|a: &Account| a.session.sid == session.sid) {
                    accounts.push(Account { raw_id: raw_id.to_owned(), session });
                }
            }
        }
        Ok(Self { accounts })
    }

    pub fn active(&self) -> Option<&BrowserSession> {
        self.accounts.first().map(|a| &a.session)
    }

    pub fn find(&self, sid: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.session.sid == sid)
    }

    /// Makes the account `sid` the active one; false if the browser holds no such account.
    pub fn activate(&mut self, sid: &str) -> bool {
        match self.accounts.iter().position(|a| a.session.sid == sid) {
            Some(i) => {
                let account = self.accounts.remove(i);
                self.accounts.insert(0, account);
                true
            }
            None => false,
        }
    }

    /// Removes the account of user `user_id`, if the browser holds one.
    pub fn take_user(&mut self, user_id: &str) -> Option<Account> {
        let i = self.accounts.iter().position(|a| a.session.user_id == user_id)?;
        Some(self.accounts.remove(i))
    }

    /// Adds a new active account; returns the least recent one that no longer fits, to be ended.
    pub fn push_active(&mut self, account: Account) -> Option<Account> {
        self.accounts.insert(0, account);
        (self.accounts.len() > 1 + cookies::MAX_OTHER_ACCOUNTS).then(|| self.accounts.pop()).flatten()
    }

    /// Drops the accounts whose sessions were ended.
    pub fn remove(&mut self, sids: &[&str]) {
        self.accounts.retain(|a| !sids.contains(&a.session.sid.as_str()));
    }

    /// The cookies that say what the browser now holds: its active session and OP browser state
    /// (Session Management 1.0 3), and the other accounts; all cleared when none is left.
    pub fn write(&self, state: &SharedState, jar: CookieJar) -> CookieJar {
        let config = &state.config;
        let Some((active, others)) = self.accounts.split_first() else {
            return jar
                .add(cookies::clear_session(config))
                .add(cookies::clear_browser_state(config))
                .add(cookies::accounts_cookie(config, &[]));
        };
        let others: Vec<&str> = others.iter().map(|a| a.raw_id.as_str()).collect();
        jar.add(cookies::session_cookie(config, active.raw_id.clone()))
            .add(cookies::browser_state_cookie(config, &state.browser_state(&active.session.sid)))
            .add(cookies::accounts_cookie(config, &others))
    }
}

/// The account chooser: the browser's accounts, the one named by `login_hint` preselected, and a way to
/// sign in with another.
pub async fn chooser_page(
    State(state): State<SharedState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<PageQuery>,
) -> Response {
    let (pending, request, client) = match super::authorize::load_pending(&state, &q.request).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let result: Result<Response, StoreError> = async {
        let browser = BrowserAccounts::load(&state, &jar).await?;
        if browser.accounts.is_empty() {
            // Signed out meanwhile: the decision asks for a login.
            return Ok(proceed(&state, &jar, &client, request, Stage::Waiting(&pending)).await);
        }
        let mut users = Vec::new();
        for account in &browser.accounts {
            if let Some(user) = state.store.user(&account.session.user_id).await? {
                users.push((account.session.sid.as_str(), user.username));
            }
        }
        // login_hint names the account to preselect; else the active one is.
        let preselected =
            users.iter().position(|(_, name)| request.login_hint.as_deref() == Some(name.as_str())).unwrap_or(0);
        let accounts: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, (sid, username))| context! { sid => *sid, username, preselected => i == preselected })
            .collect();
        let locale = page_locale(&state, &request, &headers);
        let (jar, csrf_token) = cookies::csrf_form_token(&state.config, &state.csrf_key, jar, &q.request);
        let ctx = context! {
            client_name => &client.name,
            accounts,
            request_id => &q.request,
            csrf_token,
            t => locale.messages(),
            lang => &locale.tag,
            display => request.display.map(Display::as_str),
        };
        Ok((jar, reply::page(&state, StatusCode::OK, "select_account.html", ctx)).into_response())
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page(&state, &reply::internal(e)))
}

/// The user's pick: an account of this browser becomes the active one and the flow goes on with it;
/// "another account" goes to the login form.
pub async fn choose(
    State(state): State<SharedState>,
    jar: CookieJar,
    RequestParams(params): RequestParams,
) -> Response {
    let Submitted { params, pending, request, client } = match submitted(&state, &jar, params).await {
        Ok(submission) => submission,
        Err(response) => return response,
    };
    let result: Result<Response, StoreError> = async {
        let login = format!("/login?request={}", pending.id);
        let Some(sid) = params.get("sid") else { return Ok(reply::see_other_within(&state, &login)) };
        let mut browser = BrowserAccounts::load(&state, &jar).await?;
        if !browser.activate(sid) {
            // Not (or no longer) signed in on this browser: choose again, or sign in.
            return Ok(proceed(&state, &jar, &client, request, Stage::Waiting(&pending)).await);
        }
        state.store.choose_account(&pending.id, sid).await?;
        let jar = browser.write(&state, jar);
        let resume = format!("/authorize/resume?request={}", pending.id);
        Ok((jar, reply::see_other_within(&state, &resume)).into_response())
    }
    .await;
    result.unwrap_or_else(|e| reply::error_page(&state, &reply::internal(e)))
}
