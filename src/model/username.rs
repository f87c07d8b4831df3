//! Usernames in one canonical form (RFC 8265 3.3, the PRECIS UsernameCaseMapped profile: width-mapped,
//! case-folded, NFC, and only code points of the IdentifierClass), so that `Alice`, `ALICE` and
//! `Ａｌｉｃｅ` are one account everywhere: at creation, at login and in the throttle's key.

use precis_profiles::UsernameCaseMapped;
use precis_profiles::precis_core::profile::PrecisFastInvocation;
use unicode_security::MixedScript;

use super::{InvalidValue, MAX_IDENTIFIER_LEN};

/// The canonical form of `raw` (surrounding white space ignored), or why it cannot be a username.
/// PRECIS refuses spaces, controls, invisible and bidi-control characters.
pub fn canonical_username(raw: &str) -> Result<String, InvalidValue> {
    let canonical = UsernameCaseMapped::enforce(raw.trim())
        .map_err(|_| InvalidValue("a username is letters, digits and punctuation, without spaces".into()))?;
    if canonical.is_empty() || canonical.len() > MAX_IDENTIFIER_LEN {
        return Err(InvalidValue(format!("a username is 1 to {MAX_IDENTIFIER_LEN} bytes long")));
    }
    Ok(canonical.into_owned())
}

/// `canonical_username`, and for names chosen at sign-up also one script at a time (UTS #39 single
/// script, allowing the usual combinations such as Japanese): a name that mixes look-alike letters of
/// several scripts (`pаypal` with a Cyrillic `а`) could pass for another user's.
pub fn new_username(raw: &str) -> Result<String, InvalidValue> {
    let canonical = canonical_username(raw)?;
    if !canonical.as_str().is_single_script() {
        return Err(InvalidValue("a username uses the letters of one script".into()));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_account_whatever_the_case_or_width() {
        for spelling in ["alice", "Alice", "ALICE", " alice ", "Ａｌｉｃｅ"] {
            assert_eq!(canonical_username(spelling).unwrap(), "alice", "{spelling:?}");
        }
        assert_eq!(canonical_username("juliet@example.com").unwrap(), "juliet@example.com");
    }

    #[test]
    fn spaces_controls_invisible_and_bidi_characters_are_refused() {
        let bad = ["two words", "a\u{0}b", "zero\u{200b}width", "right\u{202e}left", "", "   ", "tab\tbed"];
        for name in bad {
            assert!(canonical_username(name).is_err(), "{name:?}");
        }
        assert!(canonical_username(&"a".repeat(MAX_IDENTIFIER_LEN + 1)).is_err());
    }

    #[test]
    fn sign_up_refuses_names_that_mix_scripts() {
        assert_eq!(new_username("Paypal").unwrap(), "paypal");
        assert!(new_username("p\u{0430}ypal").is_err(), "Cyrillic a among Latin letters");
        assert_eq!(new_username("山田たろう").unwrap(), "山田たろう", "Han with Hiragana is one writing system");
    }
}
