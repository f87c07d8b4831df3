//! End-users and the claims held about them (Core 5.1).

use serde_json::{Map, Value};

use super::Timestamp;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// The stable, never reassigned subject identifier (Core 2 `sub`).
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub phone_number: Option<String>,
    pub phone_number_verified: bool,
    /// Core 5.1.1 address claim, as a JSON object.
    pub address: Option<String>,
    /// Further claims by name: the rest of Core 5.1, language-tagged forms (Core 5.2, `name#fr`) and
    /// custom claims.
    pub claims: Map<String, Value>,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl User {
    /// A fresh subject identifier: random, so it reveals nothing and is never reassigned.
    pub fn new_id() -> String {
        crate::crypto::random_token()[..22].to_owned()
    }
}

/// A user's TOTP authenticator (RFC 6238).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    /// The shared secret, base32.
    pub secret: String,
    /// Set up: confirmed with a first code.
    pub confirmed: bool,
    /// The last time step whose code was accepted.
    pub last_step: i64,
}

/// A passkey (WebAuthn public key credential) of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// The credential id, base64url: how an authenticator names it.
    pub credential_id: String,
    pub user_id: String,
    /// What the user called it ("Laptop").
    pub name: String,
    /// The public key, its algorithm and signature counter, as the WebAuthn library serializes them.
    pub credential: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}
