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
    /// When the key stops (or stopped) being the current key for its algorithm: the moment its
    /// successor activates. None while no successor exists.
    pub retired_at: Option<Timestamp>,
    /// When the key starts signing. It is published from the start, so that relying parties that cache
    /// the JWK Set know it before the first token it signs.
    pub activates_at: Timestamp,
}

/// How a new signing key takes over from the current one of its algorithm.
#[derive(Debug, Clone, Copy)]
pub enum KeySuccession<'a> {
    /// Only if the algorithm has no key yet (nodes starting together: the first one wins).
    First,
    /// From whatever key is current (an operator's rotation).
    Current,
    /// From exactly this key; nothing happens if it was replaced already (nodes rotating on a schedule:
    /// the first one wins).
    Key(&'a str),
}

impl SigningKey {
    /// Whether the key signs at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.activates_at <= now && self.retired_at.is_none_or(|r| r > now)
    }
}
