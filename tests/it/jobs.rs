//! Background work end to end: the outbox, the queue on SQLite and Redis, the workers,
//! delivery to a real SMTP server, and the faults they must survive.

use crate::common::{ServerOptions, TestDb, TestServer, fast_jobs, setup_token, test_config};
use crate::redis::TestRedis;
use crate::smtp::{Mode, SmtpReceiver};
use gatehouse::app::App;
use gatehouse::app::directory::organization::CreateOrganization;
use gatehouse::domain::{Product, User, UserKind};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

crate::on_both_databases!(
    invited_owner_gets_the_setup_email_over_smtp,
    without_smtp_the_email_is_an_eml_file,
);

/// Files an invitation: an organization whose owner has no password yet.
async fn invite_owner(app: &App, username: &str) -> User {
    let input = CreateOrganization {
        name: format!("{username} clinic"),
        owner_username: username.into(),
        owner_email: format!("{username}@clinic.example"),
        owner_first_name: "Rosa".into(),
        owner_last_name: "Díaz <Admin>".into(),
        owner_kind: UserKind::Staff,
        licenses: vec![(Product::Ehr, UserKind::Staff, 2)],
        owner_password: None,
    };
    app.directory()
        .create_organization(input)
        .await
        .expect("organization created")
        .1
}

async fn invited_owner_gets_the_setup_email_over_smtp(db: TestDb) {
    let smtp = SmtpReceiver::start().await;
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            smtp_url: Some(smtp.url()),
            ..Default::default()
        },
    )
    .await;
    let owner = invite_owner(&server.app, "rosa").await;
    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.to, vec!["rosa@clinic.example".to_owned()]);
    assert!(mail.from.contains("no-reply@localhost"), "{}", mail.from);
    assert!(
        mail.header("Subject")
            .unwrap()
            .contains("set up your account"),
        "{:?}",
        mail.header("Subject")
    );
    assert!(mail.data.contains("multipart/alternative"));
    assert!(mail.data.contains("text/plain") && mail.data.contains("text/html"));
    let text = mail.text();
    assert!(
        text.contains("https://gatehouse.test/account/setup?token="),
        "{text}"
    );
    assert!(
        text.contains("Díaz &lt;Admin&gt;") || text.contains("D=C3=ADaz &lt;Admin&gt;"),
        "the name is escaped in HTML"
    );
    let token = setup_token(&text);
    assert_eq!(token.len(), 43, "256-bit token");
    // Only the hash is stored.
    let stored = db.count(&format!(
        "SELECT COUNT(*) FROM setup_tokens WHERE user_id = {} AND used_at IS NULL AND voided_at IS NULL",
        owner.id.0
    ))
    .await;
    assert_eq!(stored, 1);
    let sent = db
        .count("SELECT COUNT(*) FROM email_deliveries WHERE status = 'SENT'")
        .await;
    assert_eq!(sent, 1);
    let events = server
        .store
        .audit_chain_page(owner.org_id, 0, 100)
        .await
        .unwrap();
    let audited = events
        .iter()
        .find(|e| e.action == "user.setup_email_sent")
        .expect("audited");
    assert!(
        !audited.details.contains(&token),
        "no token in the audit log"
    );
    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"gatehouse_jobs_succeeded_total{kind="account_setup_email"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gatehouse_jobs_queued_total{kind="account_setup_email"} 1"#),
        "{metrics}"
    );
}

async fn without_smtp_the_email_is_an_eml_file(db: TestDb) {
    let server = TestServer::start(&db).await;
    invite_owner(&server.app, "eli").await;
    let dir = server.outbox_dir();
    let deadline = tokio::time::Instant::now() + WAIT;
    let file = loop {
        let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if let Some(file) = found {
            break file;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no .eml file in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let eml = std::fs::read_to_string(file).unwrap();
    assert!(eml.contains("eli@clinic.example"));
    assert!(eml.contains("Message-ID: <outbox-"));
    assert!(eml.contains("/account/setup?token="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_smtp_failure_is_recorded_and_not_retried() {
    let db = TestDb::sqlite().await;
    let smtp = SmtpReceiver::start().await;
    smtp.set_mode(Mode::PermFail);
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            smtp_url: Some(smtp.url()),
            ..Default::default()
        },
    )
    .await;
    invite_owner(&server.app, "perm").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while db
        .count("SELECT COUNT(*) FROM email_deliveries WHERE status = 'FAILED'")
        .await
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "failure not recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    smtp.set_mode(Mode::Accept);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        smtp.received().is_empty(),
        "a permanent failure is not retried"
    );
    let metrics = server.metrics.render();
    assert!(
        metrics.contains(r#"gatehouse_jobs_failed_total{kind="account_setup_email"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_unreachable_then_back_delivers_exactly_once() {
    let db = TestDb::sqlite().await;
    let mut smtp = SmtpReceiver::unreachable().await;
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            smtp_url: Some(smtp.url()),
            ..Default::default()
        },
    )
    .await;
    invite_owner(&server.app, "retry").await;
    // Let a few attempts fail against the closed port.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server
        .metrics
        .render()
        .contains(r#"gatehouse_jobs_retried_total{kind="account_setup_email"}"#)
    {
        assert!(tokio::time::Instant::now() < deadline, "no retry happened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    smtp.resume().await;
    smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.received().len(), 1, "delivered exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_4xx_answers_are_retried() {
    let db = TestDb::sqlite().await;
    let smtp = SmtpReceiver::start().await;
    smtp.set_mode(Mode::TempFail);
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            smtp_url: Some(smtp.url()),
            ..Default::default()
        },
    )
    .await;
    invite_owner(&server.app, "greylist").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server
        .metrics
        .render()
        .contains(r#"gatehouse_jobs_retried_total{kind="account_setup_email"}"#)
    {
        assert!(tokio::time::Instant::now() < deadline, "no retry happened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    smtp.set_mode(Mode::Accept);
    smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_queue_delivers_on_postgres() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let smtp = SmtpReceiver::start().await;
    let options = ServerOptions {
        smtp_url: Some(smtp.url()),
        queue_url: Some(redis.url()),
        ..Default::default()
    };
    let server = TestServer::start_with(&db, options).await;
    invite_owner(&server.app, "redis.pg").await;
    smtp.wait_for(1, WAIT).await;
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_while_filing_then_back_delivers_exactly_once() {
    let Some(mut redis) = TestRedis::start().await else {
        return;
    };
    let db = TestDb::sqlite().await;
    let smtp = SmtpReceiver::start().await;
    let options = ServerOptions {
        smtp_url: Some(smtp.url()),
        queue_url: Some(redis.url()),
        ..Default::default()
    };
    let server = TestServer::start_with(&db, options).await;
    redis.stop();
    // Filing still succeeds: the job waits in the outbox.
    invite_owner(&server.app, "outage").await;
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "readiness reports the queue down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(smtp.received().is_empty());
    assert_eq!(
        db.count("SELECT COUNT(*) FROM job_outbox WHERE relayed_at IS NULL")
            .await,
        1,
        "kept in the outbox"
    );
    redis.resume().await;
    smtp.wait_for(1, Duration::from_secs(40)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.received().len(), 1, "delivered exactly once");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM job_outbox WHERE relayed_at IS NULL")
            .await,
        0
    );
}

/// A `gatehouse` process of its own, for tests that kill one.
fn spawn_gatehouse(db: &TestDb, args: &[&str], env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATABASE_URL", &db.url)
        .env("GATEHOUSE_ARGON2_M_KIB", "64")
        .env("GATEHOUSE_ARGON2_T", "1")
        .env("GATEHOUSE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in fast_jobs()
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .chain(env.iter().map(|(k, v)| (*k, v.clone())))
    {
        cmd.env(k, v);
    }
    cmd.spawn().expect("gatehouse starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_job_runs_it_again_and_sends_once() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpReceiver::start().await;
    smtp.set_mode(Mode::Stall);
    let env = [
        (
            "GATEHOUSE_QUEUE_URL",
            format!("sqlite://{}", dir.path().join("queue.db").display()),
        ),
        ("GATEHOUSE_SMTP_URL", smtp.url()),
        // A dead worker's jobs are taken over after two missed heartbeats (60 s at the
        // default); this test is about the takeover, not its timing.
        ("GATEHOUSE_WORKER_HEARTBEAT", "1s".into()),
    ];
    let app = gatehouse::build_app(test_config(&db, &[])).await.unwrap();
    let mut first = spawn_gatehouse(&db, &["worker"], &env);
    invite_owner(&app, "killed").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while smtp.stalls() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never reached the mail server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap(); // SIGKILL, in the middle of the SMTP transaction
    first.wait().unwrap();
    smtp.set_mode(Mode::Accept);
    assert!(
        smtp.received().is_empty(),
        "nothing was accepted from the killed worker"
    );
    let mut second = spawn_gatehouse(&db, &["worker"], &env);
    smtp.wait_for(1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(smtp.received().len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_only_node_files_and_a_worker_node_sends() {
    let db = TestDb::sqlite().await;
    let smtp = SmtpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let queue = format!("sqlite://{}", dir.path().join("queue.db").display());
    let options = ServerOptions {
        smtp_url: Some(smtp.url()),
        queue_url: Some(queue.clone()),
        no_workers: true,
        ..Default::default()
    };
    let server = TestServer::start_with(&db, options).await;
    invite_owner(&server.app, "split").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        smtp.received().is_empty(),
        "an API-only node runs no workers"
    );
    let mut worker = spawn_gatehouse(
        &db,
        &["worker"],
        &[
            ("GATEHOUSE_QUEUE_URL", queue),
            ("GATEHOUSE_SMTP_URL", smtp.url()),
        ],
    );
    smtp.wait_for(1, WAIT).await;
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(
        worker.wait().unwrap().code(),
        Some(0),
        "the worker exits 0 on SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_share_one_redis_and_each_email_goes_once() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let db = TestDb::sqlite().await;
    let smtp = SmtpReceiver::start().await;
    let env = [
        ("GATEHOUSE_QUEUE_URL", redis.url()),
        ("GATEHOUSE_SMTP_URL", smtp.url()),
    ];
    let app = gatehouse::build_app(test_config(&db, &[])).await.unwrap();
    let mut workers: Vec<Child> = (0..3)
        .map(|_| spawn_gatehouse(&db, &["worker"], &env))
        .collect();
    for i in 0..12 {
        invite_owner(&app, &format!("shared{i}")).await;
    }
    let mails = smtp.wait_for(12, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut recipients: Vec<String> = smtp.received().iter().map(|m| m.to[0].clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 12, "every owner got an email");
    assert_eq!(smtp.received().len(), 12, "and only one: {mails:?}");
    for worker in &mut workers {
        worker.kill().unwrap();
        worker.wait().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_ends_idle_sessions() {
    let db = TestDb::sqlite().await;
    let options = ServerOptions {
        env: vec![("GATEHOUSE_SESSION_IDLE", "1s".into())],
        ..Default::default()
    };
    let server = TestServer::start_with(&db, options).await;
    crate::common::seed_org(&server.app, "Idle", "idle.owner").await;
    server
        .login("idle.owner", crate::common::OWNER_PASSWORD)
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while db
        .count("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL")
        .await
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle session not ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_job_run_twice_at_once_sends_once() {
    use gatehouse_workers::{Email, Envelope, Job};
    let db = TestDb::sqlite().await;
    let smtp = SmtpReceiver::start().await;
    smtp.set_mode(Mode::Stall);
    let options = ServerOptions {
        smtp_url: Some(smtp.url()),
        ..Default::default()
    };
    let server = TestServer::start_with(&db, options).await;
    let job = Job::Email {
        org_id: None,
        to_name: "Twice".into(),
        to_address: "twice@example.com".into(),
        email: Email::PasswordChanged {
            name: "Twice".into(),
            username: "twice".into(),
            how: "you changed it".into(),
        },
    };
    // The same job delivered twice at the same moment (at-least-once delivery).
    for _ in 0..2 {
        server
            .queue
            .push(Envelope::new(4242, job.clone(), None), None)
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while smtp.stalls() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing reached the mail server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The other run found the delivery claimed and backs off instead of sending.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.stalls(), 1, "only one run reached the mail server");
    smtp.set_mode(Mode::Accept);
    smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.received().len(), 1, "sent once");
}
