//! Account setup by emailed link, and asking for a new one.

use super::*;

crate::on_both_databases!(
    setup_link_activates_an_invited_user,
    expired_setup_token_is_token_expired,
    newer_setup_email_voids_the_older,
    self_requested_reset_needs_a_security_answer,
    completed_setup_ends_a_lock,
);

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
    // The default: a setup link is good for 72 hours.
    let (server, smtp) = server_with_smtp(&db, vec![]).await;
    invite(&server).await;
    let token = setup_token(&smtp.wait_for(1, WAIT).await[0].text());
    server.clock.advance(Duration::from_secs(72 * 3600 + 60));
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
