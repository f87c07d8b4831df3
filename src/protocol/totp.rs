//! TOTP (RFC 6238) as authenticator apps use it: HMAC-SHA1, six digits, 30-second steps, and a window of
//! one step either side for clocks that differ. Which step matched is returned so that the caller can
//! accept each step's code once.

use totp_rs::{Algorithm, Secret, TOTP};

use crate::crypto;
use crate::model::Timestamp;

const STEP_SECONDS: u64 = 30;
const DIGITS: usize = 6;

fn totp(secret: &str, issuer: &str, account: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret.to_owned()).to_bytes().ok()?;
    // `new_unchecked`: RFC 4226's 128-bit minimum holds for secrets made by `new_secret` (160 bits);
    // the checked constructor would also refuse issuers and accounts containing ':'.
    Some(TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECONDS,
        bytes,
        Some(issuer.to_owned()),
        account.to_owned(),
    ))
}

/// A new shared secret (160 random bits, RFC 4226 4), base32 as apps expect it.
pub fn new_secret() -> String {
    Secret::Raw(crypto::random_bytes::<20>().to_vec()).to_encoded().to_string()
}

/// The `otpauth://` URI an app scans to set itself up.
pub fn provisioning_uri(secret: &str, issuer: &str, account: &str) -> Option<String> {
    Some(totp(secret, issuer, account)?.get_url())
}

/// The time step whose code `code` is, within one step of `now`; None if it is none of them.
pub fn matching_step(secret: &str, code: &str, now: Timestamp) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, "", "")?;
    let current = u64::try_from(now).ok()? / STEP_SECONDS;
    [current.checked_sub(1), Some(current), Some(current + 1)].into_iter().flatten().find_map(|step| {
        let expected = totp.generate(step * STEP_SECONDS);
        crypto::constant_time_eq(expected.as_bytes(), code.as_bytes()).then(|| i64::try_from(step).ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_appendix_b_and_the_window() {
        // RFC 6238 Appendix B's SHA-1 secret ("12345678901234567890") and its 8-digit values, cut to 6.
        let secret = Secret::Raw(b"12345678901234567890".to_vec()).to_encoded().to_string();
        assert_eq!(matching_step(&secret, "287082", 59), Some(1), "94287082 at T=59");
        assert_eq!(matching_step(&secret, "081804", 1111111109), Some(1111111109 / 30), "07081804");
        // One step early or late is accepted; two are not.
        assert_eq!(matching_step(&secret, "081804", 1111111109 + 30), Some(1111111109 / 30));
        assert_eq!(matching_step(&secret, "081804", 1111111109 + 60), None);
        assert_eq!(matching_step(&secret, "08180", 1111111109), None);
        assert_eq!(matching_step(&secret, "abcdef", 1111111109), None);
        let uri = provisioning_uri(&new_secret(), "oxid", "alice").unwrap();
        assert!(uri.starts_with("otpauth://totp/oxid:alice?secret="), "{uri}");
    }
}
