//! Requests and approvals end to end on both databases: filing, routing to owners by job,
//! decisions (first wins), applying, failures, cancelling, idempotency, visibility,
//! reminders and expiry, the emails of each step (to a real SMTP server), and the
//! requestUpdated subscription over WebSocket.

mod changes;
mod deciding;
mod lifecycle;
mod live;
use crate::common::{
    OWNER_PASSWORD, Practice, STAFF_PASSWORD, Subscriber, TestDb, add_user, seed_org,
};
use crate::smtp::Received;
use gatehouse::domain::Role;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = STAFF_PASSWORD;

const FIELDS: &str = "id kind status failureReason justification requestedBy { username } subject { username } approvers { username } licenseChange { product kind quantity } permissionChange { grant revoke role } products decisions { approver { username } approved comment termsAccepted } events { status actor { username } note } decidedAt appliedAt expiresAt";

fn payload(mutation: &str, input: &str) -> String {
    format!(
        "mutation($i: {input}!) {{ {mutation}(input: $i) {{ request {{ {FIELDS} }} userErrors {{ code field message }} }} }}"
    )
}

/// The practice of the test kit, with olivia, oscar, adam and mia signed in.
struct Signed {
    practice: Practice,
    olivia: String,
    oscar: String,
    adam: String,
    mia: String,
}

impl std::ops::Deref for Signed {
    type Target = Practice;
    fn deref(&self) -> &Practice {
        &self.practice
    }
}

async fn practice(db: &TestDb, env: Vec<(&'static str, String)>) -> Signed {
    let practice = Practice::start(db, env).await;
    Signed {
        olivia: practice.login("olivia").await,
        oscar: practice.login("oscar").await,
        adam: practice.login("adam").await,
        mia: practice.login("mia").await,
        practice,
    }
}

impl Signed {
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
