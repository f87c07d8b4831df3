//! JOSE: the OP's signing keys and verification of client-signed JWTs, over josekit (OpenSSL).

pub mod assertion;
pub mod client_keys;
pub mod decryption;
pub mod dpop;
pub mod encryption;
pub mod keys;
pub mod request_object;

pub use keys::{KeyRing, Shared, SharedKeyRing};
