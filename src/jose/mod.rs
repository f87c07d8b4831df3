//! JOSE: the OP's signing keys and verification of client-signed JWTs, over josekit (OpenSSL).

pub mod assertion;
pub mod keys;

pub use keys::{KeyRing, SharedKeyRing};
