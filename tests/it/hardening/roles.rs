//! Nobody gains more than an owner approved; the default settings deliver fast.

use super::*;

crate::on_both_databases!(
    invitations_by_champions_and_admins_grant_a_member,
    only_an_owner_acts_on_an_owners_credentials,
    a_locked_owner_decides_nothing,
    a_temporary_password_shows_nothing_beyond_the_user,
    default_settings_deliver_and_apply_within_a_second,
);

async fn invitations_by_champions_and_admins_grant_a_member(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
    let invite = "mutation($i: InviteUserInput!) { inviteUser(input: $i) { user { id role permissions } userErrors { code } } }";
    for (inviter, username) in [("cam", "second.box"), ("adam", "third.box")] {
        let token = o.login(inviter).await;
        let body = o
            .send(
                Some(&token),
                invite,
                json!({ "i": { "username": username, "firstName": "E", "lastName": "Vil",
                    "email": format!("{username}@elsewhere.example"), "kind": "PROVIDER",
                    "role": "ADMIN", "permissions": ["PRESCRIBING", "BILLING"] } }),
            )
            .await;
        let user = &body["data"]["inviteUser"]["user"];
        assert_eq!(user["role"], "MEMBER", "{body}");
        assert_eq!(user["permissions"], json!([]), "{body}");
        let owner = o.login("olivia").await;
        let requests = o
            .send(
                Some(&owner),
                "{ requests(filter: {kind: CHANGE_PERMISSIONS}) { edges { node { status subject { id } permissionChange { grant role } } } } }",
                json!({}),
            )
            .await;
        let filed = requests["data"]["requests"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["node"]["subject"]["id"] == user["id"])
            .unwrap_or_else(|| panic!("a request for the rest: {requests}"))
            .clone();
        let change = &filed["node"]["permissionChange"];
        let mut granted: Vec<&str> = change["grant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        granted.sort_unstable();
        assert_eq!(granted, ["BILLING", "PRESCRIBING"], "{filed}");
        assert_eq!(change["role"], "ADMIN", "{filed}");
    }
    // An owner's invitation grants directly.
    let owner = o.login("olivia").await;
    let body = o
        .send(
            Some(&owner),
            invite,
            json!({ "i": { "username": "granted", "firstName": "G", "lastName": "Ranted",
                "email": "granted@sunrise.example", "kind": "STAFF", "role": "ADMIN", "permissions": ["BILLING"] } }),
        )
        .await;
    assert_eq!(
        body["data"]["inviteUser"]["user"]["role"], "ADMIN",
        "{body}"
    );
}

async fn only_an_owner_acts_on_an_owners_credentials(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
    let admin = o.login("adam").await;
    let olivia = o.user_id("olivia").await;
    let attempts = [
        "mutation($u: ID!, $p: String!) { setTemporaryPassword(input: {userId: $u, temporaryPassword: \"a temporary passphrase\", adminPassword: $p}) { userErrors { code } } }",
        "mutation($u: ID!, $p: String!) { resetEncryptionKey(input: {userId: $u, adminPassword: $p}) { userErrors { code } } }",
        "mutation($u: ID!) { revokeSessions(input: {userId: $u}) { user { id } } }",
        "mutation($u: ID!) { sendAccountSetupEmail(input: {userId: $u}) { userErrors { code } } }",
    ];
    for query in attempts {
        let body = o
            .send(Some(&admin), query, json!({ "u": olivia, "p": PASSWORD }))
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{query}: {body}");
    }
    o.login("olivia").await;
    // Another owner may.
    let oscar = o.login("oscar").await;
    let body = o
        .send(Some(&oscar), attempts[2], json!({ "u": olivia }))
        .await;
    assert_eq!(body["errors"], Value::Null, "{body}");
}

async fn a_locked_owner_decides_nothing(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
    let adam = o.login("adam").await;
    let oscar = o.login("oscar").await;
    let filed = o
        .send(
            Some(&adam),
            "mutation { requestLicenses(input: {product: EHR, kind: STAFF, quantity: 1}) { request { id } } }",
            json!({}),
        )
        .await;
    let id = filed["data"]["requestLicenses"]["request"]["id"].clone();
    let status = "query($id: ID!) { request(id: $id) { status } }";
    let deadline = Instant::now() + WAIT;
    loop {
        let body = o.send(Some(&oscar), status, json!({ "id": id })).await;
        if body["data"]["request"]["status"] == "PENDING_APPROVAL" {
            break;
        }
        assert!(Instant::now() < deadline, "routed: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..5 {
        o.send(
            None,
            LOGIN,
            json!({ "u": "oscar", "p": format!("wrong {i}") }),
        )
        .await;
    }
    let body = o
        .send(
            Some(&oscar),
            "mutation($id: ID!) { approveRequest(input: {requestId: $id, acceptTerms: true}) { request { status } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = o.send(Some(&oscar), status, json!({ "id": id })).await;
    assert_eq!(
        body["data"]["request"]["status"], "PENDING_APPROVAL",
        "{body}"
    );
}

async fn a_temporary_password_shows_nothing_beyond_the_user(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
    let admin = o.login("adam").await;
    let mia = o.user_id("mia").await;
    o.send(
        Some(&admin),
        "mutation($u: ID!, $p: String!) { setTemporaryPassword(input: {userId: $u, temporaryPassword: \"a temporary passphrase\", adminPassword: $p}) { userErrors { code } } }",
        json!({ "u": mia, "p": PASSWORD }),
    )
    .await;
    let token = o.server.login("mia", "a temporary passphrase").await;
    let body = o
        .send(
            Some(&token),
            "{ me { username passwordChangeRequired } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["me"]["passwordChangeRequired"], true, "{body}");
    for query in [
        "{ me { organization { owners { email sessions { ip userAgent } } licenses { total } } } }",
        "{ me { sessions { ip } } }",
        "{ me { practices { name } } }",
        "{ users { totalCount } }",
        "{ organization { name } }",
    ] {
        let body = o.send(Some(&token), query, json!({})).await;
        assert_eq!(code(&body), "PASSWORD_CHANGE_REQUIRED", "{query}: {body}");
        assert!(!body.to_string().contains("olivia@"), "{body}");
    }
    let mut socket = Subscriber::connect(&o.server, Some(&token)).await.unwrap();
    let answer = socket.run("1", "{ me { organization { name } } }").await;
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "PASSWORD_CHANGE_REQUIRED",
        "{answer}"
    );
}

async fn default_settings_deliver_and_apply_within_a_second(db: TestDb) {
    let mut queues = vec![None];
    let redis = crate::redis::TestRedis::start().await;
    if let Some(redis) = &redis {
        queues.push(Some(redis.url()));
    }
    for queue in queues {
        let smtp = SmtpReceiver::start().await;
        // Nothing tuned: the defaults a user gets (fresh database per stack).
        let fresh = if db.url.starts_with("sqlite") {
            TestDb::sqlite().await
        } else {
            TestDb::postgres().await.unwrap()
        };
        let server = TestServer::start_with(
            &fresh,
            ServerOptions {
                smtp_url: Some(smtp.url()),
                queue_url: queue.clone(),
                defaults: true,
                ..Default::default()
            },
        )
        .await;
        seed_org(&server.app, "Sunrise", "olivia").await;
        let owner = server.login("olivia", OWNER_PASSWORD).await;
        // Workers start polling once; give them a moment to be up, as a real one is.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let (_, body) = server
            .graphql(
                Some(&owner),
                "mutation { inviteUser(input: {username: \"newbie\", firstName: \"New\", lastName: \"Bie\", email: \"newbie@sunrise.example\", kind: STAFF}) { userErrors { code } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            body["data"]["inviteUser"]["userErrors"],
            json!([]),
            "{body}"
        );
        smtp.wait_for(1, WAIT).await;
        let delivered = started.elapsed();
        eprintln!("{queue:?}: invitation to email received in {delivered:?}");
        assert!(
            delivered < Duration::from_secs(1),
            "{queue:?}: email after {delivered:?}"
        );

        let started = Instant::now();
        let (_, body) = server
            .graphql(
                Some(&owner),
                "mutation { requestLicenses(input: {product: EHR, kind: STAFF, quantity: 1, acceptTerms: true}) { request { id } userErrors { code } } }",
                json!({}),
            )
            .await;
        let id = body["data"]["requestLicenses"]["request"]["id"].clone();
        loop {
            let (_, status) = server
                .graphql(
                    Some(&owner),
                    "query($id: ID!) { request(id: $id) { status } }",
                    json!({ "id": id }),
                )
                .await;
            if status["data"]["request"]["status"] == "APPLIED" {
                break;
            }
            assert!(started.elapsed() < WAIT, "{status}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let applied = started.elapsed();
        eprintln!("{queue:?}: owner's request filed to APPLIED in {applied:?}");
        assert!(
            applied < Duration::from_secs(1),
            "{queue:?}: APPLIED after {applied:?}"
        );
    }
}
