//! Security events recorded for operators (the audit log). Names and ids only, never a secret.

use super::Timestamp;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    SignedUp,
    ConsentGiven,
    /// The user revoked an app's access on their account page.
    ConsentRevoked,
    /// A reused code or refresh token revoked every token of its grant.
    GrantRevokedOnReuse,
    UserChanged,
    ClientChanged,
    KeyRotated,
    /// A session ended: logout at the OP, or an operator's command.
    SessionEnded,
}

impl AuditKind {
    pub const ALL: [AuditKind; 11] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginThrottled,
        Self::SignedUp,
        Self::ConsentGiven,
        Self::ConsentRevoked,
        Self::GrantRevokedOnReuse,
        Self::UserChanged,
        Self::ClientChanged,
        Self::KeyRotated,
        Self::SessionEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::SignedUp => "signed_up",
            Self::ConsentGiven => "consent_given",
            Self::ConsentRevoked => "consent_revoked",
            Self::GrantRevokedOnReuse => "grant_revoked_on_reuse",
            Self::UserChanged => "user_changed",
            Self::ClientChanged => "client_changed",
            Self::KeyRotated => "key_rotated",
            Self::SessionEnded => "session_ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One event. `detail` says what, in words (a reason, the scopes consented to, the command run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
    pub kind: AuditKind,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

impl AuditEvent {
    pub fn new(at: Timestamp, kind: AuditKind, detail: impl Into<String>) -> Self {
        Self { at, kind, user_id: None, username: None, client_id: None, ip: None, detail: detail.into() }
    }

    pub fn user(mut self, id: Option<&str>, username: Option<&str>) -> Self {
        self.user_id = id.map(str::to_owned);
        self.username = username.map(str::to_owned);
        self
    }

    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }

    pub fn ip(mut self, ip: impl ToString) -> Self {
        self.ip = Some(ip.to_string());
        self
    }
}
