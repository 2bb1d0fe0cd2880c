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

    /// The keys of the user's postings in organization `org_id`: every trigram inside a
    /// word of the name, the first characters of the username and of the email, and the
    /// last digits of the mobile.
    pub fn posting_keys(&self, org_id: i64, username: &str) -> Vec<i64> {
        let mut keys: Vec<i64> = word_trigrams(&self.name)
            .into_iter()
            .map(|gram| posting_key(org_id, Posting::NameGram, &gram))
            .chain(start(username).map(|s| posting_key(org_id, Posting::UsernameStart, &s)))
            .chain(start(&self.email).map(|s| posting_key(org_id, Posting::EmailStart, &s)))
            .chain(
                self.mobile_digits
                    .as_deref()
                    .and_then(end)
                    .map(|e| posting_key(org_id, Posting::MobileEnd, &e)),
            )
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// What a posting says of its users: a trigram of their name, or how a prefix-matched
/// field starts (a mobile, how its digits end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posting {
    NameGram,
    UsernameStart,
    EmailStart,
    MobileEnd,
}

/// How many characters a field's start (or a mobile's end) posting holds: a prefix
/// query at least this long walks the users whose field starts the same way.
pub const POSTED_CHARS: usize = 3;

/// The first [`POSTED_CHARS`] characters of `text`, when it has that many.
pub fn start(text: &str) -> Option<String> {
    let start: String = text.chars().take(POSTED_CHARS).collect();
    (start.chars().count() == POSTED_CHARS).then_some(start)
}

/// The last [`POSTED_CHARS`] characters of `text`, when it has that many.
pub fn end(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    (chars.len() >= POSTED_CHARS).then(|| chars[chars.len() - POSTED_CHARS..].iter().collect())
}

/// The key of a posting: 64 bits of FNV-1a over the organization, the kind of posting
/// and its text. One integer instead of three columns keeps each posting small; a
/// collision could only add candidates, and every candidate is checked on the user row
/// (organization included), so it never changes a result.
pub fn posting_key(org_id: i64, posting: Posting, text: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let tag = match posting {
        Posting::NameGram => b'n',
        Posting::UsernameStart => b'u',
        Posting::EmailStart => b'e',
        Posting::MobileEnd => b'm',
    };
    let bytes = org_id
        .to_le_bytes()
        .into_iter()
        .chain([tag])
        .chain(text.bytes());
    let hash = bytes.fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    hash as i64
}

/// The directory's order: last name, first name, then ID, folded so that case and accents
/// do not reorder anyone; unique, so it doubles as a pagination cursor.
pub fn sort_key(first: &str, last: &str, id: i64) -> String {
    format!("{}\u{1}{}\u{1}{id:020}", fold(last), fold(first))
}

/// The room left between neighbours when users are ranked in directory order (new
/// users at either end of it are placed this far apart; see [`place`] for the users
/// between two others).
pub const RANK_GAP: i64 = 1 << 32;

/// `count` ranks evenly spaced strictly between `prev` and `next` (either open, leaving
/// [`RANK_GAP`] between each), at least `min_step` apart; `None` when they do not fit.
pub fn spread(
    prev: Option<i64>,
    next: Option<i64>,
    count: usize,
    min_step: i64,
) -> Option<Vec<i64>> {
    let (k, gap) = (count as i128, i128::from(RANK_GAP));
    let (lo, hi) = match (prev.map(i128::from), next.map(i128::from)) {
        (None, None) => (-gap, k * gap),
        (Some(p), None) => (p, p + (k + 1) * gap),
        (None, Some(n)) => (n - (k + 1) * gap, n),
        (Some(p), Some(n)) => (p, n),
    };
    let step = (hi - lo) / (k + 1);
    if step < i128::from(min_step.max(1)) {
        return None;
    }
    (1..=k).map(|i| i64::try_from(lo + i * step).ok()).collect()
}

/// How far apart [`place`] puts new users in a gap with room to spare.
pub const PLACE_STEP: i64 = 1 << 20;

/// Ranks for `count` new users falling between the same two ranked neighbours. In a
/// gap with room to spare they go [`PLACE_STEP`] apart just after `prev`, leaving the
/// rest of the gap after them: the next to arrive at the same place (namesakes imported
/// in batches, each after the last) find it nearly whole, where dividing it evenly
/// would use it up in a few batches. Otherwise as [`spread`].
pub fn place(prev: Option<i64>, next: Option<i64>, count: usize) -> Option<Vec<i64>> {
    if let (Some(p), Some(n)) = (prev, next) {
        let (k, step) = (count as i128, i128::from(PLACE_STEP));
        if (i128::from(n) - i128::from(p)) / (k + 1) > 2 * step {
            return (1..=k)
                .map(|i| i64::try_from(i128::from(p) + i * step).ok())
                .collect();
        }
    }
    spread(prev, next, count, 1)
}

/// The overlapping three-character windows inside each word of `text`. Windows across
/// a space are not posted: they would add a third to the postings (and every name in
/// both orders), and a query's words find the same users, checked against the whole
/// name on the row.
pub fn word_trigrams(text: &str) -> Vec<String> {
    text.split_whitespace()
        .flat_map(|word| {
            let chars: Vec<char> = word.chars().collect();
            chars
                .windows(3)
                .map(|w| w.iter().collect::<String>())
                .collect::<Vec<_>>()
        })
        .collect()
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
    fn postings_hold_name_trigrams_and_field_starts() {
        let keys = SearchKeys::new(
            "Ana",
            "García",
            "Ana.G@Clinic.example",
            Some("+15035550123"),
        );
        assert_eq!(keys.name, "ana garcia\ngarcia ana");
        let posted = keys.posting_keys(7, "agarcia");
        let key = |posting, text| posting_key(7, posting, text);
        for (posting, text, expected) in [
            (Posting::NameGram, "gar", true),
            (Posting::NameGram, "cia", true),
            (Posting::NameGram, "a g", false),
            (Posting::NameGram, "a a", false),
            (Posting::UsernameStart, "aga", true),
            (Posting::UsernameStart, "gar", false),
            (Posting::EmailStart, "ana", true),
            (Posting::EmailStart, "a.g", false),
            (Posting::MobileEnd, "123", true),
            (Posting::MobileEnd, "150", false),
        ] {
            assert_eq!(
                posted.contains(&key(posting, text)),
                expected,
                "{posting:?} {text}"
            );
        }
        assert_ne!(
            posting_key(7, Posting::NameGram, "gar"),
            posting_key(8, Posting::NameGram, "gar")
        );
        assert_eq!(
            posted.len(),
            8,
            "ana, gar, arc, rci, cia; 3 starts and ends"
        );
    }

    #[test]
    fn posting_keys_are_stable() {
        // Stored in databases: the function must never change.
        assert_eq!(
            posting_key(1, Posting::NameGram, "abc"),
            4247666817664021242
        );
    }

    #[test]
    fn ranks_spread_between_neighbours_until_there_is_no_room() {
        assert_eq!(
            spread(None, None, 3, 1),
            Some(vec![0, RANK_GAP, 2 * RANK_GAP])
        );
        assert_eq!(spread(Some(10), None, 1, 1), Some(vec![10 + RANK_GAP]));
        assert_eq!(
            spread(None, Some(10), 2, 1),
            Some(vec![10 - 2 * RANK_GAP, 10 - RANK_GAP])
        );
        assert_eq!(spread(Some(10), Some(20), 1, 1), Some(vec![15]));
        assert_eq!(spread(Some(10), Some(13), 2, 1), Some(vec![11, 12]));
        assert_eq!(spread(Some(10), Some(12), 2, 1), None);
        assert_eq!(spread(Some(0), Some(1000), 1, 1000), None);
        assert_eq!(
            spread(Some(i64::MAX - 5), None, 1, 1),
            None,
            "past the end of the range"
        );
        let mut prev = 0;
        let next = RANK_GAP;
        let mut squeezed = 0;
        while let Some(rank) = spread(Some(prev), Some(next), 1, 1) {
            prev = rank[0];
            squeezed += 1;
        }
        assert_eq!(squeezed, 32);
    }

    #[test]
    fn placing_keeps_the_room_after_new_users() {
        let step = PLACE_STEP;
        assert_eq!(
            place(Some(0), Some(RANK_GAP), 3),
            Some(vec![step, 2 * step, 3 * step])
        );
        assert_eq!(
            place(Some(0), Some(10), 2),
            Some(vec![3, 6]),
            "no room to spare"
        );
        assert_eq!(place(None, None, 2), spread(None, None, 2, 1));
        assert_eq!(place(Some(10), None, 1), spread(Some(10), None, 1, 1));
        // Batches of 30 namesakes, each after the last: evenly divided, the gap is used
        // up by the seventh batch; placed, it takes over a hundred.
        let batches = |rank: &dyn Fn(i64, usize) -> Option<Vec<i64>>| {
            let (mut prev, mut batches) = (0, 0);
            while let Some(ranks) = rank(prev, 30) {
                prev = *ranks.last().unwrap();
                batches += 1;
            }
            batches
        };
        assert_eq!(batches(&|p, k| spread(Some(p), Some(RANK_GAP), k, 1)), 6);
        assert!(batches(&|p, k| place(Some(p), Some(RANK_GAP), k)) > 100);
    }

    #[test]
    fn starts_and_ends_count_characters() {
        assert_eq!(start("zoë.x").as_deref(), Some("zoë"));
        assert_eq!(start("zo"), None);
        assert_eq!(end("5550123").as_deref(), Some("123"));
        assert_eq!(end("12"), None);
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
