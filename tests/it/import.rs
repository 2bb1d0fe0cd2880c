//! Bulk onboarding: `gatehouse users import` run as an operator would, against the
//! database of a running server whose workers send the setup emails to a real SMTP
//! receiver; and `importUsers`, the same for an owner through GraphQL.

use crate::common::{Practice, TestDb, seed_org, setup_token};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

crate::on_both_databases!(
    an_import_with_a_bad_row_writes_nothing_and_reports_each,
    skip_invalid_imports_the_good_rows_who_get_their_setup_emails,
    a_bad_header_or_unknown_organization_is_refused,
    owners_import_through_graphql,
    the_api_reads_on_and_writes_wait_while_another_process_writes_long,
);

fn import(db: &TestDb, dir: &std::path::Path, csv: &[u8], args: &[&str]) -> Output {
    let file = dir.join("users.csv");
    std::fs::write(&file, csv).unwrap();
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATABASE_URL", &db.url)
        .env("GATEHOUSE_LOG", "warn")
        .args(["users", "import"])
        .args(args)
        .arg(&file)
        .output()
        .expect("gatehouse runs")
}

fn stdout(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Sunrise has 5 EHR licenses for providers and 5 left for staff: the file asks six
/// providers, and has one bad row of each kind.
const FILE: &str = "\
email,username,first_name,last_name,kind,role,products,permissions,practices,mobile
nina@sunrise.example,nina,Nina,Novák,PROVIDER,ADMIN,EHR,SCHEDULING;REPORTING,North; Main Street,503 555 0123
dup@sunrise.example,olivia,Olive,Taken,STAFF,,,,,
NINA@sunrise.example,nina2,Nina,Again,STAFF,,,,,
owen@sunrise.example,owen,Owen,Owner,STAFF,OWNER,,,,
wiz@sunrise.example,wiz,Wiz,Ard,WIZARD,,,,,
xray@sunrise.example,xray,Xavier,Ray,STAFF,,EHR;XRAY,,,
short@sunrise.example,short,Short
info@sunrise.example,info,Info,Desk,STAFF,,,,,
p1@sunrise.example,p1.doc,Zoë,García,PROVIDER,,,,North,
p2@sunrise.example,p2.doc,José,Müller,PROVIDER,,,,,
p3@sunrise.example,p3.doc,Ana,Nguyễn,PROVIDER,,,,,
p4@sunrise.example,p4.doc,Mei,Chen,PROVIDER,,,,,
p5@sunrise.example,p5.doc,Olga,Ivanova,PROVIDER,,,,,
s1@sunrise.example,s1.staff,Søren,Andersen,,,,,main street,
";

const REPORT: &[&str] = &[
    "row 3: username: That username is already taken.",
    "row 4: email: the same email as row 2",
    "row 5: role: OWNER cannot be given with an invitation; file a permission change request for it.",
    "row 6: kind: must be PROVIDER or STAFF",
    "row 7: products: unknown product \"XRAY\"; the products are EHR, BILLING, PATIENT_PORTAL, TELEHEALTH",
    "row 8: row: 3 fields where the header names 10",
    "row 9: email: 'info@' is a shared mailbox; each user needs a personal email address.",
    "row 14: products: No EHR license is left for PROVIDER users: the file needs 6, 5 are available; request more licenses first.",
];

async fn an_import_with_a_bad_row_writes_nothing_and_reports_each(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let before = p.server.store.license_pools(p.org).await.unwrap();
    for args in [
        &["--org", "Sunrise"][..],
        &["--org", "Sunrise", "--dry-run"],
        &["--org", &p.org.to_global(), "--dry-run", "--skip-invalid"],
    ] {
        let out = import(&db, dir.path(), FILE.as_bytes(), args);
        let lines = stdout(&out);
        assert_eq!(&lines[..REPORT.len()], REPORT, "{args:?}: {lines:#?}");
        assert_eq!(lines.len(), REPORT.len() + 1, "{lines:#?}");
        if args.contains(&"--skip-invalid") {
            assert!(out.status.success());
            assert_eq!(
                lines.last().unwrap(),
                "dry run, nothing written: would import 6, skip 8, queue 6 emails, create practices 2"
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            assert_eq!(
                lines.last().unwrap(),
                "imported 0, skipped 14, emails queued 0 (nothing written)"
            );
        }
    }
    // Nothing was written: no user, no practice, no license, no email, no audit event.
    for name in ["nina", "p1.doc", "s1.staff"] {
        let found = p.server.store.credentials_by_username(name).await.unwrap();
        assert!(found.is_none(), "{name} was written");
    }
    assert!(p.server.store.practices(p.org).await.unwrap().is_empty());
    assert_eq!(p.server.store.license_pools(p.org).await.unwrap(), before);
    assert_eq!(p.audit_count("user.invited", "import").await, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(p.smtp.received().is_empty());
}

async fn skip_invalid_imports_the_good_rows_who_get_their_setup_emails(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = import(
        &db,
        dir.path(),
        FILE.as_bytes(),
        &["--org", "Sunrise", "--skip-invalid"],
    );
    let lines = stdout(&out);
    assert!(out.status.success(), "{lines:#?}");
    assert_eq!(&lines[..REPORT.len()], REPORT);
    assert_eq!(
        lines.last().unwrap(),
        "imported 6, skipped 8, emails queued 6, practices created 2"
    );
    // Each imported user is INVITED with what the row says, in the practices it names
    // (created once, matched without regard to case).
    let nina = p
        .server
        .store
        .credentials_by_username("nina")
        .await
        .unwrap()
        .expect("nina")
        .0;
    assert_eq!(nina.status.as_str(), "INVITED");
    assert_eq!(nina.role.as_str(), "ADMIN");
    assert_eq!(nina.kind.as_str(), "PROVIDER");
    assert_eq!(nina.mobile.as_deref(), Some("+15035550123"));
    let practices = p.server.store.practices(p.org).await.unwrap();
    let mut names: Vec<_> = practices.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["Main Street", "North"]);
    let of_nina = p.server.store.practices_of_users(&[nina.id]).await.unwrap();
    assert_eq!(of_nina.len(), 2);
    let permissions = p
        .server
        .store
        .permissions_of_users(&[nina.id])
        .await
        .unwrap();
    assert_eq!(permissions.len(), 2);
    let pools = p.server.store.license_pools(p.org).await.unwrap();
    let providers = pools
        .iter()
        .find(|pool| pool.kind.as_str() == "PROVIDER")
        .unwrap();
    assert_eq!(providers.available(), 0);
    // Every new user gets a setup email with a working link; every one is audited and
    // the chain still verifies.
    let emails = p.smtp.wait_for(6, Duration::from_secs(30)).await;
    let mut to: Vec<String> = emails.iter().flat_map(|e| e.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "nina@sunrise.example",
            "p1@sunrise.example",
            "p2@sunrise.example",
            "p3@sunrise.example",
            "p4@sunrise.example",
            "s1@sunrise.example"
        ]
    );
    let nina_mail = emails
        .iter()
        .find(|e| e.to == ["nina@sunrise.example"])
        .unwrap();
    assert!(!setup_token(&nina_mail.text()).is_empty());
    assert_eq!(p.audit_count("user.invited", "\"import\"").await, 6);
    assert_eq!(p.audit_count("practice.created", "\"import\"").await, 2);
    let report = p.server.app.audit().verify().await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    // The same file again: every row is now taken or bad, and nothing changes.
    let again = import(&db, dir.path(), FILE.as_bytes(), &["--org", "Sunrise"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stdout(&again).contains(&"row 2: username: That username is already taken.".to_owned())
    );
    // Imported users are found by the search like anyone invited.
    let token = p.login("olivia").await;
    let body = p
        .send(
            Some(&token),
            "{ users(filter: {search: \"garc\"}) { edges { node { username } } } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["users"]["edges"],
        serde_json::json!([{ "node": { "username": "p1.doc" } }]),
        "{body}"
    );
}

async fn a_bad_header_or_unknown_organization_is_refused(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = import(
        &db,
        dir.path(),
        b"username,first_name,last_name,e_mail\nann,Ann,Lee,ann@x.example\n",
        &["--org", "Sunrise", "--skip-invalid"],
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = stdout(&out);
    assert!(
        lines[0].starts_with("row 1: header: unknown column \"e_mail\""),
        "{lines:#?}"
    );
    assert_eq!(lines[1], "row 1: header: the column \"email\" is missing");
    let out = import(
        &db,
        dir.path(),
        b"username,first_name,last_name,email\nann,Ann,L\xffe,ann@x.example\n",
        &["--org", "Sunrise"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out)[0], "row 2: row: not UTF-8 text");
    let out = import(
        &db,
        dir.path(),
        b"username,first_name,last_name,email\n",
        &["--org", "Nowhere"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no organization"));
    assert!(
        p.server
            .store
            .credentials_by_username("ann")
            .await
            .unwrap()
            .is_none()
    );
}

const IMPORT_USERS: &str = "mutation($i: ImportUsersInput!) { importUsers(input: $i) { imported skipped emailsQueued practicesCreated written rowErrors { row field message } userErrors { code } } }";

async fn owners_import_through_graphql(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let olivia = p.login("olivia").await;
    let adam = p.login("adam").await;
    let run = |token: String, csv: &'static str, dry_run: bool, skip_invalid: bool| {
        let p = &p;
        async move {
            p.send(
                Some(&token),
                IMPORT_USERS,
                serde_json::json!({ "i": { "csv": csv, "dryRun": dry_run, "skipInvalid": skip_invalid } }),
            )
            .await
        }
    };
    // An admin may invite, but not grant what a file says: only an owner imports.
    let refused = run(adam.clone(), FILE, false, false).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    assert!(refused["data"].is_null() || refused["data"]["importUsers"].is_null());
    // The same report as the command line, row by row; nothing written.
    for dry_run in [false, true] {
        let body = run(olivia.clone(), FILE, dry_run, false).await;
        let done = &body["data"]["importUsers"];
        let lines: Vec<String> = done["rowErrors"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|e| {
                format!(
                    "row {}: {}: {}",
                    e["row"],
                    e["field"].as_str().unwrap(),
                    e["message"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(lines, REPORT, "{body}");
        assert_eq!(done["written"], false);
        assert_eq!(done["imported"], 0);
        assert_eq!(done["skipped"], 14);
    }
    assert!(
        p.server
            .store
            .credentials_by_username("nina")
            .await
            .unwrap()
            .is_none()
    );
    // With skipInvalid the good rows are imported, audited as the owner's doing, and
    // emailed.
    let body = run(olivia.clone(), FILE, false, true).await;
    let done = &body["data"]["importUsers"];
    assert_eq!(
        (
            done["imported"].as_u64(),
            done["skipped"].as_u64(),
            done["emailsQueued"].as_u64(),
            done["practicesCreated"].as_u64(),
            done["written"].as_bool()
        ),
        (Some(6), Some(8), Some(6), Some(2), Some(true)),
        "{body}"
    );
    p.smtp.wait_for(6, Duration::from_secs(30)).await;
    let events = p
        .server
        .store
        .audit_chain_page(p.org, 0, 10_000)
        .await
        .unwrap();
    let olivia_id = p
        .server
        .store
        .credentials_by_username("olivia")
        .await
        .unwrap()
        .unwrap()
        .0
        .id;
    let invited: Vec<_> = events
        .iter()
        .filter(|e| e.action == "user.invited" && e.details.contains("import"))
        .collect();
    assert_eq!(invited.len(), 6);
    assert!(
        invited.iter().all(|e| e.actor_id == Some(olivia_id.0)),
        "{invited:?}"
    );
    assert!(
        p.server
            .app
            .audit()
            .verify()
            .await
            .unwrap()
            .broken
            .is_none()
    );
}

/// While a large import runs in another process, the embedded database's one write lock
/// is the import's for as long as it writes (about 12 s for 100,000 rows). Meanwhile the
/// API answers every read at once, and its writes (sign-ins, renames) wait their turn and
/// succeed — also past the 10 seconds a write used to wait before failing. On PostgreSQL
/// the import holds only its own organization's rows and nothing here waits.
async fn the_api_reads_on_and_writes_wait_while_another_process_writes_long(db: TestDb) {
    let p = Practice::start(&db, vec![]).await;
    let adam = p.login("adam").await;
    let mia = p.user_id("mia").await;
    let (elsewhere, _) = seed_org(&p.server.app, "Elsewhere", "ellen").await;
    let started = tokio::time::Instant::now();
    let import = db
        .begin_writing(
            "UPDATE organizations SET name = name WHERE id = $1",
            elsewhere.id.0,
        )
        .await;
    let written = AtomicUsize::new(0);
    let renames = futures_util::future::join_all((0..8).map(|i| {
        let (p, adam, mia, written) = (&p, &adam, &mia, &written);
        async move {
            let body = p
                .send(
                    Some(adam),
                    "mutation($i: UpdateUserInput!) { updateUser(input: $i) { user { lastName } userErrors { code } } }",
                    serde_json::json!({ "i": { "userId": mia, "lastName": format!("Renamed{i}") } }),
                )
                .await;
            written.fetch_add(1, Ordering::SeqCst);
            body
        }
    }));
    let sign_ins = futures_util::future::join_all((0..4).map(|_| {
        let (p, written) = (&p, &written);
        async move {
            let token = p.login("cam").await;
            written.fetch_add(1, Ordering::SeqCst);
            token
        }
    }));
    let reads_then_commit = async {
        // The writes above are under way (on SQLite, waiting for the lock).
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..20 {
            let me = p
                .send(Some(&adam), "{ me { username } }", serde_json::json!({}))
                .await;
            assert_eq!(me["data"]["me"]["username"], "adam", "{me}");
        }
        let found = p
            .send(
                Some(&adam),
                "{ users(filter: {username: \"olivia\"}) { totalCount edges { node { username } } } }",
                serde_json::json!({}),
            )
            .await;
        assert_eq!(found["data"]["users"]["totalCount"], 1, "{found}");
        if db.url.starts_with("sqlite:") {
            assert_eq!(
                written.load(Ordering::SeqCst),
                0,
                "every read was answered while the writes waited for the import"
            );
        }
        // Past the 10 s a write once waited before it failed with "database is locked".
        tokio::time::sleep_until(started + Duration::from_secs(11)).await;
        import.commit().await;
    };
    let (renames, sign_ins, ()) = tokio::join!(renames, sign_ins, reads_then_commit);
    for body in &renames {
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(
            body["data"]["updateUser"]["userErrors"],
            serde_json::json!([]),
            "{body}"
        );
    }
    assert!(sign_ins.iter().all(|token| !token.is_empty()));
    let mia = p
        .server
        .store
        .credentials_by_username("mia")
        .await
        .unwrap()
        .unwrap()
        .0;
    assert!(mia.last_name.starts_with("Renamed"), "{}", mia.last_name);
}
