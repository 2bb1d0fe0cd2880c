//! WebSockets: sessions ending, per-operation authentication, timeouts, caps.

use super::*;

crate::on_both_databases!(
    a_socket_closes_when_its_session_ends,
    every_socket_operation_is_authenticated_afresh,
);

async fn a_socket_closes_when_its_session_ends(db: TestDb) {
    let o = Practice::start(&db, vec![]).await;
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
                o.send(Some(&token), "mutation { logout }", json!({})).await;
            }
            "revokeSessions" => {
                o.send(
                    Some(&admin),
                    "mutation($u: ID!) { revokeSessions(input: {userId: $u}) { user { id } } }",
                    json!({ "u": mia }),
                )
                .await;
            }
            "changePassword" => {
                let body = o
                    .send(
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
    let o = Practice::start(&db, vec![]).await;
    let mia_token = o.login("mia").await;
    let mut socket = Subscriber::connect(&o.server, Some(&mia_token))
        .await
        .unwrap();
    let first = socket.run("1", "{ me { firstName } }").await;
    assert_eq!(first["payload"]["data"]["me"]["firstName"], "Sam");
    // A rename over HTTP is seen by the next operation on the socket: no loader outlives
    // its operation.
    let mia = o.user_id("mia").await;
    o.send(
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
    o.send(Some(&mia_token), "mutation { logout }", json!({}))
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
    assert_eq!(
        socket.closed_within(Duration::from_secs(5)).await,
        Some(1009),
        "closed as too big"
    );
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_held_to_the_graphql_transport_ws_protocol() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    seed_org(&server.app, "Sunrise", "olivia").await;
    let token = server.login("olivia", OWNER_PASSWORD).await;
    let subscribe = |id: &str| json!({ "id": id, "type": "subscribe", "payload": { "query": "subscription { requestUpdated { id } }" } });
    let wait = Duration::from_secs(5);

    // A subscribe before the connection is acknowledged: 4401 Unauthorized.
    let mut socket = Subscriber::open(&server).await;
    socket.send(subscribe("1")).await;
    assert_eq!(socket.closed_within(wait).await, Some(4401));
    // A connection_init without a live session: 4403 Forbidden.
    for payload in [json!({ "Authorization": "Bearer not-a-token" }), json!({})] {
        let mut socket = Subscriber::open(&server).await;
        socket
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        assert_eq!(socket.closed_within(wait).await, Some(4403), "{payload}");
    }
    // Messages the protocol does not define: 4400, with a reason that fits a close frame
    // (an unknown type used to close without one: its reason was too long).
    for message in [
        "not json".to_owned(),
        json!({ "type": "hello" }).to_string(),
        json!({ "type": "subscribe", "payload": { "query": "{ me { id } }" } }).to_string(),
        json!({ "type": "subscribe", "id": "x", "payload": {} }).to_string(),
        json!({ "type": "connection_terminate".repeat(20) }).to_string(),
    ] {
        let mut socket = Subscriber::connect(&server, Some(&token)).await.unwrap();
        socket.send_text(message.clone()).await;
        assert_eq!(socket.closed_within(wait).await, Some(4400), "{message}");
    }
    // A second subscribe under the ID of one still running: 4409; an ID is free again
    // once its operation completed, from either side.
    let mut socket = Subscriber::connect(&server, Some(&token)).await.unwrap();
    for _ in 0..2 {
        let answer = socket.run("q", "{ me { username } }").await;
        assert_eq!(answer["payload"]["data"]["me"]["username"], "olivia");
        assert_eq!(socket.next().await.unwrap()["type"], "complete");
    }
    socket.send(subscribe("live")).await;
    socket
        .send(json!({ "id": "live", "type": "complete" }))
        .await;
    socket.send(subscribe("live")).await;
    let answer = socket.run("after", "{ me { username } }").await;
    assert_eq!(answer["payload"]["data"]["me"]["username"], "olivia");
    socket.send(subscribe("live")).await;
    assert_eq!(socket.closed_within(wait).await, Some(4409));
}

/// The number of open WebSocket connections the server reports.
fn open_sockets(server: &TestServer) -> f64 {
    crate::common::series(&server.metrics.render(), "gatehouse_ws_connections", &[]).unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_connections_are_capped_per_user_and_per_node() {
    let db = TestDb::sqlite().await;
    let o = Practice::start(
        &db,
        vec![
            ("GATEHOUSE_WS_MAX_PER_USER", "2".into()),
            ("GATEHOUSE_WS_MAX_CONNECTIONS", "3".into()),
        ],
    )
    .await;
    let (mia, adam) = (o.login("mia").await, o.login("adam").await);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(Subscriber::connect(&o.server, Some(&mia)).await.unwrap());
    }
    // A third for the same user is refused with a reason; the others stay.
    let mut third = Subscriber::open(&o.server).await;
    third
        .send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {mia}") } }))
        .await;
    assert_eq!(
        third.closed_within(Duration::from_secs(5)).await,
        Some(4429)
    );
    held.push(Subscriber::connect(&o.server, Some(&adam)).await.unwrap());
    assert_eq!(open_sockets(&o.server), 3.0);
    // The node is full: the next one is told to try again later.
    let mut full = Subscriber::open(&o.server).await;
    assert_eq!(full.closed_within(Duration::from_secs(5)).await, Some(1013));
    // A place is given back when a connection closes.
    drop(held.pop());
    let mut freed = false;
    for _ in 0..50 {
        if open_sockets(&o.server) == 2.0 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the closed connection's place is free");
    Subscriber::connect(&o.server, Some(&adam)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_dropped_and_a_live_one_kept() {
    // One ping a second here (30 s by default: see the configuration's test); a silent
    // connection goes after two missed pings.
    let db = TestDb::sqlite().await;
    let o = Practice::start(&db, vec![("GATEHOUSE_WS_PING", "1s".into())]).await;
    let token = o.login("mia").await;
    let silent = Subscriber::connect(&o.server, Some(&token)).await.unwrap();
    let mut live = Subscriber::connect(&o.server, Some(&token)).await.unwrap();
    assert_eq!(open_sockets(&o.server), 2.0);
    // The live one reads (and so answers pings); the silent one never reads again.
    assert_eq!(live.closed_within(Duration::from_secs(5)).await, None);
    assert_eq!(
        open_sockets(&o.server),
        1.0,
        "the silent connection was dropped"
    );
    drop(silent);
}
