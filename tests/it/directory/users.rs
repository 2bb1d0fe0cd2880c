//! Inviting, updating and reactivating users over HTTP.

use super::*;

crate::on_both_databases!(
    invitations_are_validated_and_take_a_license,
    profiles_and_practices_are_updated,
    inactive_users_are_reactivated_where_licenses_allow,
);

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
