//! The OP's signing keys as stored.

use super::{SigningAlg, Timestamp};

/// A signing key. The private JWK stays in the store (the SQLite file is created mode 0600).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub private_jwk: String,
    pub public_jwk: String,
    pub created_at: Timestamp,
    /// When the key stopped being the current key for its algorithm; None while current.
    pub retired_at: Option<Timestamp>,
}
