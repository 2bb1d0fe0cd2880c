//! Moving an installation: `gatehouse export` from a running server's database and
//! `gatehouse import` into an empty one of the other kind, then the same people sign in,
//! the audit chains verify and a pending request goes on to APPLIED.

use crate::common::{OWNER_PASSWORD, Practice, STAFF_PASSWORD, ServerOptions, TestDb, TestServer};
use crate::smtp::SmtpReceiver;
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::time::Duration;

crate::on_both_databases!(an_installation_moves_to_the_other_database);

fn gatehouse(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATABASE_URL", &db.url)
        .env("GATEHOUSE_LOG", "warn")
        .args(args)
        .output()
        .expect("gatehouse runs")
}

const LICENSES: &str = "mutation($i: RequestLicensesInput!) { requestLicenses(input: $i) { request { id status } userErrors { code } } }";
const APPROVE: &str = "mutation($i: ApproveRequestInput!) { approveRequest(input: $i) { request { status } userErrors { code message } } }";
const STATUS: &str = "query($id: ID!) { request(id: $id) { status } }";

async fn an_installation_moves_to_the_other_database(from: TestDb) {
    // PostgreSQL moves to SQLite; SQLite to PostgreSQL when a server is at hand.
    let to = if from.url.starts_with("sqlite") {
        match TestDb::postgres().await {
            Some(db) => db,
            None => TestDb::sqlite().await,
        }
    } else {
        TestDb::sqlite().await
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.jsonl");
    let file = file.to_str().unwrap();

    let p = Practice::start(&from, vec![]).await;
    let before = p.server.store.license_pools(p.org).await.unwrap();
    drop(p);
    // The API without workers: the request is filed and stays SUBMITTED; then its job is
    // marked handed to the queue, which an export does not carry (a job in flight).
    let api = TestServer::start_with(
        &from,
        ServerOptions {
            no_workers: true,
            ..Default::default()
        },
    )
    .await;
    let adam = api.login("adam", STAFF_PASSWORD).await;
    let (_, body) = api
        .graphql(
            Some(&adam),
            LICENSES,
            json!({ "i": { "product": "TELEHEALTH", "kind": "STAFF", "quantity": 2, "justification": "new nurses" } }),
        )
        .await;
    let request = body["data"]["requestLicenses"]["request"]["id"]
        .as_str()
        .expect("filed")
        .to_owned();
    assert_eq!(
        from.execute("UPDATE job_outbox SET relayed_at = created_at WHERE relayed_at IS NULL")
            .await,
        1
    );
    // Exported while the server runs: one consistent snapshot.
    let out = gatehouse(&from, &["export", file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = std::fs::read_to_string(file).unwrap();
    assert!(
        !exported.contains(OWNER_PASSWORD) && !exported.contains(STAFF_PASSWORD),
        "secrets stay hashed"
    );
    let rows = exported
        .lines()
        .filter(|line| line.starts_with('['))
        .count();
    assert!(exported.ends_with(&format!("{{\"end\":true,\"rows\":{rows}}}\n")));
    drop(api);

    let out = gatehouse(&to, &["import", file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "imported {rows} rows from {file} into {}",
            redacted(&to.url)
        )
    );
    // Only into an empty database, and a file cut short loads nothing.
    let again = gatehouse(&to, &["import", file]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, &exported[..exported.len() - 30]).unwrap();
    let fresh = TestDb::sqlite().await;
    let out = gatehouse(&fresh, &["import", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing was imported"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fresh.count("SELECT COUNT(*) FROM users").await, 0);
    // The job that was in the queue is back in the outbox; the finished ones are not.
    assert_eq!(
        to.count("SELECT COUNT(*) FROM job_outbox WHERE relayed_at IS NULL")
            .await,
        1
    );

    // The moved installation: same people, same passwords, intact audit chains.
    let smtp = SmtpReceiver::start().await;
    let server = TestServer::start_with(
        &to,
        ServerOptions {
            smtp_url: Some(smtp.url()),
            ..Default::default()
        },
    )
    .await;
    let report = server.app.audit().verify().await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert!(report.events > 5);
    let olivia = server.login("olivia", OWNER_PASSWORD).await;
    server.login("mia", STAFF_PASSWORD).await;
    let org = server
        .store
        .credentials_by_username("olivia")
        .await
        .unwrap()
        .unwrap()
        .0
        .org_id;
    assert_eq!(server.store.license_pools(org).await.unwrap(), before);
    // The request goes on: routed to the owners, approved, applied by the workers.
    wait_for_status(&server, &olivia, &request, "PENDING_APPROVAL").await;
    let (_, body) = server
        .graphql(
            Some(&olivia),
            APPROVE,
            json!({ "i": { "requestId": request, "acceptTerms": true } }),
        )
        .await;
    assert_eq!(
        body["data"]["approveRequest"]["userErrors"],
        json!([]),
        "{body}"
    );
    wait_for_status(&server, &olivia, &request, "APPLIED").await;
    // New rows continue after the moved ones.
    let (_, body) = server
        .graphql(
            Some(&olivia),
            "mutation { inviteUser(input: {username: \"nina\", firstName: \"Nina\", lastName: \"Novak\", email: \"nina@sunrise.example\", kind: STAFF}) { user { username } userErrors { code message } } }",
            Value::Null,
        )
        .await;
    assert_eq!(
        body["data"]["inviteUser"]["userErrors"],
        json!([]),
        "{body}"
    );
    smtp.wait_for(1, Duration::from_secs(20)).await;
}

async fn wait_for_status(server: &TestServer, token: &str, request: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = server
            .graphql(Some(token), STATUS, json!({ "id": request }))
            .await;
        if body["data"]["request"]["status"] == status {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn redacted(url: &str) -> String {
    gatehouse::config::redact_url(url)
}
