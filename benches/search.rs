//! Directory search at scale, over HTTP, as SPEC "Scale" measures it: one organization of
//! many users (default 100,000), searched by name fragments, username and email starts and
//! mobile endings, first by one client (latency), then by 32 at once (throughput).
//!
//! `cargo bench --bench search` (SQLite); with GATEHOUSE_BENCH_POSTGRES_URL set to an
//! empty database, on PostgreSQL too. BENCH_USERS and BENCH_SECONDS change the size and
//! the length of the concurrent run; BENCH_SQLITE_URL (a seeded database) and
//! BENCH_POSTGRES_SEEDED skip seeding. Each database is measured without and with
//! `totalCount`. Under `cargo test` it runs a small smoke version.

use gatehouse::app::directory::organization::CreateOrganization;
use gatehouse::domain::{Product, Role, UserKind, now};
use gatehouse::store::{AuditEntry, NewUser, UserCreation};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Many threads allocate small buffers at once (requests, rows, JSON): an allocator
/// made for that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FIRST: &[&str] = &[
    "Ana",
    "Bruno",
    "Chloé",
    "Dmitri",
    "Élodie",
    "Fatima",
    "Gabriel",
    "Hana",
    "Ibrahim",
    "Jürgen",
    "Kaito",
    "Lucía",
    "Mateo",
    "Nadia",
    "Olivia",
    "Pedro",
    "Quinn",
    "Renée",
    "Sofia",
    "Tomás",
    "Uma",
    "Valentina",
    "William",
    "Ximena",
    "Yusuf",
    "Zoë",
    "Amelia",
    "Benjamin",
    "Camila",
    "Daniel",
    "Emma",
    "Felipe",
    "Grace",
    "Hugo",
    "Isabella",
    "Jack",
];
const LAST: &[&str] = &[
    "García",
    "Smith",
    "Nguyễn",
    "Müller",
    "Rossi",
    "Kowalski",
    "O'Brien",
    "Johansson",
    "Papadopoulos",
    "Silva",
    "Kim",
    "Patel",
    "Hernández",
    "Dubois",
    "Novak",
    "Yamamoto",
    "Andersen",
    "Fischer",
    "Martínez",
    "Cohen",
    "Singh",
    "Okafor",
    "Ivanova",
    "Lefèvre",
    "Brown",
    "Wilson",
    "Taylor",
    "Lopez",
    "Moreau",
    "Schmidt",
    "Costa",
    "Haddad",
    "Jensen",
    "Kovač",
    "Larsen",
    "Mendoza",
    "Nakamura",
    "Ortiz",
    "Petrov",
    "Quintero",
    "Ramírez",
    "Sato",
    "Tanaka",
];

fn person(i: usize) -> (String, String, String) {
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / FIRST.len()) % LAST.len()];
    // A suffix keeps the names varied beyond the lists, as real directories are.
    let last = if i >= FIRST.len() * LAST.len() {
        format!("{last}-{}", i / (FIRST.len() * LAST.len()))
    } else {
        last.to_owned()
    };
    (first.to_owned(), last, format!("user{i:06}"))
}

/// The first `n` characters of `text`.
fn prefix(text: &str, n: usize) -> &str {
    text.char_indices()
        .nth(n)
        .map_or(text, |(end, _)| &text[..end])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Bench {
    query: &'static str,
    url: String,
    token: String,
    client: reqwest::Client,
    users: usize,
}

/// A page of 20, as a directory screen asks for it; with `totalCount` or without.
const QUERY_WITH_TOTAL: &str = "query($f: UserFilter) { users(filter: $f, first: 20) { totalCount edges { node { id username displayName email mobile status locked } } } }";
/// The floor: an authenticated query that reads one user (BENCH_BASELINE=1).
const BASELINE: &str = "query { me { id username } }";
const QUERY: &str = "query($f: UserFilter) { users(filter: $f, first: 20) { edges { node { id username displayName email mobile status locked } } } }";

/// The filters of `Bench::filter`, in the order it takes them.
const FILTER_KINDS: [&str; 6] = [
    "name",
    "search first+last",
    "username",
    "email",
    "mobile",
    "search+status",
];

impl Bench {
    /// The filters a front desk types, drawn from the directory itself.
    fn filter(&self, n: usize) -> serde_json::Value {
        let i = (n * 7919) % self.users;
        let (first, last, username) = person(i);
        match n % FILTER_KINDS.len() {
            0 => serde_json::json!({ "name": prefix(&last, 4) }),
            1 => {
                serde_json::json!({ "search": format!("{} {}", first.to_lowercase(), prefix(&last.to_lowercase(), 3)) })
            }
            2 => serde_json::json!({ "username": &username[..8] }),
            3 => serde_json::json!({ "email": format!("{username}@") }),
            4 => serde_json::json!({ "mobile": format!("{:04}", i % 10_000) }),
            _ => serde_json::json!({ "search": prefix(&first, 3), "status": "INVITED" }),
        }
    }

    async fn search(&self, n: usize) -> Duration {
        let started = Instant::now();
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "query": self.query, "variables": { "f": self.filter(n) } }))
            .send()
            .await
            .expect("request");
        let body: serde_json::Value = response.json().await.expect("JSON");
        assert!(body.get("errors").is_none(), "{body}");
        started.elapsed()
    }
}

/// Seeds (unless `seeded`) and measures one database.
async fn run(label: &str, database_url: String, users: usize, seconds: u64, seeded: bool) {
    let dir = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("GATEHOUSE_DATABASE_URL", database_url),
        (
            "GATEHOUSE_QUEUE_URL",
            format!("sqlite://{}", dir.path().join("queue.db").display()),
        ),
        ("GATEHOUSE_ARGON2_M_KIB", "64".into()),
        ("GATEHOUSE_ARGON2_T", "1".into()),
        ("GATEHOUSE_LOG", "warn".into()),
    ]);
    let config = gatehouse::config::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let gatehouse = gatehouse::Gatehouse::build(config)
        .await
        .expect("gatehouse");
    if !seeded {
        seed(&gatehouse, users).await;
        eprintln!("{label}: {users} users loaded");
    }
    // Production runs this every minute; a freshly seeded SQLite log is large.
    gatehouse.store.compact().await.expect("compact");
    serve_and_measure(label, gatehouse, users, seconds).await;
}

async fn seed(gatehouse: &gatehouse::Gatehouse, users: usize) {
    let (org, _) = gatehouse
        .app
        .directory()
        .create_organization(CreateOrganization {
            name: "Benchmark Health".into(),
            owner_username: "bench.owner".into(),
            owner_email: "owner@bench.example".into(),
            owner_first_name: "Bench".into(),
            owner_last_name: "Owner".into(),
            owner_kind: UserKind::Staff,
            licenses: vec![(Product::Ehr, UserKind::Staff, users as i32 + 1)],
            owner_password: Some("the benchmark passphrase".into()),
        })
        .await
        .expect("organization");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let store = gatehouse.store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..users).step_by(4) {
                let (first, last, username) = person(i);
                let at = now();
                let user = NewUser {
                    org_id: org.id,
                    email: format!("{username}@bench.example"),
                    username,
                    first_name: first,
                    last_name: last,
                    mobile: Some(format!("+1503{:07}", i % 10_000_000)),
                    kind: UserKind::Staff,
                    role: Role::Member,
                    products: vec![Product::Ehr],
                    permissions: vec![],
                    practice_ids: vec![],
                    password_hash: None,
                    encryption_key: vec![0; 32],
                    created_at: at,
                };
                let audit = AuditEntry::new(org.id, at, "user.invited");
                store
                    .create_user(UserCreation {
                        user,
                        audit,
                        setup_email: None,
                    })
                    .await
                    .expect("user");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!("seeded in {:.1}s", started.elapsed().as_secs_f64());
}

async fn serve_and_measure(
    label: &str,
    gatehouse: gatehouse::Gatehouse,
    users: usize,
    seconds: u64,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gatehouse.run(
        gatehouse::Mode::Serve { workers: false },
        Some(listener),
        std::future::pending(),
    ));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let url = format!("http://{addr}/graphql");
    let login = serde_json::json!({ "query": "mutation { login(input: {username: \"bench.owner\", password: \"the benchmark passphrase\"}) { token } }" });
    let body: serde_json::Value = client
        .post(&url)
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["data"]["login"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut queries = vec![
        (label.to_owned(), QUERY),
        (format!("{label} with totalCount"), QUERY_WITH_TOTAL),
    ];
    if std::env::var_os("BENCH_BASELINE").is_some() {
        queries.insert(0, (format!("{label} baseline (me)"), BASELINE));
    }
    for (label, query) in queries {
        let bench = std::sync::Arc::new(Bench {
            query,
            url: url.clone(),
            token: token.clone(),
            client: client.clone(),
            users,
        });
        measure(&label, bench, seconds).await;
    }
}

async fn measure(label: &str, bench: std::sync::Arc<Bench>, seconds: u64) {
    // One client: latency.
    for n in 0..200 {
        bench.search(n).await;
    }
    let mut one: Vec<Duration> = Vec::new();
    let mut by_kind: Vec<Vec<Duration>> = vec![Vec::new(); FILTER_KINDS.len()];
    for n in 0..2000.min(bench.users * 4) {
        let took = bench.search(n).await;
        one.push(took);
        by_kind[n % FILTER_KINDS.len()].push(took);
    }
    one.sort();
    let kinds: Vec<String> = FILTER_KINDS
        .iter()
        .zip(&mut by_kind)
        .map(|(kind, times)| {
            times.sort();
            format!("{kind} {:.2}", percentile(times, 0.99).as_secs_f64() * 1e3)
        })
        .collect();
    println!("{label}: 1 client, p99 ms by filter: {}", kinds.join(", "));
    println!(
        "{label}: 1 client, {} searches: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        one.len(),
        percentile(&one, 0.50).as_secs_f64() * 1e3,
        percentile(&one, 0.99).as_secs_f64() * 1e3,
        one.last().unwrap().as_secs_f64() * 1e3
    );

    // 32 clients: throughput.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut clients = Vec::new();
    for c in 0..32 {
        let bench = bench.clone();
        clients.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut n = c * 100_003;
            while Instant::now() < deadline {
                times.push(bench.search(n).await);
                n += 1;
            }
            times
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for client in clients {
        all.extend(client.await.unwrap());
    }
    all.sort();
    println!(
        "{label}: 32 clients, {seconds} s: {:.0} searches/s, p50 {:.2} ms, p99 {:.2} ms",
        all.len() as f64 / seconds as f64,
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3
    );
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let users: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 300 });
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 20 } else { 1 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // BENCH_SQLITE_URL names an already seeded database to measure again.
        match std::env::var("BENCH_SQLITE_URL") {
            Ok(url) => run("sqlite", url, users, seconds, true).await,
            Err(_) => {
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                run("sqlite", url, users, seconds, false).await;
            }
        }
        if let Ok(url) = std::env::var("GATEHOUSE_BENCH_POSTGRES_URL") {
            let seeded = std::env::var("BENCH_POSTGRES_SEEDED").is_ok();
            run("postgres", url, users, seconds, seeded).await;
        }
    });
}
