//! Who sees and does what: the audit log, the role table, other organizations, limits.

use super::*;

crate::on_both_databases!(
    audit_events_are_filtered_and_paged_newest_first,
    the_role_table_is_enforced,
    another_organization_sees_nothing,
);

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
