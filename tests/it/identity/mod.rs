//! Sign-in, sessions, lockout, account setup, temporary passwords and encryption keys,
//! end to end over HTTP on both databases, with email received by a real SMTP server.

mod lockout;
mod sessions;
mod setup;
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
