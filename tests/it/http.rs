//! The API over real HTTP, on both databases.

use crate::common::{OWNER_PASSWORD, ServerOptions, TestDb, TestServer, seed_org};
use serde_json::json;

crate::on_both_databases!(
    health_ready_and_metrics_answer,
    owner_signs_in_and_reads_their_organization,
    wrong_password_and_unknown_user_answer_the_same,
    logout_ends_the_session,
    protected_fields_need_a_session,
    every_field_skipped_answers_an_empty_map,
    node_finds_only_own_organization_objects,
    malformed_requests_get_400_with_a_graphql_error,
    deep_queries_are_refused,
    graceful_shutdown_finishes_and_returns,
);

const ME: &str = "{ me { id username displayName role status locked products organization { name licenses { product kind total used available } } } }";

async fn health_ready_and_metrics_answer(db: TestDb) {
    let server = TestServer::start(&db).await;
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    server.graphql(None, "{ me { id } }", json!({})).await;
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"gatehouse_http_requests_total{method="POST",route="/graphql",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    let graphiql = server
        .client
        .get(server.url("/graphql"))
        .send()
        .await
        .unwrap();
    assert_eq!(graphiql.status(), 200);
    assert!(
        graphiql
            .text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
}

async fn owner_signs_in_and_reads_their_organization(db: TestDb) {
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise Clinic", "olivia").await;
    let token = server.login("Olivia", OWNER_PASSWORD).await;
    assert!(token.len() >= 43, "at least 256 bits");
    let (status, body) = server.graphql(Some(&token), ME, json!({})).await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    let me = &body["data"]["me"];
    assert_eq!(me["username"], "olivia");
    assert_eq!(me["displayName"], "Olivia Owner");
    assert_eq!(me["role"], "OWNER");
    assert_eq!(me["status"], "ACTIVE");
    assert_eq!(me["locked"], false);
    assert_eq!(me["products"], json!(["EHR"]));
    assert_eq!(me["organization"]["name"], "Sunrise Clinic");
    assert_eq!(
        me["organization"]["licenses"],
        json!([
            { "product": "EHR", "kind": "PROVIDER", "total": 5, "used": 0, "available": 5 },
            { "product": "EHR", "kind": "STAFF", "total": 10, "used": 1, "available": 9 },
        ])
    );
    let events = server
        .store
        .audit_chain_page(server.store.organization_ids().await.unwrap()[0], 0, 100)
        .await
        .unwrap();
    let login = events
        .iter()
        .find(|e| e.action == "session.login")
        .expect("login audited");
    assert_eq!(login.ip.as_deref(), Some("127.0.0.1"));
}

async fn wrong_password_and_unknown_user_answer_the_same(db: TestDb) {
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise Clinic", "olivia").await;
    let login = "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { token user { id } userErrors { code message field } } }";
    let (_, wrong) = server
        .graphql(
            None,
            login,
            json!({ "u": "olivia", "p": "not the password at all" }),
        )
        .await;
    let (_, unknown) = server
        .graphql(
            None,
            login,
            json!({ "u": "nobody", "p": "not the password at all" }),
        )
        .await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["data"]["login"]["token"], serde_json::Value::Null);
    assert_eq!(
        wrong["data"]["login"]["userErrors"][0]["code"],
        "INVALID_CREDENTIALS"
    );
    // The failure is written after the answer (so that it takes no longer than a
    // right password's), so it may land a moment later.
    let org = server.store.organization_ids().await.unwrap()[0];
    let mut events = Vec::new();
    for _ in 0..50 {
        events = server.store.audit_chain_page(org, 0, 100).await.unwrap();
        if events.iter().any(|e| e.action == "session.login_failed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(events.iter().any(|e| e.action == "session.login_failed"));
    assert!(
        events
            .iter()
            .all(|e| !e.details.contains("not the password")),
        "no secret in the audit log"
    );
}

async fn logout_ends_the_session(db: TestDb) {
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise Clinic", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    let (_, body) = server
        .graphql(Some(&token), "mutation { logout }", json!({}))
        .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    let (_, body) = server
        .graphql(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(body["data"]["me"], serde_json::Value::Null);
    let (_, body) = server
        .graphql(Some(&token), "{ organization { name } }", json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );
}

async fn protected_fields_need_a_session(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (status, body) = server
        .graphql(None, "{ organization { name } }", json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );
    let (_, body) = server
        .graphql(Some("forged-token"), "mutation { logout }", json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );
}

/// An operation whose every root field is skipped ran and selected nothing: `data` is an
/// empty map (not null), without errors.
async fn every_field_skipped_answers_an_empty_map(db: TestDb) {
    let server = TestServer::start(&db).await;
    for query in [
        "{ me @skip(if: true) { id } }",
        "query($no: Boolean!) { me @include(if: $no) { id } }",
        "{ ... @skip(if: true) { me { id } } }",
    ] {
        let (status, body) = server.graphql(None, query, json!({"no": false})).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(body, json!({"data": {}}), "{query}");
    }
}

async fn node_finds_only_own_organization_objects(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (_, owner_a) = seed_org(&server.app, "Alpha", "alpha.owner").await;
    let (org_b, owner_b) = seed_org(&server.app, "Beta", "beta.owner").await;
    let token_a = server.login("alpha.owner", OWNER_PASSWORD).await;
    let node = "query($id: ID!) { node(id: $id) { id ... on User { username } ... on Organization { name } } }";
    let (_, own) = server
        .graphql(
            Some(&token_a),
            node,
            json!({ "id": owner_a.id.to_global() }),
        )
        .await;
    assert_eq!(own["data"]["node"]["username"], "alpha.owner", "{own}");
    for foreign in [
        owner_b.id.to_global(),
        org_b.id.to_global(),
        "VXNlcjo5OTk5".into(),
        "garbage".into(),
    ] {
        let (_, body) = server
            .graphql(Some(&token_a), node, json!({ "id": foreign }))
            .await;
        assert_eq!(body, json!({ "data": { "node": null } }), "{foreign}");
    }
}

async fn malformed_requests_get_400_with_a_graphql_error(db: TestDb) {
    let server = TestServer::start(&db).await;
    let post = |body: &'static str| {
        server
            .client
            .post(server.url("/graphql"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for bad in [
        "{not json",
        "[]",
        "{\"query\": 5}",
        "{\"query\": \"{ me { \"}",
        "{\"query\": \"{ nonsense }\"}",
        "{\"query\": \"{ __typename(arg: 1) }\"}",
        "{\"query\": \"{ __typename @unknown }\"}",
        "{}",
        "{\"query\": \"  \"}",
        "[{\"query\": \"{ __typename }\"}]",
    ] {
        let response = post(bad).await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{bad}: {body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty());
        // Said in words, not as a parser's position.
        if bad.contains("  ") || bad == "{}" {
            assert_eq!(
                message, "The request has no GraphQL document: send it as `query`.",
                "{bad}"
            );
        }
        if bad.starts_with('[') {
            assert!(
                message.starts_with("Batched requests are not accepted"),
                "{message}"
            );
        }
    }
    let big = format!("{{\"query\": \"{}\"}}", " ".repeat(300 * 1024));
    let response = server
        .client
        .post(server.url("/graphql"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "bodies over 256 KiB are refused");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_REQUEST",
        "{body}"
    );
}

async fn deep_queries_are_refused(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (status, _) = server
        .graphql(
            None,
            "{ me { organization { practices { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "a shallow query runs");
    // 14 levels of selection, over the depth limit of 12: of the API, and of
    // introspection (where only ofType chains do not count).
    let too_deep = format!(
        "{{ me {} id {} }}",
        "{ organization { owners ".repeat(6),
        "} } ".repeat(6)
    );
    let introspection_too_deep = format!(
        "{{ __schema {{ types {} name {} }} }}",
        "{ fields { type ".repeat(6),
        "} } ".repeat(6)
    );
    for query in [too_deep, introspection_too_deep] {
        let (status, body) = server.graphql(None, &query, json!({})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
            "{body}"
        );
    }
}

async fn graceful_shutdown_finishes_and_returns(db: TestDb) {
    // Hashing as slow as the defaults make it and more (about a tenth of a second), so
    // that the login below is surely in flight, not still on its way, at the shutdown.
    let slow_hashing = ServerOptions {
        env: vec![
            ("GATEHOUSE_ARGON2_M_KIB", "19456".into()),
            ("GATEHOUSE_ARGON2_T", "8".into()),
        ],
        ..Default::default()
    };
    let server = TestServer::start_with(&db, slow_hashing).await;
    seed_org(&server.app, "Sunrise Clinic", "olivia").await;
    // A login in flight (argon2 on the blocking pool) when shutdown starts still completes.
    let client = server.client.clone();
    let url = server.url("/graphql");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({ "query": format!("mutation {{ login(input: {{username: \"olivia\", password: \"{OWNER_PASSWORD}\"}}) {{ token }} }}") }))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    server.stop().await.expect("clean shutdown");
    let body = in_flight.await.unwrap();
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let response = reqwest::get(server.url("/healthz")).await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let response = server
        .client
        .get(server.url("/healthz"))
        .header("x-request-id", "from-the-proxy-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "from-the-proxy-42");
    // An id that is too long or not a plain token is not copied into logs and jobs.
    for odd in [
        "a".repeat(129),
        "two words".to_owned(),
        "quote\"d".to_owned(),
    ] {
        let response = server
            .client
            .get(server.url("/healthz"))
            .header("x-request-id", &odd)
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "{odd:?} replaced by a UUID: {id}");
    }
}

/// PostgreSQL drops every connection when it restarts or fails over; the pools replace
/// them before a request uses one, so none of the requests that follow fails. (Handing
/// connections out unchecked, 37 requests of 160 failed right after a restart.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_database_dropped_are_replaced_unseen() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise Clinic", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    let ask = || {
        server.graphql(
            Some(&token),
            "{ me { id } users(first: 5) { totalCount } }",
            json!({}),
        )
    };
    // Many connections of each pool opened and back in it.
    futures_util::future::join_all((0..64).map(|_| ask())).await;
    let dropped = db.drop_connections().await;
    assert!(dropped >= 4, "only {dropped} connections dropped");
    for _ in 0..5 {
        for (status, body) in futures_util::future::join_all((0..16).map(|_| ask())).await {
            assert_eq!(status, 200, "{body}");
            assert!(body.get("errors").is_none(), "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_on_configured_origins_may_call_the_api() {
    let db = TestDb::sqlite().await;
    let preflight = |server: &TestServer, origin: &str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/graphql"))
            .header("Origin", origin.to_owned())
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type,authorization",
            )
            .send()
    };
    // By default, none: a page elsewhere cannot read the answers.
    let server = TestServer::start(&db).await;
    let answer = preflight(&server, "https://portal.example").await.unwrap();
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    drop(server);
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            env: vec![("GATEHOUSE_CORS_ORIGINS", "https://portal.example".into())],
            ..Default::default()
        },
    )
    .await;
    let answer = preflight(&server, "https://portal.example").await.unwrap();
    assert_eq!(answer.status(), 200);
    let headers = answer.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://portal.example"
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let answer = preflight(&server, "https://elsewhere.example")
        .await
        .unwrap();
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let answer = server
        .client
        .post(server.url("/graphql"))
        .header("Origin", "https://portal.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://portal.example"
    );
}
