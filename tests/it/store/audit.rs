//! The audit chain and compaction, on both databases.

use super::*;

crate::on_both_databases!(
    audit_chain_verifies_and_names_altered_event,
    audit_chain_names_removed_event,
    audit_chain_names_reordered_events,
    audit_chain_catches_removal_at_the_end,
    compacting_keeps_every_row,
);

/// Appends a few events and returns the app and the organization.
async fn chain_of_five(db: &TestDb) -> (crate::common::TestApp, gatehouse::domain::OrgId) {
    let app = test_app(db).await;
    let (org, owner) = seed_org(&app, "Alpha", "alpha.owner").await;
    for i in 0..5 {
        let entry = AuditEntry::new(org.id, now(), "user.updated")
            .actor(Some(owner.id))
            .subject(owner.id)
            .ip(Some("192.0.2.7".into()))
            .details(serde_json::json!({ "n": i }));
        let record = app.store.append_audit(entry).await.unwrap();
        assert_eq!(record.hash.len(), 32);
    }
    let report = app.audit().verify().await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert!(report.events >= 5);
    (app, org.id)
}

async fn audit_chain_verifies_and_names_altered_event(db: TestDb) {
    let (app, org) = chain_of_five(&db).await;
    let target: i64 = app.store.audit_chain_page(org, 0, 100).await.unwrap()[4].id;
    db.execute(&format!(
        "UPDATE audit_events SET details = '{{\"n\":42}}' WHERE id = {target}"
    ))
    .await;
    let broken = app
        .audit()
        .verify()
        .await
        .unwrap()
        .broken
        .expect("alteration found");
    assert_eq!(broken.event_id, target);
    assert!(broken.problem.contains("altered"), "{broken}");
}

async fn audit_chain_names_removed_event(db: TestDb) {
    let (app, org) = chain_of_five(&db).await;
    let events = app.store.audit_chain_page(org, 0, 100).await.unwrap();
    db.execute(&format!(
        "DELETE FROM audit_events WHERE id = {}",
        events[3].id
    ))
    .await;
    let broken = app
        .audit()
        .verify()
        .await
        .unwrap()
        .broken
        .expect("removal found");
    assert_eq!(
        broken.event_id, events[4].id,
        "the event after the gap is named"
    );
    assert!(broken.problem.contains("removed"), "{broken}");
}

async fn audit_chain_names_reordered_events(db: TestDb) {
    let (app, org) = chain_of_five(&db).await;
    let events = app.store.audit_chain_page(org, 0, 100).await.unwrap();
    let (x, y) = (&events[2], &events[3]);
    // Swap the two events' places in the sequence.
    db.execute(&format!(
        "UPDATE audit_events SET seq = -1 WHERE id = {}",
        x.id
    ))
    .await;
    db.execute(&format!(
        "UPDATE audit_events SET seq = {} WHERE id = {}",
        x.seq, y.id
    ))
    .await;
    db.execute(&format!(
        "UPDATE audit_events SET seq = {} WHERE id = {}",
        y.seq, x.id
    ))
    .await;
    let broken = app
        .audit()
        .verify()
        .await
        .unwrap()
        .broken
        .expect("reordering found");
    assert_eq!(broken.event_id, y.id);
}

async fn audit_chain_catches_removal_at_the_end(db: TestDb) {
    let (app, org) = chain_of_five(&db).await;
    let events = app.store.audit_chain_page(org, 0, 100).await.unwrap();
    db.execute(&format!(
        "DELETE FROM audit_events WHERE id = {}",
        events.last().unwrap().id
    ))
    .await;
    let broken = app
        .audit()
        .verify()
        .await
        .unwrap()
        .broken
        .expect("truncation found");
    assert!(broken.problem.contains("removed from the end"), "{broken}");
}

async fn compacting_keeps_every_row(db: TestDb) {
    let app = test_app(&db).await;
    seed_org(&app, "Compact", "compact.owner").await;
    for _ in 0..3 {
        app.store.compact().await.expect("compacting works");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 1);
}

/// On SQLite, compacting empties a write-ahead log grown past 64 MiB. While it waits for
/// a reader of an older snapshot (an export running in another process) it holds every
/// writer back, so it waits a second at most and leaves the log for the next round; once
/// the reader is done the log is emptied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacting_gives_way_to_a_long_read_then_empties_the_log() {
    use sqlx::Connection as _;
    let db = TestDb::sqlite().await;
    let app = test_app(&db).await;
    seed_org(&app, "Compact", "compact.owner").await;
    let mut other = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    // Left in the log (no automatic checkpoint), so that the reader below reads it.
    sqlx::query("PRAGMA wal_autocheckpoint = 0")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE filler (b BLOB)")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 70) \
         INSERT INTO filler SELECT randomblob(1048576) FROM n",
    )
    .execute(&mut other)
    .await
    .unwrap();
    let log = std::path::PathBuf::from(format!("{}-wal", db.url.trim_start_matches("sqlite://")));
    let log_size = || std::fs::metadata(&log).unwrap().len();
    assert!(log_size() > 64 << 20, "the log holds the 70 MiB written");
    let mut reader = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM filler")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(count, 70);
    // The writers' wait is a minute: compacting must not make them wait that long.
    let started = std::time::Instant::now();
    app.store.compact().await.expect("compacting works");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "compacting held the writers back for {:?}",
        started.elapsed()
    );
    seed_org(&app, "Meanwhile", "meanwhile.owner").await;
    assert!(
        log_size() > 64 << 20,
        "the log stays while the reader needs it"
    );
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    app.store.compact().await.expect("compacting works");
    assert_eq!(log_size(), 0, "the log is emptied once nobody reads it");
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 2);
}
