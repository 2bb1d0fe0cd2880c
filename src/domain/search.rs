//! How users are found: text folded for case- and accent-insensitive matching, the
//! per-user search document, its trigrams, and the stable sort key of the directory.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-cased, accents removed ("GARCÍA" and "garcia" fold alike), spaces collapsed.
pub fn fold(text: &str) -> String {
    let stripped: String = text.nfkd().filter(|c| !is_combining_mark(*c)).collect();
    stripped
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Only the digits of a phone number or a query.
pub fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// The fields a user is found by, in their matching form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchKeys {
    /// "first last" and "last first", folded, one per line: a name query matches a
    /// substring of either.
    pub name: String,
    /// The email, lower-cased, matched from its start.
    pub email: String,
    /// The mobile's digits, matched at their end.
    pub mobile_digits: Option<String>,
}

impl SearchKeys {
    pub fn new(first: &str, last: &str, email: &str, mobile: Option<&str>) -> Self {
        let (first, last) = (fold(first), fold(last));
        Self {
            name: format!("{first} {last}\n{last} {first}"),
            email: email.to_lowercase(),
            mobile_digits: mobile.map(digits),
        }
    }

    /// The distinct trigrams of every field, never spanning two fields.
    pub fn grams(&self, username: &str) -> Vec<String> {
        let mut grams: Vec<String> = self
            .name
            .lines()
            .chain([username, self.email.as_str()])
            .chain(self.mobile_digits.as_deref())
            .flat_map(trigrams)
            .collect();
        grams.sort();
        grams.dedup();
        grams
    }
}

/// The directory's order: last name, first name, then ID, folded so that case and accents
/// do not reorder anyone; unique, so it doubles as a pagination cursor.
pub fn sort_key(first: &str, last: &str, id: i64) -> String {
    format!("{}\u{1}{}\u{1}{id:020}", fold(last), fold(first))
}

/// The overlapping three-character windows of `text`.
pub fn trigrams(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.windows(3).map(|w| w.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_ignores_case_and_accents() {
        assert_eq!(fold("GARCÍA"), "garcia");
        assert_eq!(fold("  Zoë   Ångström "), "zoe angstrom");
        assert_eq!(fold("Nguyễn"), "nguyen");
    }

    #[test]
    fn documents_have_grams_of_each_field_only() {
        let keys = SearchKeys::new(
            "Ana",
            "García",
            "Ana.G@Clinic.example",
            Some("+15035550123"),
        );
        assert_eq!(keys.name, "ana garcia\ngarcia ana");
        let grams = keys.grams("agarcia");
        for expected in ["gar", "arc", "ana", "a.g", "123", "agr"] {
            assert_eq!(
                grams.contains(&expected.to_owned()),
                expected != "agr",
                "{expected}"
            );
        }
        assert!(!grams.iter().any(|g| g.contains('\n')));
    }

    #[test]
    fn sort_keys_order_by_last_then_first_then_id() {
        let mut keys = vec![
            sort_key("Ana", "García", 3),
            sort_key("Bob", "Garcia", 2),
            sort_key("Zed", "Adams", 9),
        ];
        keys.sort();
        assert!(keys[0].starts_with("adams"));
        assert!(keys[1].contains("ana"), "{keys:?}");
    }
}
