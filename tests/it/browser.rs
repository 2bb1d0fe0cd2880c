//! The pages in a real browser: `tests/browser/flows.mjs` drives headless Chromium
//! (Debian's /usr/bin/chromium, through playwright-core) against a served Gatehouse with
//! its emails as `.eml` files, runs axe-core on every page, and saves a screenshot of each
//! page under `target/browser-shots/`. This test seeds the practice and the requests,
//! runs the flows, and checks what they changed.

use crate::common::{
    OWNER_PASSWORD, STAFF_PASSWORD, ServerOptions, TestDb, TestServer, add_user, in_ci, seed_org,
    setup_token, skipped,
};
use gatehouse::domain::Role;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PUBLIC_URL: &str = "http://gatehouse.test";

/// What the flows need, or why they cannot run here.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "{} not found (apt-get install chromium)",
            chromium.display()
        ));
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node not found".into());
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Err("tests/browser/node_modules missing (npm ci --prefix tests/browser)".into());
    }
    Ok((dir, chromium))
}

/// The newest `.eml` in `outbox` addressed to `to`, once it is there.
async fn email_to(outbox: &Path, to: &str) -> String {
    for _ in 0..400 {
        let mut found: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(outbox)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let text = std::fs::read_to_string(e.path()).ok()?;
                        let modified = e.metadata().ok()?.modified().ok()?;
                        text.lines()
                            .any(|l| l.starts_with("To:") && l.contains(to))
                            .then_some((modified, text))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        if let Some((_, text)) = found.pop() {
            return text
                .replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no email to {to}");
}

async fn file(server: &TestServer, token: &str, input: &str) -> String {
    let (_, body) = server
        .graphql(
            Some(token),
            &format!("mutation {{ requestLicenses(input: {input}) {{ request {{ id }} userErrors {{ code }} }} }}"),
            json!({}),
        )
        .await;
    body["data"]["requestLicenses"]["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    let (dir, chromium) = match tools() {
        Ok(found) => found,
        Err(why) if in_ci() => panic!("the browser tests must run in CI: {why}"),
        Err(why) => return skipped(&format!("the browser tests: {why}")),
    };
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(
        &db,
        ServerOptions {
            env: vec![("GATEHOUSE_PUBLIC_URL", PUBLIC_URL.into())],
            ..Default::default()
        },
    )
    .await;
    let outbox = server.outbox_dir();
    let (org, _) = seed_org(&server.app, "Sunrise", "olivia").await;
    for (name, role) in [("oscar", Role::Owner), ("adam", Role::Admin)] {
        add_user(&server, org.id, name, role, Some(STAFF_PASSWORD)).await;
    }
    let invite = |username: &'static str, first: &'static str, last: &'static str| {
        format!(
            "mutation {{ inviteUser(input: {{username: \"{username}\", firstName: \"{first}\", lastName: \"{last}\", email: \"{username}@sunrise.example\", kind: STAFF}}) {{ userErrors {{ code }} }} }}"
        )
    };
    // A link that will have expired: sent, then the clock moves past its 72 hours.
    let olivia = server.login("olivia", OWNER_PASSWORD).await;
    server
        .graphql(Some(&olivia), &invite("early", "Early", "Bird"), json!({}))
        .await;
    let expired = setup_token(&email_to(&outbox, "early@").await);
    server.clock.advance(Duration::from_secs(73 * 3600));
    let olivia = server.login("olivia", OWNER_PASSWORD).await;
    server
        .graphql(Some(&olivia), &invite("nina", "Nina", "Novak"), json!({}))
        .await;
    let adam = server.login("adam", STAFF_PASSWORD).await;
    let approve = file(
        &server,
        &adam,
        "{product: EHR, kind: STAFF, quantity: 2, justification: \"two new nurses\"}",
    )
    .await;
    let reject = file(
        &server,
        &adam,
        "{product: EHR, kind: PROVIDER, quantity: 1}",
    )
    .await;

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(dir.join("flows.mjs"))
        .env("BASE_URL", server.url(""))
        .env("PUBLIC_URL", PUBLIC_URL)
        .env("OUTBOX", &outbox)
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .env("APPROVE_LINK", format!("/requests/{approve}"))
        .env("REJECT_LINK", format!("/requests/{reject}"))
        .env("EXPIRED_LINK", format!("/account/setup?token={expired}"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser flows finish within 4 minutes")
        .expect("node runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{printed}");
    assert!(
        output.status.success(),
        "the browser flows failed:\n{printed}"
    );
    // What the flows did, as the API sees it.
    let (_, body) = server
        .graphql(
            Some(&olivia),
            "query($a: ID!, $r: ID!) { a: request(id: $a) { status } r: request(id: $r) { status } organization { licenses { kind total } } }",
            json!({ "a": approve, "r": reject }),
        )
        .await;
    assert_eq!(body["data"]["a"]["status"], "APPLIED", "{body}");
    assert_eq!(body["data"]["r"]["status"], "REJECTED", "{body}");
    server.login("nina", "a brand new passphrase here").await;
}
