//! The directory over HTTP on both databases: finding users, inviting them within
//! licenses, profiles, practices, reactivation, the audit log, limits, the role table and
//! tenant isolation.

mod access;
mod search;
mod users;
use crate::common::{OWNER_PASSWORD, TestDb, TestServer, add_user, seed_org};
use gatehouse::domain::Role;
use serde_json::{Value, json};

const INVITE: &str = "mutation($i: InviteUserInput!) { inviteUser(input: $i) { user { id username status mobile products permissions practices { name } } userErrors { code field message } } }";
const USERS: &str = "query($f: UserFilter, $first: Int, $after: String) { users(filter: $f, first: $first, after: $after) { totalCount edges { cursor node { username } } pageInfo { hasNextPage endCursor } } }";

async fn owner_server(db: &TestDb) -> (TestServer, String, gatehouse::domain::Organization) {
    let server = TestServer::start(db).await;
    let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    (server, token, org)
}

async fn invite(server: &TestServer, token: &str, input: Value) -> Value {
    let (status, body) = server
        .graphql(Some(token), INVITE, json!({ "i": input }))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["inviteUser"].clone()
}

fn person(username: &str, first: &str, last: &str, mobile: Option<&str>) -> Value {
    json!({
        "username": username, "firstName": first, "lastName": last,
        "email": format!("{username}@sunrise.example"), "mobile": mobile, "kind": "STAFF",
    })
}

async fn usernames(server: &TestServer, token: &str, filter: Value) -> Vec<String> {
    let (_, body) = server
        .graphql(Some(token), USERS, json!({ "f": filter, "first": 100 }))
        .await;
    let edges = body["data"]["users"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    edges
        .iter()
        .map(|e| e["node"]["username"].as_str().unwrap().to_owned())
        .collect()
}
