//! Sign-in, sessions, lockout, account setup, temporary passwords and encryption keys,
//! end to end over HTTP on both databases, with email received by a real SMTP server.

use crate::common::{
    OWNER_PASSWORD, ServerOptions, TestDb, TestServer, add_user, seed_org, setup_token,
};
use crate::smtp::SmtpReceiver;
use gatehouse::domain::Role;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const MEMBER_PASSWORD: &str = "member passphrase one";
const QUESTIONS: [(&str, &str); 3] = [
    ("First pet?", "Rex"),
    ("Street you grew up on?", "Elm Street"),
    ("Favourite teacher?", "Mrs Ode"),
];

crate::on_both_databases!(
    setup_link_activates_an_invited_user,
    expired_setup_token_is_token_expired,
    newer_setup_email_voids_the_older,
    self_requested_reset_needs_a_security_answer,
    lockout_locks_emails_and_admin_unlocks,
    success_resets_the_failure_count,
    lock_ends_by_itself,
    completed_setup_ends_a_lock,
    temporary_password_forces_a_change,
    encryption_key_reset_ends_sessions,
    revoke_sessions_for_self_and_by_admin,
    sessions_are_listed_to_self_and_admins,
    idle_sessions_expire,
);

const LOGIN: &str = "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { token passwordChangeRequired user { username } userErrors { code field message } } }";
const COMPLETE: &str = "mutation($i: CompleteAccountSetupInput!) { completeAccountSetup(input: $i) { user { username status locked securityQuestions } userErrors { code field message } } }";
const REQUEST_EMAIL: &str =
    "mutation($u: String!) { requestAccountSetupEmail(input: {usernameOrEmail: $u}) }";

async fn server_with_smtp(
    db: &TestDb,
    env: Vec<(&'static str, String)>,
) -> (TestServer, SmtpReceiver) {
    let smtp = SmtpReceiver::start().await;
    let server = TestServer::start_with(
        db,
        ServerOptions {
            smtp_url: Some(smtp.url()),
            env,
            ..Default::default()
        },
    )
    .await;
    (server, smtp)
}

fn questions() -> Value {
    json!(
        QUESTIONS
            .iter()
            .map(|(q, a)| json!({ "question": q, "answer": a }))
            .collect::<Vec<_>>()
    )
}

async fn complete(server: &TestServer, token: &str, password: &str, extra: Value) -> Value {
    let mut input =
        json!({ "token": token, "newPassword": password, "securityQuestions": questions() });
    if let (Value::Object(input), Value::Object(extra)) = (&mut input, extra) {
        input.extend(extra);
    }
    let (status, body) = server.graphql(None, COMPLETE, json!({ "i": input })).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["completeAccountSetup"].clone()
}

async fn login_error(server: &TestServer, username: &str, password: &str) -> Value {
    let (_, body) = server
        .graphql(None, LOGIN, json!({ "u": username, "p": password }))
        .await;
    body
}

async fn invite(server: &TestServer) -> gatehouse::domain::User {
    let input = gatehouse::app::directory::organization::CreateOrganization {
        name: "Harbor Clinic".into(),
        owner_username: "hana".into(),
        owner_email: "hana@harbor.example".into(),
        owner_first_name: "Hana".into(),
        owner_last_name: "Harbor".into(),
        owner_kind: gatehouse::domain::UserKind::Staff,
        licenses: vec![(
            gatehouse::domain::Product::Ehr,
            gatehouse::domain::UserKind::Staff,
            5,
        )],
        owner_password: None,
    };
    server
        .app
        .directory()
        .create_organization(input)
        .await
        .unwrap()
        .1
}

async fn audit_actions(
    server: &TestServer,
    org: gatehouse::domain::OrgId,
) -> Vec<(String, String)> {
    let events = server.store.audit_chain_page(org, 0, 1000).await.unwrap();
    events.into_iter().map(|e| (e.action, e.details)).collect()
}

async fn setup_link_activates_an_invited_user(db: TestDb) {
    let (server, smtp) = server_with_smtp(&db, vec![]).await;
    let owner = invite(&server).await;
    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    let token = setup_token(&mail.text());

    let weak = complete(&server, &token, "password123456", json!({})).await;
    assert_eq!(weak["userErrors"][0]["code"], "WEAK_PASSWORD", "{weak}");
    assert!(
        weak["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("common"),
        "{weak}"
    );
    assert_eq!(
        weak["userErrors"][0]["field"],
        json!(["input", "newPassword"])
    );
    let short = complete(&server, &token, "hana-and-the-harbor", json!({})).await;
    assert_eq!(
        short["userErrors"][0]["code"], "WEAK_PASSWORD",
        "contains the username: {short}"
    );
    let mut two = json!({ "token": token, "newPassword": "a fine long passphrase", "securityQuestions": questions() });
    two["securityQuestions"].as_array_mut().unwrap().pop();
    let (_, body) = server.graphql(None, COMPLETE, json!({ "i": two })).await;
    assert_eq!(
        body["data"]["completeAccountSetup"]["userErrors"][0]["code"], "INVALID_INPUT",
        "{body}"
    );

    let done = complete(&server, &token, "a fine long passphrase", json!({})).await;
    assert_eq!(done["userErrors"], json!([]), "{done}");
    assert_eq!(done["user"]["status"], "ACTIVE");
    assert_eq!(
        done["user"]["securityQuestions"],
        json!(["First pet?", "Street you grew up on?", "Favourite teacher?"])
    );
    let again = complete(&server, &token, "another fine passphrase", json!({})).await;
    assert_eq!(
        again["userErrors"][0]["code"], "TOKEN_INVALID",
        "single use: {again}"
    );
    let unknown = complete(&server, "not-a-token", "another fine passphrase", json!({})).await;
    assert_eq!(unknown["userErrors"][0]["code"], "TOKEN_INVALID");

    let token = server.login("hana", "a fine long passphrase").await;
    let (_, me) = server
        .graphql(
            Some(&token),
            "{ me { status lastLoginAt securityQuestions } }",
            json!({}),
        )
        .await;
    assert_eq!(me["data"]["me"]["status"], "ACTIVE");
    assert!(me["data"]["me"]["lastLoginAt"].is_string());
    // Answers are stored as argon2 hashes of the trimmed, lower-cased answer.
    let stored = db
        .count("SELECT COUNT(*) FROM security_answers WHERE answer_hash LIKE '$argon2id$%'")
        .await;
    assert_eq!(stored, 3);
    let actions = audit_actions(&server, owner.org_id).await;
    assert!(actions.iter().any(|(a, _)| a == "user.setup_completed"));
    assert!(actions.iter().any(|(a, _)| a == "user.setup_email_sent"));
}

async fn expired_setup_token_is_token_expired(db: TestDb) {
    let (server, smtp) =
        server_with_smtp(&db, vec![("GATEHOUSE_SETUP_TOKEN_TTL", "1s".into())]).await;
    invite(&server).await;
    let token = setup_token(&smtp.wait_for(1, WAIT).await[0].text());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = complete(&server, &token, "a fine long passphrase", json!({})).await;
    assert_eq!(
        expired["userErrors"][0]["code"], "TOKEN_EXPIRED",
        "{expired}"
    );
}

async fn newer_setup_email_voids_the_older(db: TestDb) {
    let (server, smtp) = server_with_smtp(&db, vec![]).await;
    invite(&server).await;
    smtp.wait_for(1, WAIT).await;
    let (_, body) = server
        .graphql(None, REQUEST_EMAIL, json!({ "u": "HANA@harbor.example" }))
        .await;
    assert_eq!(body["data"]["requestAccountSetupEmail"], true);
    let mails = smtp.wait_for(2, WAIT).await;
    let (first, second) = (setup_token(&mails[0].text()), setup_token(&mails[1].text()));
    assert_ne!(first, second);
    let old = complete(&server, &first, "a fine long passphrase", json!({})).await;
    assert_eq!(
        old["userErrors"][0]["code"], "TOKEN_INVALID",
        "voided by the newer one: {old}"
    );
    let new = complete(&server, &second, "a fine long passphrase", json!({})).await;
    assert_eq!(new["userErrors"], json!([]), "{new}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_setup_email_reveals_nothing_and_is_limited() {
    let db = TestDb::sqlite().await;
    let (server, smtp) = server_with_smtp(&db, vec![]).await;
    let owner = invite(&server).await;
    smtp.wait_for(1, WAIT).await;
    let (_, body) = server
        .graphql(None, REQUEST_EMAIL, json!({ "u": "nobody-at-all" }))
        .await;
    assert_eq!(
        body["data"]["requestAccountSetupEmail"], true,
        "unknown accounts get the same answer"
    );
    for _ in 0..5 {
        let (_, body) = server
            .graphql(None, REQUEST_EMAIL, json!({ "u": "hana" }))
            .await;
        assert_eq!(body["data"]["requestAccountSetupEmail"], true);
    }
    smtp.wait_for(4, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        smtp.received().len(),
        4,
        "the invitation and at most 3 self-requested an hour"
    );
    let _ = owner;
}

async fn self_requested_reset_needs_a_security_answer(db: TestDb) {
    let (server, smtp) = server_with_smtp(&db, vec![]).await;
    let owner = invite(&server).await;
    let token = setup_token(&smtp.wait_for(1, WAIT).await[0].text());
    complete(&server, &token, "the first passphrase", json!({})).await;
    let session = server.login("hana", "the first passphrase").await;

    server
        .graphql(None, REQUEST_EMAIL, json!({ "u": "hana" }))
        .await;
    let mail = smtp.wait_for(2, WAIT).await.remove(1);
    assert!(
        mail.header("Subject").unwrap().contains("Reset"),
        "{:?}",
        mail.header("Subject")
    );
    let token = setup_token(&mail.text());
    let missing = complete(&server, &token, "the second passphrase", json!({})).await;
    assert_eq!(
        missing["userErrors"][0]["code"], "SECURITY_ANSWER_MISMATCH",
        "{missing}"
    );
    let wrong = complete(
        &server,
        &token,
        "the second passphrase",
        json!({ "currentSecurityAnswer": { "question": "First pet?", "answer": "Fido" } }),
    )
    .await;
    assert_eq!(wrong["userErrors"][0]["code"], "SECURITY_ANSWER_MISMATCH");
    let failures = audit_actions(&server, owner.org_id).await;
    assert!(
        failures
            .iter()
            .any(|(a, d)| a == "session.login_failed" && d.contains("security answer")),
        "a wrong answer counts as a failed login"
    );
    let right = complete(
        &server,
        &token,
        "the second passphrase",
        json!({ "currentSecurityAnswer": { "question": "first pet?", "answer": "  REX " } }),
    )
    .await;
    assert_eq!(right["userErrors"], json!([]), "{right}");
    let (_, me) = server
        .graphql(Some(&session), "{ me { id } }", json!({}))
        .await;
    assert_eq!(
        me["data"]["me"],
        Value::Null,
        "setting the password ended the old session"
    );
    server.login("hana", "the second passphrase").await;
    let changed = smtp.wait_for(3, WAIT).await.remove(2);
    assert!(
        changed
            .header("Subject")
            .unwrap()
            .contains("password was changed"),
        "{:?}",
        changed.header("Subject")
    );
}

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
    assert!(
        mail.text().contains("unlocks by itself at"),
        "{}",
        mail.text()
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
    let env = vec![
        ("GATEHOUSE_LOCKOUT_THRESHOLD", "2".into()),
        ("GATEHOUSE_LOCKOUT_DURATION", "1s".into()),
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
    for _ in 0..2 {
        login_error(&server, "olivia", "not my password at all").await;
    }
    let locked = login_error(&server, "olivia", OWNER_PASSWORD).await;
    assert_eq!(locked["data"]["login"]["token"], Value::Null);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.login("olivia", OWNER_PASSWORD).await;
}

async fn completed_setup_ends_a_lock(db: TestDb) {
    let (server, smtp) =
        server_with_smtp(&db, vec![("GATEHOUSE_LOCKOUT_THRESHOLD", "2".into())]).await;
    let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
    let member = add_user(&server, org.id, "mia", Role::Member, Some(MEMBER_PASSWORD)).await;
    for _ in 0..2 {
        login_error(&server, "mia", "not my password at all").await;
    }
    smtp.wait_for(1, WAIT).await; // the lock email
    let owner = server.login("olivia", OWNER_PASSWORD).await;
    let send = "mutation($id: ID!) { sendAccountSetupEmail(input: {userId: $id}) { user { id } userErrors { code } } }";
    let (_, body) = server
        .graphql(Some(&owner), send, json!({ "id": member.id.to_global() }))
        .await;
    assert_eq!(
        body["data"]["sendAccountSetupEmail"]["userErrors"],
        json!([]),
        "{body}"
    );
    let token = setup_token(&smtp.wait_for(2, WAIT).await[1].text());
    let done = complete(&server, &token, "a brand new passphrase", json!({})).await;
    assert_eq!(done["user"]["locked"], false, "{done}");
    server.login("mia", "a brand new passphrase").await;
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
}

async fn idle_sessions_expire(db: TestDb) {
    let env = vec![
        ("GATEHOUSE_SESSION_IDLE", "1s".into()),
        ("GATEHOUSE_SWEEP_INTERVAL", "1h".into()),
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
    let token = server.login("olivia", OWNER_PASSWORD).await;
    let (_, me) = server
        .graphql(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert!(me["data"]["me"]["id"].is_string());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, me) = server
        .graphql(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_their_absolute_lifetime() {
    let db = TestDb::sqlite().await;
    let env = vec![("GATEHOUSE_SESSION_MAX", "1s".into())];
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            env,
            ..Default::default()
        },
    )
    .await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, me) = server
        .graphql(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"], Value::Null);
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
