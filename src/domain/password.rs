//! The password policy of NIST SP 800-63B: length, a breached-password list, no personal parts.

use super::error::{DomainError, ErrorCode};
use std::collections::HashSet;
use std::sync::LazyLock;

/// 30,000 most common passwords from the zxcvbn frequency lists (MIT, Dropbox / Joshua Holmer).
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().collect());

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;

/// A password that passed the policy. Deliberately not `Debug`-printable.
pub struct Password(String);

impl Password {
    /// Checks `raw` against the policy for the account it will protect.
    pub fn parse(raw: &str, username: &str, email_local_part: &str) -> Result<Self, DomainError> {
        let weak = |why: &str| DomainError {
            code: ErrorCode::WeakPassword,
            field: None,
            message: why.to_owned(),
        };
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(weak("Password must be at least 12 characters."));
        }
        if chars > MAX_CHARS {
            return Err(weak("Password must be at most 128 characters."));
        }
        let lower = raw.to_lowercase();
        if is_common(&lower) {
            return Err(weak(
                "Password is on a list of common or breached passwords; choose another.",
            ));
        }
        if is_sequence(&lower) {
            return Err(weak(
                "Password is a keyboard or alphabet sequence; choose another.",
            ));
        }
        let distinct: HashSet<char> = lower.chars().collect();
        if distinct.len() < 3 {
            return Err(weak("Password is too repetitive; choose another."));
        }
        let username = username.to_lowercase();
        if username.len() >= 3 && lower.contains(&username) {
            return Err(weak("Password may not contain the username."));
        }
        let local = email_local_part.to_lowercase();
        if local.len() >= 3 && lower.contains(&local) {
            return Err(weak("Password may not contain the email address."));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A listed password, or a listed one with only digits and punctuation added at the end
/// ("dragon123456!").
fn is_common(lower: &str) -> bool {
    if COMMON.contains(lower) {
        return true;
    }
    let base = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    base.len() >= 4 && base.len() < lower.len() && COMMON.contains(base)
}

/// Runs along the digits, the alphabet or a keyboard row, forwards or backwards.
fn is_sequence(lower: &str) -> bool {
    const RUNS: &[&str] = &[
        "01234567890123456789",
        "abcdefghijklmnopqrstuvwxyz",
        "qwertyuiopasdfghjklzxcvbnm",
    ];
    RUNS.iter().any(|run| {
        let reversed: String = run.chars().rev().collect();
        run.repeat(3).contains(lower) || reversed.repeat(3).contains(lower)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pw: &str) -> Result<Password, DomainError> {
        Password::parse(pw, "ana.garcia", "agarcia")
    }

    #[test]
    fn bundled_list_is_large() {
        assert!(COMMON.len() >= 10_000);
    }

    #[test]
    fn policy_refuses_weak_passwords_with_reason() {
        let cases = [
            ("short", "at least 12"),
            (&"x1".repeat(65) as &str, "at most 128"),
            ("qwertyuiop123", "common"),
            ("123456789012", "sequence"),
            ("ABCDEFGHIJKLMN", "sequence"),
            ("Password12345!", "common"),
            ("aaaaaaaaaaaaaa", "repetitive"),
            ("my-ana.garcia-pass", "username"),
            ("x-AGarcia-2024-y", "email"),
        ];
        for (pw, why) in cases {
            let err = check(pw).err().unwrap_or_else(|| panic!("{pw} accepted"));
            assert_eq!(err.code, ErrorCode::WeakPassword);
            assert!(err.message.contains(why), "{pw}: {}", err.message);
        }
    }

    #[test]
    fn any_characters_are_fine() {
        assert!(check("correct horse battery staple").is_ok());
        assert!(check("ñandú-über-日本語-passphrase").is_ok());
    }
}
