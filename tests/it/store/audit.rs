//! The audit chain and compaction, on both databases.

use super::*;

crate::on_both_databases!(
    audit_chain_verifies_and_names_altered_event,
    audit_chain_names_removed_event,
    audit_chain_names_reordered_events,
    audit_chain_catches_removal_at_the_end,
    compacting_keeps_every_row,
    filtered_audit_pages_walk_only_the_matching_events,
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

/// A page of the log filtered by subject, actor, request or exact action walks that
/// filter's index newest first (before, each walked the organization's whole log until
/// it had found a page: 40 ms for one user's history among 100,000 events).
async fn filtered_audit_pages_walk_only_the_matching_events(db: TestDb) {
    let (app, org) = chain_of_five(&db).await;
    for (column, value, index) in [
        ("subject_id", "1", "audit_events_subject_idx"),
        ("actor_id", "1", "audit_events_actor_idx"),
        ("request_id", "1", "audit_events_request_idx"),
        ("action", "'user.locked'", "audit_events_action_idx"),
    ] {
        let page = format!(
            "SELECT id FROM audit_events WHERE org_id = {} AND {column} = {value} ORDER BY seq DESC LIMIT 20",
            org.0
        );
        let plan = db.plan(&page).await;
        assert!(plan.contains(index), "{page}\nis planned as\n{plan}");
        assert!(
            !plan.to_uppercase().contains("SORT"),
            "{page}\nsorts:\n{plan}"
        );
    }
    // And the filters still find what they should.
    let owner = app.store.owners(org).await.unwrap()[0].id;
    let q = |subject| gatehouse::store::AuditQuery {
        org_id: org,
        subject_id: Some(subject),
        limit: 100,
        ..Default::default()
    };
    let (events, _) = app.store.audit_events(q(owner.0)).await.unwrap();
    let updates = events.iter().filter(|e| e.action == "user.updated").count();
    assert_eq!(updates, 5, "{events:?}");
}
