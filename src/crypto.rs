//! Small cryptographic helpers: random tokens (from the kernel's CSPRNG), digests and HMAC (RustCrypto),
//! constant-time comparison.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A fresh random token of 256 bits, base64url without padding (RFC 9700 4.x: unguessable values).
pub fn random_token() -> String {
    random_b64url::<32>()
}

/// Length of the time prefix of an `ordered_token`: milliseconds since 1970 in lowercase hex (enough
/// until the year 10889).
const ORDER_PREFIX_LEN: usize = 12;

/// A fresh random token of 256 bits after a prefix that orders it by issuing time: the millisecond in
/// lowercase hex (which sorts the same under every collation). For the values written at request rate
/// (codes, refresh tokens, grant ids): their keys in the store then sort by time, so a new row lands at
/// the right edge of each index instead of on a random page, which halves what a commit writes and
/// keeps index pages full. The prefix says only when the token was issued.
pub fn ordered_token() -> String {
    token_after(unix_millis())
}

/// An `ordered_token` whose prefix is the millisecond it expires instead (`expires_at`, in seconds, with
/// the current millisecond within the second, so tokens issued in one second still sort by issuing time).
/// For access tokens: stored in expiry order, the expired ones are a range at the start of the key, which
/// the sweeper deletes without an expiry index (SQLite). The prefix says only what `expires_in` says.
pub fn expiring_token(expires_at: i64) -> String {
    let millis = expires_at.max(0) as u128 * 1000 + unix_millis() % 1000;
    token_after(millis)
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn token_after(millis: u128) -> String {
    let mut token = format!("{millis:0width$x}", width = ORDER_PREFIX_LEN);
    token.truncate(ORDER_PREFIX_LEN);
    URL_SAFE_NO_PAD.encode_string(random_bytes::<32>(), &mut token);
    token
}

/// The time prefix of an `ordered_token`, if `token` has that shape.
fn order_prefix(token: &str) -> Option<&str> {
    let (prefix, rest) = token.split_at_checked(ORDER_PREFIX_LEN)?;
    let is_prefix = prefix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (is_prefix && is_token_shaped(rest)).then_some(prefix)
}

/// A fresh client secret of 512 bits (86 characters): long enough for every HMAC algorithm the OP
/// advertises for `client_secret_jwt` (RFC 7518 3.2: HS512 needs a key of at least 64 bytes).
pub fn random_client_secret() -> String {
    random_b64url::<64>()
}

/// Whether `s` has the shape of a `random_token`: 43 base64url characters. Checked before such a value
/// from a request is used as a key anywhere.
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `N` random bytes from the kernel's CSPRNG (`getrandom(2)`). Not OpenSSL's `RAND_bytes`: its DRBG
/// takes locks and re-keys its cipher on every call, several times the cost of the system call (1.7 %
/// of a code flow's CPU, for three tokens).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the kernel's CSPRNG is available");
    buf
}

fn random_b64url<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<N>())
}

// RustCrypto's SHA-2 (SHA-NI where the CPU has it). Not OpenSSL's: with OpenSSL 3 even its one-shot
// `SHA256()` looks the algorithm up in the provider on every call (`EVP_Q_digest`), which cost more than
// hashing a token (1.5 % of a code flow's CPU; a refresh hashes four).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn sha512(data: &[u8]) -> [u8; 64] {
    Sha512::digest(data).into()
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// The form in which bearer secrets (codes, tokens, session ids, client secrets) are stored: a
/// SHA-256 digest. These values carry 256 bits of entropy, so a fast hash suffices and keeps the token
/// endpoint fast; a database leak reveals no usable token. An `ordered_token` keeps its time prefix in
/// front of the digest, so its stored form sorts by issuing time too.
///
/// A JWT whose `jti` is an `ordered_token` (a JWT access token, RFC 9068) takes that `jti`'s prefix, so
/// it is stored in time order like an opaque token. The `jti` is read without verifying the signature:
/// the digest after it covers the whole JWT, so a forged one still finds nothing.
pub fn token_hash(token: &str) -> String {
    let digest = sha256(token.as_bytes());
    let jti;
    let prefix = match order_prefix(token) {
        Some(prefix) => Some(prefix),
        None => {
            jti = jwt_id(token);
            jti.as_deref().and_then(order_prefix)
        }
    };
    match prefix {
        Some(prefix) => {
            let mut stored = prefix.to_owned();
            URL_SAFE_NO_PAD.encode_string(digest, &mut stored);
            stored
        }
        None => b64url(&digest),
    }
}

/// The parts of a `token_hash` of an ordered token: its millisecond and its SHA-256 digest. None for a
/// bare digest.
pub fn ordered_hash_parts(stored: &str) -> Option<(u64, [u8; 32])> {
    // The stored form has an ordered token's shape: the time prefix, then 43 base64url characters.
    let prefix = order_prefix(stored)?;
    let millis = u64::from_str_radix(prefix, 16).ok()?;
    // 43 characters decode to 32 bytes; the engine asks room for its estimate of 33.
    let mut buf = [0u8; 33];
    let len = URL_SAFE_NO_PAD.decode_slice(&stored[ORDER_PREFIX_LEN..], &mut buf).ok()?;
    (len == 32).then(|| (millis, buf[..32].try_into().expect("32 bytes")))
}

/// The `jti` claim of a JWS in compact form, read without verifying anything: for finding a JWT the OP
/// issued itself (it is then looked up by its digest).
pub fn jwt_id(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Claims {
        jti: Option<String>,
    }
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    serde_json::from_slice::<Claims>(&b64url_decode(payload)?).ok()?.jti
}

/// Compares two secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// The hash functions HMAC is used with (RFC 7518 3.2: HS256, HS384, HS512).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacHash {
    Sha256,
    Sha384,
    Sha512,
}

impl HmacHash {
    /// The output size in bytes, which is also the least key size RFC 7518 3.2 allows.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// HMAC (RFC 2104) of `msg` under `key`; any key length, an empty one padded with zeros like every short
/// key (RFC 2104 2). RustCrypto's HMAC rather than OpenSSL's: OpenSSL 3 looks up the MAC and digest
/// in its provider and wraps the key in a new EVP_PKEY on every call, several times the cost of the
/// hashing for the short messages here (cookies, CSRF values, mailed links; issue 12).
pub fn hmac(hash: HmacHash, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn mac<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mac = <M as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
        mac.chain_update(msg).finalize().into_bytes().to_vec()
    }
    match hash {
        HmacHash::Sha256 => mac::<Hmac<Sha256>>(key, msg),
        HmacHash::Sha384 => mac::<Hmac<Sha384>>(key, msg),
        HmacHash::Sha512 => mac::<Hmac<Sha512>>(key, msg),
    }
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
    fn ordered_tokens_sort_by_time_and_keep_it_in_their_stored_form() {
        let a = ordered_token();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ordered_token();
        assert_eq!(a.len(), ORDER_PREFIX_LEN + 43);
        assert!(a < b, "a later token sorts after an earlier one");
        assert_ne!(a[ORDER_PREFIX_LEN..], b[ORDER_PREFIX_LEN..]);
        let (stored_a, stored_b) = (token_hash(&a), token_hash(&b));
        assert_eq!(stored_a[..ORDER_PREFIX_LEN], a[..ORDER_PREFIX_LEN]);
        assert_eq!(stored_a[ORDER_PREFIX_LEN..], b64url(&sha256(a.as_bytes())));
        assert!(stored_a < stored_b);
        // Any other value (a plain random token, something made up) is stored as its bare digest.
        let plain = random_token();
        assert_eq!(token_hash(&plain), b64url(&sha256(plain.as_bytes())));
        for odd in ["", "0123456789ab", "0123456789AB", "g123456789ab", &a[..a.len() - 1]] {
            assert_eq!(token_hash(odd), b64url(&sha256(odd.as_bytes())), "{odd:?}");
        }
    }

    #[test]
    fn expiring_tokens_sort_by_expiry_and_begin_with_its_millisecond() {
        let now = 1_790_000_000;
        let (long, short) = (expiring_token(now + 3600), expiring_token(now + 60));
        assert_eq!(long.len(), ORDER_PREFIX_LEN + 43);
        assert!(token_hash(&short) < token_hash(&long), "the one that expires first sorts first");
        let stored = token_hash(&short);
        let millis = i64::from_str_radix(&stored[..ORDER_PREFIX_LEN], 16).unwrap();
        assert!(((now + 60) * 1000..(now + 61) * 1000).contains(&millis), "the millisecond it expires");
        // Its `jti` orders a JWT access token the same way.
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", b64url(format!(r#"{{"jti":"{short}"}}"#).as_bytes()));
        assert_eq!(token_hash(&jwt)[..ORDER_PREFIX_LEN], stored[..ORDER_PREFIX_LEN]);
    }

    #[test]
    fn an_ordered_hash_splits_into_its_millisecond_and_digest() {
        let token = expiring_token(1_790_000_060);
        let (millis, digest) = ordered_hash_parts(&token_hash(&token)).unwrap();
        assert!((1_790_000_060_000..1_790_000_061_000).contains(&millis));
        assert_eq!(digest, sha256(token.as_bytes()));
        // A bare digest, a truncated or altered ordered one: no parts.
        let stored = token_hash(&token);
        for other in [token_hash(&random_token()), stored[..54].to_owned(), stored.to_uppercase(), format!("{stored}A")]
        {
            assert_eq!(ordered_hash_parts(&other), None, "{other}");
        }
    }

    #[test]
    fn a_jwt_with_an_ordered_jti_is_stored_in_its_order() {
        let jwt = |claims: &str| format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", b64url(claims.as_bytes()));
        let jti = ordered_token();
        let ordered = jwt(&format!(r#"{{"iss":"x","jti":"{jti}","scope":"a b"}}"#));
        assert_eq!(jwt_id(&ordered).as_deref(), Some(jti.as_str()));
        let stored = token_hash(&ordered);
        assert_eq!(stored[..ORDER_PREFIX_LEN], jti[..ORDER_PREFIX_LEN]);
        assert_eq!(stored[ORDER_PREFIX_LEN..], b64url(&sha256(ordered.as_bytes())), "the digest covers the whole JWT");
        // A plain `jti`, none, a JWE's five parts or a payload that is not JSON: the bare digest.
        let plain = jwt(&format!(r#"{{"jti":"{}"}}"#, random_token()));
        let jwe = format!("{ordered}.x.y");
        for other in [plain, jwt("{}"), jwt("[1]"), jwe, "a.%%%.c".to_owned()] {
            assert_eq!(token_hash(&other), b64url(&sha256(other.as_bytes())), "{other}");
        }
    }

    #[test]
    fn digests_match_fips_180_2() {
        // FIPS 180-2, appendix B.1 and C.1: the message "abc".
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(
            hex(&sha512(b"abc")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_and_takes_any_key() {
        // RFC 4231 4.3 (test case 2).
        let mac = hmac(HmacHash::Sha256, b"Jefe", b"what do ya want for nothing?");
        assert_eq!(b64url(&mac), "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM");
        assert_eq!(hmac(HmacHash::Sha512, b"", b"x").len(), 64);
        assert_eq!(hmac(HmacHash::Sha384, b"", b"x"), hmac(HmacHash::Sha384, b"\0", b"x"), "RFC 2104 zero padding");
        assert_eq!(random_client_secret().len(), 86);
    }

    #[test]
    fn constant_time_eq_handles_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
