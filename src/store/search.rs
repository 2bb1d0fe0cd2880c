//! The users search planner: from a search's filters and what the organization's
//! statistics say (how many users carry each trigram, how many start a field with the
//! query), where the search starts reading. Pure, so it is tested without a database;
//! the SQL that reads the statistics and runs the plan is in `sql/search.rs`.

use super::StoreResult;
use crate::domain::{OrgId, PracticeId, Timestamp, User, UserKind};

/// The users search, as the store answers it.
#[async_trait::async_trait]
pub trait SearchStore: Send + Sync {
    /// One page of an organization's users in directory order, with the total when asked.
    async fn search_users(&self, search: UserSearch) -> StoreResult<UserPage>;
    /// Fills in search keys of users that have none (rows written before search existed).
    async fn reindex_users(&self) -> StoreResult<u64>;
}

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
    pub status: Option<crate::domain::UserStatus>,
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

/// Trigrams a search walks: the rarest leads, the others are checked against it.
pub const MAX_GRAMS: usize = 4;
/// A field range read whole and sorted when it holds at most this many users.
pub const FIELD_READ_LIMIT: i64 = 1000;

/// Where a users search starts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchDriver {
    /// The organization's users in directory order.
    Directory,
    /// The postings of the first (rarest) trigram in directory order, the others looked
    /// up beside each.
    Grams(Vec<String>),
    /// The users whose field starts with `start`, from the field's own index, then sorted.
    Field { field: SearchField, start: String },
}

/// A field matched from its start, with a per-organization index in byte-wise order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SearchField {
    Username,
    Email,
    /// The mobile's digits reversed: its end becomes a start.
    Mobile,
}

impl SearchField {
    /// How the planning statement labels this field's count (never a trigram).
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
    /// The distinct trigrams of the longest text to match.
    pub grams: Vec<String>,
    /// The prefix-matched fields and the start each must have.
    pub fields: Vec<(SearchField, String)>,
    /// A total is wanted and may be remembered for the directory's version.
    pub remember: bool,
}

impl Questions {
    pub fn of(q: &UserSearch) -> Self {
        // Candidates come from the trigrams of the longest text to match; every condition
        // is then checked on the user row itself.
        let source = [
            q.any
                .as_ref()
                .map(|a| a.digits.clone().unwrap_or_else(|| a.text.clone())),
            q.name.clone(),
            q.username.clone(),
            q.email.clone(),
            q.mobile.clone(),
        ]
        .into_iter()
        .flatten()
        .max_by_key(|t| t.chars().count())
        .unwrap_or_default();
        let mut grams = crate::domain::search::trigrams(&source);
        grams.sort();
        grams.dedup();
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
        // Lock states end with time, so totals of the locked filter are always counted.
        let remember = q.with_total && q.locked.is_none();
        Self {
            grams,
            fields,
            remember,
        }
    }

    /// Whether the statistics need reading at all.
    pub fn any(&self) -> bool {
        !self.grams.is_empty() || !self.fields.is_empty() || self.remember
    }
}

/// The plan: nothing can match, or where to start reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Nothing,
    Read(SearchDriver),
}

/// Plans from the answers: `grams` the users of each trigram that any user carries,
/// `fields` the users (counted up to just past [`FIELD_READ_LIMIT`]) starting each field.
pub fn plan(
    questions: &Questions,
    mut grams: Vec<(i64, String)>,
    fields: &[(SearchField, i64)],
) -> Plan {
    let narrowest = fields
        .iter()
        .filter_map(|(field, n)| {
            let start = questions.fields.iter().find(|(f, _)| f == field)?;
            Some((*n, *field, start.1.clone()))
        })
        .min_by_key(|(n, field, _)| (*n, *field));
    if grams.len() < questions.grams.len() || narrowest.as_ref().is_some_and(|(n, _, _)| *n == 0) {
        // A trigram or a field start no user has: nothing can match.
        return Plan::Nothing;
    }
    grams.sort();
    Plan::Read(match narrowest {
        Some((n, field, start)) if n <= FIELD_READ_LIMIT => SearchDriver::Field { field, start },
        _ if !grams.is_empty() => SearchDriver::Grams(
            grams
                .into_iter()
                .take(MAX_GRAMS)
                .map(|(_, gram)| gram)
                .collect(),
        ),
        _ => SearchDriver::Directory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn questions(grams: &[&str], fields: &[(SearchField, &str)]) -> Questions {
        Questions {
            grams: grams.iter().map(|g| g.to_string()).collect(),
            fields: fields.iter().map(|(f, s)| (*f, s.to_string())).collect(),
            remember: false,
        }
    }

    fn counts(list: &[(i64, &str)]) -> Vec<(i64, String)> {
        list.iter().map(|(n, g)| (*n, g.to_string())).collect()
    }

    #[test]
    fn the_rarest_trigrams_lead() {
        let q = questions(&["gar", "arc", "rci", "cia", "ia$"], &[]);
        let planned = plan(
            &q,
            counts(&[
                (900, "gar"),
                (40, "arc"),
                (7, "rci"),
                (300, "cia"),
                (50, "ia$"),
            ]),
            &[],
        );
        assert_eq!(
            planned,
            Plan::Read(SearchDriver::Grams(vec![
                "rci".into(),
                "arc".into(),
                "ia$".into(),
                "cia".into()
            ]))
        );
    }

    #[test]
    fn a_trigram_or_field_start_nobody_has_matches_nothing() {
        let q = questions(&["zzq", "abc"], &[]);
        assert_eq!(plan(&q, counts(&[(3, "abc")]), &[]), Plan::Nothing);
        let q = questions(&[], &[(SearchField::Username, "zz")]);
        assert_eq!(
            plan(&q, vec![], &[(SearchField::Username, 0)]),
            Plan::Nothing
        );
    }

    #[test]
    fn a_narrow_field_range_is_read_whole_a_broad_one_is_not() {
        let q = questions(&["ann"], &[(SearchField::Username, "ann")]);
        assert_eq!(
            plan(&q, counts(&[(5000, "ann")]), &[(SearchField::Username, 12)]),
            Plan::Read(SearchDriver::Field {
                field: SearchField::Username,
                start: "ann".into()
            })
        );
        let broad = plan(
            &q,
            counts(&[(5000, "ann")]),
            &[(SearchField::Username, FIELD_READ_LIMIT + 1)],
        );
        assert_eq!(broad, Plan::Read(SearchDriver::Grams(vec!["ann".into()])));
    }

    #[test]
    fn without_text_the_directory_order_is_read() {
        assert_eq!(
            plan(&questions(&[], &[]), vec![], &[]),
            Plan::Read(SearchDriver::Directory)
        );
    }

    #[test]
    fn questions_come_from_the_longest_text_and_the_prefix_fields() {
        let search = UserSearch {
            org_id: crate::domain::OrgId(1),
            name: Some("olivia".into()),
            username: Some("ol".into()),
            email: None,
            mobile: Some("0123".into()),
            any: None,
            status: None,
            kind: None,
            locked: None,
            practice_id: None,
            now: crate::domain::now(),
            after: None,
            limit: 20,
            with_total: false,
        };
        let q = Questions::of(&search);
        assert!(q.grams.contains(&"liv".to_owned()), "{q:?}");
        assert_eq!(
            q.fields,
            vec![
                (SearchField::Username, "ol".to_owned()),
                (SearchField::Mobile, "3210".to_owned())
            ]
        );
    }
}
