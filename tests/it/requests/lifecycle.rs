//! Idempotency, cancelling, visibility, reminders, expiry and subscriptions.

use super::*;

crate::on_both_databases!(
    idempotency_keys_and_open_requests_return_the_first_request,
    requests_are_cancelled_by_their_requester_or_an_owner,
    members_see_only_their_own_requests_and_other_organizations_nothing,
    pending_requests_are_reminded_once_then_expire,
    subscribers_see_each_status_change,
    a_reconnecting_subscriber_gets_what_it_missed_once_in_order,
);

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
            // The default sweep: it runs often enough for the durations set.
            ("GATEHOUSE_SWEEP_INTERVAL", "60s".into()),
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

/// The next `next` message of operation `op`: (status, eventId, request id).
async fn update(subscriber: &mut Subscriber, op: &str) -> (String, String, String) {
    loop {
        let message = subscriber.next().await.expect("subscription message");
        if message["id"] != op {
            continue;
        }
        assert_eq!(message["type"], "next", "{message}");
        let request = &message["payload"]["data"]["requestUpdated"];
        let text = |v: &Value| v.as_str().unwrap_or_else(|| panic!("{message}")).to_owned();
        return (
            text(&request["status"]),
            text(&request["eventId"]),
            text(&request["id"]),
        );
    }
}

async fn a_reconnecting_subscriber_gets_what_it_missed_once_in_order(db: TestDb) {
    let p = practice(&db, vec![]).await;
    let subscribe = |op: &str, after: &str| {
        json!({ "id": op, "type": "subscribe", "payload": {
            "query": "subscription($a: ID) { requestUpdated(afterEventId: $a) { id status eventId } }",
            "variables": { "a": after },
        } })
    };
    // From the first event on ("0"): nothing is missed however soon the filing follows.
    let mut owner = Subscriber::connect(&p.server, Some(&p.oscar))
        .await
        .unwrap();
    owner.send(subscribe("s", "0")).await;
    let filed = p
        .request_licenses(
            &p.adam,
            json!({ "product": "EHR", "kind": "STAFF", "quantity": 1 }),
        )
        .await;
    let request_id = id(&filed);
    let submitted = update(&mut owner, "s").await;
    let pending = update(&mut owner, "s").await;
    assert_eq!(
        (submitted.0.as_str(), pending.0.as_str()),
        ("SUBMITTED", "PENDING_APPROVAL")
    );
    assert_eq!(pending.2, request_id);
    // The phone loses its network; meanwhile the request is approved and applied.
    drop(owner);
    p.approve(&p.olivia, &request_id, true).await;
    p.wait_status(&request_id, "APPLIED").await;
    // Back, from the last event it saw: what it missed, once, in order, then live.
    let mut owner = Subscriber::connect(&p.server, Some(&p.oscar))
        .await
        .unwrap();
    owner.send(subscribe("r", &pending.1)).await;
    let approved = update(&mut owner, "r").await;
    let applied = update(&mut owner, "r").await;
    assert_eq!(
        (approved.0.as_str(), applied.0.as_str()),
        ("APPROVED", "APPLIED")
    );
    assert!(pending.1.parse::<i64>().unwrap() < approved.1.parse::<i64>().unwrap());
    let next = p
        .request_licenses(
            &p.adam,
            json!({ "product": "EHR", "kind": "STAFF", "quantity": 2 }),
        )
        .await;
    let (status, _, request) = update(&mut owner, "r").await;
    assert_eq!(
        (status.as_str(), request),
        ("SUBMITTED", id(&next)),
        "no repeat"
    );
    // A cursor that is not an event's is refused.
    let bad = owner
        .run(
            "b",
            "subscription { requestUpdated(afterEventId: \"soon\") { id } }",
        )
        .await;
    assert_eq!(
        bad["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{bad}"
    );
}
