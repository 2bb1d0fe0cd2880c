//! The `gatehouse` command line, run as an operator would.

use crate::common::TestDb;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn gatehouse(db: &TestDb, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATABASE_URL", &db.url)
        .env("GATEHOUSE_ARGON2_M_KIB", "64")
        .env("GATEHOUSE_ARGON2_T", "1")
        .env("GATEHOUSE_LOG", "warn");
    cmd
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("gatehouse runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const ORG: &[&str] = &[
    "org",
    "create",
    "--name",
    "Sunrise Clinic",
    "--owner-username",
    "olivia",
    "--owner-email",
    "olivia@sunrise.example",
    "--owner-first-name",
    "Olivia",
    "--owner-last-name",
    "Owner",
];

crate::on_both_databases!(
    org_create_with_password_prints_an_active_owner,
    org_create_without_password_invites_the_owner,
    org_create_refuses_weak_passwords_and_short_licenses,
    audit_verify_exits_1_naming_the_altered_event,
    migrate_succeeds_twice,
);

async fn org_create_with_password_prints_an_active_owner(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(ORG).args([
        "--owner-kind",
        "provider",
        "--licenses",
        "EHR:PROVIDER:2",
        "--owner-password-stdin",
    ]);
    cmd.env("GATEHOUSE_LOG", "trace");
    let out = run(cmd, Some("a long and private passphrase\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("private passphrase"),
        "the password is never logged"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("private passphrase"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["organization"]["name"], "Sunrise Clinic");
    assert_eq!(json["owner"]["status"], "ACTIVE");
    assert_eq!(json["owner"]["role"], "OWNER");
    assert_eq!(json["owner"]["kind"], "PROVIDER");
    assert!(json["owner"]["id"].is_string());
    let app = crate::common::test_app(&db).await;
    let login = app
        .identity()
        .login(
            "olivia",
            "a long and private passphrase",
            &Default::default(),
        )
        .await;
    assert!(login.is_ok(), "the owner signs in with the piped password");
}

async fn org_create_without_password_invites_the_owner(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(ORG);
    let out = run(cmd, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["owner"]["status"], "INVITED");
    assert_eq!(json["owner"]["kind"], "STAFF");
    let app = crate::common::test_app(&db).await;
    let jobs = app.store.pending_jobs(10).await.unwrap();
    assert_eq!(jobs.len(), 1, "the setup email waits in the outbox");
    let pools = app
        .store
        .license_pools(app.store.organization_ids().await.unwrap()[0])
        .await
        .unwrap();
    assert_eq!(pools.len(), 2, "default pools EHR:PROVIDER:5,EHR:STAFF:5");
    assert!(pools.iter().all(|p| p.total == 5));
}

async fn org_create_refuses_weak_passwords_and_short_licenses(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(ORG).arg("--owner-password-stdin");
    let out = run(cmd, Some("password1234\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("WEAK_PASSWORD"), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim().lines().count(), 1);

    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(ORG).args(["--licenses", "EHR:PROVIDER:5"]);
    let out = run(cmd, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no EHR license is left for the STAFF owner"),
        "{}",
        stderr(&out)
    );

    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(ORG).args(["--licenses", "EHR:ROBOT:5"]);
    let out = run(cmd, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown user kind"),
        "{}",
        stderr(&out)
    );

    let app = crate::common::test_app(&db).await;
    assert!(
        app.store.organization_ids().await.unwrap().is_empty(),
        "nothing was created"
    );
}

async fn audit_verify_exits_1_naming_the_altered_event(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(ORG);
    assert!(run(cmd, None).status.success());
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(["audit", "verify"]);
    let out = run(cmd, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));

    let app = crate::common::test_app(&db).await;
    let org = app.store.organization_ids().await.unwrap()[0];
    let first = app.store.audit_chain_page(org, 0, 1).await.unwrap()[0].id;
    db.execute(&format!(
        "UPDATE audit_events SET action = 'user.unlocked' WHERE id = {first}"
    ))
    .await;
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(["audit", "verify"]);
    let out = run(cmd, None);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("audit event {first}")) && said.contains("altered"),
        "{said}"
    );
}

async fn migrate_succeeds_twice(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let mut cmd = gatehouse(&db, dir.path());
        cmd.arg("migrate");
        let out = run(cmd, None);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn a_taken_owner_and_an_ambiguous_organization_name_are_named_as_typed() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(ORG);
    assert!(run(cmd, None).status.success());
    // The same owner's username or email again: the flag the operator typed is named.
    for (flag, value, taken) in [
        (
            "--owner-email",
            "other@sunrise.example",
            "--owner-username: That username",
        ),
        ("--owner-username", "other", "--owner-email: That email"),
    ] {
        let mut args = ORG.to_vec();
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = value;
        let mut cmd = gatehouse(&db, dir.path());
        cmd.args(args);
        let out = run(cmd, None);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            stderr(&out).trim(),
            format!("gatehouse: {taken} is already taken. (ALREADY_EXISTS)")
        );
    }
    // Organization names may repeat; an import naming one of two is refused.
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(&ORG[..4]).args([
        "--owner-username",
        "otto",
        "--owner-email",
        "otto@sunrise.example",
        "--owner-first-name",
        "Otto",
        "--owner-last-name",
        "Owner",
    ]);
    assert!(run(cmd, None).status.success());
    std::fs::write(
        dir.path().join("users.csv"),
        "username,first_name,last_name,email\n",
    )
    .unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(["users", "import", "--org", "Sunrise Clinic", "users.csv"]);
    let out = run(cmd, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("2 organizations are named \"Sunrise Clinic\""),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn bad_settings_stop_with_one_line_naming_the_variable() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.env("GATEHOUSE_LOCKOUT_DURATION", "soon").arg("migrate");
    let out = run(cmd, None);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("GATEHOUSE_LOCKOUT_DURATION"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_database_stops_with_redacted_url() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.env(
        "GATEHOUSE_DATABASE_URL",
        "postgres://gh:topsecret@127.0.0.1:1/gatehouse",
    )
    .arg("serve");
    let out = run(cmd, None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("127.0.0.1:1") && !err.contains("topsecret"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_arguments_are_refused() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.args(["org", "create", "--name", "X"]);
    let out = run(cmd, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--owner-username"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn schema_command_prints_the_sdl() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = gatehouse(&db, dir.path());
    cmd.arg("schema");
    let out = run(cmd, None);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        gatehouse::graphql::sdl()
    );
}

#[tokio::test]
async fn serve_creates_its_database_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(dir.path())
        .env_clear()
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            ready = r.status() == 200;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "server became ready");
    assert!(
        dir.path().join("data/gatehouse.db").exists(),
        "the default database is created under data/"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
}
