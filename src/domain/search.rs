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
    /// word of the name and its short pieces (see [`SearchKeys::short_keys`]), the first
    /// characters of the username and of the email, and the last digits of the mobile.
    pub fn posting_keys(&self, org_id: i64, username: &str) -> Vec<i64> {
        let mut keys: Vec<i64> = word_trigrams(&self.name)
            .into_iter()
            .map(|gram| posting_key(org_id, Posting::NameGram, &gram))
            .chain(self.short_keys(org_id))
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

    /// The keys of the name's pieces too short for a trigram: the first two characters
    /// of each word (what a query's piece after a space, such as "su" of "o su", must
    /// start a word with) and each ideograph or kana on its own (a one-character surname
    /// such as 王 is a whole query). Posted since migration 13.
    pub fn short_keys(&self, org_id: i64) -> Vec<i64> {
        let starts = word_starts(&self.name).into_iter();
        let singles = single_characters(&self.name).into_iter();
        let mut keys: Vec<i64> = starts
            .map(|s| posting_key(org_id, Posting::WordStart, &s))
            .chain(singles.map(|c| posting_key(org_id, Posting::NameGram, &c)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// The posting keys every user whose name holds the folded `query` carries: the trigrams
/// inside its words, its ideographs and kana, and the start of each two-character
/// piece after a space (the start of a word of the name).
pub fn name_query_keys(org_id: i64, query: &str) -> Vec<i64> {
    let grams = word_trigrams(query)
        .into_iter()
        .chain(single_characters(query))
        .map(|gram| posting_key(org_id, Posting::NameGram, &gram));
    let starts = query
        .split(' ')
        .skip(1)
        .filter(|piece| piece.chars().count() == 2)
        .map(|piece| posting_key(org_id, Posting::WordStart, piece));
    grams.chain(starts).collect()
}

/// Whether a username or an email could start with the folded `query`: both are
/// ASCII without spaces.
pub fn could_start_a_login(query: &str) -> bool {
    query.chars().all(|c| c.is_ascii_graphic())
}

/// The first two characters of every word of `text` that has two.
pub fn word_starts(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter_map(|word| {
            let start: String = word.chars().take(2).collect();
            (start.chars().count() == 2).then_some(start)
        })
        .collect()
}

/// The characters of folded `text` that are words or syllables on their own (Han
/// ideographs and kana): each is posted and matched alone. (Folding spells a Hangul
/// syllable in its two or three letters, which trigrams and word starts cover.)
pub fn single_characters(text: &str) -> Vec<String> {
    let alone = |c: &char| {
        matches!(*c as u32,
            0x3040..=0x30FF // kana
            | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3FFFF) // Han
    };
    text.chars().filter(alone).map(String::from).collect()
}

/// What a posting says of its users: a trigram of their name, or how a prefix-matched
/// field starts (a mobile, how its digits end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posting {
    /// A trigram inside a word of the name, or an ideograph or kana on its own.
    NameGram,
    /// The first two characters of a word of the name.
    WordStart,
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
        Posting::WordStart => b'w',
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
            (Posting::WordStart, "an", true),
            (Posting::WordStart, "ga", true),
            (Posting::WordStart, "ar", false),
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
            10,
            "ana, gar, arc, rci, cia; an, ga; 3 starts and ends"
        );
    }

    #[test]
    fn short_pieces_of_names_are_posted_and_found() {
        let irish = SearchKeys::new("Siobhán", "Ó Súilleabháin", "s@a.example", None);
        let chinese = SearchKeys::new("伟", "王", "w@a.example", None);
        let posted = |keys: &SearchKeys| keys.posting_keys(3, "someone");
        // Every key of a query is carried by every name holding it.
        for (keys, query) in [
            (&irish, "o su"),
            (&irish, "n o su"),
            (&irish, "siobhan o su"),
            (&chinese, "王"),
            (&chinese, "伟 王"),
            (&chinese, "王 伟"),
        ] {
            assert!(keys.name.contains(query), "{query}");
            let wanted = name_query_keys(3, query);
            assert!(!wanted.is_empty(), "{query} is posted");
            assert!(wanted.iter().all(|k| posted(keys).contains(k)), "{query}");
        }
        assert_eq!(name_query_keys(3, "o s"), Vec::<i64>::new(), "too short");
        assert_eq!(
            name_query_keys(3, "o su"),
            vec![posting_key(3, Posting::WordStart, "su")]
        );
        assert_eq!(
            single_characters(&fold("王 ana かな 김")),
            ["王", "か", "な"]
        );
        assert!(could_start_a_login("ana.g-1@x"));
        assert!(!could_start_a_login("ana g") && !could_start_a_login("王"));
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
