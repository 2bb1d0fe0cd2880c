//! The users search planner: from a search's filters and what the organization's
//! statistics say (how many users carry each trigram, how many start a field with the
//! query), where the search starts reading. Pure, so it is tested without a database;
//! the SQL that reads the statistics and runs the plan is in `sql/search.rs`.

use super::StoreResult;
use crate::domain::{OrgId, PracticeId, Timestamp, User, UserKind, UserStatus};

/// The users search, as the store answers it.
#[async_trait::async_trait]
pub trait SearchStore: Send + Sync {
    /// One page of an organization's users in directory order, with the total when asked.
    async fn search_users(&self, search: UserSearch) -> StoreResult<UserPage>;
    /// Fills in search keys of users that have none (rows written before search existed).
    async fn reindex_users(&self) -> StoreResult<u64>;
}

/// Mobiles without their reversed digits (kept since migration 5), found at every start
/// through a partial index that holds none once all are filled in.
pub const UNREVERSED_MOBILES: &str = "SELECT id, mobile_digits FROM users \
     WHERE mobile_digits IS NOT NULL AND mobile_reversed IS NULL ORDER BY id LIMIT 500";
/// Users not yet placed in directory order, found the same way.
pub const UNRANKED_USERS: &str =
    "SELECT id, org_id FROM users WHERE search_rank IS NULL ORDER BY id LIMIT 500";

/// A users query: what to match (already in matching form) and which page.
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    pub org_id: OrgId,
    /// Folded; a substring of "first last" or "last first".
    pub name: Option<String>,
    /// Lower-cased; the start of the username.
    pub username: Option<String>,
    /// Lower-cased; the start of the email.
    pub email: Option<String>,
    /// Digits; the end of the mobile number.
    pub mobile: Option<String>,
    /// Any of the above at once.
    pub any: Option<AnyMatch>,
    pub status: Option<UserStatus>,
    pub kind: Option<UserKind>,
    pub locked: Option<bool>,
    pub practice_id: Option<PracticeId>,
    pub now: Timestamp,
    /// The sort key after which the page starts.
    pub after: Option<String>,
    pub limit: i64,
    pub with_total: bool,
}

/// The `search` filter: folded text for names, usernames and emails, and the digits for
/// mobiles when the query looks like a phone number.
#[derive(Debug, Clone, Default)]
pub struct AnyMatch {
    pub text: String,
    pub digits: Option<String>,
}

/// A page of users with their sort keys (the cursors), and the total when asked.
#[derive(Debug, Clone, Default)]
pub struct UserPage {
    pub users: Vec<(String, User)>,
    pub total: Option<i64>,
}

impl UserPage {
    /// No users, and a total of 0 when one is wanted.
    pub fn none(with_total: bool) -> Self {
        Self {
            users: Vec::new(),
            total: with_total.then_some(0),
        }
    }
}

/// Postings looked up beside the one a search walks.
pub const MAX_PROBES: usize = 3;
/// A field range read whole and sorted when it holds at most this many users.
pub const FIELD_READ_LIMIT: i64 = 1000;
/// Users of one status counted up to this many when planning: a status rarer than
/// that may lead a search.
pub const STATUS_COUNT_LIMIT: i64 = 2000;

/// Where a users search starts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchDriver {
    /// The organization's users in directory order.
    Directory,
    /// The users posted under the lead key of any walk, in directory order (several
    /// walks side by side, merged), each checked against its walk's probes before its
    /// row is read.
    Postings(Vec<PostingWalk>),
    /// The organization's users of one status, in directory order.
    Status(UserStatus),
    /// The users whose field starts with `start`, from the field's own index, then sorted.
    Field { field: SearchField, start: String },
}

/// One posting key walked in rank order, and the keys looked up beside each of its
/// postings (every match by that way carries them all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingWalk {
    pub lead: i64,
    /// Rarest first.
    pub probes: Vec<i64>,
    /// Whether the rarest probe is short enough beside the lead (at most
    /// [`READ_WHOLE_RATIO`] times its users) to be read whole when counting.
    pub read_rarest_whole: bool,
}

/// A probe list at most this many times the lead's is read whole to count (PostgreSQL).
pub const READ_WHOLE_RATIO: i64 = 4;

/// A field matched from its start, with a per-organization index in byte-wise order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SearchField {
    Username,
    Email,
    /// The mobile's digits reversed: its end becomes a start.
    Mobile,
}

impl SearchField {
    /// How the planning statement labels this field's count.
    pub fn label(self) -> &'static str {
        match self {
            Self::Username => "#username",
            Self::Email => "#email",
            Self::Mobile => "#mobile",
        }
    }
}

/// What a search asks the statistics about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Questions {
    /// Posting keys every match carries: the name filter's trigrams and the starts of
    /// the username, email and mobile filters.
    pub all_of: Vec<i64>,
    /// The `search` filter's alternatives (name, username, email, mobile), each as the
    /// keys a match by it carries; empty when a short query leaves one unposted.
    pub any_of: Vec<Vec<i64>>,
    /// The prefix-matched fields and the start each must have.
    pub fields: Vec<(SearchField, String)>,
    /// A status filter, whose users are counted (up to a bound).
    pub status: Option<UserStatus>,
    /// A total is wanted and may be remembered for the directory's version.
    pub remember: bool,
}

impl Questions {
    pub fn of(q: &UserSearch) -> Self {
        use crate::domain::search::{
            Posting, could_start_a_login, end, name_query_keys, posting_key, start,
        };
        let org = q.org_id.0;
        let mut all_of: Vec<i64> = q
            .name
            .as_deref()
            .map(|name| name_query_keys(org, name))
            .unwrap_or_default();
        let posted = [
            (
                q.username.as_deref().and_then(start),
                Posting::UsernameStart,
            ),
            (q.email.as_deref().and_then(start), Posting::EmailStart),
            (q.mobile.as_deref().and_then(end), Posting::MobileEnd),
        ];
        all_of.extend(
            posted
                .into_iter()
                .filter_map(|(text, posting)| Some(posting_key(org, posting, &text?))),
        );
        all_of.sort_unstable();
        all_of.dedup();
        // Every alternative of `search` that could match must be posted for their union
        // to lead; a text with a space or a character beyond ASCII starts no username
        // or email.
        let any_of = q
            .any
            .as_ref()
            .and_then(|any| {
                let name = Some(name_query_keys(org, &any.text)).filter(|keys| !keys.is_empty())?;
                let mut arms = vec![name];
                if could_start_a_login(&any.text) {
                    let start = start(&any.text)?;
                    arms.push(vec![posting_key(org, Posting::UsernameStart, &start)]);
                    arms.push(vec![posting_key(org, Posting::EmailStart, &start)]);
                }
                if let Some(digits) = &any.digits {
                    arms.push(vec![posting_key(org, Posting::MobileEnd, &end(digits)?)]);
                }
                Some(arms)
            })
            .unwrap_or_default();
        let fields = [
            q.username.clone().map(|t| (SearchField::Username, t)),
            q.email.clone().map(|t| (SearchField::Email, t)),
            q.mobile
                .as_ref()
                .map(|t| (SearchField::Mobile, t.chars().rev().collect())),
        ]
        .into_iter()
        .flatten()
        .filter(|(_, start)| !start.is_empty())
        .collect();
        let remember = Self::remembers(q);
        Self {
            all_of,
            any_of,
            fields,
            status: q.status,
            remember,
        }
    }

    /// Whether the search's total may be remembered until the directory changes: lock
    /// states end with time, so totals of the locked filter are always counted.
    pub fn remembers(q: &UserSearch) -> bool {
        q.with_total && q.locked.is_none()
    }

    /// Every posting key whose users are counted, each once.
    pub fn keys(&self) -> Vec<i64> {
        let mut keys: Vec<i64> = self
            .all_of
            .iter()
            .chain(self.any_of.iter().flatten())
            .copied()
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Whether the statistics need reading at all.
    pub fn any(&self) -> bool {
        !self.all_of.is_empty()
            || !self.any_of.is_empty()
            || !self.fields.is_empty()
            || self.status.is_some()
            || self.remember
    }
}

/// What the statistics answered: the users of each posting key any user carries, the
/// users (counted up to just past [`FIELD_READ_LIMIT`]) starting each field, and the
/// users of the status (counted up to [`STATUS_COUNT_LIMIT`]).
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub postings: std::collections::HashMap<i64, i64>,
    pub fields: Vec<(SearchField, i64)>,
    pub status: Option<i64>,
}

/// The plan: nothing can match, or where to start reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Nothing,
    Read(SearchDriver),
}

/// Plans from the answers: the narrowest way in leads (a posting key, the union of the
/// `search` alternatives, a rare status, or a short field range), and the rarest other
/// keys every match carries are checked beside it.
pub fn plan(questions: &Questions, answers: &Answers) -> Plan {
    let rarest_first = |keys: &[i64]| {
        let mut keys: Vec<(i64, i64)> = keys
            .iter()
            .map(|k| (answers.postings.get(k).copied().unwrap_or(0), *k))
            .collect();
        keys.sort_unstable();
        keys
    };
    let all_of = rarest_first(&questions.all_of);
    // Each alternative of `search`, its rarest key first; an alternative some key of
    // which nobody carries matches nobody.
    let arms: Vec<Vec<(i64, i64)>> = questions
        .any_of
        .iter()
        .map(|arm| rarest_first(arm))
        .filter(|arm| arm.first().is_some_and(|(n, _)| *n > 0))
        .collect();
    let fields_empty = answers.fields.iter().any(|(_, n)| *n == 0);
    if all_of.first().is_some_and(|(n, _)| *n == 0)
        || (!questions.any_of.is_empty() && arms.is_empty())
        || fields_empty
        || answers.status == Some(0)
    {
        return Plan::Nothing;
    }
    let mut ways: Vec<(i64, SearchDriver)> = Vec::new();
    if let Some((n, _)) = all_of.first() {
        ways.push((*n, SearchDriver::Postings(vec![walk(&all_of, &[])])));
    }
    if !arms.is_empty() {
        let n = arms.iter().map(|arm| arm[0].0).sum();
        let walks = arms.iter().map(|arm| walk(arm, &all_of)).collect();
        ways.push((n, SearchDriver::Postings(walks)));
    }
    // A status counted to the bound has at least that many users: walked only when no
    // posting leads, which still beats the whole directory (every user it reads has the
    // status).
    if let (Some(status), Some(n)) = (questions.status, answers.status) {
        let n = if n < STATUS_COUNT_LIMIT { n } else { i64::MAX };
        ways.push((n, SearchDriver::Status(status)));
    }
    for (field, n) in &answers.fields {
        let start = questions.fields.iter().find(|(f, _)| f == field);
        if let Some((_, start)) = start
            && *n <= FIELD_READ_LIMIT
        {
            let field = SearchDriver::Field {
                field: *field,
                start: start.clone(),
            };
            ways.push((*n, field));
        }
    }
    // The fewest users to walk; on a tie, the way listed first.
    let narrowest = ways
        .into_iter()
        .enumerate()
        .min_by_key(|(i, (n, _))| (*n, *i));
    Plan::Read(narrowest.map_or(SearchDriver::Directory, |(_, (_, way))| way))
}

/// Walking the rarest of `keys` (counted, rarest first), with the rarest of the rest and
/// of `also` (keys every match carries too) probed beside it.
fn walk(keys: &[(i64, i64)], also: &[(i64, i64)]) -> PostingWalk {
    let (users, lead) = keys[0];
    let mut others: Vec<(i64, i64)> = keys[1..].iter().chain(also).copied().collect();
    others.sort_unstable();
    others.dedup_by_key(|(_, k)| *k);
    others.retain(|(_, k)| *k != lead);
    others.truncate(MAX_PROBES);
    // Only the rarest: it leaves few postings for the other probes, each of which
    // would be read whole for nothing.
    let read_rarest_whole = others
        .first()
        .is_some_and(|(n, _)| *n <= users.saturating_mul(READ_WHOLE_RATIO));
    let probes = others.into_iter().map(|(_, k)| k).collect();
    PostingWalk {
        lead,
        probes,
        read_rarest_whole,
    }
}

/// Plans of recent searches, for a few seconds: a plan only chooses where to start
/// reading (every way in finds the same users, each checked on its row), so one read from
/// statistics a moment old is as right as a fresh one and saves a statement. "Nothing can
/// match" is never remembered: it must hold now. 10,000 at most.
#[derive(Default)]
pub struct PlanCache(
    super::Remembered<super::SearchKey, (SearchDriver, std::time::Instant), 10_000>,
);

impl PlanCache {
    /// How long a plan is reused.
    const FOR: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn get(&self, key: &super::SearchKey) -> Option<SearchDriver> {
        self.0
            .get(key)
            .filter(|(_, at)| at.elapsed() < Self::FOR)
            .map(|(driver, _)| driver)
    }

    pub fn put(&self, key: super::SearchKey, driver: SearchDriver) {
        self.0.put(key, (driver, std::time::Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::search::{Posting, posting_key};

    fn search(edit: impl FnOnce(&mut UserSearch)) -> UserSearch {
        let mut search = UserSearch {
            org_id: OrgId(1),
            limit: 20,
            now: crate::domain::now(),
            ..Default::default()
        };
        edit(&mut search);
        search
    }

    fn gram(text: &str) -> i64 {
        posting_key(1, Posting::NameGram, text)
    }

    fn walk_from(lead: i64, probes: &[i64], read_rarest_whole: bool) -> PostingWalk {
        PostingWalk {
            lead,
            probes: probes.to_vec(),
            read_rarest_whole,
        }
    }

    fn answers(postings: &[(&str, i64)]) -> Answers {
        Answers {
            postings: postings.iter().map(|(g, n)| (gram(g), *n)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_rarest_key_leads_and_the_next_rarest_are_probed() {
        let q = Questions::of(&search(|s| s.name = Some("garcia".into())));
        let planned = plan(
            &q,
            &answers(&[("gar", 900), ("arc", 40), ("rci", 7), ("cia", 300)]),
        );
        assert_eq!(
            planned,
            Plan::Read(SearchDriver::Postings(vec![walk_from(
                gram("rci"),
                &[gram("arc"), gram("cia"), gram("gar")],
                false
            )]))
        );
        // The rarest probe is read whole to count when its list is at most four times
        // the lead's.
        let planned = plan(
            &q,
            &answers(&[("gar", 100), ("arc", 40), ("rci", 30), ("cia", 300)]),
        );
        assert_eq!(
            planned,
            Plan::Read(SearchDriver::Postings(vec![walk_from(
                gram("rci"),
                &[gram("arc"), gram("gar"), gram("cia")],
                true
            )]))
        );
    }

    #[test]
    fn a_key_or_field_start_nobody_has_matches_nothing() {
        let q = Questions::of(&search(|s| s.name = Some("zzqabc".into())));
        assert_eq!(plan(&q, &answers(&[("abc", 3)])), Plan::Nothing);
        let q = Questions::of(&search(|s| s.username = Some("zz".into())));
        let none = Answers {
            fields: vec![(SearchField::Username, 0)],
            ..Default::default()
        };
        assert_eq!(plan(&q, &none), Plan::Nothing);
    }

    #[test]
    fn search_walks_the_union_of_its_alternatives() {
        let any = AnyMatch {
            text: "ann".into(),
            digits: None,
        };
        let q = Questions::of(&search(|s| s.any = Some(any)));
        let username = posting_key(1, Posting::UsernameStart, "ann");
        let email = posting_key(1, Posting::EmailStart, "ann");
        let mut found = answers(&[("ann", 50)]);
        found.postings.insert(username, 10);
        let planned = plan(&q, &found);
        assert_eq!(
            planned,
            Plan::Read(SearchDriver::Postings(vec![
                walk_from(gram("ann"), &[], false),
                walk_from(username, &[], false),
            ])),
            "the email alternative matches nobody: {email}"
        );
        // Too short to be posted: the directory is walked and every row checked.
        let short = AnyMatch {
            text: "an".into(),
            digits: None,
        };
        let q = Questions::of(&search(|s| s.any = Some(short)));
        assert!(q.any_of.is_empty());
        assert_eq!(
            plan(&q, &Answers::default()),
            Plan::Read(SearchDriver::Directory)
        );
    }

    #[test]
    fn each_alternative_probes_its_other_keys_and_those_every_match_carries() {
        let any = |text: &str| AnyMatch {
            text: text.into(),
            digits: None,
        };
        let q = Questions::of(&search(|s| {
            s.any = Some(any("garc"));
            s.name = Some("cia".into());
        }));
        let username = posting_key(1, Posting::UsernameStart, "gar");
        let mut found = answers(&[("gar", 500), ("arc", 40), ("cia", 5000)]);
        found.postings.insert(username, 10);
        assert_eq!(
            plan(&q, &found),
            Plan::Read(SearchDriver::Postings(vec![
                walk_from(gram("arc"), &[gram("gar"), gram("cia")], false),
                walk_from(username, &[gram("cia")], false),
            ]))
        );
        // No username or email holds a space or a letter beyond ASCII: only the name is
        // walked.
        for text in ["ana gar", "伟"] {
            let q = Questions::of(&search(|s| s.any = Some(any(text))));
            assert_eq!(q.any_of.len(), 1, "{text}");
        }
    }

    #[test]
    fn a_rare_status_or_a_narrow_field_range_leads() {
        let q = Questions::of(&search(|s| {
            s.name = Some("mar".into());
            s.status = Some(UserStatus::Inactive);
        }));
        let mut found = answers(&[("mar", 5000)]);
        found.status = Some(40);
        assert_eq!(
            plan(&q, &found),
            Plan::Read(SearchDriver::Status(UserStatus::Inactive))
        );
        found.status = Some(STATUS_COUNT_LIMIT);
        assert!(matches!(
            plan(&q, &found),
            Plan::Read(SearchDriver::Postings(_))
        ));
        // A common status still beats walking the whole directory.
        let q = Questions::of(&search(|s| {
            s.name = Some("ab".into());
            s.status = Some(UserStatus::Inactive);
        }));
        assert_eq!(
            plan(&q, &found),
            Plan::Read(SearchDriver::Status(UserStatus::Inactive))
        );

        let q = Questions::of(&search(|s| s.username = Some("ann".into())));
        let start = posting_key(1, Posting::UsernameStart, "ann");
        let mut found = Answers {
            fields: vec![(SearchField::Username, 12)],
            ..Default::default()
        };
        found.postings.insert(start, 5000);
        let field = SearchDriver::Field {
            field: SearchField::Username,
            start: "ann".into(),
        };
        assert_eq!(plan(&q, &found), Plan::Read(field));
        found.fields = vec![(SearchField::Username, FIELD_READ_LIMIT + 1)];
        found.postings.insert(start, FIELD_READ_LIMIT + 1);
        assert!(matches!(
            plan(&q, &found),
            Plan::Read(SearchDriver::Postings(_))
        ));
    }

    #[test]
    fn short_pieces_lead_instead_of_the_directory() {
        let start = posting_key(1, Posting::WordStart, "su");
        let q = Questions::of(&search(|s| s.name = Some("o su".into())));
        let mut found = Answers::default();
        found.postings.insert(start, 2000);
        assert_eq!(
            plan(&q, &found),
            Plan::Read(SearchDriver::Postings(vec![walk_from(start, &[], false)]))
        );
        let q = Questions::of(&search(|s| s.name = Some("王".into())));
        assert!(matches!(
            plan(&q, &answers(&[("王", 2000)])),
            Plan::Read(SearchDriver::Postings(_))
        ));
        // Nothing posted for a one-letter piece: the directory is read.
        let q = Questions::of(&search(|s| s.name = Some("o s".into())));
        assert_eq!(
            plan(&q, &Answers::default()),
            Plan::Read(SearchDriver::Directory)
        );
    }

    #[test]
    fn without_text_the_directory_order_is_read() {
        let q = Questions::of(&search(|_| {}));
        assert_eq!(
            plan(&q, &Answers::default()),
            Plan::Read(SearchDriver::Directory)
        );
    }

    #[test]
    fn mobiles_are_posted_by_their_end_and_matched_reversed() {
        let q = Questions::of(&search(|s| {
            s.name = Some("olivia".into());
            s.mobile = Some("0123".into());
        }));
        assert!(q.all_of.contains(&gram("liv")), "{q:?}");
        assert!(
            q.all_of
                .contains(&posting_key(1, Posting::MobileEnd, "123"))
        );
        assert_eq!(q.fields, vec![(SearchField::Mobile, "3210".to_owned())]);
    }
}
