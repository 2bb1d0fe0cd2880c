//! A page of users costs a constant number of SQL statements, however many users it
//! holds: related objects load in batches. Its own test binary, so that the statements
//! it counts (every `sqlx::query` event of the process) are its own.

use gatehouse::app::directory::organization::CreateOrganization;
use gatehouse::domain::{Product, Role, UserKind, now};
use gatehouse::store::{AuditEntry, NewUser, UserCreation};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct CountStatements;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

const PAGE: &str = "query($n: Int, $f: UserFilter) { users(first: $n, filter: $f) { totalCount edges { node { username products permissions practices { name } organization { name } } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_users_costs_a_constant_number_of_statements() {
    let debug = std::env::var_os("SHOW_SQL").map(|_| {
        tracing_subscriber::fmt::layer().with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("sqlx::query", tracing::Level::DEBUG),
        )
    });
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(CountStatements)
            .with(debug),
    )
    .unwrap();
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
        ("GATEHOUSE_ARGON2_M_KIB", "64".into()),
        ("GATEHOUSE_ARGON2_T", "1".into()),
    ]);
    let config = gatehouse::config::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let gatehouse = gatehouse::Gatehouse::build(config).await.unwrap();
    let app = gatehouse.app.clone();
    let (org, _) = app
        .directory()
        .create_organization(CreateOrganization {
            name: "Big".into(),
            owner_username: "bigboss".into(),
            owner_email: "boss@big.example".into(),
            owner_first_name: "O".into(),
            owner_last_name: "Owner".into(),
            owner_kind: UserKind::Staff,
            licenses: vec![
                (Product::Ehr, UserKind::Staff, 200),
                (Product::Billing, UserKind::Staff, 200),
            ],
            owner_password: Some("the owner's passphrase".into()),
        })
        .await
        .unwrap();
    let practice = gatehouse
        .store
        .create_practice(
            org.id,
            "Main",
            AuditEntry::new(org.id, now(), "practice.created"),
        )
        .await
        .unwrap();
    for i in 0..120 {
        let at = now();
        let user = NewUser {
            org_id: org.id,
            username: format!("user{i:03}"),
            email: format!("user{i:03}@big.example"),
            first_name: "Pat".into(),
            last_name: format!("Number {i:03}"),
            mobile: None,
            kind: UserKind::Staff,
            role: Role::Member,
            products: vec![Product::Ehr, Product::Billing],
            permissions: vec![gatehouse::domain::Permission::Scheduling],
            practice_ids: vec![practice.id],
            password_hash: None,
            encryption_key: vec![0; 32],
            created_at: at,
        };
        let creation = UserCreation {
            user,
            audit: AuditEntry::new(org.id, at, "user.invited"),
            setup_email: None,
        };
        gatehouse.store.create_user(creation).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gatehouse.run(
        gatehouse::Mode::Serve { workers: false },
        Some(listener),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let login = serde_json::json!({ "query": "mutation { login(input: {username: \"bigboss\", password: \"the owner's passphrase\"}) { token } }" });
    let body: serde_json::Value = client
        .post(format!("http://{addr}/graphql"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["data"]["login"]["token"].as_str().unwrap().to_owned();

    let mut counts = Vec::new();
    // Two filters, so that each page counts its total afresh.
    for (size, filter) in [(5, json!({})), (100, json!({ "kind": "STAFF" }))] {
        let before = STATEMENTS.load(Ordering::SeqCst);
        let request = json!({ "query": PAGE, "variables": { "n": size, "f": filter } });
        let body: serde_json::Value = client
            .post(format!("http://{addr}/graphql"))
            .bearer_auth(&token)
            .json(&request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let edges = body["data"]["users"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(edges.len(), size);
        assert_eq!(
            edges[size - 1]["node"]["practices"],
            serde_json::json!([{ "name": "Main" }])
        );
        assert_eq!(
            edges[size - 1]["node"]["products"],
            serde_json::json!(["BILLING", "EHR"])
        );
        counts.push(STATEMENTS.load(Ordering::SeqCst) - before);
    }
    assert!(counts[0] > 0, "statements were counted");
    // The same statements for 5 users as for 100; on a loaded machine a batch may close
    // (1 ms) before every key of a page has joined it, so allow one batch to split.
    assert!(
        counts[1] <= counts[0] + 1,
        "5 users cost {} statements, 100 cost {}",
        counts[0],
        counts[1]
    );
    assert!(counts[1] <= 9, "a page costs {} statements", counts[1]);

    // The worst documents the limits accept (30 aliases, complexity up to 1000) run a few dozen statements, not thousands.
    let owners = "organization { owners { id organization { owners { id } } } practices { name } licenses { total } }";
    let worst = [
        format!("{{ {} }}", (0..30).map(|i| format!("a{i}: me {{ {owners} }} ")).collect::<String>()),
        format!("{{ {} }}", (0..30).map(|i| format!("a{i}: users(first: 30) {{ edges {{ node {{ id }} }} }} ")).collect::<String>()),
        "{ users(first: 100) { totalCount edges { node { id practices { name } organization { owners { id organization { owners { id } } } } } } } }".to_owned(),
        format!("{{ {} }}", (0..10).map(|i| format!("a{i}: users(first: 30, filter: {{search: \"number {i}\"}}) {{ totalCount edges {{ node {{ id products practices {{ name }} organization {{ owners {{ id }} }} }} }} }} ")).collect::<String>()),
    ];
    for document in worst {
        let before = STATEMENTS.load(Ordering::SeqCst);
        let body: serde_json::Value = client
            .post(format!("http://{addr}/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": document }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["errors"],
            serde_json::Value::Null,
            "accepted: {body:.400}"
        );
        let ran = STATEMENTS.load(Ordering::SeqCst) - before;
        assert!(ran <= 50, "{ran} statements for {document}");
    }
    // Past the limits: refused before any statement.
    let too_much = format!(
        "{{ {} }}",
        (0..30)
            .map(|i| format!("a{i}: users(first: 100) {{ edges {{ node {{ id organization {{ owners {{ id }} }} }} }} }} "))
            .collect::<String>()
    );
    let before = STATEMENTS.load(Ordering::SeqCst);
    let body: serde_json::Value = client
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": too_much }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
        "{body:.300}"
    );
    // Only the session was looked up.
    assert!(STATEMENTS.load(Ordering::SeqCst) - before <= 2);
}
