//! Proof Key for Code Exchange (RFC 7636), S256 only: `plain` offers no protection against a leaked
//! authorization request (RFC 9700 2.1.1).

use crate::crypto;

/// RFC 7636 4.1/4.2: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn is_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A `code_challenge` for S256 must be the base64url of a SHA-256 digest: exactly 43 characters.
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && is_pkce_string(challenge)
}

/// RFC 7636 4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge, compared in constant time.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !is_pkce_string(verifier) {
        return false;
    }
    let computed = crypto::b64url(&crypto::sha256(verifier.as_bytes()));
    crypto::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_valid_s256_challenge(challenge));
        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX", challenge));
        assert!(!verify_s256("short", challenge));
    }
}
