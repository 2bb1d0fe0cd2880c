//! Requests and approvals end to end on both databases: filing, routing to owners by job,
//! decisions (first wins), applying, failures, cancelling, idempotency, visibility,
//! reminders and expiry, the emails of each step (to a real SMTP server), and the
//! requestUpdated subscription over WebSocket.

use crate::common::{
    OWNER_PASSWORD, ServerOptions, Subscriber, TestDb, TestServer, add_user, seed_org,
};
use crate::smtp::{Received, SmtpReceiver};
use gatehouse::domain::{OrgId, Role};
use serde_json::{Value, json};
use std::time::Duration;

crate::on_both_databases!(
    an_owners_license_request_is_applied_at_once,
    other_requests_wait_for_another_owner,
    the_first_of_two_simultaneous_decisions_wins,
    requesters_and_subjects_cannot_decide_and_rejections_need_a_reason,
    inactivation_releases_licenses_and_ends_sessions,
    permission_changes_apply_and_the_last_owner_stays,
    a_request_nobody_can_approve_fails,
    idempotency_keys_and_open_requests_return_the_first_request,
    requests_are_cancelled_by_their_requester_or_an_owner,
    members_see_only_their_own_requests_and_other_organizations_nothing,
    pending_requests_are_reminded_once_then_expire,
    a_recent_billing_provider_is_reactivated_through_a_request,
    subscribers_see_each_status_change,
);

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery staple";

const FIELDS: &str = "id kind status failureReason justification requestedBy { username } subject { username } approvers { username } licenseChange { product kind quantity } permissionChange { grant revoke role } products decisions { approver { username } approved comment termsAccepted } events { status actor { username } note } decidedAt appliedAt expiresAt";

fn payload(mutation: &str, input: &str) -> String {
    format!(
        "mutation($i: {input}!) {{ {mutation}(input: $i) {{ request {{ {FIELDS} }} userErrors {{ code field message }} }} }}"
    )
}

/// An organization with two active owners (olivia, oscar), an admin and a member, served
/// with a real SMTP server.
struct Practice {
    server: TestServer,
    smtp: SmtpReceiver,
    org: OrgId,
    olivia: String,
    oscar: String,
    adam: String,
    mia: String,
}

async fn practice(db: &TestDb, env: Vec<(&'static str, String)>) -> Practice {
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
    let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
    for (name, role) in [
        ("oscar", Role::Owner),
        ("adam", Role::Admin),
        ("mia", Role::Member),
    ] {
        add_user(&server, org.id, name, role, Some(PASSWORD)).await;
    }
    Practice {
        olivia: server.login("olivia", OWNER_PASSWORD).await,
        oscar: server.login("oscar", PASSWORD).await,
        adam: server.login("adam", PASSWORD).await,
        mia: server.login("mia", PASSWORD).await,
        server,
        smtp,
        org: org.id,
    }
}

impl Practice {
    async fn call(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.server.graphql(Some(token), query, variables).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Runs a request mutation; returns its payload.
    async fn mutate(&self, token: &str, mutation: &str, input_type: &str, input: Value) -> Value {
        let body = self
            .call(token, &payload(mutation, input_type), json!({ "i": input }))
            .await;
        body["data"][mutation].clone()
    }

    async fn request_licenses(&self, token: &str, input: Value) -> Value {
        self.mutate(token, "requestLicenses", "RequestLicensesInput", input)
            .await
    }

    async fn request_inactivation(&self, token: &str, user: &str) -> Value {
        let id = self.user_id(user).await;
        self.mutate(
            token,
            "requestInactivation",
            "RequestInactivationInput",
            json!({ "userId": id, "reason": "left the practice" }),
        )
        .await
    }

    async fn approve(&self, token: &str, id: &str, terms: bool) -> Value {
        self.mutate(
            token,
            "approveRequest",
            "ApproveRequestInput",
            json!({ "requestId": id, "acceptTerms": terms, "comment": "fine" }),
        )
        .await
    }

    async fn user_id(&self, username: &str) -> String {
        let body = self
            .call(
                &self.olivia,
                "query($f: UserFilter) { users(filter: $f) { edges { node { id username } } } }",
                json!({ "f": { "username": username } }),
            )
            .await;
        let edges = body["data"]["users"]["edges"].as_array().unwrap().clone();
        edges
            .into_iter()
            .find(|e| e["node"]["username"] == username)
            .unwrap_or_else(|| panic!("no user {username}: {body}"))["node"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn request(&self, token: &str, id: &str) -> Value {
        let body = self
            .call(
                token,
                &format!("query($id: ID!) {{ request(id: $id) {{ {FIELDS} }} }}"),
                json!({ "id": id }),
            )
            .await;
        body["data"]["request"].clone()
    }

    /// Waits until the request reaches `status` (the workers do the rest).
    async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let request = self.request(&self.olivia, id).await;
            if request["status"] == status {
                return request;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "request never became {status}: {request}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an email to `user` whose subject starts with `subject`.
    async fn wait_mail(&self, user: &str, subject: &str) -> Received {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(mail) = self.mails(user, subject).into_iter().next() {
                return mail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no email to {user} starting {subject:?}; got {:?}",
                self.smtp
                    .received()
                    .iter()
                    .map(|m| (m.to.clone(), m.header("Subject")))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn mails(&self, user: &str, subject: &str) -> Vec<Received> {
        self.smtp
            .received()
            .into_iter()
            .filter(|m| m.to.iter().any(|to| to.starts_with(&format!("{user}@"))))
            .filter(|m| m.header("Subject").is_some_and(|s| s.starts_with(subject)))
            .collect()
    }

    async fn pool(&self, product: &str, kind: &str) -> (i64, i64) {
        let body = self
            .call(
                &self.olivia,
                "{ organization { licenses { product kind total used } } }",
                json!({}),
            )
            .await;
        let pools = body["data"]["organization"]["licenses"].as_array().unwrap();
        pools
            .iter()
            .find(|p| p["product"] == product && p["kind"] == kind)
            .map(|p| (p["total"].as_i64().unwrap(), p["used"].as_i64().unwrap()))
            .unwrap_or((0, 0))
    }
}

fn id(payload: &Value) -> String {
    payload["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request in {payload}"))
        .to_owned()
}

fn statuses(request: &Value) -> Vec<String> {
    request["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

fn error_code(payload: &Value) -> &str {
    payload["userErrors"][0]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {payload}"))
}

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

async fn inactivation_releases_licenses_and_ends_sessions(db: TestDb) {
    let p = practice(&db, vec![]).await;
    assert_eq!(p.pool("EHR", "STAFF").await, (10, 4));
    let filed = p.request_inactivation(&p.olivia, "mia").await;
    let request = p.wait_status(&id(&filed), "APPLIED").await;
    assert_eq!(request["subject"]["username"], "mia");
    assert_eq!(p.pool("EHR", "STAFF").await, (10, 3));
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
    assert_eq!(p.pool("EHR", "STAFF").await, (10, 3));
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

async fn idempotency_keys_and_open_requests_return_the_first_request(db: TestDb) {
    let p = practice(&db, vec![]).await;
    let input =
        json!({ "product": "TELEHEALTH", "kind": "STAFF", "quantity": 1, "idempotencyKey": "k-1" });
    let first = p.request_licenses(&p.adam, input.clone()).await;
    let second = p.request_licenses(&p.adam, input).await;
    assert_eq!(second["userErrors"], json!([]));
    assert_eq!(id(&first), id(&second));
    let count = p
        .call(&p.olivia, "{ requests { totalCount } }", json!({}))
        .await;
    assert_eq!(count["data"]["requests"]["totalCount"], 1);

    let open = p.request_inactivation(&p.adam, "mia").await;
    let duplicate = p.request_inactivation(&p.oscar, "mia").await;
    assert_eq!(error_code(&duplicate), "ALREADY_EXISTS", "{duplicate}");
    assert_eq!(
        id(&duplicate),
        id(&open),
        "the open request is in the payload"
    );
}

async fn requests_are_cancelled_by_their_requester_or_an_owner(db: TestDb) {
    let p = practice(&db, vec![]).await;
    add_user(&p.server, p.org, "ada", Role::Admin, Some(PASSWORD)).await;
    let ada = p.server.login("ada", PASSWORD).await;
    let filed = p.request_inactivation(&p.adam, "mia").await;
    let request_id = id(&filed);
    let cancel = |token: String| {
        let request_id = request_id.clone();
        let p = &p;
        async move {
            p.call(
                &token,
                &payload("cancelRequest", "CancelRequestInput"),
                json!({ "i": { "requestId": request_id } }),
            )
            .await
        }
    };
    let by_other_admin = cancel(ada).await;
    assert_eq!(
        by_other_admin["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{by_other_admin}"
    );
    let by_requester = cancel(p.adam.clone()).await;
    let done = &by_requester["data"]["cancelRequest"];
    assert_eq!(done["userErrors"], json!([]), "{by_requester}");
    assert_eq!(done["request"]["status"], "CANCELLED");
    let again = cancel(p.olivia.clone()).await;
    assert_eq!(error_code(&again["data"]["cancelRequest"]), "INVALID_STATE");

    let second = p
        .request_licenses(
            &p.adam,
            json!({ "product": "EHR", "kind": "STAFF", "quantity": 1 }),
        )
        .await;
    p.wait_status(&id(&second), "PENDING_APPROVAL").await;
    let by_owner = p
        .call(
            &p.oscar,
            &payload("cancelRequest", "CancelRequestInput"),
            json!({ "i": { "requestId": id(&second) } }),
        )
        .await;
    assert_eq!(
        by_owner["data"]["cancelRequest"]["request"]["status"], "CANCELLED",
        "{by_owner}"
    );
    let approve = p.approve(&p.olivia, &id(&second), true).await;
    assert_eq!(error_code(&approve), "INVALID_STATE");
}

async fn members_see_only_their_own_requests_and_other_organizations_nothing(db: TestDb) {
    let p = practice(&db, vec![]).await;
    let theirs = p.request_inactivation(&p.adam, "oscar").await;
    let own = p.request_inactivation(&p.mia, "mia").await;
    assert_eq!(
        own["userErrors"],
        json!([]),
        "a member may ask to leave: {own}"
    );
    let other = p.request_inactivation(&p.mia, "adam").await;
    assert!(other.is_null(), "a member may not file for others");
    let list = p
        .call(
            &p.mia,
            "{ requests { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["data"]["requests"]["totalCount"], 1, "{list}");
    assert_eq!(list["data"]["requests"]["edges"][0]["node"]["id"], id(&own));
    assert_eq!(p.request(&p.mia, &id(&theirs)).await, Value::Null);
    let all = p
        .call(
            &p.adam,
            "{ requests(filter: {kind: INACTIVATE_USER}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(all["data"]["requests"]["totalCount"], 2);
    let paged = p
        .call(
            &p.olivia,
            "{ requests(first: 1) { edges { node { id } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        paged["data"]["requests"]["edges"][0]["node"]["id"],
        id(&own),
        "newest first"
    );
    assert_eq!(paged["data"]["requests"]["pageInfo"]["hasNextPage"], true);

    seed_org(&p.server.app, "Elsewhere", "erin").await;
    let erin = p.server.login("erin", OWNER_PASSWORD).await;
    assert_eq!(p.request(&erin, &id(&theirs)).await, Value::Null);
    let cancel = p
        .call(
            &erin,
            &payload("cancelRequest", "CancelRequestInput"),
            json!({ "i": { "requestId": id(&theirs) } }),
        )
        .await;
    assert_eq!(error_code(&cancel["data"]["cancelRequest"]), "NOT_FOUND");
    let node = p
        .call(
            &erin,
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id(&theirs) }),
        )
        .await;
    assert_eq!(node["data"]["node"], Value::Null);
}

async fn pending_requests_are_reminded_once_then_expire(db: TestDb) {
    let p = practice(
        &db,
        vec![
            ("GATEHOUSE_REQUEST_REMINDER", "1s".into()),
            ("GATEHOUSE_REQUEST_EXPIRY", "4s".into()),
        ],
    )
    .await;
    let filed = p
        .request_licenses(
            &p.adam,
            json!({ "product": "EHR", "kind": "STAFF", "quantity": 1 }),
        )
        .await;
    let request_id = id(&filed);
    p.wait_mail("olivia", "Reminder: approval needed").await;
    let expired = p.wait_status(&request_id, "EXPIRED").await;
    assert_eq!(
        statuses(&expired),
        ["SUBMITTED", "PENDING_APPROVAL", "EXPIRED"]
    );
    for party in ["adam", "olivia", "oscar"] {
        p.wait_mail(party, "Request expired").await;
    }
    assert_eq!(p.mails("olivia", "Reminder").len(), 1, "one reminder");
    let late = p.approve(&p.olivia, &request_id, true).await;
    assert_eq!(error_code(&late), "INVALID_STATE");
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

async fn subscribers_see_each_status_change(db: TestDb) {
    let p = practice(&db, vec![]).await;
    assert!(
        Subscriber::connect(&p.server, None).await.is_err(),
        "no token, no connection"
    );

    let mut owner = Subscriber::connect(&p.server, Some(&p.oscar))
        .await
        .unwrap();
    owner
        .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { requestUpdated { id status kind events { status } } }" } }))
        .await;
    let mut member = Subscriber::connect(&p.server, Some(&p.mia)).await.unwrap();
    member
        .send(json!({ "id": "m", "type": "subscribe", "payload": { "query": "subscription { requestUpdated { id status } }" } }))
        .await;
    // Give the subscriptions a moment to start listening.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let filed = p
        .request_licenses(
            &p.adam,
            json!({ "product": "EHR", "kind": "STAFF", "quantity": 1 }),
        )
        .await;
    let request_id = id(&filed);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = owner.next().await.expect("subscription message");
        assert_eq!(message["type"], "next", "{message}");
        let request = &message["payload"]["data"]["requestUpdated"];
        assert_eq!(request["id"], request_id.as_str());
        seen.push(request["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["SUBMITTED", "PENDING_APPROVAL"]);
    p.approve(&p.olivia, &request_id, true).await;
    for expected in ["APPROVED", "APPLIED"] {
        let message = owner.next().await.unwrap();
        assert_eq!(
            message["payload"]["data"]["requestUpdated"]["status"], expected,
            "{message}"
        );
    }

    // The member's own request reaches them; the admin's license request never did.
    let own = p.request_inactivation(&p.mia, "mia").await;
    let message = member.next().await.unwrap();
    assert_eq!(
        message["payload"]["data"]["requestUpdated"]["id"],
        id(&own),
        "{message}"
    );

    // Once the member logs out, their subscription stops and the socket closes.
    let out = p.call(&p.mia, "mutation { logout }", json!({})).await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    assert_eq!(
        member.closed_within(Duration::from_secs(5)).await,
        Some(4401)
    );
}
