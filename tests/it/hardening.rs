//! What an attacker tries: input that could crash the server, sessions that should have
//! ended, many attempts at once, more rights than an owner granted, and work that should
//! not wait. End to end over HTTP and WebSocket, on both databases.

use crate::common::{
    OWNER_PASSWORD, ServerOptions, Subscriber, TestDb, TestServer, add_user, seed_org, setup_token,
};
use crate::smtp::SmtpReceiver;
use gatehouse::domain::{OrgId, Role};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PASSWORD: &str = "a member's long passphrase";
const WAIT: Duration = Duration::from_secs(20);

crate::on_both_databases!(
    fuzzed_input_never_answers_internal_or_5xx,
    control_characters_and_long_text_are_bad_input,
    a_socket_closes_when_its_session_ends,
    every_socket_operation_is_authenticated_afresh,
    concurrent_wrong_passwords_verify_at_most_the_threshold,
    a_right_secret_during_a_lock_is_refused_everywhere,
    a_reset_link_is_void_after_threshold_wrong_answers,
    rate_limit_counts_every_public_secret_operation,
    invitations_by_champions_and_admins_grant_a_member,
    only_an_owner_acts_on_an_owners_credentials,
    a_locked_owner_decides_nothing,
    a_temporary_password_shows_nothing_beyond_the_user,
    default_settings_deliver_and_apply_within_a_second,
);

/// An organization with an owner (olivia), a second owner, a champion, an admin and a
/// member, all ACTIVE, on a server with a real SMTP receiver.
struct Org {
    server: TestServer,
    smtp: SmtpReceiver,
    org: OrgId,
}

async fn org_with_staff(db: &TestDb, env: Vec<(&'static str, String)>) -> Org {
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
        ("cam", Role::Champion),
        ("adam", Role::Admin),
        ("mia", Role::Member),
    ] {
        add_user(&server, org.id, name, role, Some(PASSWORD)).await;
    }
    Org {
        server,
        smtp,
        org: org.id,
    }
}

impl Org {
    async fn call(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self.server.graphql(token, query, variables).await;
        assert!(status < 500, "{status}: {body}");
        body
    }

    async fn login(&self, username: &str) -> String {
        let password = if username == "olivia" {
            OWNER_PASSWORD
        } else {
            PASSWORD
        };
        self.server.login(username, password).await
    }

    async fn user_id(&self, username: &str) -> String {
        let user = self
            .server
            .store
            .credentials_by_username(username)
            .await
            .unwrap()
            .expect("a user")
            .0;
        user.id.to_global()
    }

    async fn audit_count(&self, action: &str, detail: &str) -> usize {
        let events = self
            .server
            .store
            .audit_chain_page(self.org, 0, 10_000)
            .await
            .unwrap();
        events
            .iter()
            .filter(|e| e.action == action && e.details.contains(detail))
            .count()
    }
}

fn code(body: &Value) -> &Value {
    &body["errors"][0]["extensions"]["code"]
}

const LOGIN: &str = "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { token userErrors { code field } } }";

// ---------------------------------------------------------------------------------------
// 1. No crash from any input.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_documents_are_refused_and_the_server_stays_up() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    let bombs = [
        format!(
            "{{ me(x: {}1{}) {{ id }} }}",
            "[".repeat(1600),
            "]".repeat(1600)
        ),
        format!(
            "{{ me(x: {}) {{ id }} }}",
            "{a: ".repeat(5000) + &"}".repeat(5000)
        ),
        format!("{{ me {} }}", "{ id ".repeat(5000) + &"}".repeat(5000)),
    ];
    for bomb in &bombs {
        let (status, body) = server.graphql(None, bomb, json!({})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    }
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let (status, body) = server
        .graphql(None, "query($x: Int) { me { id } }", json!({ "x": deep }))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");

    let mut socket = Subscriber::connect(&server, Some(&token)).await.unwrap();
    for (i, bomb) in bombs.iter().enumerate() {
        let answer = socket.run(&i.to_string(), bomb).await;
        assert_eq!(
            answer["payload"]["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
            "{answer}"
        );
    }
    let answer = socket.run("after", "{ me { username } }").await;
    assert_eq!(answer["payload"]["data"]["me"]["username"], "olivia");
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "the process is still up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_introspection_query_is_answered() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let (status, body) = server.graphql(None, INTROSPECTION_QUERY, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], Value::Null, "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "User"), "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    // GraphiQL sends it as a named operation with operationName.
    let response = server
        .client
        .post(server.url("/graphql"))
        .json(&json!({ "query": INTROSPECTION_QUERY, "operationName": "IntrospectionQuery" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// graphql-js 16's `getIntrospectionQuery()`, exactly as GraphiQL and codegen send it.
const INTROSPECTION_QUERY: &str = r#"
    query IntrospectionQuery {
      __schema {
        queryType { name }
        mutationType { name }
        subscriptionType { name }
        types {
          ...FullType
        }
        directives {
          name
          description
          locations
          args {
            ...InputValue
          }
        }
      }
    }

    fragment FullType on __Type {
      kind
      name
      description
      fields(includeDeprecated: true) {
        name
        description
        args {
          ...InputValue
        }
        type {
          ...TypeRef
        }
        isDeprecated
        deprecationReason
      }
      inputFields {
        ...InputValue
      }
      interfaces {
        ...TypeRef
      }
      enumValues(includeDeprecated: true) {
        name
        description
        isDeprecated
        deprecationReason
      }
      possibleTypes {
        ...TypeRef
      }
    }

    fragment InputValue on __InputValue {
      name
      description
      type { ...TypeRef }
      defaultValue
    }

    fragment TypeRef on __Type {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType {
                kind
                name
                ofType {
                  kind
                  name
                  ofType {
                    kind
                    name
                  }
                }
              }
            }
          }
        }
      }
    }
  "#;

/// Root fields with their arguments, from introspection.
async fn root_fields(server: &TestServer) -> Vec<(String, String, Vec<(String, Value)>)> {
    let (_, body) = server.graphql(None, INTROSPECTION_QUERY, json!({})).await;
    let types = body["data"]["__schema"]["types"]
        .as_array()
        .unwrap()
        .clone();
    let mut fields = Vec::new();
    for root in ["Query", "Mutation"] {
        let t = types.iter().find(|t| t["name"] == root).unwrap();
        for field in t["fields"].as_array().unwrap() {
            let args = field["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a["name"].as_str().unwrap().to_owned(), a["type"].clone()))
                .collect();
            fields.push((
                root.to_lowercase(),
                field["name"].as_str().unwrap().to_owned(),
                args,
            ));
        }
    }
    fields
}

/// The type written in a variable definition, e.g. `[ID!]!`.
fn type_text(t: &Value) -> String {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => format!("{}!", type_text(&t["ofType"])),
        "LIST" => format!("[{}]", type_text(&t["ofType"])),
        _ => t["name"].as_str().unwrap().to_owned(),
    }
}

/// A value of type `t` made of `text` wherever text goes, filling input objects' fields.
fn value_of(t: &Value, text: &Value, types: &[Value], depth: usize) -> Value {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => value_of(&t["ofType"], text, types, depth),
        "LIST" => json!([value_of(&t["ofType"], text, types, depth)]),
        "ENUM" => {
            let name = t["name"].as_str().unwrap();
            let def = types.iter().find(|d| d["name"] == name).unwrap();
            def["enumValues"][0]["name"].clone()
        }
        "INPUT_OBJECT" if depth < 3 => {
            let name = t["name"].as_str().unwrap();
            let def = types.iter().find(|d| d["name"] == name).unwrap();
            let mut object = serde_json::Map::new();
            for field in def["inputFields"].as_array().unwrap() {
                object.insert(
                    field["name"].as_str().unwrap().to_owned(),
                    value_of(&field["type"], text, types, depth + 1),
                );
            }
            Value::Object(object)
        }
        "SCALAR" => match t["name"].as_str().unwrap() {
            "Int" => json!(2_147_483_647),
            "Boolean" => json!(true),
            "Float" => json!(1e308),
            _ => text.clone(),
        },
        _ => Value::Null,
    }
}

async fn fuzzed_input_never_answers_internal_or_5xx(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let token = o.login("olivia").await;
    let (_, schema) = o.server.graphql(None, INTROSPECTION_QUERY, json!({})).await;
    let types = schema["data"]["__schema"]["types"]
        .as_array()
        .unwrap()
        .clone();
    let texts = [
        json!(""),
        json!("x".repeat(60_000)),
        json!("%_%_\\%".repeat(2_000)),
        json!("nul\u{0}byte"),
        json!("ctrl\u{1b}[31m"),
        json!("' OR 1=1 --"),
        json!("ü̈̈̈̈̈̈̈̈̈̈̈̈̈̈̈ 🤦🏼‍♂️ \u{202e} ﷽"),
        json!("VXNlcjox"),
        json!(12345),
        json!({ "nested": ["wrong", "type"] }),
    ];
    let mut sent = 0;
    for (root, field, args) in root_fields(&o.server).await {
        if field == "login" || field.starts_with("__") {
            continue;
        }
        for text in &texts {
            let definitions: Vec<String> = args
                .iter()
                .map(|(name, t)| format!("${name}: {}", type_text(t)))
                .collect();
            let uses: Vec<String> = args
                .iter()
                .map(|(name, _)| format!("{name}: ${name}"))
                .collect();
            let variables: serde_json::Map<String, Value> = args
                .iter()
                .map(|(name, t)| (name.clone(), value_of(t, text, &types, 0)))
                .collect();
            let head = if definitions.is_empty() {
                root.clone()
            } else {
                format!("{root}({})", definitions.join(", "))
            };
            let call = if uses.is_empty() {
                field.clone()
            } else {
                format!("{field}({})", uses.join(", "))
            };
            let query = format!("{head} {{ {call} {{ __typename }} }}");
            for bearer in [Some(token.as_str()), None] {
                let (status, body) = o
                    .server
                    .graphql(bearer, &query, Value::Object(variables.clone()))
                    .await;
                sent += 1;
                assert!(status < 500, "{status} for {query}: {body}");
                let codes: Vec<&Value> = body["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| &e["extensions"]["code"])
                    .collect();
                assert!(
                    codes.iter().all(|c| *c != "INTERNAL" && !c.is_null()),
                    "{query} with {text}: {body}"
                );
            }
        }
    }
    assert!(sent > 300, "every operation was tried ({sent} requests)");
    // Bodies that are not even JSON, or not UTF-8.
    for raw in [
        vec![0xff, 0xfe, 0x00, 0x80],
        b"{\"query\": \"{ me { id } }\", \"variables\": \xc3\x28}".to_vec(),
        b"{\"query\": \"\xed\xa0\x80\"}".to_vec(),
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
    ] {
        let response = o
            .server
            .client
            .post(o.server.url("/graphql"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
    let health = reqwest::get(o.server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

async fn control_characters_and_long_text_are_bad_input(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let token = o.login("adam").await;
    let search = "query($s: String) { users(filter: {search: $s}) { totalCount } }";
    for text in ["a\u{0}b", "tab\u{7}bell"] {
        let body = o.call(Some(&token), search, json!({ "s": text })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
    let body = o
        .call(Some(&token), search, json!({ "s": "x".repeat(257) }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = o
        .call(Some(&token), search, json!({ "s": "x".repeat(256) }))
        .await;
    assert_eq!(body["data"]["users"]["totalCount"], 0, "{body}");
    let rename = "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { firstName } userErrors { code } } }";
    let mia = o.user_id("mia").await;
    let body = o
        .call(
            Some(&token),
            rename,
            json!({ "i": { "userId": mia, "firstName": "Mi\u{0}a" } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let ids: Vec<String> = (0..101).map(|_| mia.clone()).collect();
    let body = o
        .call(
            Some(&token),
            "mutation($i: ReactivateUsersInput!) { reactivateUsers(input: $i) { userErrors { code } } }",
            json!({ "i": { "userIds": ids } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let (_, name) = o
        .server
        .graphql(Some(&token), "{ me { firstName } }", json!({}))
        .await;
    assert_eq!(name["data"]["me"]["firstName"], "Sam", "nothing changed");
}

// ---------------------------------------------------------------------------------------
// 2. A session that ends, ends everywhere.

async fn a_socket_closes_when_its_session_ends(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let admin = o.login("adam").await;
    let mia = o.user_id("mia").await;
    let subscribe = json!({ "id": "s", "type": "subscribe", "payload": { "query": "subscription { requestUpdated { id status } }" } });
    for what in [
        "logout",
        "revokeSessions",
        "changePassword",
        "inactivation",
        "idle",
    ] {
        let token = o.login("mia").await;
        let mut socket = Subscriber::connect(&o.server, Some(&token)).await.unwrap();
        socket.send(subscribe.clone()).await;
        let started = Instant::now();
        match what {
            "logout" => {
                o.call(Some(&token), "mutation { logout }", json!({})).await;
            }
            "revokeSessions" => {
                o.call(
                    Some(&admin),
                    "mutation($u: ID!) { revokeSessions(input: {userId: $u}) { user { id } } }",
                    json!({ "u": mia }),
                )
                .await;
            }
            "changePassword" => {
                let body = o
                    .call(
                        Some(&token),
                        "mutation($p: String!) { changePassword(input: {currentPassword: $p, newPassword: $p}) { userErrors { code } } }",
                        json!({ "p": PASSWORD }),
                    )
                    .await;
                assert_eq!(
                    body["data"]["changePassword"]["userErrors"],
                    json!([]),
                    "{body}"
                );
            }
            "inactivation" => {
                // Written by another node: this one learns of it only by looking.
                db.execute("UPDATE users SET status = 'INACTIVE' WHERE username = 'mia'")
                    .await;
            }
            _ => {
                // Idle for longer than the idle timeout, as far as the database knows.
                let old = if o.server.store.backend() == gatehouse::store::Backend::Sqlite {
                    "UPDATE sessions SET last_seen_at = '2000-01-01 00:00:00+00:00'"
                } else {
                    "UPDATE sessions SET last_seen_at = '2000-01-01 00:00:00+00'"
                };
                db.execute(old).await;
            }
        }
        let code = socket.closed_within(Duration::from_secs(5)).await;
        assert_eq!(code, Some(4401), "{what}: closed within 5 s");
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        if what == "inactivation" {
            db.execute("UPDATE users SET status = 'ACTIVE' WHERE username = 'mia'")
                .await;
        }
    }
}

async fn every_socket_operation_is_authenticated_afresh(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let mia_token = o.login("mia").await;
    let mut socket = Subscriber::connect(&o.server, Some(&mia_token))
        .await
        .unwrap();
    let first = socket.run("1", "{ me { firstName } }").await;
    assert_eq!(first["payload"]["data"]["me"]["firstName"], "Sam");
    // A rename over HTTP is seen by the next operation on the socket: no loader outlives
    // its operation.
    let mia = o.user_id("mia").await;
    o.call(
        Some(&mia_token),
        "mutation($i: UpdateUserInput!) { updateUser(input: $i) { userErrors { code } } }",
        json!({ "i": { "userId": mia, "firstName": "Mila" } }),
    )
    .await;
    let second = socket.run("2", "{ me { firstName } }").await;
    assert_eq!(
        second["payload"]["data"]["me"]["firstName"], "Mila",
        "{second}"
    );
    // The limits hold for every message.
    let aliases: String = (0..60).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let answer = socket.run("3", &format!("{{ {aliases} }}")).await;
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
        "{answer}"
    );
    let deep = format!(
        "{{ me {} id {} }}",
        "{ organization { owners ".repeat(6),
        "} } ".repeat(6)
    );
    let answer = socket.run("4", &deep).await;
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
        "{answer}"
    );
    // The moment the session ends, the socket's next operation is refused.
    o.call(Some(&mia_token), "mutation { logout }", json!({}))
        .await;
    socket
        .send(json!({ "id": "5", "type": "subscribe", "payload": { "query": "mutation { updateUser(input: {userId: \"x\", firstName: \"Evil\"}) { user { id } } }" } }))
        .await;
    assert_eq!(
        socket.closed_within(Duration::from_secs(5)).await,
        Some(4401)
    );
    // Refused if it was answered at all (the socket may have closed first).
    for answer in socket.skipped.iter().filter(|m| m["id"] == "5") {
        if answer["type"] != "complete" {
            assert_eq!(answer["payload"]["data"], Value::Null, "{answer}");
            assert_eq!(
                answer["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
                "{answer}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_without_connection_init_closes_after_ten_seconds() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let mut socket = Subscriber::open(&server).await;
    let started = Instant::now();
    assert_eq!(
        socket.closed_within(Duration::from_secs(15)).await,
        Some(4408)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(12),
        "{waited:?}"
    );
    // A bad token is refused at once.
    let refused = Subscriber::connect(&server, Some("not a token")).await;
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_socket_message_closes_the_connection_and_operations_are_capped() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    let mut socket = Subscriber::connect(&server, Some(&token)).await.unwrap();
    for i in 0..100 {
        socket
            .send(json!({ "id": i.to_string(), "type": "subscribe", "payload": { "query": "subscription { requestUpdated { id } }" } }))
            .await;
    }
    let answer = socket
        .run("one too many", "subscription { requestUpdated { id } }")
        .await;
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
        "{answer}"
    );
    let mut socket = Subscriber::connect(&server, Some(&token)).await.unwrap();
    let huge = format!("{{ me {{ id }} }} # {}", "x".repeat(4 * 1024 * 1024));
    socket
        .send(json!({ "id": "huge", "type": "subscribe", "payload": { "query": huge } }))
        .await;
    assert_eq!(socket.next().await, None, "the connection closed");
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

// ---------------------------------------------------------------------------------------
// 3. Lockout under concurrency, wherever a secret is checked.

async fn concurrent_wrong_passwords_verify_at_most_the_threshold(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let attempts = (0..25).map(|i| {
        let client = o.server.client.clone();
        let url = o.server.url("/graphql");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "query": LOGIN, "variables": { "u": "mia", "p": format!("wrong guess number {i}") } }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    });
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
    let attempts = (0..21).map(|i| {
        let client = o.server.client.clone();
        let url = o.server.url("/graphql");
        let password = if i == 10 {
            PASSWORD.to_owned()
        } else {
            format!("wrong {i}")
        };
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "query": LOGIN, "variables": { "u": "mia", "p": password } }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    });
    for attempt in attempts {
        let body = attempt.await.unwrap();
        assert_eq!(body["data"]["login"]["token"], Value::Null, "{body}");
    }
    let (user, _) = o
        .server
        .store
        .credentials_by_username("mia")
        .await
        .unwrap()
        .unwrap();
    assert!(user.is_locked(gatehouse::domain::now()), "still locked");
}

async fn a_right_secret_during_a_lock_is_refused_everywhere(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let mia_session = o.login("mia").await;
    let adam_session = o.login("adam").await;
    for user in ["mia", "adam"] {
        for i in 0..5 {
            o.call(None, LOGIN, json!({ "u": user, "p": format!("wrong {i}") }))
                .await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // changePassword with the right current password, from a session opened before.
    let body = o
        .call(
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
        .call(
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
    // Unlocked by an owner, mia's old password still works: nothing was changed.
    let owner = o.login("olivia").await;
    o.call(
        Some(&owner),
        "mutation($u: ID!) { unlockUser(input: {userId: $u}) { user { locked } } }",
        json!({ "u": mia }),
    )
    .await;
    o.login("mia").await;
}

async fn a_reset_link_is_void_after_threshold_wrong_answers(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let complete = "mutation($i: CompleteAccountSetupInput!) { completeAccountSetup(input: $i) { userErrors { code } } }";
    let questions = json!([
        { "question": "First pet?", "answer": "Rex" },
        { "question": "Street?", "answer": "Elm" },
        { "question": "Teacher?", "answer": "Ode" },
    ]);
    // Mia sets her questions with a first, admin-sent link.
    let adam = o.login("adam").await;
    let mia = o.user_id("mia").await;
    o.call(
        Some(&adam),
        "mutation($u: ID!) { sendAccountSetupEmail(input: {userId: $u}) { userErrors { code } } }",
        json!({ "u": mia }),
    )
    .await;
    let token = setup_token(&o.smtp.wait_for(1, WAIT).await[0].text());
    let body = o
        .call(
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
    o.call(
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
        let body = o.call(None, complete, attempt(&format!("Fido {i}"))).await;
        codes.push(body["data"]["completeAccountSetup"]["userErrors"][0]["code"].clone());
    }
    assert!(
        codes[..5].iter().all(|c| c == "SECURITY_ANSWER_MISMATCH"),
        "{codes:?}"
    );
    assert!(codes[5..].iter().all(|c| c == "TOKEN_INVALID"), "{codes:?}");
    let body = o.call(None, complete, attempt("Rex")).await;
    assert_eq!(
        body["data"]["completeAccountSetup"]["userErrors"][0]["code"], "TOKEN_INVALID",
        "the right answer comes too late: {body}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Rate limits.

async fn rate_limit_counts_every_public_secret_operation(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let mia = o.login("mia").await; // one attempt of 30
    let setup = "mutation { completeAccountSetup(input: {token: \"nope\", newPassword: \"whatever it is now\", securityQuestions: []}) { userErrors { code } } }";
    let reset = "mutation { requestAccountSetupEmail(input: {usernameOrEmail: \"nobody\"}) }";
    let change = "mutation { changePassword(input: {currentPassword: \"not it at all\", newPassword: \"whatever it is now\"}) { userErrors { code } } }";
    for _ in 0..9 {
        for query in [setup, reset] {
            let body = o.call(None, query, json!({})).await;
            assert_eq!(body["errors"], Value::Null, "{body}");
        }
    }
    for _ in 0..2 {
        let body = o.call(Some(&mia), change, json!({})).await;
        assert_eq!(body["errors"], Value::Null, "{body}");
    }
    // 1 + 18 + 2 = 21 of 30; a locked mia is no obstacle to counting.
    for _ in 0..9 {
        let body = o.call(None, reset, json!({})).await;
        assert_eq!(body["errors"], Value::Null, "{body}");
    }
    for query in [setup, reset, LOGIN] {
        let body = o
            .call(None, query, json!({ "u": "olivia", "p": OWNER_PASSWORD }))
            .await;
        assert_eq!(code(&body), "RATE_LIMITED", "{query}: {body}");
    }
    let body = o.call(Some(&mia), change, json!({})).await;
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

// ---------------------------------------------------------------------------------------
// 5. Nobody gains more than an owner approved.

async fn invitations_by_champions_and_admins_grant_a_member(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let invite = "mutation($i: InviteUserInput!) { inviteUser(input: $i) { user { id role permissions } userErrors { code } } }";
    for (inviter, username) in [("cam", "second.box"), ("adam", "third.box")] {
        let token = o.login(inviter).await;
        let body = o
            .call(
                Some(&token),
                invite,
                json!({ "i": { "username": username, "firstName": "E", "lastName": "Vil",
                    "email": format!("{username}@elsewhere.example"), "kind": "PROVIDER",
                    "role": "ADMIN", "permissions": ["PRESCRIBING", "BILLING"] } }),
            )
            .await;
        let user = &body["data"]["inviteUser"]["user"];
        assert_eq!(user["role"], "MEMBER", "{body}");
        assert_eq!(user["permissions"], json!([]), "{body}");
        let owner = o.login("olivia").await;
        let requests = o
            .call(
                Some(&owner),
                "{ requests(filter: {kind: CHANGE_PERMISSIONS}) { edges { node { status subject { id } permissionChange { grant role } } } } }",
                json!({}),
            )
            .await;
        let filed = requests["data"]["requests"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["node"]["subject"]["id"] == user["id"])
            .unwrap_or_else(|| panic!("a request for the rest: {requests}"))
            .clone();
        let change = &filed["node"]["permissionChange"];
        let mut granted: Vec<&str> = change["grant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        granted.sort_unstable();
        assert_eq!(granted, ["BILLING", "PRESCRIBING"], "{filed}");
        assert_eq!(change["role"], "ADMIN", "{filed}");
    }
    // An owner's invitation grants directly.
    let owner = o.login("olivia").await;
    let body = o
        .call(
            Some(&owner),
            invite,
            json!({ "i": { "username": "granted", "firstName": "G", "lastName": "Ranted",
                "email": "granted@sunrise.example", "kind": "STAFF", "role": "ADMIN", "permissions": ["BILLING"] } }),
        )
        .await;
    assert_eq!(
        body["data"]["inviteUser"]["user"]["role"], "ADMIN",
        "{body}"
    );
}

async fn only_an_owner_acts_on_an_owners_credentials(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let admin = o.login("adam").await;
    let olivia = o.user_id("olivia").await;
    let attempts = [
        "mutation($u: ID!, $p: String!) { setTemporaryPassword(input: {userId: $u, temporaryPassword: \"a temporary passphrase\", adminPassword: $p}) { userErrors { code } } }",
        "mutation($u: ID!, $p: String!) { resetEncryptionKey(input: {userId: $u, adminPassword: $p}) { userErrors { code } } }",
        "mutation($u: ID!) { revokeSessions(input: {userId: $u}) { user { id } } }",
        "mutation($u: ID!) { sendAccountSetupEmail(input: {userId: $u}) { userErrors { code } } }",
    ];
    for query in attempts {
        let body = o
            .call(Some(&admin), query, json!({ "u": olivia, "p": PASSWORD }))
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{query}: {body}");
    }
    o.login("olivia").await;
    // Another owner may.
    let oscar = o.login("oscar").await;
    let body = o
        .call(Some(&oscar), attempts[2], json!({ "u": olivia }))
        .await;
    assert_eq!(body["errors"], Value::Null, "{body}");
}

async fn a_locked_owner_decides_nothing(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let adam = o.login("adam").await;
    let oscar = o.login("oscar").await;
    let filed = o
        .call(
            Some(&adam),
            "mutation { requestLicenses(input: {product: EHR, kind: STAFF, quantity: 1}) { request { id } } }",
            json!({}),
        )
        .await;
    let id = filed["data"]["requestLicenses"]["request"]["id"].clone();
    let status = "query($id: ID!) { request(id: $id) { status } }";
    let deadline = Instant::now() + WAIT;
    loop {
        let body = o.call(Some(&oscar), status, json!({ "id": id })).await;
        if body["data"]["request"]["status"] == "PENDING_APPROVAL" {
            break;
        }
        assert!(Instant::now() < deadline, "routed: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..5 {
        o.call(
            None,
            LOGIN,
            json!({ "u": "oscar", "p": format!("wrong {i}") }),
        )
        .await;
    }
    let body = o
        .call(
            Some(&oscar),
            "mutation($id: ID!) { approveRequest(input: {requestId: $id, acceptTerms: true}) { request { status } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = o.call(Some(&oscar), status, json!({ "id": id })).await;
    assert_eq!(
        body["data"]["request"]["status"], "PENDING_APPROVAL",
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------
// 6. PASSWORD_CHANGE_REQUIRED, decided by the app.

async fn a_temporary_password_shows_nothing_beyond_the_user(db: TestDb) {
    let o = org_with_staff(&db, vec![]).await;
    let admin = o.login("adam").await;
    let mia = o.user_id("mia").await;
    o.call(
        Some(&admin),
        "mutation($u: ID!, $p: String!) { setTemporaryPassword(input: {userId: $u, temporaryPassword: \"a temporary passphrase\", adminPassword: $p}) { userErrors { code } } }",
        json!({ "u": mia, "p": PASSWORD }),
    )
    .await;
    let token = o.server.login("mia", "a temporary passphrase").await;
    let body = o
        .call(
            Some(&token),
            "{ me { username passwordChangeRequired } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["me"]["passwordChangeRequired"], true, "{body}");
    for query in [
        "{ me { organization { owners { email sessions { ip userAgent } } licenses { total } } } }",
        "{ me { sessions { ip } } }",
        "{ me { practices { name } } }",
        "{ users { totalCount } }",
        "{ organization { name } }",
    ] {
        let body = o.call(Some(&token), query, json!({})).await;
        assert_eq!(code(&body), "PASSWORD_CHANGE_REQUIRED", "{query}: {body}");
        assert!(!body.to_string().contains("olivia@"), "{body}");
    }
    let mut socket = Subscriber::connect(&o.server, Some(&token)).await.unwrap();
    let answer = socket.run("1", "{ me { organization { name } } }").await;
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "PASSWORD_CHANGE_REQUIRED",
        "{answer}"
    );
}

// ---------------------------------------------------------------------------------------
// 10. Login timing.

// Measured in its own test binary, tests/login_timing.rs, away from other tests' load.

// ---------------------------------------------------------------------------------------
// 11. At the default settings, jobs run at once.

async fn default_settings_deliver_and_apply_within_a_second(db: TestDb) {
    let mut queues = vec![None];
    let redis = crate::redis::TestRedis::start().await;
    if let Some(redis) = &redis {
        queues.push(Some(redis.url()));
    }
    for queue in queues {
        let smtp = SmtpReceiver::start().await;
        // Nothing tuned: the defaults a user gets (fresh database per stack).
        let fresh = if db.url.starts_with("sqlite") {
            TestDb::sqlite().await
        } else {
            TestDb::postgres().await.unwrap()
        };
        let server = TestServer::start_with(
            &fresh,
            ServerOptions {
                smtp_url: Some(smtp.url()),
                queue_url: queue.clone(),
                defaults: true,
                ..Default::default()
            },
        )
        .await;
        seed_org(&server.app, "Sunrise", "olivia").await;
        let owner = server.login("olivia", OWNER_PASSWORD).await;
        // Workers start polling once; give them a moment to be up, as a real one is.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let (_, body) = server
            .graphql(
                Some(&owner),
                "mutation { inviteUser(input: {username: \"newbie\", firstName: \"New\", lastName: \"Bie\", email: \"newbie@sunrise.example\", kind: STAFF}) { userErrors { code } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            body["data"]["inviteUser"]["userErrors"],
            json!([]),
            "{body}"
        );
        smtp.wait_for(1, WAIT).await;
        let delivered = started.elapsed();
        eprintln!("{queue:?}: invitation to email received in {delivered:?}");
        assert!(
            delivered < Duration::from_secs(1),
            "{queue:?}: email after {delivered:?}"
        );

        let started = Instant::now();
        let (_, body) = server
            .graphql(
                Some(&owner),
                "mutation { requestLicenses(input: {product: EHR, kind: STAFF, quantity: 1, acceptTerms: true}) { request { id } userErrors { code } } }",
                json!({}),
            )
            .await;
        let id = body["data"]["requestLicenses"]["request"]["id"].clone();
        loop {
            let (_, status) = server
                .graphql(
                    Some(&owner),
                    "query($id: ID!) { request(id: $id) { status } }",
                    json!({ "id": id }),
                )
                .await;
            if status["data"]["request"]["status"] == "APPLIED" {
                break;
            }
            assert!(started.elapsed() < WAIT, "{status}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let applied = started.elapsed();
        eprintln!("{queue:?}: owner's request filed to APPLIED in {applied:?}");
        assert!(
            applied < Duration::from_secs(1),
            "{queue:?}: APPLIED after {applied:?}"
        );
    }
}
