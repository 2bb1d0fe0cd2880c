//! Names searched by pieces too short for a trigram ("o su", "王"): found from postings
//! of word starts and single ideographs, with the same meaning as reading every row, and
//! posted at start-up for users written before those postings existed.

use super::*;
use gatehouse::domain::search::{SearchKeys, fold};
use gatehouse::store::AnyMatch;

crate::on_both_databases!(
    short_pieces_find_what_reading_every_row_finds,
    short_pieces_of_earlier_users_are_posted_at_start,
);

const PEOPLE: &[(&str, &str)] = &[
    ("Siobhán", "Ó Súilleabháin"),
    ("Seán", "O'Sullivan"),
    ("Ana", "Su"),
    ("Sunita", "Patel"),
    ("伟", "王"),
    ("芳", "王"),
    ("伟", "李"),
    ("민준", "김"),
    ("Olga", "Osu"),
    ("Jo", "De la Cruz"),
    ("Ana", "García"),
];

const QUERIES: &[&str] = &[
    "o su", "o s", "王", "伟 王", "王 伟", "李", "김", "민", "su", "a su", "la c", "De La",
    "n o su", "ana", "u", "  O  SU ", "jo de", "伟伟",
];

/// An organization holding [`PEOPLE`], usernames `u0`, `u1`, ...
async fn people(app: &crate::common::TestApp) -> gatehouse::domain::OrgId {
    let (org, _) = seed_org(app, "Pieces", "pieces.owner").await;
    for (i, (first, last)) in PEOPLE.iter().enumerate() {
        // The organization's seats: ten staff (one the owner's) and five providers.
        let kind = [UserKind::Staff, UserKind::Provider][i % 2];
        let mut creation = new_user(org.id, &format!("u{i}"), &format!("u{i}@a.example"), kind);
        creation.user.first_name = (*first).into();
        creation.user.last_name = (*last).into();
        app.store.create_user(creation).await.unwrap();
    }
    org.id
}

/// Asserts that `search` finds exactly `expected` (usernames, one page holds all) and
/// counts as many.
async fn assert_finds(
    app: &crate::common::TestApp,
    search: UserSearch,
    mut expected: Vec<String>,
    what: &str,
) {
    let page = app
        .store
        .search_users(UserSearch {
            limit: 50,
            with_total: true,
            now: now(),
            ..search
        })
        .await
        .unwrap();
    let mut names: Vec<String> = page.users.into_iter().map(|(_, u)| u.username).collect();
    names.sort();
    expected.sort();
    let total = Some(expected.len() as i64);
    assert_eq!((names, page.total), (expected, total), "{what}");
}

async fn short_pieces_find_what_reading_every_row_finds(db: TestDb) {
    let app = test_app(&db).await;
    let org = people(&app).await;
    for query in QUERIES {
        let text = fold(query);
        let mut named = Vec::new();
        let mut any = Vec::new();
        for (i, (first, last)) in PEOPLE.iter().enumerate() {
            let (username, email) = (format!("u{i}"), format!("u{i}@a.example"));
            let by_name = SearchKeys::new(first, last, &email, None)
                .name
                .contains(&text);
            if by_name {
                named.push(username.clone());
            }
            if by_name || username.starts_with(&text) || email.starts_with(&text) {
                any.push(username);
            }
        }
        assert!(
            !named.is_empty() || *query == "伟伟",
            "{query} finds someone"
        );
        let search = |edit: &dyn Fn(&mut UserSearch)| {
            let mut search = UserSearch {
                org_id: org,
                ..Default::default()
            };
            edit(&mut search);
            search
        };
        let by_name = search(&|s| s.name = Some(text.clone()));
        assert_finds(&app, by_name, named, &format!("name {query:?}")).await;
        let by_any = search(&|s| {
            s.any = Some(AnyMatch {
                text: text.clone(),
                digits: None,
            })
        });
        assert_finds(&app, by_any, any, &format!("search {query:?}")).await;
    }
}

async fn short_pieces_of_earlier_users_are_posted_at_start(db: TestDb) {
    let app = test_app(&db).await;
    let org = people(&app).await;
    drop(app);
    // As the index was before migration 13: no short pieces posted or counted.
    let mut keys: Vec<String> = PEOPLE
        .iter()
        .flat_map(|(first, last)| SearchKeys::new(first, last, "", None).short_keys(org.0))
        .map(|k| k.to_string())
        .collect();
    keys.extend(
        SearchKeys::new("Olivia", "Owner", "", None)
            .short_keys(org.0)
            .iter()
            .map(|k| k.to_string()),
    );
    let keys = keys.join(", ");
    assert!(
        db.execute(&format!(
            "DELETE FROM user_search_postings WHERE key IN ({keys})"
        ))
        .await
            > 0
    );
    db.execute(&format!(
        "DELETE FROM user_search_counts WHERE key IN ({keys})"
    ))
    .await;
    db.execute("INSERT INTO search_backfills (name, after_id) VALUES ('short_name_pieces', 0)")
        .await;

    let app = test_app(&db).await;
    let search = |name: &str| UserSearch {
        org_id: org,
        name: Some(name.into()),
        ..Default::default()
    };
    assert_finds(&app, search("o su"), vec!["u0".into()], "o su").await;
    assert_finds(&app, search("王"), vec!["u4".into(), "u5".into()], "王").await;
    assert_eq!(
        miscounted_keys(&db).await,
        0,
        "every key counted as often as it is posted"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM search_backfills").await,
        0,
        "done"
    );
}
