//! The domain vocabulary every layer shares: protocol values (client ids, scopes, redirect URIs, grant
//! and response types), clients, users, sessions, consents, grants, codes, tokens, keys and time.
//!
//! Plain data and the invariants of its construction, with no I/O: `protocol` (the rules), `jose`,
//! `store` and `http` all build on it, and it depends on none of them.

mod audit;
mod claims_request;
mod client;
mod grant;
mod key;
mod session;
mod time;
mod user;
mod username;
mod vocabulary;

pub use audit::{AuditEvent, AuditKind};
pub use claims_request::{ClaimRequest, ClaimsRequest, RESERVED_CLAIMS};
pub use client::{
    CibaDelivery, Client, ClientMetadata, ClientOrigin, ClientPresentation, InitialAccessToken, Localized, LogoutUri,
    localized,
};
pub use grant::{
    AccessToken, CodeGrant, Consent, ConsentedApp, DecoupledAuthorization, DecoupledPoll, Issuance, Lookup, Ping,
    RefreshToken, ResourceServer, TokenFormat, UserDecision,
};
pub use key::{KeySuccession, SigningKey};
pub use session::{
    Authentication, BrowserSession, Device, EndedSession, LoginMethod, LogoutNotification, PendingAuthorization,
};
pub use time::{Clock, Timestamp, now};
pub use user::{StoredPasskey, Totp, User};
pub use username::{canonical_username, new_username};
pub use vocabulary::*;
