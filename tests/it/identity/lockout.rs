//! Locks, temporary passwords and encryption keys.

use super::*;

crate::on_both_databases!(
    lockout_locks_emails_and_admin_unlocks,
    success_resets_the_failure_count,
    lock_ends_by_itself,
    a_pending_lock_nobody_decides_ends_by_itself,
    temporary_password_forces_a_change,
    encryption_key_reset_ends_sessions,
);

async fn lockout_locks_emails_and_admin_unlocks(db: TestDb) {
    let (server, smtp) =
        server_with_smtp(&db, vec![("GATEHOUSE_LOCKOUT_THRESHOLD", "3".into())]).await;
    let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
    let member = add_user(&server, org.id, "mia", Role::Member, Some(MEMBER_PASSWORD)).await;
    for _ in 0..3 {
        let body = login_error(&server, "mia", "not my password at all").await;
        assert_eq!(
            body["data"]["login"]["userErrors"][0]["code"],
            "INVALID_CREDENTIALS"
        );
    }
    let locked = login_error(&server, "mia", MEMBER_PASSWORD).await;
    assert_eq!(
        locked["data"]["login"]["userErrors"][0]["code"], "INVALID_CREDENTIALS",
        "locked: {locked}"
    );
    assert_eq!(locked["data"]["login"]["token"], Value::Null);
    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.to, vec!["mia@staff.example".to_owned()]);
    // The lock runs for its whole 60 minutes from the third failure.
    let hour_later = |minutes| {
        (gatehouse::domain::now() + chrono::TimeDelta::minutes(minutes))
            .format("unlocks by itself at %Y-%m-%d %H:%M UTC")
            .to_string()
    };
    let text = mail.text();
    assert!(
        text.contains(&hour_later(60)) || text.contains(&hour_later(59)),
        "{text}"
    );

    let owner = server.login("olivia", OWNER_PASSWORD).await;
    let view = "query($id: ID!) { node(id: $id) { ... on User { locked lockedUntil } } }";
    let (_, body) = server
        .graphql(Some(&owner), view, json!({ "id": member.id.to_global() }))
        .await;
    assert_eq!(body["data"]["node"]["locked"], true, "{body}");
    assert!(body["data"]["node"]["lockedUntil"].is_string());
    let unlock = "mutation($id: ID!) { unlockUser(input: {userId: $id}) { user { locked } userErrors { code } } }";
    let (_, body) = server
        .graphql(Some(&owner), unlock, json!({ "id": member.id.to_global() }))
        .await;
    assert_eq!(
        body["data"]["unlockUser"]["user"]["locked"], false,
        "{body}"
    );
    server.login("mia", MEMBER_PASSWORD).await;
    let actions: Vec<String> = audit_actions(&server, org.id)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert!(
        actions.contains(&"user.locked".to_owned())
            && actions.contains(&"user.unlocked".to_owned())
    );
}

async fn success_resets_the_failure_count(db: TestDb) {
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            env: vec![("GATEHOUSE_LOCKOUT_THRESHOLD", "3".into())],
            ..Default::default()
        },
    )
    .await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    for _ in 0..2 {
        login_error(&server, "olivia", "not my password at all").await;
    }
    server.login("olivia", OWNER_PASSWORD).await;
    for _ in 0..2 {
        login_error(&server, "olivia", "not my password at all").await;
    }
    server.login("olivia", OWNER_PASSWORD).await;
}

async fn lock_ends_by_itself(db: TestDb) {
    // The defaults: five failures lock the account for 60 minutes.
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    for _ in 0..5 {
        login_error(&server, "olivia", "not my password at all").await;
    }
    let locked = login_error(&server, "olivia", OWNER_PASSWORD).await;
    assert_eq!(locked["data"]["login"]["token"], Value::Null);
    server.clock.advance(Duration::from_secs(59 * 60));
    let still = login_error(&server, "olivia", OWNER_PASSWORD).await;
    assert_eq!(
        still["data"]["login"]["token"],
        Value::Null,
        "locked at 59 minutes"
    );
    server.clock.advance(Duration::from_secs(2 * 60));
    server.login("olivia", OWNER_PASSWORD).await;
}

/// Checks claimed by a node that stopped before deciding them: the lock the last of them
/// set waits for outcomes that never come. A right password waits for them a while and is
/// refused, as during a lock; once the pending lock's hold has passed, it signs in.
async fn a_pending_lock_nobody_decides_ends_by_itself(db: TestDb) {
    use gatehouse::app::identity::lockout::{PENDING_HOLD, PENDING_WAIT};
    use gatehouse::store::SecretClaim;
    let server = TestServer::start(&db).await;
    let (_, owner) = seed_org(&server.app, "Sunrise", "olivia").await;
    let at = server.clock.now();
    let pending_until = at + chrono::TimeDelta::from_std(PENDING_HOLD).unwrap();
    for _ in 0..5 {
        let claim = server
            .store
            .claim_secret_check(owner.id, at, 5, pending_until)
            .await
            .unwrap();
        assert!(matches!(claim, SecretClaim::Granted(_)));
    }
    let started = std::time::Instant::now();
    let refused = login_error(&server, "olivia", OWNER_PASSWORD).await;
    assert_eq!(refused["data"]["login"]["token"], Value::Null, "{refused}");
    assert!(
        started.elapsed() >= PENDING_WAIT,
        "it waited for the outcomes"
    );
    server.clock.advance(PENDING_HOLD);
    server.login("olivia", OWNER_PASSWORD).await;
}

async fn temporary_password_forces_a_change(db: TestDb) {
    let (server, smtp) = server_with_smtp(&db, vec![]).await;
    let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
    let member = add_user(&server, org.id, "mia", Role::Member, Some(MEMBER_PASSWORD)).await;
    let member_session = server.login("mia", MEMBER_PASSWORD).await;
    let owner = server.login("olivia", OWNER_PASSWORD).await;
    let set = "mutation($i: SetTemporaryPasswordInput!) { setTemporaryPassword(input: $i) { user { passwordChangeRequired } userErrors { code field } } }";
    let input = |admin: &str| json!({ "i": { "userId": member.id.to_global(), "temporaryPassword": "temporary passphrase 1", "adminPassword": admin } });
    let (_, body) = server
        .graphql(Some(&owner), set, input("wrong admin password"))
        .await;
    assert_eq!(
        body["data"]["setTemporaryPassword"]["userErrors"][0]["code"], "INVALID_CREDENTIALS",
        "{body}"
    );
    assert_eq!(
        body["data"]["setTemporaryPassword"]["userErrors"][0]["field"],
        json!(["input", "adminPassword"])
    );
    let failed = audit_actions(&server, org.id).await;
    assert!(
        failed
            .iter()
            .any(|(a, d)| a == "session.login_failed" && d.contains("step-up")),
        "counted for the admin"
    );
    let (_, body) = server
        .graphql(Some(&member_session), set, input(MEMBER_PASSWORD))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let (_, body) = server
        .graphql(Some(&owner), set, input(OWNER_PASSWORD))
        .await;
    assert_eq!(
        body["data"]["setTemporaryPassword"]["user"]["passwordChangeRequired"], true,
        "{body}"
    );

    let (_, me) = server
        .graphql(Some(&member_session), "{ me { id } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"], Value::Null, "the member's sessions ended");
    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    assert!(mail.text().contains("temporary password"));

    let (_, body) = server
        .graphql(
            None,
            LOGIN,
            json!({ "u": "mia", "p": "temporary passphrase 1" }),
        )
        .await;
    assert_eq!(
        body["data"]["login"]["passwordChangeRequired"], true,
        "{body}"
    );
    let temp = body["data"]["login"]["token"].as_str().unwrap().to_owned();
    let (_, body) = server
        .graphql(Some(&temp), "{ organization { name } }", json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PASSWORD_CHANGE_REQUIRED",
        "{body}"
    );
    let (_, body) = server
        .graphql(
            Some(&temp),
            "{ me { username passwordChangeRequired } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["me"]["passwordChangeRequired"], true,
        "me is allowed: {body}"
    );
    let change = "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { user { passwordChangeRequired } userErrors { code field } } }";
    let (_, body) = server
        .graphql(
            Some(&temp),
            change,
            json!({ "c": "wrong current one", "n": "my own new passphrase" }),
        )
        .await;
    assert_eq!(
        body["data"]["changePassword"]["userErrors"][0]["code"], "INVALID_CREDENTIALS",
        "{body}"
    );
    let (_, body) = server
        .graphql(
            Some(&temp),
            change,
            json!({ "c": "temporary passphrase 1", "n": "my own new passphrase" }),
        )
        .await;
    assert_eq!(
        body["data"]["changePassword"]["user"]["passwordChangeRequired"], false,
        "{body}"
    );
    let fresh = server.login("mia", "my own new passphrase").await;
    let (_, body) = server
        .graphql(Some(&fresh), "{ organization { name } }", json!({}))
        .await;
    assert_eq!(body["data"]["organization"]["name"], "Sunrise", "{body}");
    let actions: Vec<String> = audit_actions(&server, org.id)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert!(actions.contains(&"user.temporary_password_set".to_owned()));
    assert!(actions.contains(&"user.password_changed".to_owned()));
}

async fn encryption_key_reset_ends_sessions(db: TestDb) {
    let (server, smtp) = server_with_smtp(&db, vec![]).await;
    let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
    let member = add_user(&server, org.id, "mia", Role::Member, Some(MEMBER_PASSWORD)).await;
    let member_session = server.login("mia", MEMBER_PASSWORD).await;
    let owner = server.login("olivia", OWNER_PASSWORD).await;
    let reset = "mutation($i: ResetEncryptionKeyInput!) { resetEncryptionKey(input: $i) { user { encryptionKeyVersion } userErrors { code } } }";
    let input =
        json!({ "i": { "userId": member.id.to_global(), "adminPassword": OWNER_PASSWORD } });
    let (_, body) = server
        .graphql(Some(&member_session), reset, input.clone())
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let (_, body) = server.graphql(Some(&owner), reset, input).await;
    assert_eq!(
        body["data"]["resetEncryptionKey"]["user"]["encryptionKeyVersion"], 2,
        "{body}"
    );
    let (_, me) = server
        .graphql(Some(&member_session), "{ me { id } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"], Value::Null, "sessions ended");
    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    assert!(mail.header("Subject").unwrap().contains("encryption key"));
    let actions = audit_actions(&server, org.id).await;
    let (_, details) = actions
        .iter()
        .find(|(a, _)| a == "user.encryption_key_reset")
        .expect("audited");
    assert!(details.contains("\"after\":2"), "{details}");
}
