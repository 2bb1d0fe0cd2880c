//! Directory ranks: postings walk users in directory order by integer ranks, which must
//! stay in the order of the sort keys through crowding, imports and renames.

use super::*;

crate::on_both_databases!(
    ranks_keep_directory_order_through_crowding_imports_and_renames,
    renames_of_one_user_at_once_leave_the_last_name_posted_alone,
    neighbours_renamed_at_once_into_a_crowded_gap_all_succeed,
);

/// Users whose rank disagrees with their sort key, ranks shared, postings at no user's
/// rank, and keys counted other than as posted: all must be none.
async fn inconsistencies(db: &TestDb) -> [i64; 4] {
    [
        db.count(
            "SELECT COUNT(*) FROM users a JOIN users b ON a.org_id = b.org_id \
             AND a.sort_key < b.sort_key AND a.search_rank >= b.search_rank",
        )
        .await,
        db.count(
            "SELECT COUNT(*) FROM (SELECT org_id, search_rank FROM users \
             GROUP BY org_id, search_rank HAVING COUNT(*) > 1) shared",
        )
        .await,
        db.count(
            "SELECT COUNT(*) FROM user_search_postings p WHERE NOT EXISTS \
             (SELECT 1 FROM users u WHERE u.search_rank = p.rank)",
        )
        .await,
        db.count(
            "SELECT COUNT(*) FROM (SELECT key, COUNT(*) AS n FROM user_search_postings \
             GROUP BY key) p LEFT JOIN user_search_counts c \
             ON c.key = p.key WHERE COALESCE(c.users, -1) <> p.n",
        )
        .await,
    ]
}

/// Sixty namesakes invited one by one, each after the last; sixty more invited each
/// before the last, between it and a fixed neighbour (so that gap is halved again and
/// again, runs out, and the neighbourhood is spread out); three hundred imported at once
/// into that crowded spot; then renames back and forth: the ranks stay in directory
/// order and every search walks them in it, each user once.
async fn ranks_keep_directory_order_through_crowding_imports_and_renames(db: TestDb) {
    let app = test_app(&db).await;
    let (org, _) = app
        .directory()
        .create_organization(
            gatehouse::app::directory::organization::CreateOrganization {
                name: "Crowded".into(),
                owner_username: "zulu.owner".into(),
                owner_email: "owner@crowded.example".into(),
                owner_first_name: "Zed".into(),
                owner_last_name: "Zulu".into(),
                owner_kind: UserKind::Staff,
                licenses: vec![(Product::Ehr, UserKind::Staff, 500)],
                owner_password: None,
            },
        )
        .await
        .unwrap();
    // A second organization with a namesake: its rows follow the crowded one's in the
    // (org_id, sort_key) index, which neighbour lookups and spreading must not cross.
    let (later, _) = seed_org(&app, "Later", "lara").await;
    let mut other = new_user(
        later.id,
        "other.adams",
        "other@later.example",
        UserKind::Staff,
    );
    other.user.first_name = "Ann".into();
    other.user.last_name = "Adams".into();
    let other = app.store.create_user(other).await.unwrap().id;
    let namesake = |i: usize| {
        let mut creation = new_user(
            org.id,
            &format!("crowd{i:03}"),
            &format!("crowd{i:03}@a.example"),
            UserKind::Staff,
        );
        creation.user.first_name = "Ann".into();
        creation.user.last_name = "Adams".into();
        creation
    };
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(app.store.create_user(namesake(i)).await.unwrap().id);
    }
    assert_eq!(inconsistencies(&db).await, [0; 4]);
    // Before them all, a fixed neighbour; then "Adams, Amy 059" down to "Adams, Amy 000",
    // each sorting just before the last.
    let mut first = new_user(org.id, "aaberg", "aaberg@a.example", UserKind::Staff);
    first.user.last_name = "Aaberg".into();
    app.store.create_user(first).await.unwrap();
    let early = |i: usize| {
        let mut creation = namesake(400 + i);
        creation.user.first_name = format!("Amy {:03}", 59 - i);
        creation
    };
    let mut before = Vec::new();
    for i in 0..60 {
        before.push(app.store.create_user(early(i)).await.unwrap().id);
    }
    assert_eq!(inconsistencies(&db).await, [0; 4]);
    // Three hundred more into the crowded spot between "Amy 000" and "Amy 001", where
    // the import's second batch (after a first of 200 shared the gap evenly) cannot fit.
    let gap = db
        .count(
            "SELECT MAX(search_rank) - MIN(search_rank) FROM users \
             WHERE first_name IN ('Amy 000', 'Amy 001')",
        )
        .await;
    assert!(gap < 201 * 101, "the spot is crowded: a gap of {gap}");
    let import = gatehouse::store::UserImport {
        org_id: org.id,
        new_practices: Vec::new(),
        users: (0..300)
            .map(|i| {
                let mut creation = namesake(60 + i);
                creation.user.first_name = format!("Amy 000 {i:03}");
                (creation, Vec::new())
            })
            .collect(),
    };
    let squeezed = app.store.import_users(import, &|_| {}).await.unwrap();
    assert_eq!(inconsistencies(&db).await, [0; 4]);
    // Directory order: the Amys from "000" up (the first imported sorts after "Amy 000"
    // alone), then the Anns.
    let ids: Vec<_> = std::iter::once(*before.last().unwrap())
        .chain(squeezed)
        .chain(before.iter().rev().skip(1).copied())
        .chain(ids)
        .collect();
    for (round, id) in ids.iter().step_by(9).enumerate() {
        for last in ["Mills", "Adams"] {
            let update = UserUpdate {
                org_id: org.id,
                user_id: *id,
                first_name: None,
                last_name: Some(last.into()),
                mobile: Some(Some(format!("+1503555{round:04}"))),
                practice_ids: None,
                audit: AuditEntry::new(org.id, now(), "user.updated"),
            };
            app.store.update_user(update).await.unwrap();
        }
    }
    assert_eq!(inconsistencies(&db).await, [0; 4]);

    // Every namesake, page by page, in directory order (by ID among namesakes), each
    // once: by name, and by `search`, which finds each by username and by email alike.
    let any = gatehouse::store::search::AnyMatch {
        text: "crowd".into(),
        digits: None,
    };
    for search in [
        UserSearch {
            name: Some("adams".into()),
            ..Default::default()
        },
        UserSearch {
            any: Some(any),
            ..Default::default()
        },
    ] {
        let (mut found, mut after) = (Vec::new(), None);
        loop {
            let page = app
                .store
                .search_users(UserSearch {
                    org_id: org.id,
                    after: after.clone(),
                    limit: 25,
                    with_total: true,
                    now: now(),
                    ..search.clone()
                })
                .await
                .unwrap();
            assert_eq!(page.total, Some(420), "{search:?}");
            let Some((key, _)) = page.users.last() else {
                break;
            };
            after = Some(key.clone());
            found.extend(page.users.into_iter().map(|(_, u)| u.id));
        }
        assert_eq!(found, ids, "{search:?}");
    }
    let theirs = find_by_name(&app, later.id, "adams", 25).await;
    let theirs: Vec<_> = theirs.users.iter().map(|(_, u)| u.id).collect();
    assert_eq!(
        theirs,
        [other],
        "the other organization's namesake, untouched"
    );
}

/// Eight renames of one user at once, each to a name elsewhere in the directory: all
/// succeed, one after another, and the user is left ranked and posted under the name
/// they hold, with no posting of the names they held on the way.
async fn renames_of_one_user_at_once_leave_the_last_name_posted_alone(db: TestDb) {
    use gatehouse::domain::search::SearchKeys;
    const LAST: [&str; 8] = [
        "Abbott", "Baker", "Castro", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
    ];
    let app = test_app(&db).await;
    let (org, _) = seed_org(&app, "Renamed", "rena").await;
    for (i, last) in LAST.iter().enumerate() {
        let mut neighbour = new_user(
            org.id,
            &format!("n{i}"),
            &format!("n{i}@r.example"),
            UserKind::Staff,
        );
        neighbour.user.last_name = (*last).into();
        app.store.create_user(neighbour).await.unwrap();
    }
    let user = app
        .store
        .create_user(new_user(
            org.id,
            "moving",
            "moving@r.example",
            UserKind::Staff,
        ))
        .await
        .unwrap();
    let renames = LAST.map(|last| {
        let store = app.store.clone();
        tokio::spawn(async move {
            store
                .update_user(UserUpdate {
                    org_id: org.id,
                    user_id: user.id,
                    first_name: None,
                    last_name: Some(last.into()),
                    mobile: None,
                    practice_ids: None,
                    audit: AuditEntry::new(org.id, now(), "user.updated"),
                })
                .await
        })
    });
    for rename in renames {
        rename.await.unwrap().expect("each rename succeeds");
    }
    assert_eq!(inconsistencies(&db).await, [0; 4]);

    let held = app.store.user(org.id, user.id).await.unwrap();
    let keys = |last: &str| {
        SearchKeys::new("Test", last, "moving@r.example", None).posting_keys(org.id.0, "moving")
    };
    let list = |keys: &[i64]| {
        keys.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rank = format!("(SELECT search_rank FROM users WHERE id = {})", user.id.0);
    let posted = keys(&held.last_name);
    let stale: Vec<i64> = LAST
        .iter()
        .flat_map(|l| keys(l))
        .filter(|k| !posted.contains(k))
        .collect();
    let count = |keys: &[i64]| {
        format!(
            "SELECT COUNT(DISTINCT key) FROM user_search_postings WHERE rank = {rank} AND key IN ({})",
            list(keys)
        )
    };
    let mut distinct = posted.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        db.count(&count(&posted)).await,
        distinct.len() as i64,
        "posted as {}",
        held.last_name
    );
    assert_eq!(
        db.count(&count(&stale)).await,
        0,
        "nothing left of the names before {}",
        held.last_name
    );
    let found = find_by_name(&app, org.id, &held.last_name.to_lowercase(), 25).await;
    assert!(found.users.iter().any(|(_, u)| u.id == user.id));
}

/// Thirty neighbours renamed at once into a gap already used up, so that the first to
/// arrive spreads the neighbourhood out, moving neighbours whose own renames are under
/// way, while five users are invited into the same gap (on PostgreSQL the directory is
/// held until all have started). Every write succeeds without being a deadlock's victim
/// (none is run again) and the directory stays in order.
async fn neighbours_renamed_at_once_into_a_crowded_gap_all_succeed(db: TestDb) {
    const COUNT: usize = 30;
    let app = test_app(&db).await;
    let (org, _) = seed_org(&app, "Renamed", "rena").await;
    let invite = |first: String| {
        let (store, n) = (app.store.clone(), first.to_lowercase());
        async move {
            let mut user = new_user(org.id, &n, &format!("{n}@r.example"), UserKind::Staff);
            user.user.first_name = first;
            user.user.last_name = "Crowd".into();
            user.user.products.clear();
            store.create_user(user).await.unwrap().id
        }
    };
    let mut ids = Vec::new();
    for first in (0..COUNT)
        .map(|i| format!("P{i:02}"))
        .chain(["Q".into(), "R".into()])
    {
        ids.push(invite(first).await);
    }
    // The gap between Q and R halved until it is used up: QA19 … QA00.
    for i in (0..20).rev() {
        invite(format!("QA{i:02}")).await;
    }
    // Connections open first, so that the renames start together.
    let reads = ids.iter().map(|id| app.store.user(org.id, *id));
    futures_util::future::try_join_all(reads).await.unwrap();
    let held = db
        .hold(
            "UPDATE directory_versions SET version = version + 1 WHERE org_id = $1",
            org.id.0,
        )
        .await;
    // P00 … P29 become Q00 … Q29, between Q and QA00.
    let renames: Vec<_> = (0..COUNT)
        .map(|i| {
            let (store, id) = (app.store.clone(), ids[i]);
            tokio::spawn(async move {
                store
                    .update_user(UserUpdate {
                        org_id: org.id,
                        user_id: id,
                        first_name: Some(format!("Q{i:02}")),
                        last_name: None,
                        mobile: None,
                        practice_ids: None,
                        audit: AuditEntry::new(org.id, now(), "user.updated"),
                    })
                    .await
            })
        })
        .collect();
    // And five invitations into the same gap, taking licenses.
    let invitations: Vec<_> = (0..5)
        .map(|i| {
            let store = app.store.clone();
            let mut user = new_user(
                org.id,
                &format!("new{i}"),
                &format!("new{i}@r.example"),
                UserKind::Staff,
            );
            user.user.first_name = format!("Q15{i}");
            user.user.last_name = "Crowd".into();
            tokio::spawn(async move { store.create_user(user).await })
        })
        .collect();
    if let Some(held) = held {
        held.release_after_half_a_second().await;
    }
    for rename in renames {
        rename.await.unwrap().expect("each rename succeeds");
    }
    let mut invited = Vec::new();
    for invitation in invitations {
        invited.push(
            invitation
                .await
                .unwrap()
                .expect("each invitation succeeds")
                .id,
        );
    }
    let retried = app.store.gauges(now()).await.unwrap().writes_retried;
    assert_eq!(retried, 0, "no write was a deadlock's victim");
    assert_eq!(inconsistencies(&db).await, [0; 4]);
    let found = find_by_name(&app, org.id, "crowd", 100).await;
    let found: Vec<_> = found
        .users
        .iter()
        .map(|(_, u)| u.id)
        .take(COUNT + 6)
        .collect();
    let order = [ids[COUNT]]
        .into_iter()
        .chain(ids[..16].iter().copied())
        .chain(invited)
        .chain(ids[16..COUNT].iter().copied());
    assert_eq!(
        found,
        order.collect::<Vec<_>>(),
        "all renamed and invited, in directory order"
    );
}
