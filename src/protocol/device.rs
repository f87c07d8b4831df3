//! Device authorization grant rules (RFC 8628): user codes people can read off a screen and type.

/// RFC 8628 6.1: base-20 letters without vowels (no words) and without look-alikes.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// 8 letters: 20^8 (about 2^34.5) codes, against a guesser throttled per address and a code that lives
/// minutes (RFC 8628 5.1).
pub const USER_CODE_LEN: usize = 8;

/// A user code from random bytes, one letter per usable byte; bytes of 240 and up are skipped so that
/// every letter is equally likely (256 is not a multiple of 20).
pub fn user_code(random: &[u8]) -> Option<String> {
    let code: String = random
        .iter()
        .filter(|b| usize::from(**b) < 240) // 240 = 12 * 20: no letter favoured
        .take(USER_CODE_LEN)
        .map(|b| char::from(ALPHABET[usize::from(*b) % 20]))
        .collect();
    (code.len() == USER_CODE_LEN).then_some(code)
}

/// A typed code in stored form: case, dashes and spaces do not matter (RFC 8628 6.1); None when it
/// cannot be a user code.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The code as shown to people: two dash-separated groups (`BCDF-GHJK`).
pub fn display(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_base_20_and_typed_forgivingly() {
        let code = user_code(&[0, 1, 2, 3, 19, 20, 239, 240, 255, 7]).unwrap();
        assert_eq!(code, "BCDFZBZK", "240 and up are skipped");
        assert!(user_code(&[250; 10]).is_none(), "not enough usable bytes");
        assert_eq!(normalize("bcdf-zbzk"), Some(code.clone()));
        assert_eq!(normalize(" BCDF ZBZK "), Some(code.clone()));
        assert_eq!(normalize("BCDF-ZBZA"), None, "vowels are not in the alphabet");
        assert_eq!(normalize("BCDF"), None);
        assert_eq!(display(&code), "BCDF-ZBZK");
    }
}
