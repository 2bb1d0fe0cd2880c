//! What approved requests change: inactivation, permissions, reactivation.

use super::*;

crate::on_both_databases!(
    inactivation_releases_licenses_and_ends_sessions,
    permission_changes_apply_and_the_last_owner_stays,
    a_recent_billing_provider_is_reactivated_through_a_request,
);

async fn inactivation_releases_licenses_and_ends_sessions(db: TestDb) {
    let p = practice(&db, vec![]).await;
    assert_eq!(p.pool("EHR", "STAFF").await, (10, 5));
    let filed = p.request_inactivation(&p.olivia, "mia").await;
    let request = p.wait_status(&id(&filed), "APPLIED").await;
    assert_eq!(request["subject"]["username"], "mia");
    assert_eq!(p.pool("EHR", "STAFF").await, (10, 4));
    let mia = p.user_id("mia").await;
    let user = p
        .call(
            &p.olivia,
            "query($id: ID!) { user(id: $id) { status deactivatedAt products } }",
            json!({ "id": mia }),
        )
        .await;
    assert_eq!(user["data"]["user"]["status"], "INACTIVE");
    assert!(user["data"]["user"]["deactivatedAt"].is_string());
    assert_eq!(user["data"]["user"]["products"], json!([]));
    let me = p.call(&p.mia, "{ me { username } }", json!({})).await;
    assert_eq!(me["data"]["me"], Value::Null, "the session ended: {me}");
    let (_, login) = p
        .server
        .graphql(None, "mutation { login(input: {username: \"mia\", password: \"correct horse battery staple\"}) { token userErrors { code } } }", json!({}))
        .await;
    assert_eq!(
        login["data"]["login"]["userErrors"][0]["code"],
        "INVALID_CREDENTIALS"
    );
    let again = p.request_inactivation(&p.olivia, "mia").await;
    assert_eq!(error_code(&again), "INVALID_STATE", "{again}");
    // Applying an applied request again changes nothing.
    let events = db.count("SELECT COUNT(*) FROM audit_events").await;
    let request_id = gatehouse::domain::RequestId::from_global(&id(&filed)).unwrap();
    p.server
        .app
        .workflow()
        .apply_request(request_id)
        .await
        .unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM audit_events").await, events);
    assert_eq!(p.pool("EHR", "STAFF").await, (10, 4));
}

async fn permission_changes_apply_and_the_last_owner_stays(db: TestDb) {
    let p = practice(&db, vec![]).await;
    let adam = p.user_id("adam").await;
    let p = &p;
    let change = |token: &'static str, input: Value| async move {
        let token = match token {
            "olivia" => &p.olivia,
            _ => &p.adam,
        };
        p.mutate(
            token,
            "requestPermissionChange",
            "RequestPermissionChangeInput",
            input,
        )
        .await
    };
    let both = change(
        "olivia",
        json!({ "userId": adam, "grant": ["BILLING"], "revoke": ["BILLING"] }),
    )
    .await;
    assert_eq!(error_code(&both), "INVALID_INPUT");
    let nothing = change("olivia", json!({ "userId": adam })).await;
    assert_eq!(error_code(&nothing), "INVALID_INPUT");
    let by_member = p
        .call(
            &p.mia,
            &payload("requestPermissionChange", "RequestPermissionChangeInput"),
            json!({ "i": { "userId": adam, "grant": ["BILLING"] } }),
        )
        .await;
    assert_eq!(by_member["errors"][0]["extensions"]["code"], "FORBIDDEN");

    let filed = change(
        "olivia",
        json!({ "userId": adam, "grant": ["BILLING", "REPORTING"], "role": "CHAMPION" }),
    )
    .await;
    assert_eq!(filed["userErrors"], json!([]), "{filed}");
    p.wait_status(&id(&filed), "APPLIED").await;
    let user = p
        .call(
            &p.olivia,
            "query($id: ID!) { user(id: $id) { role permissions } }",
            json!({ "id": adam }),
        )
        .await;
    assert_eq!(
        user["data"]["user"],
        json!({ "role": "CHAMPION", "permissions": ["BILLING", "REPORTING"] })
    );

    // Oscar leaves; olivia is then the last active owner.
    let oscar_out = p.request_inactivation(&p.olivia, "oscar").await;
    p.wait_status(&id(&oscar_out), "APPLIED").await;
    let olivia = p.user_id("olivia").await;
    let demote = change("olivia", json!({ "userId": olivia, "role": "ADMIN" })).await;
    assert_eq!(error_code(&demote), "LAST_OWNER", "{demote}");
    let leave = p.request_inactivation(&p.olivia, "olivia").await;
    assert_eq!(error_code(&leave), "LAST_OWNER", "{leave}");
}

async fn a_recent_billing_provider_is_reactivated_through_a_request(db: TestDb) {
    let p = practice(&db, vec![]).await;
    let invited = p
        .call(
            &p.olivia,
            "mutation($i: InviteUserInput!) { inviteUser(input: $i) { user { id } userErrors { code message } } }",
            json!({ "i": { "username": "drpat", "firstName": "Pat", "lastName": "Lee", "email": "drpat@sunrise.example", "kind": "PROVIDER" } }),
        )
        .await;
    let pat = invited["data"]["inviteUser"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = p.request_inactivation(&p.olivia, "drpat").await;
    p.wait_status(&id(&out), "APPLIED").await;

    let reactivate = "mutation($i: ReactivateUsersInput!) { reactivateUsers(input: $i) { users { username } requests { id kind status products subject { username } } userErrors { code } } }";
    let done = p
        .call(
            &p.adam,
            reactivate,
            json!({ "i": { "userIds": [pat], "products": ["EHR", "BILLING"] } }),
        )
        .await;
    let done = &done["data"]["reactivateUsers"];
    assert_eq!(done["users"], json!([]), "{done}");
    assert_eq!(done["requests"][0]["kind"], "REACTIVATE_PROVIDER");
    assert_eq!(done["requests"][0]["products"], json!(["EHR", "BILLING"]));
    let request_id = done["requests"][0]["id"].as_str().unwrap().to_owned();
    p.wait_status(&request_id, "PENDING_APPROVAL").await;
    let no_terms = p.approve(&p.olivia, &request_id, false).await;
    assert_eq!(error_code(&no_terms), "TERMS_NOT_ACCEPTED");
    p.approve(&p.olivia, &request_id, true).await;
    // There is no BILLING license for providers: the change cannot apply.
    let failed = p.wait_status(&request_id, "FAILED").await;
    assert!(
        failed["failureReason"]
            .as_str()
            .unwrap()
            .contains("BILLING"),
        "{failed}"
    );
    p.wait_mail("adam", "Request failed").await;
    let user = p
        .call(
            &p.olivia,
            "query($id: ID!) { user(id: $id) { status } }",
            json!({ "id": pat }),
        )
        .await;
    assert_eq!(user["data"]["user"]["status"], "INACTIVE");

    // Without BILLING the provider comes back at once.
    let now = p
        .call(
            &p.adam,
            reactivate,
            json!({ "i": { "userIds": [pat], "products": ["EHR"] } }),
        )
        .await;
    assert_eq!(
        now["data"]["reactivateUsers"]["users"],
        json!([{ "username": "drpat" }]),
        "{now}"
    );
}
