//! Users search: totals, trigram counts and prefix ranges, on both databases.

use super::*;

crate::on_both_databases!(
    search_totals_follow_every_change,
    posting_counts_match_the_postings,
    prefix_searches_agree_whichever_index_they_read,
    rows_from_before_search_are_indexed_at_start_without_reading_every_user,
);

/// `n` staff users named "Test User", usernames `prefix0`, `prefix1`, ...
async fn staff(
    app: &crate::common::TestApp,
    org: gatehouse::domain::OrgId,
    prefix: &str,
    n: usize,
) -> Vec<gatehouse::domain::UserId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let username = format!("{prefix}{i}");
        let email = format!("{username}@a.example");
        let creation = new_user(org, &username, &email, UserKind::Staff);
        ids.push(app.store.create_user(creation).await.unwrap().id);
    }
    ids
}

/// An update of `user` that changes only what `edit` sets.
fn update(
    org: gatehouse::domain::OrgId,
    user: gatehouse::domain::UserId,
    edit: impl FnOnce(&mut UserUpdate),
) -> UserUpdate {
    let mut update = UserUpdate {
        org_id: org,
        user_id: user,
        first_name: None,
        last_name: None,
        mobile: None,
        practice_ids: None,
        audit: AuditEntry::new(org, now(), "user.updated"),
    };
    edit(&mut update);
    update
}

/// The total of a search for users named "Test", asked with a one-user page so that
/// it has to be counted (or remembered).
async fn total(app: &crate::common::TestApp, search: UserSearch) -> i64 {
    let page = app
        .store
        .search_users(UserSearch {
            limit: 1,
            with_total: true,
            now: now(),
            ..search
        })
        .await
        .unwrap();
    page.total.expect("a total")
}

async fn search_totals_follow_every_change(db: TestDb) {
    let app = test_app(&db).await;
    let (org, _) = seed_org(&app, "Alpha", "alpha.owner").await;
    let named = || UserSearch {
        org_id: org.id,
        name: Some("test".into()),
        ..Default::default()
    };
    let ids = staff(&app, org.id, "t", 3).await;
    assert_eq!(total(&app, named()).await, 3);
    assert_eq!(total(&app, named()).await, 3, "asked again");

    // A new user.
    app.store
        .create_user(new_user(org.id, "t3", "t3@a.example", UserKind::Staff))
        .await
        .unwrap();
    assert_eq!(total(&app, named()).await, 4, "after an invitation");

    // A new name, and a practice.
    let practice = app
        .store
        .create_practice(
            org.id,
            "North",
            AuditEntry::new(org.id, now(), "practice.created"),
        )
        .await
        .unwrap();
    let in_practice = || UserSearch {
        practice_id: Some(practice.id),
        ..named()
    };
    assert_eq!(total(&app, in_practice()).await, 0);
    app.store
        .update_user(update(org.id, ids[0], |u| {
            u.first_name = Some("Other".into());
            u.last_name = Some("Person".into());
        }))
        .await
        .unwrap();
    assert_eq!(total(&app, named()).await, 3, "after a rename");
    app.store
        .update_user(update(org.id, ids[1], |u| {
            u.practice_ids = Some(vec![practice.id])
        }))
        .await
        .unwrap();
    assert_eq!(
        total(&app, in_practice()).await,
        1,
        "after joining a practice"
    );
    app.store
        .update_user(update(org.id, ids[1], |u| {
            u.practice_ids = Some(Vec::new())
        }))
        .await
        .unwrap();
    assert_eq!(
        total(&app, in_practice()).await,
        0,
        "after leaving the practice"
    );

    // A status, changed behind the application's back: still seen.
    let invited = || UserSearch {
        status: Some(UserStatus::Invited),
        ..named()
    };
    assert_eq!(total(&app, invited()).await, 3);
    db.execute(&format!(
        "UPDATE users SET status = 'INACTIVE' WHERE id = {}",
        ids[2].0
    ))
    .await;
    assert_eq!(total(&app, invited()).await, 2, "after an inactivation");

    // Another organization's changes are its own.
    let (other, _) = seed_org(&app, "Beta", "beta.owner").await;
    app.store
        .create_user(new_user(other.id, "b0", "b0@b.example", UserKind::Staff))
        .await
        .unwrap();
    assert_eq!(total(&app, named()).await, 3);
    assert_eq!(
        total(
            &app,
            UserSearch {
                org_id: other.id,
                ..named()
            }
        )
        .await,
        1
    );
}

async fn posting_counts_match_the_postings(db: TestDb) {
    let app = test_app(&db).await;
    let (org, _) = seed_org(&app, "Alpha", "alpha.owner").await;
    let ids = staff(&app, org.id, "u", 5).await;
    // Searched just before and just after a change: what could match nothing is never
    // remembered, and a remembered plan still finds what changed.
    let named = |name: &'static str| find_by_name(&app, org.id, name, 10);
    let before = named("quorra").await;
    assert_eq!(before.total, Some(0));
    let tests = named("test").await;
    assert_eq!(tests.total, Some(5));
    app.store
        .update_user(update(org.id, ids[0], |u| {
            u.first_name = Some("Zygmunt".into());
            u.last_name = Some("Quorra".into());
            u.mobile = Some(Some("+15035550199".into()));
        }))
        .await
        .unwrap();
    assert_eq!(
        miscounted_keys(&db).await,
        0,
        "every key counted as often as it is posted"
    );
    let after = named("quorra").await;
    assert_eq!((after.users.len(), after.total), (1, Some(1)));
    let tests = named("test").await;
    assert_eq!(tests.total, Some(4));
    let stale = db
        .count(
            "SELECT COUNT(*) FROM user_search_counts c WHERE c.users <> 0 AND NOT EXISTS \
             (SELECT 1 FROM user_search_postings p WHERE p.key = c.key)",
        )
        .await;
    assert_eq!(stale, 0, "no key counted that is no longer posted");
    let orphans = db
        .count(
            "SELECT COUNT(*) FROM user_search_postings p WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.search_rank = p.rank)",
        )
        .await;
    assert_eq!(orphans, 0, "every posting is at a user's rank");
    // "tes" (of "Test") lost one user; "zyg" gained one; a trigram nobody has finds nobody.
    let page = find_by_name(&app, org.id, "zygmunt q", 10).await;
    assert_eq!((page.users.len(), page.total), (1, Some(1)));
    let none = find_by_name(&app, org.id, "xxq", 10).await;
    assert_eq!((none.users.len(), none.total), (0, Some(0)));
}

/// Username and email starts and mobile ends are read from their own index when few
/// users share them and from the trigram postings when many do: the answers agree.
async fn prefix_searches_agree_whichever_index_they_read(db: TestDb) {
    let app = test_app(&db).await;
    let (org, _) = app
        .directory()
        .create_organization(
            gatehouse::app::directory::organization::CreateOrganization {
                name: "Large".into(),
                owner_username: "large.owner".into(),
                owner_email: "owner@large.example".into(),
                owner_first_name: "Olivia".into(),
                owner_last_name: "Owner".into(),
                owner_kind: UserKind::Staff,
                licenses: vec![(Product::Ehr, UserKind::Staff, 1100)],
                owner_password: None,
            },
        )
        .await
        .unwrap();
    for i in 0..1050 {
        let mut creation = new_user(
            org.id,
            &format!("pat{i:04}"),
            &format!("Pat{i:04}@a.example"),
            UserKind::Staff,
        );
        creation.user.last_name = format!("Family {}", (i * 7) % 1050);
        creation.user.mobile = Some(format!("+1503555{i:04}"));
        app.store.create_user(creation).await.unwrap();
    }
    // Every match, page by page, in directory order.
    async fn all(app: &crate::common::TestApp, search: UserSearch) -> (Vec<String>, i64) {
        let (mut names, mut after, mut total) = (Vec::new(), None, None);
        loop {
            let page = app
                .store
                .search_users(UserSearch {
                    after: after.clone(),
                    limit: 100,
                    with_total: true,
                    now: now(),
                    ..search.clone()
                })
                .await
                .unwrap();
            total = total.or(page.total);
            assert_eq!(page.total, total, "the same total on every page");
            let Some((key, _)) = page.users.last() else {
                break;
            };
            after = Some(key.clone());
            let keys: Vec<_> = page.users.iter().map(|(k, _)| k.clone()).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "in order");
            names.extend(page.users.into_iter().map(|(_, u)| u.username));
        }
        (names, total.unwrap())
    }
    let search = |f: fn(&mut UserSearch)| {
        let mut s = UserSearch {
            org_id: org.id,
            ..Default::default()
        };
        f(&mut s);
        s
    };
    // Many share "pat" (postings), a thousand "pat0" (the field's index).
    let (many, total) = all(&app, search(|s| s.username = Some("pat".into()))).await;
    assert_eq!((many.len(), total), (1050, 1050));
    let (few, total) = all(&app, search(|s| s.username = Some("pat0".into()))).await;
    assert_eq!((few.len(), total), (1000, 1000));
    let expected: Vec<_> = many
        .iter()
        .filter(|u| u.starts_with("pat0"))
        .cloned()
        .collect();
    assert_eq!(few, expected, "the same users in the same order");
    let (emails, total) = all(&app, search(|s| s.email = Some("pat10".into()))).await;
    assert_eq!((emails.len(), total), (50, 50));
    let (by_mobile, total) = all(&app, search(|s| s.mobile = Some("5551049".into()))).await;
    assert_eq!((by_mobile, total), (vec!["pat1049".to_owned()], 1));
    let (none, total) = all(&app, search(|s| s.username = Some("pax".into()))).await;
    assert_eq!((none.len(), total), (0, 0));
    // Other conditions still apply to a field range.
    db.execute("UPDATE users SET status = 'INACTIVE' WHERE username = 'pat0007'")
        .await;
    let (inactive, total) = all(
        &app,
        search(|s| {
            s.username = Some("pat00".into());
            s.status = Some(UserStatus::Inactive);
        }),
    )
    .await;
    assert_eq!((inactive, total), (vec!["pat0007".to_owned()], 1));
}

/// Rows written before a search field existed (here a mobile without its reversed digits)
/// are filled in when the store starts, and the statements that look for such rows (also
/// users without a rank) read partial indexes that hold only them: a start does not read
/// every user.
async fn rows_from_before_search_are_indexed_at_start_without_reading_every_user(db: TestDb) {
    use gatehouse::store::search::{UNRANKED_USERS, UNREVERSED_MOBILES};
    let app = test_app(&db).await;
    let (org, _) = seed_org(&app, "Old Rows", "olga").await;
    let mut creation = new_user(org.id, "legacy", "legacy@a.example", UserKind::Staff);
    creation.user.last_name = "Zebulon".into();
    creation.user.mobile = Some("+1 415 555 0172".into());
    app.store.create_user(creation).await.unwrap();
    drop(app);
    let forgotten = db
        .execute("UPDATE users SET mobile_reversed = NULL WHERE username = 'legacy'")
        .await;
    assert_eq!(forgotten, 1);

    let app = test_app(&db).await;
    let find = |search: UserSearch| {
        let store = app.store.clone();
        async move {
            let page = store
                .search_users(UserSearch {
                    org_id: org.id,
                    limit: 10,
                    now: now(),
                    ..search
                })
                .await
                .unwrap();
            page.users
                .iter()
                .map(|(_, u)| u.username.clone())
                .collect::<Vec<_>>()
        }
    };
    let by_mobile = find(UserSearch {
        mobile: Some("0172".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_mobile, ["legacy"]);
    let by_name = find(UserSearch {
        name: Some("zebul".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_name, ["legacy"]);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM users WHERE search_rank IS NULL OR (mobile_digits IS NOT NULL AND mobile_reversed IS NULL)")
            .await,
        0
    );

    for (check, index) in [
        (UNREVERSED_MOBILES, "users_unreversed_idx"),
        (UNRANKED_USERS, "users_unranked_idx"),
    ] {
        let plan = db.plan(check).await;
        assert!(plan.contains(index), "{check}\nis planned as\n{plan}");
    }
}
