//! Sessions: listing, revoking, expiry, rate limits, timing and secrecy.

use super::*;

crate::on_both_databases!(
    revoke_sessions_for_self_and_by_admin,
    sessions_are_listed_to_self_and_admins,
    idle_sessions_expire,
);

async fn revoke_sessions_for_self_and_by_admin(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (org, owner_user) = seed_org(&server.app, "Sunrise", "olivia").await;
    let member = add_user(&server, org.id, "mia", Role::Member, Some(MEMBER_PASSWORD)).await;
    let revoke = "mutation($id: ID!) { revokeSessions(input: {userId: $id}) { user { id } userErrors { code } } }";
    let phone = server.login("mia", MEMBER_PASSWORD).await;
    let laptop = server.login("mia", MEMBER_PASSWORD).await;
    let (_, body) = server
        .graphql(
            Some(&laptop),
            revoke,
            json!({ "id": owner_user.id.to_global() }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "a member revokes only their own: {body}"
    );
    let (_, body) = server
        .graphql(
            Some(&laptop),
            revoke,
            json!({ "id": member.id.to_global() }),
        )
        .await;
    assert_eq!(
        body["data"]["revokeSessions"]["userErrors"],
        json!([]),
        "{body}"
    );
    for token in [&phone, &laptop] {
        let (_, me) = server
            .graphql(Some(token), "{ me { id } }", json!({}))
            .await;
        assert_eq!(me["data"]["me"], Value::Null);
    }
    let again = server.login("mia", MEMBER_PASSWORD).await;
    let owner = server.login("olivia", OWNER_PASSWORD).await;
    server
        .graphql(Some(&owner), revoke, json!({ "id": member.id.to_global() }))
        .await;
    let (_, me) = server
        .graphql(Some(&again), "{ me { id } }", json!({}))
        .await;
    assert_eq!(
        me["data"]["me"],
        Value::Null,
        "an admin logs a lost device off"
    );
    let actions: Vec<String> = audit_actions(&server, org.id)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "session.revoked").count(),
        2
    );
}

async fn sessions_are_listed_to_self_and_admins(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
    let member = add_user(&server, org.id, "mia", Role::Member, Some(MEMBER_PASSWORD)).await;
    add_user(&server, org.id, "max", Role::Member, Some(MEMBER_PASSWORD)).await;
    server.login("mia", MEMBER_PASSWORD).await;
    let mine = server.login("mia", MEMBER_PASSWORD).await;
    let (_, body) = server
        .graphql(
            Some(&mine),
            "{ me { sessions { id current ip userAgent createdAt lastSeenAt expiresAt } } }",
            json!({}),
        )
        .await;
    let sessions = body["data"]["me"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    let of_member =
        "query($id: ID!) { node(id: $id) { ... on User { sessions { id } securityQuestions } } }";
    let owner = server.login("olivia", OWNER_PASSWORD).await;
    let (_, body) = server
        .graphql(
            Some(&owner),
            of_member,
            json!({ "id": member.id.to_global() }),
        )
        .await;
    assert_eq!(
        body["data"]["node"]["sessions"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    let other = server.login("max", MEMBER_PASSWORD).await;
    let (_, body) = server
        .graphql(
            Some(&other),
            of_member,
            json!({ "id": member.id.to_global() }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    // The refused field is null, and being non-null its null moves up to the nearest
    // nullable field (GraphQL's null propagation): no object lacks a field it promises.
    let shaped = "query($id: ID!) { me { username } node(id: $id) { ... on User { username sessions { id } } } }";
    let vars = json!({ "id": member.id.to_global() });
    let (_, body) = server.graphql(Some(&other), shaped, vars.clone()).await;
    assert_eq!(
        body["data"],
        json!({ "me": { "username": "max" }, "node": null }),
        "{body}"
    );
    assert_eq!(body["errors"][0]["path"], json!(["node", "sessions"]));
    let listed = "{ users { edges { node { username securityQuestions } } } }";
    let (_, body) = server.graphql(Some(&other), listed, json!({})).await;
    assert_eq!(body["data"], Value::Null, "{body}");
    // The same over a socket.
    let mut socket = crate::common::Subscriber::connect(&server, Some(&other))
        .await
        .unwrap();
    socket
        .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": shaped, "variables": vars } }))
        .await;
    let answer = socket.next().await.unwrap();
    assert_eq!(
        answer["payload"]["data"],
        json!({ "me": { "username": "max" }, "node": null }),
        "{answer}"
    );
}

/// Whether the session still answers `me`.
async fn alive(server: &TestServer, token: &str) -> bool {
    let (_, me) = server
        .graphql(Some(token), "{ me { id } }", json!({}))
        .await;
    me["data"]["me"]["id"].is_string()
}

async fn idle_sessions_expire(db: TestDb) {
    // The default: 30 minutes without a request.
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    assert!(alive(&server, &token).await);
    server.clock.advance(Duration::from_secs(29 * 60));
    assert!(alive(&server, &token).await, "29 idle minutes are allowed");
    server.clock.advance(Duration::from_secs(31 * 60));
    assert!(!alive(&server, &token).await, "31 idle minutes end it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_their_absolute_lifetime() {
    // The default: 12 hours however active the session is.
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    for _ in 0..35 {
        server.clock.advance(Duration::from_secs(20 * 60));
        assert!(alive(&server, &token).await, "active within 12 hours");
    }
    server.clock.advance(Duration::from_secs(25 * 60));
    assert!(!alive(&server, &token).await, "ended after 12 hours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_rate_limited_per_client_ip() {
    let db = TestDb::sqlite().await;
    let env = vec![("GATEHOUSE_LOGIN_RATE_LIMIT", "5".into())];
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            env,
            ..Default::default()
        },
    )
    .await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    for _ in 0..5 {
        let body = login_error(&server, "nobody", "whatever it is").await;
        assert_eq!(
            body["data"]["login"]["userErrors"][0]["code"],
            "INVALID_CREDENTIALS"
        );
    }
    let body = login_error(&server, "olivia", OWNER_PASSWORD).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_take_as_long_as_known_ones() {
    let db = TestDb::sqlite().await;
    // Costly enough that the hash dominates the time of a sign-in.
    let env = vec![
        ("GATEHOUSE_ARGON2_M_KIB", "8192".into()),
        ("GATEHOUSE_ARGON2_T", "3".into()),
    ];
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            env,
            ..Default::default()
        },
    )
    .await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        login_error(&server, "olivia", "not my password at all").await;
        known.push(started.elapsed());
        let started = std::time::Instant::now();
        login_error(&server, "nobody-here", "not my password at all").await;
        unknown.push(started.elapsed());
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[2].as_secs_f64(), unknown[2].as_secs_f64());
    assert!(
        u > 0.5 * k && u < 2.0 * k,
        "median known {k:.3}s vs unknown {u:.3}s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_answer_or_token_reaches_the_logs_or_audit() {
    crate::common::capture_logs();
    let db = TestDb::sqlite().await;
    let (server, smtp) = server_with_smtp(&db, vec![]).await;
    let owner = invite(&server).await;
    let token = setup_token(&smtp.wait_for(1, WAIT).await[0].text());
    complete(&server, &token, "secret passphrase alpha", json!({})).await;
    let session = server.login("hana", "secret passphrase alpha").await;
    login_error(&server, "hana", "secret wrong passphrase beta").await;
    let change = "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { userErrors { code } } }";
    server
        .graphql(
            Some(&session),
            change,
            json!({ "c": "secret passphrase alpha", "n": "secret passphrase gamma" }),
        )
        .await;
    let logs = crate::common::captured_logs();
    assert!(logs.len() > 100, "logs were captured");
    let audit: String = audit_actions(&server, owner.org_id)
        .await
        .into_iter()
        .map(|(a, d)| a + &d)
        .collect();
    for secret in [
        "secret passphrase alpha",
        "secret wrong passphrase beta",
        "secret passphrase gamma",
        &token,
        &session,
        "Elm Street",
        "elm street",
    ] {
        assert!(!logs.contains(secret), "{secret:?} found in the logs");
        assert!(!audit.contains(secret), "{secret:?} found in the audit log");
    }
}
