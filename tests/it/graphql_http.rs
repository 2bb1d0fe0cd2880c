//! GraphQL over HTTP to the letter: the `graphql-http` audit suite against the real
//! server, GETs with URL-encoded variables, media types, and automatic persisted queries.

use crate::common::{TestDb, TestServer, in_ci, skipped};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;

crate::on_both_databases!(
    the_graphql_http_audit_passes_whole,
    queries_run_over_get_and_mutations_do_not,
    media_types_decide_statuses,
    persisted_queries_go_by_their_hash,
);

async fn the_graphql_http_audit_passes_whole(db: TestDb) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let node = std::process::Command::new("node").arg("--version").output();
    let ready =
        node.is_ok_and(|o| o.status.success()) && dir.join("node_modules/graphql-http").exists();
    if !ready {
        let why = "node or tests/browser/node_modules/graphql-http missing (npm ci --prefix tests/browser)";
        if in_ci() {
            panic!("the graphql-http audit must run in CI: {why}");
        }
        return skipped(&format!("the graphql-http audit: {why}"));
    }
    let server = TestServer::start(&db).await;
    let out = tokio::process::Command::new("node")
        .arg(dir.join("audit.mjs"))
        .arg(server.url("/graphql"))
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "errors, warnings or notices: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("\"failures\":0"), "{report}");
}

async fn queries_run_over_get_and_mutations_do_not(db: TestDb) {
    let server = TestServer::start(&db).await;
    let get = |query: &[(&str, &str)]| {
        server
            .client
            .get(server.url("/graphql"))
            .header("accept", "application/graphql-response+json")
            .query(query)
            .send()
    };
    let answer = get(&[
        ("query", "query($n: String!) { __type(name: $n) { name } }"),
        ("variables", "{\"n\": \"User\"}"),
    ])
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "application/graphql-response+json"
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["__type"]["name"], "User", "{body}");
    let mutation = get(&[("query", "mutation { logout }")]).await.unwrap();
    assert_eq!(mutation.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(mutation.headers()["allow"], "GET, POST");
    let named = get(&[
        ("query", "query A { __typename } mutation B { logout }"),
        ("operationName", "B"),
    ])
    .await
    .unwrap();
    assert_eq!(named.status(), StatusCode::METHOD_NOT_ALLOWED);
    let bad = get(&[("query", "{ __typename }"), ("variables", "{nope")])
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // A browser without a query gets GraphiQL.
    let page = server
        .client
        .get(server.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("GraphiQL"));
}

async fn media_types_decide_statuses(db: TestDb) {
    let server = TestServer::start(&db).await;
    let post = |content_type: Option<&str>, accept: &str, body: &str| {
        let mut request = server
            .client
            .post(server.url("/graphql"))
            .header("accept", accept)
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    let good = "{\"query\": \"{ __typename }\"}";
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/json; charset=latin1"),
    ] {
        let answer = post(content_type, "application/json", good).await.unwrap();
        assert_eq!(answer.status(), 415, "{content_type:?}");
    }
    let answer = post(
        Some("application/json; charset=utf-8"),
        "application/json",
        good,
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    // A document that cannot run: 200 with `data: null` for application/json clients;
    // 400 without `data` for application/graphql-response+json.
    let broken = "{\"query\": \"{ nonsense }\"}";
    let legacy = post(Some("application/json"), "application/json", broken)
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    let body: Value = legacy.json().await.unwrap();
    assert!(
        body["data"].is_null() && body.get("data").is_some(),
        "{body}"
    );
    let modern = post(
        Some("application/json"),
        "application/graphql-response+json",
        broken,
    )
    .await
    .unwrap();
    assert_eq!(modern.status(), 400);
    let body: Value = modern.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
}

async fn persisted_queries_go_by_their_hash(db: TestDb) {
    let server = TestServer::start(&db).await;
    let document = "{ __schema { queryType { name } } }";
    let hash = hex::encode(Sha256::digest(document.as_bytes()));
    let send = |body: Value| {
        server
            .client
            .post(server.url("/graphql"))
            .json(&body)
            .send()
    };
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    // Unknown hash: the client is asked for the document.
    let miss: Value = send(json!({ "extensions": persisted }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(miss["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(
        miss["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    // A document that does not match its hash is refused, and not kept.
    let wrong: Value = send(json!({ "query": "{ __typename }", "extensions": persisted }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        wrong["errors"][0]["message"],
        "provided sha does not match query"
    );
    let first: Value = send(json!({ "query": document, "extensions": persisted }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["data"]["__schema"]["queryType"]["name"], "Query");
    // Then the hash alone, by POST and by GET.
    let again: Value = send(json!({ "extensions": persisted }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, first);
    let over_get: Value = server
        .client
        .get(server.url("/graphql"))
        .header("accept", "application/json")
        .query(&[("extensions", persisted.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_get, first);
    let unsupported: Value =
        send(json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        unsupported["errors"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_SUPPORTED"
    );
}
