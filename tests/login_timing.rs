//! Known and unknown usernames answer a failed sign-in in the same time (within 1 ms at
//! the median over 200 tries each). Its own test binary, so that no other test's load
//! runs beside the measurement. The hash is made cheap (an unoptimized test build would
//! take a second for the default one): what is compared is everything around it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

const LOGIN: &str = "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { token userErrors { code } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_and_unknown_usernames_answer_in_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        (
            "GATEHOUSE_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("g.db").display()),
        ),
        (
            "GATEHOUSE_QUEUE_URL",
            format!("sqlite://{}", dir.path().join("q.db").display()),
        ),
        (
            "GATEHOUSE_OUTBOX_DIR",
            dir.path().join("outbox").display().to_string(),
        ),
        ("GATEHOUSE_ARGON2_M_KIB", "64".into()),
        ("GATEHOUSE_ARGON2_T", "1".into()),
        // 800 sign-ins from one address: a limit high enough for them.
        ("GATEHOUSE_LOGIN_RATE_LIMIT", "100000".into()),
    ]);
    let config = gatehouse::config::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let gatehouse = gatehouse::Gatehouse::build(config).await.unwrap();
    gatehouse
        .app
        .directory()
        .create_organization(
            gatehouse::app::directory::organization::CreateOrganization {
                name: "Timing".into(),
                owner_username: "olivia".into(),
                owner_email: "olivia@timing.example".into(),
                owner_first_name: "Olivia".into(),
                owner_last_name: "Owner".into(),
                owner_kind: gatehouse::domain::UserKind::Staff,
                licenses: vec![(
                    gatehouse::domain::Product::Ehr,
                    gatehouse::domain::UserKind::Staff,
                    5,
                )],
                owner_password: Some("the owner's long passphrase".into()),
            },
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(gatehouse.run(
        gatehouse::Mode::Serve { workers: false },
        Some(listener),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let mut medians = Vec::new();
    // A busy machine can disturb one round; three rounds get the chance.
    for round in 0..3 {
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for i in 0..200 {
            // Alternating which goes first, so that what one leaves running in the
            // background (a failure's audit event) weighs on both alike.
            let mut pair = [("olivia", &mut known), ("nobody-here", &mut unknown)];
            if i % 2 == 1 {
                pair.reverse();
            }
            for (user, times) in pair {
                let body = serde_json::json!({ "query": LOGIN, "variables": { "u": user, "p": format!("wrong {round} {i}") } });
                let started = Instant::now();
                let answer: serde_json::Value = client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                times.push(started.elapsed());
                assert_eq!(
                    answer["data"]["login"]["userErrors"][0]["code"], "INVALID_CREDENTIALS",
                    "{answer}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        known.sort();
        unknown.sort();
        let (k, u) = (known[100].as_secs_f64(), unknown[100].as_secs_f64());
        eprintln!(
            "login median: known {:.2} ms, unknown {:.2} ms",
            k * 1e3,
            u * 1e3
        );
        if (k - u).abs() < 0.001 {
            return;
        }
        medians.push((k * 1e3, u * 1e3));
    }
    panic!("median known vs unknown (ms), per round: {medians:.2?}");
}
