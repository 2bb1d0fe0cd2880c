//! Finding users over HTTP: filters, order, pages and totals.

use super::*;

crate::on_both_databases!(
    users_are_found_by_name_username_email_and_mobile,
    users_page_in_a_stable_order_with_totals,
);

async fn users_are_found_by_name_username_email_and_mobile(db: TestDb) {
    let (server, token, _) = owner_server(&db).await;
    for (u, f, l, m) in [
        ("agarcia", "Ana", "García", Some("(503) 555-0123")),
        ("bgarcia", "Bruno", "Garcia", None),
        ("cnguyen", "Chi", "Nguyễn", Some("+1 415 555 2671")),
        ("dlee", "Dana", "Lee", None),
    ] {
        let done = invite(&server, &token, person(u, f, l, m)).await;
        assert_eq!(done["userErrors"], json!([]), "{done}");
    }
    assert_eq!(
        usernames(&server, &token, json!({ "name": "garc" })).await,
        ["agarcia", "bgarcia"]
    );
    assert_eq!(
        usernames(&server, &token, json!({ "name": "GARCÍA" })).await,
        ["agarcia", "bgarcia"]
    );
    assert_eq!(
        usernames(&server, &token, json!({ "name": "ana garcia" })).await,
        ["agarcia"],
        "full name"
    );
    assert_eq!(
        usernames(&server, &token, json!({ "name": "garcia ana" })).await,
        ["agarcia"],
        "last, first"
    );
    assert_eq!(
        usernames(&server, &token, json!({ "name": "nguyen" })).await,
        ["cnguyen"],
        "accents folded"
    );
    assert_eq!(
        usernames(&server, &token, json!({ "name": "an" })).await,
        ["agarcia", "dlee"],
        "short parts too"
    );
    assert_eq!(
        usernames(&server, &token, json!({ "username": "BGar" })).await,
        ["bgarcia"]
    );
    assert!(
        usernames(&server, &token, json!({ "username": "garcia" }))
            .await
            .is_empty(),
        "the start only"
    );
    assert_eq!(
        usernames(&server, &token, json!({ "email": "CNGUYEN@sun" })).await,
        ["cnguyen"]
    );
    assert_eq!(
        usernames(&server, &token, json!({ "mobile": "503-555-0123" })).await,
        ["agarcia"]
    );
    assert_eq!(
        usernames(&server, &token, json!({ "mobile": "+15035550123" })).await,
        ["agarcia"],
        "whole number"
    );
    assert_eq!(
        usernames(&server, &token, json!({ "mobile": "0123" })).await,
        ["agarcia"],
        "trailing part"
    );
    assert!(
        usernames(&server, &token, json!({ "mobile": "5035" }))
            .await
            .is_empty(),
        "not the middle"
    );
    assert_eq!(
        usernames(&server, &token, json!({ "search": "(415) 555-2671" })).await,
        ["cnguyen"]
    );
    assert_eq!(
        usernames(&server, &token, json!({ "search": "dlee" })).await,
        ["dlee"]
    );
    assert_eq!(
        usernames(&server, &token, json!({ "search": "García" })).await,
        ["agarcia", "bgarcia"]
    );
    assert_eq!(
        usernames(&server, &token, json!({ "search": "50%" })).await,
        Vec::<String>::new(),
        "LIKE is escaped"
    );
    for odd in [
        json!({ "mobile": "no digits" }),
        json!({ "username": "\u{10FFFF}" }),
    ] {
        assert!(
            usernames(&server, &token, odd.clone()).await.is_empty(),
            "{odd} finds nobody, without an error"
        );
    }
    // Control characters are refused in every text input, on both databases.
    for bad in [
        json!({ "name": "gar\u{0}cia" }),
        json!({ "search": "\u{0}" }),
        json!({ "username": "a\u{0}" }),
        json!({ "email": "\u{10FFFF}\u{0}" }),
    ] {
        let (status, body) = server
            .graphql(Some(&token), USERS, json!({ "f": bad, "first": 100 }))
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{bad}: {body}"
        );
    }
    assert_eq!(
        usernames(
            &server,
            &token,
            json!({ "status": "INVITED", "name": "lee" })
        )
        .await,
        ["dlee"]
    );
    assert_eq!(
        usernames(&server, &token, json!({ "status": "ACTIVE" })).await,
        ["olivia"]
    );
    assert!(
        usernames(&server, &token, json!({ "kind": "PROVIDER" }))
            .await
            .is_empty()
    );
    assert!(
        usernames(&server, &token, json!({ "locked": true }))
            .await
            .is_empty()
    );
    assert_eq!(
        usernames(&server, &token, json!({ "locked": false }))
            .await
            .len(),
        5
    );
}

async fn users_page_in_a_stable_order_with_totals(db: TestDb) {
    let (server, token, _) = owner_server(&db).await;
    for (u, l) in [
        ("usr1", "Zeta"),
        ("usr2", "Alpha"),
        ("usr4", "Alpha"),
        ("usr5", "Beta"),
    ] {
        invite(&server, &token, person(u, "Pat", l, None)).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (_, body) = server
            .graphql(Some(&token), USERS, json!({ "first": 2, "after": after }))
            .await;
        let users = &body["data"]["users"];
        assert_eq!(users["totalCount"], 5, "{body}");
        seen.extend(
            users["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["username"].as_str().unwrap().to_owned()),
        );
        if users["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = users["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        seen,
        ["usr2", "usr4", "usr5", "olivia", "usr1"],
        "last name, first name, then ID"
    );
    let (_, body) = server
        .graphql(Some(&token), USERS, json!({ "first": 101 }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    let (_, body) = server
        .graphql(Some(&token), USERS, json!({ "after": "bogus!" }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    let (_, body) = server
        .graphql(
            Some(&token),
            USERS,
            json!({ "f": { "name": "alpha" }, "first": 1 }),
        )
        .await;
    assert_eq!(body["data"]["users"]["totalCount"], 2);
    assert_eq!(body["data"]["users"]["pageInfo"]["hasNextPage"], true);
}
