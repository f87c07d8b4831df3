//! Small cryptographic helpers over OpenSSL, the backend josekit already links (one crypto library,
//! not two): random tokens, digests, constant-time comparison.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::hash::{MessageDigest, hash};

/// A fresh random token of 256 bits, base64url without padding (RFC 9700 4.x: unguessable values).
pub fn random_token() -> String {
    let mut buf = [0u8; 32];
    openssl::rand::rand_bytes(&mut buf).expect("the OpenSSL CSPRNG is available");
    URL_SAFE_NO_PAD.encode(buf)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = hash(MessageDigest::sha256(), data).expect("SHA-256 is available");
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    out
}

pub fn sha512(data: &[u8]) -> Vec<u8> {
    hash(MessageDigest::sha512(), data).expect("SHA-512 is available").to_vec()
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// The form in which bearer secrets (codes, tokens, session ids, client secrets) are stored: a
/// SHA-256 digest. These values carry 256 bits of entropy, so a fast hash suffices and keeps the token
/// endpoint fast; a database leak reveals no usable token.
pub fn token_hash(token: &str) -> String {
    b64url(&sha256(token.as_bytes()))
}

/// Compares two secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// HMAC-SHA256, used to bind a CSRF token to a browser cookie and a flow.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let pkey = openssl::pkey::PKey::hmac(key).expect("HMAC key");
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &pkey).expect("HMAC signer");
    signer.update(msg).expect("HMAC update");
    signer.sign_to_vec().expect("HMAC sign")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_url_safe() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn constant_time_eq_handles_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
