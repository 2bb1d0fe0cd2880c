//! Email a vendor can brand: templates overridden from GATEHOUSE_TEMPLATE_DIR, the
//! organization's name and the support contact in every email, a Message-ID and Date on
//! every message, and `gatehouse email preview`.

use crate::common::{ServerOptions, TestDb, TestServer};
use crate::smtp::SmtpReceiver;
use gatehouse::app::directory::organization::CreateOrganization;
use gatehouse::domain::{Product, UserKind};
use gatehouse_workers::{Email, Envelope, Job};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

crate::on_both_databases!(emails_carry_the_brand_and_follow_the_template_directory);

const INVITATION: &str = r#"{% extends "layout.txt" %}
{% block subject %}Welcome to {{ organization }} on Acme EHR{% endblock %}
{% block body %}
Hi {{ name }}, your Acme EHR account is waiting: {{ link }}
{% endblock %}
"#;

async fn emails_carry_the_brand_and_follow_the_template_directory(db: TestDb) {
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("account_setup_invitation.txt"),
        INVITATION,
    )
    .unwrap();
    let smtp = SmtpReceiver::start().await;
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            smtp_url: Some(smtp.url()),
            env: vec![
                (
                    "GATEHOUSE_TEMPLATE_DIR",
                    templates.path().display().to_string(),
                ),
                ("GATEHOUSE_SUPPORT_CONTACT", "help@acme.example".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let (org, _) = server
        .app
        .directory()
        .create_organization(CreateOrganization {
            name: "Bayside Clinic".into(),
            owner_username: "bea".into(),
            owner_email: "bea@bayside.example".into(),
            owner_first_name: "Bea".into(),
            owner_last_name: "Lund".into(),
            owner_kind: UserKind::Staff,
            licenses: vec![(Product::Ehr, UserKind::Staff, 2)],
            owner_password: None,
        })
        .await
        .unwrap();

    // The overridden text template, the built-in HTML, both with the brand.
    let mail = smtp.wait_for(1, WAIT).await.remove(0);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Welcome to Bayside Clinic on Acme EHR")
    );
    let text = mail.text();
    assert!(
        text.contains("Hi Bea Lund, your Acme EHR account is waiting: https://gatehouse.test/account/setup?token="),
        "{text}"
    );
    assert!(text.contains("Bayside Clinic, through Gatehouse"), "{text}");
    assert!(
        text.contains("Questions? Contact help@acme.example."),
        "{text}"
    );
    assert!(
        text.contains("<p>Hello Bea Lund,</p>"),
        "the HTML stays built in: {text}"
    );
    let id = mail.header("Message-ID").unwrap();
    assert!(
        id.starts_with("<outbox-") && id.ends_with(".gatehouse@localhost>"),
        "{id}"
    );
    let date = mail.header("Date").expect("a Date header");
    chrono::DateTime::parse_from_rfc2822(&date).expect("an RFC 5322 date");

    // A notification names the organization of its recipient too.
    let job = Job::Email {
        org_id: Some(org.id.0),
        to_name: "Bea Lund".into(),
        to_address: "bea@bayside.example".into(),
        email: Email::PasswordChanged {
            name: "Bea Lund".into(),
            username: "bea".into(),
            how: "you changed it".into(),
        },
    };
    server
        .queue
        .push(Envelope::new(900_001, job, None), None)
        .await
        .unwrap();
    let mail = smtp.wait_for(2, WAIT).await.remove(1);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your password was changed")
    );
    let text = mail.text();
    assert!(text.contains("Bayside Clinic, through Gatehouse"), "{text}");
    assert!(text.contains("help@acme.example"), "{text}");
    assert_ne!(mail.header("Message-ID"), Some(id));
}

fn gatehouse(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let cwd = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GATEHOUSE_LOG", "warn")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("gatehouse runs")
}

#[tokio::test]
async fn email_preview_shows_what_users_get_and_a_broken_template_stops_the_start() {
    let templates = tempfile::tempdir().unwrap();
    let dir = templates.path().display().to_string();
    std::fs::write(
        templates.path().join("account_setup_invitation.txt"),
        INVITATION,
    )
    .unwrap();
    let env = [
        ("GATEHOUSE_TEMPLATE_DIR", dir.as_str()),
        ("GATEHOUSE_SUPPORT_CONTACT", "help@acme.example"),
        ("GATEHOUSE_PUBLIC_URL", "https://accounts.acme.example"),
    ];
    let out = gatehouse(
        &[
            "email",
            "preview",
            "account_setup_invitation",
            "--org",
            "Bayside Clinic",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.starts_with("Subject: Welcome to Bayside Clinic on Acme EHR\n\nHi Ana García, your Acme EHR account is waiting: https://accounts.acme.example/account/setup?token="),
        "{shown}"
    );
    assert!(
        shown.contains("Questions? Contact help@acme.example."),
        "{shown}"
    );

    let file = templates.path().join("outcome.html");
    let out = gatehouse(
        &[
            "email",
            "preview",
            "request_outcome",
            "--outcome",
            "failed",
            "--format",
            "html",
            "--out",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("Cause: no license available"),
        "{html}"
    );

    let out = gatehouse(&["email", "preview", "welcome"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the emails are account_setup_invitation")
    );

    // A template that cannot render stops the start, naming its file, before anything runs.
    std::fs::write(
        templates.path().join("approval_needed.html"),
        "{{ request.nope }}",
    )
    .unwrap();
    let db = TestDb::sqlite().await;
    let out = gatehouse(
        &["serve"],
        &[
            ("GATEHOUSE_TEMPLATE_DIR", dir.as_str()),
            ("GATEHOUSE_DATABASE_URL", db.url.as_str()),
            ("GATEHOUSE_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GATEHOUSE_TEMPLATE_DIR") && err.contains("approval_needed.html"),
        "{err}"
    );
}
