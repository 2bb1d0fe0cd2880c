//! The directory over HTTP on both databases: finding users, inviting them within
//! licenses, profiles, practices, reactivation, the audit log, limits, the role table and
//! tenant isolation.

use crate::common::{OWNER_PASSWORD, TestDb, TestServer, add_user, seed_org};
use gatehouse::domain::Role;
use serde_json::{Value, json};

crate::on_both_databases!(
    users_are_found_by_name_username_email_and_mobile,
    users_page_in_a_stable_order_with_totals,
    invitations_are_validated_and_take_a_license,
    profiles_and_practices_are_updated,
    inactive_users_are_reactivated_where_licenses_allow,
    audit_events_are_filtered_and_paged_newest_first,
    the_role_table_is_enforced,
    another_organization_sees_nothing,
);

const INVITE: &str = "mutation($i: InviteUserInput!) { inviteUser(input: $i) { user { id username status mobile products permissions practices { name } } userErrors { code field message } } }";
const USERS: &str = "query($f: UserFilter, $first: Int, $after: String) { users(filter: $f, first: $first, after: $after) { totalCount edges { cursor node { username } } pageInfo { hasNextPage endCursor } } }";

async fn owner_server(db: &TestDb) -> (TestServer, String, gatehouse::domain::Organization) {
    let server = TestServer::start(db).await;
    let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    (server, token, org)
}

async fn invite(server: &TestServer, token: &str, input: Value) -> Value {
    let (status, body) = server
        .graphql(Some(token), INVITE, json!({ "i": input }))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["inviteUser"].clone()
}

fn person(username: &str, first: &str, last: &str, mobile: Option<&str>) -> Value {
    json!({
        "username": username, "firstName": first, "lastName": last,
        "email": format!("{username}@sunrise.example"), "mobile": mobile, "kind": "STAFF",
    })
}

async fn usernames(server: &TestServer, token: &str, filter: Value) -> Vec<String> {
    let (_, body) = server
        .graphql(Some(token), USERS, json!({ "f": filter, "first": 100 }))
        .await;
    let edges = body["data"]["users"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    edges
        .iter()
        .map(|e| e["node"]["username"].as_str().unwrap().to_owned())
        .collect()
}

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

async fn invitations_are_validated_and_take_a_license(db: TestDb) {
    let (server, token, org) = owner_server(&db).await;
    let pools = || async { server.store.license_pools(org.id).await.unwrap() };
    let staff_used = |pools: &Vec<gatehouse::domain::LicensePool>| {
        pools
            .iter()
            .find(|p| p.kind == gatehouse::domain::UserKind::Staff)
            .unwrap()
            .used
    };
    let before = staff_used(&pools().await);
    let cases = [
        (
            json!({ "email": "front.desk@sunrise.example" }),
            "SHARED_EMAIL_NOT_ALLOWED",
            "email",
        ),
        (json!({ "email": "not-an-email" }), "INVALID_INPUT", "email"),
        (
            json!({ "mobile": "call me maybe" }),
            "INVALID_INPUT",
            "mobile",
        ),
        (json!({ "username": "x" }), "INVALID_INPUT", "username"),
        (
            json!({ "username": "olivia" }),
            "ALREADY_EXISTS",
            "username",
        ),
        (
            json!({ "email": "OLIVIA@sunrise.example" }),
            "ALREADY_EXISTS",
            "email",
        ),
        (json!({ "role": "OWNER" }), "INVALID_INPUT", "role"),
        (
            json!({ "practiceIds": ["UHJhY3RpY2U6OTk5"] }),
            "NOT_FOUND",
            "practiceIds",
        ),
        (
            json!({ "kind": "STAFF", "products": ["BILLING"] }),
            "NO_LICENSE_AVAILABLE",
            "products",
        ),
    ];
    for (change, code, field) in cases {
        let mut input = person("newbie", "New", "Bie", None);
        input
            .as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let done = invite(&server, &token, input).await;
        assert_eq!(done["userErrors"][0]["code"], code, "{change}: {done}");
        assert_eq!(
            done["userErrors"][0]["field"],
            json!(["input", field]),
            "{change}"
        );
        assert_eq!(done["user"], Value::Null);
    }
    assert_eq!(
        staff_used(&pools().await),
        before,
        "refused invitations took no license"
    );
    let (_, body) = server
        .graphql(
            Some(&token),
            INVITE,
            json!({ "i": { "username": "x", "kind": "ROBOT" } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );

    let practice =
        "mutation { createPractice(input: {name: \"Main Street\"}) { practice { id } } }";
    let (_, body) = server.graphql(Some(&token), practice, json!({})).await;
    let practice_id = body["data"]["createPractice"]["practice"]["id"].clone();
    let mut input = person("newbie", "New", "Bie", Some("503 555 0199"));
    input["permissions"] = json!(["SCHEDULING"]);
    input["practiceIds"] = json!([practice_id]);
    let done = invite(&server, &token, input).await;
    assert_eq!(done["userErrors"], json!([]), "{done}");
    let user = &done["user"];
    assert_eq!(user["status"], "INVITED");
    assert_eq!(user["mobile"], "+15035550199");
    assert_eq!(user["products"], json!(["EHR"]));
    assert_eq!(user["permissions"], json!(["SCHEDULING"]));
    assert_eq!(user["practices"], json!([{ "name": "Main Street" }]));
    assert_eq!(staff_used(&pools().await), before + 1);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM job_outbox WHERE kind = 'account_setup_email'")
            .await,
        1,
        "setup email filed"
    );
}

async fn profiles_and_practices_are_updated(db: TestDb) {
    let (server, token, org) = owner_server(&db).await;
    let member = add_user(
        &server,
        org.id,
        "mia",
        Role::Member,
        Some("member passphrase one"),
    )
    .await;
    add_user(
        &server,
        org.id,
        "max",
        Role::Member,
        Some("member passphrase one"),
    )
    .await;
    let create = "mutation($n: String!) { createPractice(input: {name: $n}) { practice { id name } userErrors { code field } } }";
    let (_, body) = server
        .graphql(Some(&token), create, json!({ "n": "Main Street" }))
        .await;
    let practice = body["data"]["createPractice"]["practice"]["id"].clone();
    let (_, body) = server
        .graphql(Some(&token), create, json!({ "n": "main street" }))
        .await;
    assert_eq!(
        body["data"]["createPractice"]["userErrors"][0]["code"], "ALREADY_EXISTS",
        "{body}"
    );
    let update = "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { firstName lastName mobile practices { name } } userErrors { code field } } }";
    let id = member.id.to_global();
    let (_, body) = server
        .graphql(Some(&token), update, json!({ "i": { "userId": id, "firstName": "Mía", "mobile": "(503) 555-0100", "practiceIds": [practice] } }))
        .await;
    let user = &body["data"]["updateUser"]["user"];
    assert_eq!(user["firstName"], "Mía", "{body}");
    assert_eq!(user["mobile"], "+15035550100");
    assert_eq!(user["practices"], json!([{ "name": "Main Street" }]));
    let mia = server.login("mia", "member passphrase one").await;
    let (_, body) = server
        .graphql(
            Some(&mia),
            update,
            json!({ "i": { "userId": id, "lastName": "Moreno", "mobile": "" } }),
        )
        .await;
    assert_eq!(
        body["data"]["updateUser"]["user"]["lastName"], "Moreno",
        "a member updates their own name: {body}"
    );
    assert_eq!(
        body["data"]["updateUser"]["user"]["mobile"],
        Value::Null,
        "an empty mobile clears it"
    );
    let (_, body) = server
        .graphql(
            Some(&mia),
            update,
            json!({ "i": { "userId": id, "practiceIds": [] } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "not their own practices: {body}"
    );
    let others = server
        .store
        .credentials_by_username("max")
        .await
        .unwrap()
        .unwrap()
        .0
        .id
        .to_global();
    let (_, body) = server
        .graphql(
            Some(&mia),
            update,
            json!({ "i": { "userId": others, "lastName": "X" } }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let (_, body) = server
        .graphql(
            Some(&token),
            update,
            json!({ "i": { "userId": id, "mobile": "nope" } }),
        )
        .await;
    assert_eq!(
        body["data"]["updateUser"]["userErrors"][0]["code"],
        "INVALID_INPUT"
    );
    assert_eq!(
        usernames(&server, &token, json!({ "name": "moreno" })).await,
        ["mia"],
        "the search follows the new name"
    );
    let events = server
        .store
        .audit_chain_page(org.id, 0, 1000)
        .await
        .unwrap();
    let updated = events
        .iter()
        .find(|e| e.action == "user.updated")
        .expect("audited");
    let details: Value = serde_json::from_str(&updated.details).unwrap();
    assert_eq!(details["before"]["firstName"], "Sam");
    assert_eq!(details["after"]["firstName"], "Mía");
    assert!(events.iter().any(|e| e.action == "practice.created"));
}

async fn inactive_users_are_reactivated_where_licenses_allow(db: TestDb) {
    let (server, token, org) = owner_server(&db).await;
    // Inactivate three users (freeing their licenses), then fill the staff pool up to one
    // free license.
    let mut users = Vec::new();
    for name in ["ina", "ivo", "ike", "ida"] {
        users.push(add_user(&server, org.id, name, Role::Member, None).await);
    }
    for user in &users[..3] {
        db.execute(&format!(
            "UPDATE users SET status = 'INACTIVE', deactivated_at = created_at WHERE id = {}",
            user.id.0
        ))
        .await;
    }
    db.execute(&format!(
        "UPDATE license_pools SET used = used - 3 WHERE org_id = {} AND kind = 'STAFF'",
        org.id.0
    ))
    .await;
    let free = |pools: Vec<gatehouse::domain::LicensePool>| {
        pools
            .iter()
            .find(|p| p.kind == gatehouse::domain::UserKind::Staff)
            .unwrap()
            .available()
    };
    let mut n = 0;
    while free(server.store.license_pools(org.id).await.unwrap()) > 1 {
        n += 1;
        add_user(&server, org.id, &format!("filler{n}"), Role::Member, None).await;
    }
    let reactivate = "mutation($ids: [ID!]!) { reactivateUsers(input: {userIds: $ids}) { users { username status products } userErrors { code field message } } }";
    let ids = json!([
        users[0].id.to_global(),
        users[1].id.to_global(),
        users[3].id.to_global(),
        "VXNlcjo5OTk5OQ",
        users[2].id.to_global()
    ]);
    let (_, body) = server
        .graphql(Some(&token), reactivate, json!({ "ids": ids }))
        .await;
    let done = &body["data"]["reactivateUsers"];
    assert_eq!(
        done["users"],
        json!([{ "username": "ina", "status": "ACTIVE", "products": ["EHR"] }]),
        "{body}"
    );
    let errors = done["userErrors"].as_array().unwrap();
    let codes: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e["code"].as_str().unwrap(), e["field"][2].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            ("NO_LICENSE_AVAILABLE", "1"),
            ("INVALID_STATE", "2"),
            ("NOT_FOUND", "3"),
            ("NO_LICENSE_AVAILABLE", "4")
        ],
        "{body}"
    );
    let events = server
        .store
        .audit_chain_page(org.id, 0, 1000)
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "user.reactivated")
            .count(),
        1
    );
}

async fn audit_events_are_filtered_and_paged_newest_first(db: TestDb) {
    let (server, token, org) = owner_server(&db).await;
    invite(&server, &token, person("newbie", "New", "Bie", None)).await;
    let member = add_user(
        &server,
        org.id,
        "mia",
        Role::Member,
        Some("member passphrase one"),
    )
    .await;
    let mia = server.login("mia", "member passphrase one").await;
    let query = "query($f: AuditFilter, $first: Int, $after: String) { auditEvents(filter: $f, first: $first, after: $after) { totalCount edges { cursor node { id action at ip details hash actor { username } subject { username } } } pageInfo { hasNextPage endCursor } } }";
    let (_, body) = server.graphql(Some(&token), query, json!({})).await;
    let events = body["data"]["auditEvents"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    assert_eq!(
        events[0]["node"]["action"], "session.login",
        "newest first: {body}"
    );
    assert_eq!(events[0]["node"]["actor"]["username"], "mia");
    for event in &events {
        let node = &event["node"];
        assert!(
            node["details"].as_str().unwrap().starts_with('{'),
            "details is a JSON object"
        );
        let hash = node["hash"].as_str().unwrap();
        assert!(
            hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{hash}"
        );
    }
    let (_, body) = server
        .graphql(Some(&token), query, json!({ "f": { "action": "user." } }))
        .await;
    let actions: Vec<&str> = body["data"]["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert!(
        !actions.is_empty() && actions.iter().all(|a| a.starts_with("user.")),
        "{actions:?}"
    );
    let (_, body) = server
        .graphql(
            Some(&token),
            query,
            json!({ "f": { "action": "session.login" } }),
        )
        .await;
    assert_eq!(
        body["data"]["auditEvents"]["totalCount"], 2,
        "exact action: {body}"
    );
    let (_, body) = server
        .graphql(
            Some(&token),
            query,
            json!({ "f": { "actorId": member.id.to_global() } }),
        )
        .await;
    assert_eq!(body["data"]["auditEvents"]["totalCount"], 1);
    let (_, body) = server
        .graphql(
            Some(&token),
            query,
            json!({ "f": { "since": "2999-01-01T00:00:00Z" } }),
        )
        .await;
    assert_eq!(body["data"]["auditEvents"]["totalCount"], 0);
    let (_, all) = server
        .graphql(Some(&token), query, json!({ "first": 100 }))
        .await;
    let total = all["data"]["auditEvents"]["totalCount"].as_i64().unwrap();
    let (_, first) = server
        .graphql(Some(&token), query, json!({ "first": 2 }))
        .await;
    let cursor = first["data"]["auditEvents"]["pageInfo"]["endCursor"].clone();
    let (_, second) = server
        .graphql(Some(&token), query, json!({ "first": 2, "after": cursor }))
        .await;
    assert_eq!(
        second["data"]["auditEvents"]["edges"][0]["node"]["id"],
        all["data"]["auditEvents"]["edges"][2]["node"]["id"]
    );
    assert_eq!(second["data"]["auditEvents"]["totalCount"], total);
    let (_, body) = server.graphql(Some(&mia), query, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
}

/// What a role may do, per SPEC's table. "self" is a MEMBER acting on their own account.
async fn the_role_table_is_enforced(db: TestDb) {
    let env = vec![("GATEHOUSE_LOGIN_RATE_LIMIT", "1000".into())];
    let server = TestServer::start_with(
        &db,
        crate::common::ServerOptions {
            env,
            ..Default::default()
        },
    )
    .await;
    let (org, owner) = seed_org(&server.app, "Sunrise", "olivia").await;
    const PW: &str = "a shared test passphrase";
    let champion = add_user(&server, org.id, "champ", Role::Champion, Some(PW)).await;
    let admin = add_user(&server, org.id, "adam", Role::Admin, Some(PW)).await;
    let member = add_user(&server, org.id, "mia", Role::Member, Some(PW)).await;
    let invited = add_user(&server, org.id, "ivy", Role::Member, None).await;
    let active = add_user(&server, org.id, "abe", Role::Member, Some(PW)).await;
    let _ = (&champion, &admin, &owner);
    let callers: [(&str, Option<&str>, &str); 5] = [
        ("OWNER", Some("olivia"), OWNER_PASSWORD),
        ("CHAMPION", Some("champ"), PW),
        ("ADMIN", Some("adam"), PW),
        ("MEMBER", Some("mia"), PW),
        ("anonymous", None, ""),
    ];
    let ivy = invited.id.to_global();
    let abe = active.id.to_global();
    let me = member.id.to_global();
    // (operation, variables, allowed for OWNER, CHAMPION, ADMIN, MEMBER)
    let operations: Vec<(&str, Value, [bool; 4])> = vec![
        (
            "{ organization { name practices { id } licenses { total } owners { id } } }",
            json!({}),
            [true; 4],
        ),
        (
            "query($id: ID!) { user(id: $id) { username } }",
            json!({ "id": abe }),
            [true; 4],
        ),
        ("{ users { totalCount } }", json!({}), [true; 4]),
        (
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": abe }),
            [true; 4],
        ),
        (
            "{ auditEvents { totalCount } }",
            json!({}),
            [true, false, true, false],
        ),
        (
            "query($id: ID!) { user(id: $id) { sessions { id } } }",
            json!({ "id": abe }),
            [true, false, true, false],
        ),
        (
            "query($id: ID!) { user(id: $id) { securityQuestions } }",
            json!({ "id": abe }),
            [true, false, true, false],
        ),
        (
            "mutation { inviteUser(input: {username: \"zed\", firstName: \"Z\", lastName: \"Z\", email: \"zed@sunrise.example\", kind: STAFF}) { userErrors { code } } }",
            json!({}),
            [true, true, true, false],
        ),
        (
            "mutation($id: ID!) { sendAccountSetupEmail(input: {userId: $id}) { userErrors { code } } }",
            json!({ "id": ivy }),
            [true, true, true, false],
        ),
        (
            "mutation($id: ID!) { sendAccountSetupEmail(input: {userId: $id}) { userErrors { code } } }",
            json!({ "id": abe }),
            [true, false, true, false],
        ),
        (
            "mutation($id: ID!) { unlockUser(input: {userId: $id}) { userErrors { code } } }",
            json!({ "id": abe }),
            [true, false, true, false],
        ),
        (
            "mutation($id: ID!) { reactivateUsers(input: {userIds: [$id]}) { userErrors { code } } }",
            json!({ "id": abe }),
            [true, false, true, false],
        ),
        (
            "mutation($id: ID!) { setTemporaryPassword(input: {userId: $id, temporaryPassword: \"x\", adminPassword: \"y\"}) { userErrors { code } } }",
            json!({ "id": abe }),
            [true, false, true, false],
        ),
        (
            "mutation($id: ID!) { resetEncryptionKey(input: {userId: $id, adminPassword: \"y\"}) { userErrors { code } } }",
            json!({ "id": abe }),
            [true, false, true, false],
        ),
        (
            "mutation($id: ID!) { revokeSessions(input: {userId: $id}) { userErrors { code } } }",
            json!({ "id": abe }),
            [true, false, true, false],
        ),
        (
            "mutation($id: ID!) { updateUser(input: {userId: $id, firstName: \"Abe\"}) { userErrors { code } } }",
            json!({ "id": abe }),
            [true, false, true, false],
        ),
        (
            "mutation { createPractice(input: {name: \"Annex\"}) { userErrors { code } } }",
            json!({}),
            [true, false, true, false],
        ),
        (
            "mutation($id: ID!) { updateUser(input: {userId: $id, firstName: \"Mia\"}) { userErrors { code } } }",
            json!({ "id": me }),
            [true, false, true, true],
        ),
    ];
    let mut tokens = Vec::new();
    for (_, username, password) in &callers {
        tokens.push(match username {
            Some(u) => Some(server.login(u, password).await),
            None => None,
        });
    }
    for (query, variables, allowed) in &operations {
        for (index, (role, _, _)) in callers.iter().enumerate() {
            let token = &tokens[index];
            let (_, body) = server
                .graphql(token.as_deref(), query, variables.clone())
                .await;
            let code = body["errors"][0]["extensions"]["code"]
                .as_str()
                .map(str::to_owned);
            match (role, index) {
                (&"anonymous", _) => assert_eq!(
                    code.as_deref(),
                    Some("UNAUTHENTICATED"),
                    "{role}: {query}: {body}"
                ),
                (_, i) if allowed[i] => assert!(
                    !matches!(code.as_deref(), Some("FORBIDDEN" | "UNAUTHENTICATED")),
                    "{role} may: {query}: {body}"
                ),
                _ => assert_eq!(
                    code.as_deref(),
                    Some("FORBIDDEN"),
                    "{role} may not: {query}: {body}"
                ),
            }
        }
    }
    // A member acting on their own account: revokeSessions and updateUser (names, mobile).
    let mia = server.login("mia", PW).await;
    let (_, body) = server
        .graphql(
            Some(&mia),
            "mutation($id: ID!) { revokeSessions(input: {userId: $id}) { userErrors { code } } }",
            json!({ "id": me }),
        )
        .await;
    assert_eq!(
        body["data"]["revokeSessions"]["userErrors"],
        json!([]),
        "self: {body}"
    );
}

async fn another_organization_sees_nothing(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (org_a, owner_a) = seed_org(&server.app, "Alpha", "alpha.owner").await;
    seed_org(&server.app, "Beta", "beta.owner").await;
    let a_member = add_user(&server, org_a.id, "amy.alpha", Role::Member, None).await;
    let token_a = server.login("alpha.owner", OWNER_PASSWORD).await;
    let (_, body) = server
        .graphql(
            Some(&token_a),
            "mutation { createPractice(input: {name: \"Alpha Main\"}) { practice { id } } }",
            json!({}),
        )
        .await;
    let practice_a = body["data"]["createPractice"]["practice"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = server.login("beta.owner", OWNER_PASSWORD).await;

    assert!(
        usernames(&server, &b, json!({ "search": "alpha" }))
            .await
            .is_empty()
    );
    assert!(
        usernames(&server, &b, json!({ "practiceId": practice_a }))
            .await
            .is_empty()
    );
    assert_eq!(usernames(&server, &b, json!({})).await, ["beta.owner"]);
    let unknown = "VXNlcjo5OTk5OTk";
    for id in [a_member.id.to_global(), owner_a.id.to_global()] {
        let (_, body) = server
            .graphql(
                Some(&b),
                "query($id: ID!) { user(id: $id) { id } node(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(body, json!({ "data": { "user": null, "node": null } }));
        for mutation in [
            "mutation($id: ID!) { unlockUser(input: {userId: $id}) { userErrors { code field message } } }",
            "mutation($id: ID!) { updateUser(input: {userId: $id, firstName: \"X\"}) { userErrors { code field message } } }",
            "mutation($id: ID!) { revokeSessions(input: {userId: $id}) { userErrors { code field message } } }",
            "mutation($id: ID!) { sendAccountSetupEmail(input: {userId: $id}) { userErrors { code field message } } }",
        ] {
            let (_, foreign) = server
                .graphql(Some(&b), mutation, json!({ "id": id }))
                .await;
            let (_, missing) = server
                .graphql(Some(&b), mutation, json!({ "id": unknown }))
                .await;
            assert_eq!(
                foreign, missing,
                "a foreign ID behaves like an unknown one: {mutation}"
            );
            assert!(!foreign.to_string().contains("alpha"), "{foreign}");
        }
    }
    let (_, body) = server
        .graphql(Some(&b), "mutation($p: ID!) { inviteUser(input: {username: \"bob\", firstName: \"B\", lastName: \"B\", email: \"bob@beta.example\", kind: STAFF, practiceIds: [$p]}) { userErrors { code } } }", json!({ "p": practice_a }))
        .await;
    assert_eq!(
        body["data"]["inviteUser"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    let (_, body) = server
        .graphql(
            Some(&b),
            "query($id: ID!) { auditEvents(filter: {actorId: $id}) { totalCount } }",
            json!({ "id": owner_a.id.to_global() }),
        )
        .await;
    assert_eq!(body["data"]["auditEvents"]["totalCount"], 0);
    let (_, body) = server
        .graphql(
            Some(&b),
            "{ organization { name practices { id } owners { username } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["organization"],
        json!({ "name": "Beta", "practices": [], "owners": [{ "username": "beta.owner" }] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_limits_are_enforced_with_codes() {
    let db = TestDb::sqlite().await;
    let (server, token, _) = owner_server(&db).await;
    let aliases: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let (status, body) = server
        .graphql(Some(&token), &format!("{{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
        "{body}"
    );
    let thirty: String = (0..30).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let (status, _) = server
        .graphql(Some(&token), &format!("{{ {thirty} }}"), json!({}))
        .await;
    assert_eq!(status, 200, "30 aliases are fine");
    let user = "id username firstName lastName displayName email mobile kind role status locked lockedUntil \
        passwordChangeRequired permissions products encryptionKeyVersion createdAt lastLoginAt deactivatedAt \
        organization { id name practices { id name } licenses { product kind total used available } owners { id username } }";
    let wide: String = (0..30).map(|i| format!("a{i}: me {{ {user} }} ")).collect();
    let wide = format!("{{ {wide} }}");
    let (status, body) = server.graphql(Some(&token), &wide, json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
        "{body}"
    );
    // GraphQL over HTTP: the response type follows Accept.
    let response = server
        .client
        .post(server.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ me { nope } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/graphql-response+json"
    );
    let (status, body) = server
        .graphql(
            Some(&token),
            "query($n: Int) { users(first: $n) { totalCount } }",
            json!({ "n": "ten" }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
}
