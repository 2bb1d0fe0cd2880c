//! Secrets under attack: concurrent guesses, locks, reset links, rate limits.

use super::*;

crate::on_both_databases!(
    concurrent_wrong_passwords_verify_at_most_the_threshold,
    concurrent_right_passwords_all_sign_in,
    sign_ins_whose_clients_hang_up_are_decided_all_the_same,
    a_right_secret_during_a_lock_is_refused_everywhere,
    a_reset_link_is_void_after_threshold_wrong_answers,
    rate_limit_counts_every_public_secret_operation,
);

/// One sign-in of mia per password, all sent at once (spawned before any is awaited).
fn sign_ins_at_once(
    o: &Practice,
    passwords: impl Iterator<Item = String>,
) -> Vec<tokio::task::JoinHandle<Value>> {
    passwords
        .map(|password| {
            let request = o
                .server
                .client
                .post(o.server.url("/graphql"))
                .json(&json!({ "query": LOGIN, "variables": { "u": "mia", "p": password } }));
            tokio::spawn(async move {
                let answer = request.send().await.unwrap();
                answer.json::<Value>().await.unwrap()
            })
        })
        .collect()
}

async fn concurrent_wrong_passwords_verify_at_most_the_threshold(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
    // Another writer holds mia's row until all 25 have arrived: they are counted together.
    let held = o.hold_row_of(&db, "mia").await;
    let attempts = sign_ins_at_once(&o, (0..25).map(|i| format!("wrong guess number {i}")));
    tokio::time::sleep(Duration::from_secs(1)).await;
    held.commit().await;
    for attempt in attempts {
        let body = attempt.await.unwrap();
        assert_eq!(
            body["data"]["login"]["userErrors"][0]["code"], "INVALID_CREDENTIALS",
            "{body}"
        );
    }
    // Failures are recorded just after their answers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        o.audit_count("session.login_failed", "wrong password")
            .await,
        5,
        "exactly the threshold of wrong passwords was verified"
    );
    assert_eq!(o.audit_count("user.locked", "").await, 1, "one lock");
    let mail = o.smtp.wait_for(1, WAIT).await;
    assert_eq!(mail.len(), 1, "one lock email");
    assert!(
        mail[0]
            .header("Subject")
            .unwrap()
            .to_lowercase()
            .contains("lock")
    );

    // The right password among 20 wrong ones, during the lock: nobody signs in, the lock
    // stands.
    let passwords = (0..21).map(|i| match i {
        10 => PASSWORD.to_owned(),
        _ => format!("wrong {i}"),
    });
    let attempts = sign_ins_at_once(&o, passwords);
    for attempt in attempts {
        let body = attempt.await.unwrap();
        assert_eq!(body["data"]["login"]["token"], Value::Null, "{body}");
    }
    assert!(o.is_locked("mia").await, "still locked");
}

/// Each attempt is counted before its password is verified, so that no more than the
/// threshold are ever verified at once; attempts beyond it wait for those to be decided
/// rather than being refused as if the account were locked.
async fn concurrent_right_passwords_all_sign_in(db: TestDb) {
    // argon2id at its default cost, as in production.
    let o = Practice::start(
        &db,
        vec![
            ("GATEHOUSE_ARGON2_M_KIB", "19456".into()),
            ("GATEHOUSE_ARGON2_T", "2".into()),
        ],
    )
    .await;
    let held = o.hold_row_of(&db, "mia").await;
    let attempts = sign_ins_at_once(&o, (0..25).map(|_| PASSWORD.to_owned()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    held.commit().await;
    for attempt in attempts {
        let body = attempt.await.unwrap();
        assert!(body["data"]["login"]["token"].is_string(), "{body}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(o.audit_count("session.login", "").await, 25, "25 sessions");
    assert_eq!(o.audit_count("session.login_failed", "").await, 0);
    assert_eq!(o.audit_count("user.locked", "").await, 0, "no lock");
    assert!(!o.is_locked("mia").await, "not locked");
    assert!(o.smtp.received().is_empty(), "no lock email");
}

/// Sign-ins whose clients hang up while they wait are not verified (no hashing for nobody),
/// yet decided: the lock the fifth set pending their outcome ends at once, where it would
/// have stood, refusing the right password, with nobody left to decide it.
async fn sign_ins_whose_clients_hang_up_are_decided_all_the_same(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
    let held = o.hold_row_of(&db, "mia").await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let attempts: Vec<_> = (0..5)
        .map(|_| {
            let request = impatient
                .post(o.server.url("/graphql"))
                .json(&json!({ "query": LOGIN, "variables": { "u": "mia", "p": PASSWORD } }));
            tokio::spawn(async move { request.send().await.is_err() })
        })
        .collect();
    for attempt in attempts {
        assert!(attempt.await.unwrap(), "the client gave up");
    }
    // The server notices a closed connection when it next polls it: give it time to,
    // however loaded the machine, before the attempts can be counted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    held.commit().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        o.audit_count("session.login", "").await,
        0,
        "nothing verified"
    );
    assert!(!o.is_locked("mia").await, "not locked");
    let started = std::time::Instant::now();
    o.login("mia").await;
    assert!(
        started.elapsed() < gatehouse::app::identity::lockout::PENDING_WAIT,
        "no pending lock to wait for"
    );
}

async fn a_right_secret_during_a_lock_is_refused_everywhere(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
    let mia_session = o.login("mia").await;
    let adam_session = o.login("adam").await;
    for user in ["mia", "adam"] {
        for i in 0..5 {
            o.send(None, LOGIN, json!({ "u": user, "p": format!("wrong {i}") }))
                .await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // changePassword with the right current password, from a session opened before.
    let body = o
        .send(
            Some(&mia_session),
            "mutation($p: String!) { changePassword(input: {currentPassword: $p, newPassword: \"a brand new passphrase\"}) { userErrors { code field } } }",
            json!({ "p": PASSWORD }),
        )
        .await;
    assert_eq!(
        body["data"]["changePassword"]["userErrors"][0]["code"], "INVALID_CREDENTIALS",
        "{body}"
    );
    // An admin's step-up with their right password.
    let mia = o.user_id("mia").await;
    let body = o
        .send(
            Some(&adam_session),
            "mutation($u: ID!, $p: String!) { resetEncryptionKey(input: {userId: $u, adminPassword: $p}) { userErrors { code field } } }",
            json!({ "u": mia, "p": PASSWORD }),
        )
        .await;
    assert_eq!(
        body["data"]["resetEncryptionKey"]["userErrors"][0]["field"],
        json!(["input", "adminPassword"]),
        "{body}"
    );
    // Nor does adam's session opened before his lock let him end it, and so go on
    // guessing his password in step-ups.
    let adam = o.user_id("adam").await;
    let body = o
        .send(
            Some(&adam_session),
            "mutation($u: ID!) { unlockUser(input: {userId: $u}) { user { locked } userErrors { code field } } }",
            json!({ "u": adam }),
        )
        .await;
    assert_eq!(
        body["data"]["unlockUser"]["userErrors"][0],
        json!({ "code": "INVALID_STATE", "field": ["input", "userId"] }),
        "{body}"
    );
    assert!(o.is_locked("adam").await, "still locked");
    // Unlocked by an owner, mia's old password still works: nothing was changed.
    let owner = o.login("olivia").await;
    o.send(
        Some(&owner),
        "mutation($u: ID!) { unlockUser(input: {userId: $u}) { user { locked } } }",
        json!({ "u": mia }),
    )
    .await;
    o.login("mia").await;
}

async fn a_reset_link_is_void_after_threshold_wrong_answers(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
    let complete = "mutation($i: CompleteAccountSetupInput!) { completeAccountSetup(input: $i) { userErrors { code } } }";
    let questions = json!([
        { "question": "First pet?", "answer": "Rex" },
        { "question": "Street?", "answer": "Elm" },
        { "question": "Teacher?", "answer": "Ode" },
    ]);
    // Mia sets her questions with a first, admin-sent link.
    let adam = o.login("adam").await;
    let mia = o.user_id("mia").await;
    o.send(
        Some(&adam),
        "mutation($u: ID!) { sendAccountSetupEmail(input: {userId: $u}) { userErrors { code } } }",
        json!({ "u": mia }),
    )
    .await;
    let token = setup_token(&o.smtp.wait_for(1, WAIT).await[0].text());
    let body = o
        .send(
            None,
            complete,
            json!({ "i": { "token": token, "newPassword": PASSWORD, "securityQuestions": questions } }),
        )
        .await;
    assert_eq!(
        body["data"]["completeAccountSetup"]["userErrors"],
        json!([]),
        "{body}"
    );
    // Then asks for a reset herself: it needs a security answer.
    o.send(
        None,
        "mutation { requestAccountSetupEmail(input: {usernameOrEmail: \"mia\"}) }",
        json!({}),
    )
    .await;
    // After the first link and the "password changed" notice.
    let mail = o.smtp.wait_for(3, WAIT).await;
    let link = mail
        .iter()
        .skip(1)
        .find(|m| m.text().contains("/account/setup?token="))
        .expect("a reset link");
    let token = setup_token(&link.text());
    let attempt = |answer: &str| {
        json!({ "i": {
            "token": token, "newPassword": "a different passphrase", "securityQuestions": questions,
            "currentSecurityAnswer": { "question": "First pet?", "answer": answer },
        } })
    };
    let mut codes = Vec::new();
    for i in 0..8 {
        let body = o.send(None, complete, attempt(&format!("Fido {i}"))).await;
        codes.push(body["data"]["completeAccountSetup"]["userErrors"][0]["code"].clone());
    }
    assert!(
        codes[..5].iter().all(|c| c == "SECURITY_ANSWER_MISMATCH"),
        "{codes:?}"
    );
    assert!(codes[5..].iter().all(|c| c == "TOKEN_INVALID"), "{codes:?}");
    let body = o.send(None, complete, attempt("Rex")).await;
    assert_eq!(
        body["data"]["completeAccountSetup"]["userErrors"][0]["code"], "TOKEN_INVALID",
        "the right answer comes too late: {body}"
    );
}

async fn rate_limit_counts_every_public_secret_operation(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
    let mia = o.login("mia").await; // one attempt of 30
    let setup = "mutation { completeAccountSetup(input: {token: \"nope\", newPassword: \"whatever it is now\", securityQuestions: []}) { userErrors { code } } }";
    let reset = "mutation { requestAccountSetupEmail(input: {usernameOrEmail: \"nobody\"}) }";
    let change = "mutation { changePassword(input: {currentPassword: \"not it at all\", newPassword: \"whatever it is now\"}) { userErrors { code } } }";
    for _ in 0..9 {
        for query in [setup, reset] {
            let body = o.send(None, query, json!({})).await;
            assert_eq!(body["errors"], Value::Null, "{body}");
        }
    }
    for _ in 0..2 {
        let body = o.send(Some(&mia), change, json!({})).await;
        assert_eq!(body["errors"], Value::Null, "{body}");
    }
    // 1 + 18 + 2 = 21 of 30; a locked mia is no obstacle to counting.
    for _ in 0..9 {
        let body = o.send(None, reset, json!({})).await;
        assert_eq!(body["errors"], Value::Null, "{body}");
    }
    for query in [setup, reset, LOGIN] {
        let body = o
            .send(None, query, json!({ "u": "olivia", "p": OWNER_PASSWORD }))
            .await;
        assert_eq!(code(&body), "RATE_LIMITED", "{query}: {body}");
    }
    let body = o.send(Some(&mia), change, json!({})).await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    // X-Forwarded-For is not believed from an untrusted peer.
    let response = o
        .server
        .client
        .post(o.server.url("/graphql"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({ "query": reset }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client() {
    let db = TestDb::sqlite().await;
    let env = vec![("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.0/8, ::1".into())];
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            env,
            ..Default::default()
        },
    )
    .await;
    let reset = "mutation { requestAccountSetupEmail(input: {usernameOrEmail: \"nobody\"}) }";
    let send = |forwarded: &'static str| {
        server
            .client
            .post(server.url("/graphql"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "query": reset }))
            .send()
    };
    for _ in 0..30 {
        let body: Value = send("203.0.113.1, 198.51.100.7")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["errors"], Value::Null, "{body}");
    }
    let body: Value = send("198.51.100.7").await.unwrap().json().await.unwrap();
    assert_eq!(
        code(&body),
        "RATE_LIMITED",
        "the nearest untrusted hop is the client"
    );
    let body: Value = send("198.51.100.8").await.unwrap().json().await.unwrap();
    assert_eq!(
        body["errors"],
        Value::Null,
        "another client has its own count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_nodes_on_one_redis_share_the_rate_limit() {
    let Some(redis) = crate::redis::TestRedis::start().await else {
        return;
    };
    let db = TestDb::sqlite().await;
    let options = || ServerOptions {
        queue_url: Some(redis.url()),
        no_workers: true,
        ..Default::default()
    };
    let first = TestServer::start_with(&db, options()).await;
    let second = TestServer::start_with(&db, options()).await;
    let reset = "mutation { requestAccountSetupEmail(input: {usernameOrEmail: \"nobody\"}) }";
    for i in 0..30 {
        let node = if i % 2 == 0 { &first } else { &second };
        let (_, body) = node.graphql(None, reset, json!({})).await;
        assert_eq!(body["errors"], Value::Null, "{body}");
    }
    for node in [&first, &second] {
        let (_, body) = node.graphql(None, reset, json!({})).await;
        assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    }
}
