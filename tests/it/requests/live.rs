//! Live request changes: pushed to every API node at commit, none missed by a client that
//! files right after subscribing.

use super::*;
use crate::common::{ServerOptions, TestServer};

crate::on_both_databases!(
    a_subscriber_that_files_at_once_sees_every_status,
    changes_reach_the_subscribers_of_another_api_node,
    a_demoted_subscriber_stops_seeing_what_its_old_role_showed,
);

const ALL: &str = "subscription { requestUpdated { id status } }";

/// The statuses of `request` that `subscriber` is sent, until it has `count`.
async fn statuses_of(subscriber: &mut Subscriber, request: &str, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let message = subscriber.next().await.expect("subscription message");
        assert_eq!(message["type"], "next", "{message}");
        let update = &message["payload"]["data"]["requestUpdated"];
        if update["id"] == request {
            seen.push(update["status"].as_str().unwrap().to_owned());
        }
    }
    seen
}

/// The owner Oscar on a socket of his own, subscribed to every request.
async fn oscar_subscribed(p: &Signed) -> Subscriber {
    let mut owner = Subscriber::connect(&p.server, Some(&p.oscar))
        .await
        .unwrap();
    owner
        .send(json!({ "id": "s", "type": "subscribe", "payload": { "query": ALL } }))
        .await;
    owner
}

/// Oscar files for `quantity` more STAFF licenses (an owner's filing is its approval);
/// the request's ID.
async fn oscar_files(p: &Signed, quantity: i64) -> String {
    let filed = p
        .request_licenses(
            &p.oscar,
            json!({ "product": "EHR", "kind": "STAFF", "quantity": quantity, "acceptTerms": true }),
        )
        .await;
    id(&filed)
}

async fn a_subscriber_that_files_at_once_sees_every_status(db: TestDb) {
    let p = practice(&db, vec![]).await;
    // No pause between subscribing and filing, no cursor: the subscription counts from
    // when it reached the server, not from when it was authenticated and resolved.
    for round in 0..5 {
        let mut owner = oscar_subscribed(&p).await;
        let request = oscar_files(&p, round + 1).await;
        // Filed by an owner: approved by the filing, then applied by the workers.
        let seen = statuses_of(&mut owner, &request, 3).await;
        assert_eq!(seen, ["SUBMITTED", "APPROVED", "APPLIED"], "round {round}");
    }
}

async fn changes_reach_the_subscribers_of_another_api_node(db: TestDb) {
    let p = practice(&db, vec![]).await;
    // A second API node on the same database, without workers: every change below is
    // committed by the first node's process, never by this one.
    let other = TestServer::start_with(
        &db,
        ServerOptions {
            no_workers: true,
            ..Default::default()
        },
    )
    .await;
    let mut owner = Subscriber::connect(&other, Some(&p.oscar)).await.unwrap();
    owner
        .send(json!({ "id": "s", "type": "subscribe", "payload": { "query": ALL } }))
        .await;
    let filed = p
        .request_licenses(
            &p.adam,
            json!({ "product": "EHR", "kind": "STAFF", "quantity": 1 }),
        )
        .await;
    let request = id(&filed);
    assert_eq!(
        statuses_of(&mut owner, &request, 2).await,
        ["SUBMITTED", "PENDING_APPROVAL"]
    );
    p.approve(&p.olivia, &request, true).await;
    assert_eq!(
        statuses_of(&mut owner, &request, 2).await,
        ["APPROVED", "APPLIED"]
    );
}

async fn a_demoted_subscriber_stops_seeing_what_its_old_role_showed(db: TestDb) {
    let p = practice(&db, vec![]).await;
    // Adam, an admin, watches every request of the practice.
    let mut adam = Subscriber::connect(&p.server, Some(&p.adam)).await.unwrap();
    adam.send(json!({ "id": "s", "type": "subscribe", "payload": { "query": ALL } }))
        .await;
    let adam_id = p.user_id("adam").await;
    let demotion = p
        .mutate(
            &p.olivia,
            "requestPermissionChange",
            "RequestPermissionChangeInput",
            json!({ "userId": adam_id, "role": "MEMBER" }),
        )
        .await;
    let demotion = id(&demotion);
    assert_eq!(
        statuses_of(&mut adam, &demotion, 3).await,
        ["SUBMITTED", "APPROVED", "APPLIED"]
    );
    // A member now: another member's request no longer reaches him, his own still does.
    let others = p.request_inactivation(&p.mia, "mia").await;
    let own = p.request_inactivation(&p.adam, "adam").await;
    let message = adam.next().await.expect("his own request");
    let update = &message["payload"]["data"]["requestUpdated"];
    assert_ne!(update["id"], id(&others), "{message}");
    assert_eq!(update["id"], id(&own), "{message}");
}

/// PostgreSQL drops every connection (a restart, a failover): the node listens for
/// changes again and catches up, so a request filed right after is routed, applied and
/// pushed to a subscriber whose socket stayed open, and none of the calls fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_flow_on_after_the_database_drops_every_connection() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let p = practice(&db, vec![]).await;
    let mut owner = oscar_subscribed(&p).await;
    let warm = oscar_files(&p, 1).await;
    assert_eq!(statuses_of(&mut owner, &warm, 3).await.len(), 3);
    let dropped = db.drop_connections().await;
    assert!(dropped >= 2, "only {dropped} connections dropped");
    let filed = oscar_files(&p, 2).await;
    let seen = statuses_of(&mut owner, &filed, 3).await;
    assert_eq!(seen, ["SUBMITTED", "APPROVED", "APPLIED"]);
}
