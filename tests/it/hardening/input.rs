//! Any input: nesting, introspection, fuzzing, control characters and long text.

use super::*;

crate::on_both_databases!(
    fuzzed_input_never_answers_internal_or_5xx,
    control_characters_and_long_text_are_bad_input,
);

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
        // Deeper than the depth limit (12) but not than the nesting checked before
        // parsing (64): refused the same way, whatever part of the check catches it.
        format!(
            "{{ me {} id {} }}",
            "{ organization { owners ".repeat(6),
            "} } ".repeat(6)
        ),
        format!(
            "{{ me {} id {} }}",
            "{ organization { owners ".repeat(20),
            "} } ".repeat(20)
        ),
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
    let o = Practice::start(&db, vec![]).await;
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
    let o = Practice::start(&db, vec![]).await;
    let token = o.login("adam").await;
    let search = "query($s: String) { users(filter: {search: $s}) { totalCount } }";
    for text in ["a\u{0}b", "tab\u{7}bell"] {
        let body = o.send(Some(&token), search, json!({ "s": text })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
    let body = o
        .send(Some(&token), search, json!({ "s": "x".repeat(257) }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = o
        .send(Some(&token), search, json!({ "s": "x".repeat(256) }))
        .await;
    assert_eq!(body["data"]["users"]["totalCount"], 0, "{body}");
    let rename = "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { firstName } userErrors { code } } }";
    let mia = o.user_id("mia").await;
    let body = o
        .send(
            Some(&token),
            rename,
            json!({ "i": { "userId": mia, "firstName": "Mi\u{0}a" } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let ids: Vec<String> = (0..101).map(|_| mia.clone()).collect();
    let body = o
        .send(
            Some(&token),
            "mutation($i: ReactivateUsersInput!) { reactivateUsers(input: $i) { userErrors { code } } }",
            json!({ "i": { "userIds": ids } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    // Names are capped at 100 characters: people's and practices'.
    let long = "n".repeat(101);
    let body = o
        .send(
            Some(&token),
            rename,
            json!({ "i": { "userId": mia, "firstName": long } }),
        )
        .await;
    assert_eq!(
        body["data"]["updateUser"]["userErrors"][0]["code"], "INVALID_INPUT",
        "{body}"
    );
    let practice = "mutation($n: String!) { createPractice(input: {name: $n}) { practice { name } userErrors { code field } } }";
    let body = o.send(Some(&token), practice, json!({ "n": long })).await;
    assert_eq!(
        body["data"]["createPractice"]["userErrors"][0],
        json!({ "code": "INVALID_INPUT", "field": ["input", "name"] }),
        "{body}"
    );
    let body = o
        .send(Some(&token), practice, json!({ "n": "n".repeat(100) }))
        .await;
    assert_eq!(
        body["data"]["createPractice"]["practice"]["name"],
        "n".repeat(100),
        "{body}"
    );
    let (_, name) = o
        .server
        .graphql(Some(&token), "{ me { firstName } }", json!({}))
        .await;
    assert_eq!(name["data"]["me"]["firstName"], "Sam", "nothing changed");
}
