//! Who decides a request, and the first decision winning.

use super::*;

crate::on_both_databases!(
    an_owners_license_request_is_applied_at_once,
    other_requests_wait_for_another_owner,
    the_first_of_two_simultaneous_decisions_wins,
    requesters_and_subjects_cannot_decide_and_rejections_need_a_reason,
    a_request_nobody_can_approve_fails,
);

async fn an_owners_license_request_is_applied_at_once(db: TestDb) {
    let p = practice(&db, vec![]).await;
    let without_terms = p
        .request_licenses(
            &p.olivia,
            json!({ "product": "EHR", "kind": "PROVIDER", "quantity": 3 }),
        )
        .await;
    assert_eq!(
        error_code(&without_terms),
        "TERMS_NOT_ACCEPTED",
        "{without_terms}"
    );
    assert_eq!(
        without_terms["userErrors"][0]["field"],
        json!(["input", "acceptTerms"])
    );
    for quantity in [0, 501] {
        let bad = p
            .request_licenses(
                &p.olivia,
                json!({ "product": "EHR", "kind": "PROVIDER", "quantity": quantity, "acceptTerms": true }),
            )
            .await;
        assert_eq!(error_code(&bad), "INVALID_INPUT", "{bad}");
    }
    assert_eq!(p.pool("EHR", "PROVIDER").await, (5, 0), "nothing changed");

    let filed = p
        .request_licenses(
            &p.olivia,
            json!({ "product": "EHR", "kind": "PROVIDER", "quantity": 3, "acceptTerms": true, "justification": "two new doctors" }),
        )
        .await;
    assert_eq!(filed["userErrors"], json!([]), "{filed}");
    assert_eq!(filed["request"]["status"], "SUBMITTED");
    assert_eq!(
        filed["request"]["licenseChange"],
        json!({ "product": "EHR", "kind": "PROVIDER", "quantity": 3 })
    );
    let request = p.wait_status(&id(&filed), "APPLIED").await;
    assert_eq!(statuses(&request), ["SUBMITTED", "APPROVED", "APPLIED"]);
    assert_eq!(
        request["decisions"],
        json!([{ "approver": { "username": "olivia" }, "approved": true, "comment": null, "termsAccepted": true }])
    );
    assert!(request["appliedAt"].is_string());
    assert_eq!(p.pool("EHR", "PROVIDER").await, (8, 0));
    let mail = p.wait_mail("olivia", "Request applied").await;
    assert!(
        mail.text()
            .contains("Add 3 EHR licenses for PROVIDER users"),
        "{}",
        mail.text()
    );
    assert!(
        mail.text()
            .contains(&format!("https://gatehouse.test/requests/{}", id(&filed)))
    );

    let audit = p
        .call(
            &p.olivia,
            "query($f: AuditFilter) { auditEvents(filter: $f, first: 20) { edges { node { action request { id } } } } }",
            json!({ "f": { "requestId": id(&filed) } }),
        )
        .await;
    let actions: Vec<&str> = audit["data"]["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "request.applied",
            "license.pool_changed",
            "request.approved",
            "request.submitted"
        ]
    );
    assert_eq!(
        audit["data"]["auditEvents"]["edges"][0]["node"]["request"]["id"],
        id(&filed)
    );
}

async fn other_requests_wait_for_another_owner(db: TestDb) {
    let p = practice(&db, vec![]).await;
    let filed = p
        .request_licenses(
            &p.adam,
            json!({ "product": "EHR", "kind": "STAFF", "quantity": 2, "justification": "front desk" }),
        )
        .await;
    assert_eq!(filed["userErrors"], json!([]), "{filed}");
    let request_id = id(&filed);
    let pending = p.wait_status(&request_id, "PENDING_APPROVAL").await;
    let mut approvers: Vec<&str> = pending["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    approvers.sort();
    assert_eq!(approvers, ["olivia", "oscar"]);
    for owner in ["olivia", "oscar"] {
        let mail = p.wait_mail(owner, "Approval needed").await;
        assert!(
            mail.text()
                .contains(&format!("https://gatehouse.test/requests/{request_id}")),
            "{}",
            mail.text()
        );
        assert!(mail.data.contains("text/html"));
    }
    let awaiting = p
        .call(
            &p.oscar,
            "{ requests(filter: {awaitingMyDecision: true}) { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(awaiting["data"]["requests"]["totalCount"], 1, "{awaiting}");

    let by_admin = p
        .call(
            &p.adam,
            &payload("approveRequest", "ApproveRequestInput"),
            json!({ "i": { "requestId": request_id, "acceptTerms": true } }),
        )
        .await;
    assert_eq!(
        by_admin["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{by_admin}"
    );
    let no_terms = p.approve(&p.olivia, &request_id, false).await;
    assert_eq!(error_code(&no_terms), "TERMS_NOT_ACCEPTED");
    assert_eq!(
        p.request(&p.olivia, &request_id).await["status"],
        "PENDING_APPROVAL"
    );

    let approved = p.approve(&p.olivia, &request_id, true).await;
    assert_eq!(approved["userErrors"], json!([]), "{approved}");
    assert_eq!(approved["request"]["status"], "APPROVED");
    let late = p.approve(&p.oscar, &request_id, true).await;
    assert_eq!(error_code(&late), "INVALID_STATE", "{late}");

    let applied = p.wait_status(&request_id, "APPLIED").await;
    assert_eq!(
        statuses(&applied),
        ["SUBMITTED", "PENDING_APPROVAL", "APPROVED", "APPLIED"]
    );
    assert_eq!(applied["decisions"][0]["approver"]["username"], "olivia");
    assert_eq!(applied["decisions"][0]["termsAccepted"], true);
    assert_eq!(
        applied["approvers"],
        json!([]),
        "nobody decides an applied request"
    );
    assert_eq!(p.pool("EHR", "STAFF").await.0, 12);
    for party in ["adam", "olivia", "oscar"] {
        p.wait_mail(party, "Request applied").await;
    }
}

async fn the_first_of_two_simultaneous_decisions_wins(db: TestDb) {
    let p = practice(&db, vec![]).await;
    let filed = p.request_inactivation(&p.adam, "mia").await;
    let request_id = id(&filed);
    p.wait_status(&request_id, "PENDING_APPROVAL").await;
    let reject = p.mutate(
        &p.oscar,
        "rejectRequest",
        "RejectRequestInput",
        json!({ "requestId": request_id, "reason": "we still need her" }),
    );
    let (approved, rejected) = tokio::join!(p.approve(&p.olivia, &request_id, false), reject);
    let winners = [&approved, &rejected]
        .iter()
        .filter(|r| r["userErrors"] == json!([]))
        .count();
    assert_eq!(winners, 1, "{approved} {rejected}");
    let loser = if approved["userErrors"] == json!([]) {
        &rejected
    } else {
        &approved
    };
    assert_eq!(error_code(loser), "INVALID_STATE");
    let request = p.request(&p.olivia, &request_id).await;
    assert_eq!(
        request["decisions"].as_array().unwrap().len(),
        1,
        "{request}"
    );
}

async fn requesters_and_subjects_cannot_decide_and_rejections_need_a_reason(db: TestDb) {
    let p = practice(&db, vec![]).await;
    // An admin asks to inactivate owner oscar: only olivia may decide.
    let filed = p.request_inactivation(&p.adam, "oscar").await;
    let request_id = id(&filed);
    let pending = p.wait_status(&request_id, "PENDING_APPROVAL").await;
    assert_eq!(pending["approvers"], json!([{ "username": "olivia" }]));
    let by_subject = p.approve(&p.oscar, &request_id, false).await;
    assert_eq!(error_code(&by_subject), "SELF_APPROVAL_NOT_ALLOWED");
    let reject = |reason: &str| {
        p.mutate(
            &p.olivia,
            "rejectRequest",
            "RejectRequestInput",
            json!({ "requestId": request_id, "reason": reason }),
        )
    };
    let blank = reject("   ").await;
    assert_eq!(error_code(&blank), "INVALID_INPUT");
    assert_eq!(blank["userErrors"][0]["field"], json!(["input", "reason"]));
    let rejected = reject("Oscar stays on").await;
    assert_eq!(rejected["userErrors"], json!([]), "{rejected}");
    assert_eq!(rejected["request"]["status"], "REJECTED");
    assert_eq!(rejected["request"]["decisions"][0]["approved"], false);
    assert_eq!(
        rejected["request"]["decisions"][0]["comment"],
        "Oscar stays on"
    );
    for party in ["adam", "oscar", "olivia"] {
        let mail = p.wait_mail(party, "Request rejected").await;
        assert!(mail.text().contains("Oscar stays on"), "{}", mail.text());
    }
    // A rejected request frees its subject for a new one.
    let again = p.request_inactivation(&p.adam, "oscar").await;
    assert_eq!(again["userErrors"], json!([]), "{again}");
    assert_ne!(id(&again), request_id);
}

async fn a_request_nobody_can_approve_fails(db: TestDb) {
    let p = practice(&db, vec![]).await;
    let oscar_out = p.request_inactivation(&p.olivia, "oscar").await;
    p.wait_status(&id(&oscar_out), "APPLIED").await;
    // Olivia, the only owner, is the subject: nobody may approve.
    let olivia = p.user_id("olivia").await;
    let filed = p
        .mutate(
            &p.adam,
            "requestPermissionChange",
            "RequestPermissionChangeInput",
            json!({ "userId": olivia, "grant": ["SCHEDULING"] }),
        )
        .await;
    let failed = p.wait_status(&id(&filed), "FAILED").await;
    assert!(
        failed["failureReason"]
            .as_str()
            .unwrap()
            .contains("No active owner"),
        "{failed}"
    );
    let mail = p.wait_mail("adam", "Request failed").await;
    assert!(mail.text().contains("No active owner"), "{}", mail.text());
}
