//! Browser sessions, how the user authenticated, and authorization requests waiting for the user.

use serde::{Deserialize, Serialize};

use super::{ClientId, Timestamp};

/// A signed-in browser (server side; the cookie holds a random id whose hash is `id_hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub id_hash: String,
    /// The session id given to RPs in the `sid` claim (Front-Channel Logout 1.0 / Back-Channel 2.1).
    pub sid: String,
    pub user_id: String,
    pub auth_time: Timestamp,
    pub amr: Vec<String>,
    pub acr: String,
    pub expires_at: Timestamp,
    /// Where and on what the user signed in, for the account page's list of sessions.
    pub device: Device,
}

/// How the user signed in; what `amr` (RFC 8176) says and which `acr` level it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    Password,
    /// A password, then an authenticator's one-time code (or a recovery code).
    PasswordAndCode,
    /// A password, then a passkey.
    PasswordAndPasskey,
    /// A passkey alone, with user verification (a PIN or biometric on the authenticator).
    Passkey,
}

impl LoginMethod {
    /// RFC 8176 values: `pwd` a password, `otp` a one-time code, `hwk` proof of possession of a key
    /// held by an authenticator, `user` the user-presence test, `mfa` more than one factor (a passkey
    /// with user verification is the key plus a PIN or biometric).
    pub fn amr(self) -> Vec<String> {
        let values: &[&str] = match self {
            LoginMethod::Password => &["pwd"],
            LoginMethod::PasswordAndCode => &["pwd", "otp", "mfa"],
            LoginMethod::PasswordAndPasskey => &["pwd", "hwk", "user", "mfa"],
            LoginMethod::Passkey => &["hwk", "user", "mfa"],
        };
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    /// More than one factor.
    pub fn is_multi_factor(self) -> bool {
        self != LoginMethod::Password
    }

    /// A passkey took part: phishing-resistant (the authenticator signs for this origin only).
    pub fn is_phishing_resistant(self) -> bool {
        matches!(self, LoginMethod::PasswordAndPasskey | LoginMethod::Passkey)
    }
}

/// The address and browser a session was started from (shown to the user, never used to decide).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A session that ended, and the clients signed in through it (Back-Channel Logout 2.3: the OP
/// remembers them, to tell each one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    pub sid: String,
    pub user_id: String,
    pub clients: Vec<ClientId>,
}

/// A Back-Channel Logout notification (Back-Channel Logout 2.5) waiting in the outbox: the Logout
/// Token is made when it is sent, for the client as it is then registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutNotification {
    pub id: i64,
    pub client_id: ClientId,
    pub user_id: String,
    pub sid: String,
    pub created_at: Timestamp,
    /// Attempts made so far.
    pub attempts: u32,
    /// After this no further attempt is made.
    pub give_up_at: Timestamp,
    /// When it was given up (undeliverable); None while it is still being tried.
    pub failed_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// How and when the user authenticated, carried from the browser session into the code and every
/// token of the grant (Core 2: `auth_time`, `acr`, `amr`; `sid` for logout).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Authentication {
    pub sid: String,
    pub auth_time: Timestamp,
    pub amr: Vec<String>,
    pub acr: String,
}

impl BrowserSession {
    pub fn authentication(&self) -> Authentication {
        Authentication {
            sid: self.sid.clone(),
            auth_time: self.auth_time,
            amr: self.amr.clone(),
            acr: self.acr.clone(),
        }
    }
}

/// An authorization request waiting for the user (login or consent), stored so that any node can
/// continue it.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    pub id: String,
    pub client_id: ClientId,
    /// The validated request, serialized by the protocol layer.
    pub request_json: String,
    /// The `sid` of a session created by a login during this flow.
    pub login_sid: Option<String>,
    /// The `sid` of the account chosen on the account chooser during this flow (`prompt=select_account`).
    pub chosen_sid: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}
