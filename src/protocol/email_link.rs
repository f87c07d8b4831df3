//! The links the OP mails: a password reset, an email verification. Each is a token that carries
//! what it is for, whose account, until when, and a fingerprint of what it may change (the current
//! password hash, the address to verify), under a MAC with the key every node shares. Nothing is
//! stored when a link is made; a link stops working once what it names has changed (a reset link after
//! any password change, this one's too), and the handlers spend each token once besides.

use crate::crypto::{self, HmacHash};
use crate::model::Timestamp;

/// What a link does; part of what the MAC covers, so one kind cannot stand in for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    PasswordReset,
    EmailVerification,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::PasswordReset => "password-reset",
            LinkPurpose::EmailVerification => "email-verification",
        }
    }
}

/// Why a link is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    /// Not made by this OP for this purpose (altered, truncated, or of the other kind).
    Invalid,
    /// Made by this OP, but too late now: the user asks for a new one.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailLink {
    pub purpose: LinkPurpose,
    pub user_id: String,
    pub expires_at: Timestamp,
    /// `fingerprint` of what the link may change, as it was when the link was made.
    pub binding: String,
}

/// A short, one-way digest of `value`: a link carries it instead of a password hash or an address.
pub fn fingerprint(value: &str) -> String {
    crypto::b64url(&crypto::sha256(value.as_bytes())[..16])
}

fn mac(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut message = b"email-link.".to_vec();
    message.extend_from_slice(payload);
    crypto::hmac(HmacHash::Sha256, key, &message)
}

impl EmailLink {
    /// The token for the link's URL: the payload and its MAC, both base64url.
    pub fn seal(&self, key: &[u8]) -> String {
        let payload = format!("{} {} {} {}", self.purpose.as_str(), self.expires_at, self.binding, self.user_id);
        format!("{}.{}", crypto::b64url(payload.as_bytes()), crypto::b64url(&mac(key, payload.as_bytes())))
    }

    /// The link `token` names, if this OP made it for `purpose` and it has not expired at `now`.
    pub fn open(token: &str, key: &[u8], purpose: LinkPurpose, now: Timestamp) -> Result<Self, LinkError> {
        // Far longer than any link this OP makes; refused before any work.
        if token.len() > 1024 {
            return Err(LinkError::Invalid);
        }
        let (payload, tag) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let payload = crypto::b64url_decode(payload).ok_or(LinkError::Invalid)?;
        let tag = crypto::b64url_decode(tag).ok_or(LinkError::Invalid)?;
        if !crypto::constant_time_eq(&mac(key, &payload), &tag) {
            return Err(LinkError::Invalid);
        }
        let payload = String::from_utf8(payload).map_err(|_| LinkError::Invalid)?;
        let mut parts = payload.splitn(4, ' ');
        let (Some(kind), Some(expires_at), Some(binding), Some(user_id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Invalid);
        };
        if kind != purpose.as_str() {
            return Err(LinkError::Invalid);
        }
        let expires_at: Timestamp = expires_at.parse().map_err(|_| LinkError::Invalid)?;
        if expires_at <= now {
            return Err(LinkError::Expired);
        }
        Ok(Self { purpose, user_id: user_id.to_owned(), expires_at, binding: binding.to_owned() })
    }

    /// Whether the link was made for `current` (the password hash or address the account has now).
    pub fn is_for(&self, current: &str) -> bool {
        crypto::constant_time_eq(self.binding.as_bytes(), fingerprint(current).as_bytes())
    }

    /// The key that spends the token once (`ReplayStore::first_use`).
    pub fn spent_key(token: &str) -> String {
        format!("email-link:{}", crypto::token_hash(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a key every node shares, 32 byte";

    fn reset_link() -> EmailLink {
        EmailLink {
            purpose: LinkPurpose::PasswordReset,
            user_id: "sub-alice with spaces".into(),
            expires_at: 1_000,
            binding: fingerprint("$argon2id$v=19$old"),
        }
    }

    #[test]
    fn a_sealed_link_opens_until_it_expires() {
        let token = reset_link().seal(KEY);
        assert_eq!(EmailLink::open(&token, KEY, LinkPurpose::PasswordReset, 999), Ok(reset_link()));
        assert_eq!(EmailLink::open(&token, KEY, LinkPurpose::PasswordReset, 1_000), Err(LinkError::Expired));
    }

    #[test]
    fn altered_foreign_and_misdirected_links_are_invalid() {
        let token = reset_link().seal(KEY);
        let open = |t: &str, key: &[u8], purpose| EmailLink::open(t, key, purpose, 0);
        assert_eq!(open(&token, b"another key", LinkPurpose::PasswordReset), Err(LinkError::Invalid));
        assert_eq!(
            open(&token, KEY, LinkPurpose::EmailVerification),
            Err(LinkError::Invalid),
            "one kind is not the other"
        );
        let (payload, tag) = token.split_once('.').unwrap();
        let later = crypto::b64url(b"password-reset 99999 x sub-alice");
        assert_eq!(open(&format!("{later}.{tag}"), KEY, LinkPurpose::PasswordReset), Err(LinkError::Invalid));
        assert_eq!(open(&format!("{payload}.{}", &tag[1..]), KEY, LinkPurpose::PasswordReset), Err(LinkError::Invalid));
        for garbage in ["", ".", "no-dot", "!!.!!", &"a".repeat(2000)] {
            assert_eq!(open(garbage, KEY, LinkPurpose::PasswordReset), Err(LinkError::Invalid), "{garbage:.20}");
        }
    }

    #[test]
    fn a_link_is_for_what_it_was_made_for_only() {
        let link = reset_link();
        assert!(link.is_for("$argon2id$v=19$old"));
        assert!(!link.is_for("$argon2id$v=19$new"), "a changed password ends every reset link");
    }
}
