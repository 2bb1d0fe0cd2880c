//! Live request status at scale: owner dashboards subscribed to `requestUpdated` over
//! authenticated WebSockets, by default 10,000 on a `gatehouse serve` node (API and
//! workers) and, on PostgreSQL, 9,000 on a second API node (`serve --no-workers`) of the
//! same database, while an owner files license requests that the workers apply. Reports, per node, the
//! subscribers held, the server's memory per subscriber, and how long after the APPLIED
//! commit every subscriber had the update (p50, p99, max), one JSON line per figure.
//!
//! `cargo bench --bench subscribers` runs SQLite with the SQLite queue; with
//! GATEHOUSE_BENCH_POSTGRES_URL (an empty database) and GATEHOUSE_BENCH_REDIS_URL set, the
//! production stack too. BENCH_SUBSCRIBERS and BENCH_SECOND_NODE set the subscribers of
//! each node (the second node's default stays under this machine's 20,000 open files a
//! process, the load process holding both nodes' sockets), BENCH_UPDATES the requests
//! filed, one every BENCH_UPDATE_EVERY_MS; BENCH_ONLY (`sqlite` or `postgres`) runs one
//! stack. Under `cargo test` it runs a small smoke version.

use futures_util::{SinkExt as _, StreamExt as _};
use gatehouse::app::directory::organization::CreateOrganization;
use gatehouse::domain::{Product, Role, UserKind, now};
use gatehouse::store::{AuditEntry, NewUser, UserCreation, UserImport};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// The system benchmark's server, database and figure helpers, in part.
#[allow(dead_code)]
#[path = "system/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "system/people.rs"]
mod people;

use load::{Server, figure};

const PASSWORD: &str = "the benchmark passphrase";
/// Connections one user may hold on a node (GATEHOUSE_WS_MAX_PER_USER's default).
const PER_USER: usize = 20;
/// Sockets opened at once while connecting.
const OPENING: usize = 100;

struct Settings {
    first: usize,
    second: usize,
    updates: usize,
    every: Duration,
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let number = |name: &str, bench: usize, smoke: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if benching { bench } else { smoke })
    };
    let settings = Settings {
        first: number("BENCH_SUBSCRIBERS", 10_000, 40),
        second: number("BENCH_SECOND_NODE", 9_000, 20),
        updates: number("BENCH_UPDATES", 10, 2),
        every: Duration::from_millis(number("BENCH_UPDATE_EVERY_MS", 2_000, 500) as u64),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var("BENCH_ONLY").map_or(true, |only| only == "sqlite") {
            let sqlite = format!("sqlite://{}", dir.path().join("live.db").display());
            let queue = format!("sqlite://{}", dir.path().join("queue.db").display());
            run("sqlite", &settings, sqlite, queue, dir.path()).await;
        }
        let postgres = std::env::var("GATEHOUSE_BENCH_POSTGRES_URL");
        let redis = std::env::var("GATEHOUSE_BENCH_REDIS_URL");
        if let (Ok(postgres), Ok(redis)) = (postgres, redis)
            && std::env::var("BENCH_ONLY").map_or(true, |only| only == "postgres")
        {
            run("postgres", &settings, postgres, redis, dir.path()).await;
        }
    });
}

async fn run(
    stack: &'static str,
    settings: &Settings,
    database: String,
    queue: String,
    dir: &std::path::Path,
) {
    let users = settings.first.max(settings.second).div_ceil(PER_USER);
    let (owner, usernames) = seed(&database, &queue, users).await;
    let first = Server::start(&database, &queue, dir).await;
    // A second API node is the production stack's: on SQLite, a node without the workers
    // in its process reads their changes from the table once a second.
    let second = match stack {
        "postgres" => {
            Some(Server::start_with(&database, &queue, dir, &["serve", "--no-workers"], None).await)
        }
        _ => None,
    };
    let owner_token = first.login(&owner, PASSWORD).await;
    let tokens: Vec<String> = futures_util::stream::iter(&usernames)
        .map(|username| first.login(username, PASSWORD))
        .buffered(4)
        .collect()
        .await;
    let mut nodes = Vec::new();
    let mut servers = vec![("first", &first, settings.first)];
    if let Some(second) = &second {
        servers.push(("second", second, settings.second));
    }
    for (label, server, count) in servers {
        let before = server.rss_mb();
        let started = Instant::now();
        let node = Node::connect(server, &tokens, count).await;
        // The last subscriptions reach their feeds.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = server.rss_mb();
        figure(
            stack,
            "subscribers",
            json!({
                "node": label,
                "subscribers": count,
                "connect_seconds": started.elapsed().as_secs_f64(),
                "rss_before_mb": before,
                "rss_after_mb": after,
                "kib_per_subscriber": (after - before) * 1024.0 / count.max(1) as f64,
            }),
        );
        nodes.push((label, server, node));
    }
    let query = "mutation($i: RequestLicensesInput!) { requestLicenses(input: $i) { request { id } userErrors { message } } }";
    let cpu_before: Vec<_> = nodes.iter().map(|(_, server, _)| server.cpu()).collect();
    let load_before = own_cpu();
    let mut ticks = tokio::time::interval(settings.every);
    for _ in 0..settings.updates {
        ticks.tick().await;
        let input =
            json!({ "product": "EHR", "kind": "STAFF", "quantity": 1, "acceptTerms": true });
        let body = load::post(
            &first.client,
            &first.url,
            &owner_token,
            query,
            json!({ "i": input }),
        )
        .await;
        assert!(
            body["data"]["requestLicenses"]["request"]["id"].is_string(),
            "{body}"
        );
    }
    let nodes_count = nodes.len();
    let mut all_messages = 0.0;
    for ((label, server, node), (user_before, system_before)) in nodes.into_iter().zip(cpu_before) {
        let expected = node.subscribers * settings.updates;
        let times = node.wait_for(expected, Duration::from_secs(120)).await;
        // What each update sent to a subscriber cost the server (three per request:
        // SUBMITTED, APPROVED, APPLIED), beside the requests' own work.
        let (user, system) = server.cpu();
        let messages = (3 * expected).max(1) as f64;
        all_messages += messages;
        let per_message = |after: Duration, before: Duration| {
            after.saturating_sub(before).as_secs_f64() * 1e6 / messages
        };
        figure(
            stack,
            "server_cpu_per_update_sent",
            json!({
                "node": label,
                "user_us": per_message(user, user_before),
                "system_us": per_message(system, system_before),
            }),
        );
        let mut sorted = times.clone();
        sorted.sort();
        let at = |p: f64| {
            sorted
                .first()
                .map(|_| load::ms(load::percentile(&sorted, p)))
        };
        figure(
            stack,
            "delivery_after_applied",
            json!({
                "node": label,
                "subscribers": node.subscribers,
                "expected": expected,
                "delivered": sorted.len(),
                "p50_ms": at(0.5),
                "p99_ms": at(0.99),
                "max_ms": sorted.last().map(|d| load::ms(*d)),
                "server_peak_rss_mb": server.take_peak_rss_mb().0,
            }),
        );
        assert_eq!(sorted.len(), expected, "every subscriber saw every APPLIED");
    }
    // The subscribers' side shares the cores: what reading each update cost it.
    let load = own_cpu().saturating_sub(load_before);
    figure(
        stack,
        "load_process_cpu_per_update_read",
        json!({ "nodes": nodes_count, "us": load.as_secs_f64() * 1e6 / all_messages.max(1.0) }),
    );
}

/// The CPU time (user and system) this process has used so far.
fn own_cpu() -> Duration {
    let (user, system) = load::cpu_of("/proc/self/stat");
    user + system
}

/// An organization whose owner files, and `users` admins (who see every request) to
/// subscribe; returns the owner's username and the admins'.
async fn seed(database: &str, queue: &str, users: usize) -> (String, Vec<String>) {
    let vars: HashMap<&str, String> = HashMap::from([
        ("GATEHOUSE_DATABASE_URL", database.to_owned()),
        ("GATEHOUSE_QUEUE_URL", queue.to_owned()),
        ("GATEHOUSE_LOG", "warn".into()),
    ]);
    let config = gatehouse::config::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let hasher = gatehouse::app::crypto::PasswordHasher::new(config.argon2);
    let gatehouse = gatehouse::Gatehouse::build(config)
        .await
        .expect("gatehouse");
    let seats = users as i32 + 1_000;
    let (org, _) = gatehouse
        .app
        .directory()
        .create_organization(CreateOrganization {
            name: "Dashboards".into(),
            owner_username: "dash.owner".into(),
            owner_email: "owner@dashboards.example".into(),
            owner_first_name: "Olivia".into(),
            owner_last_name: "Owner".into(),
            owner_kind: UserKind::Staff,
            licenses: vec![(Product::Ehr, UserKind::Staff, seats)],
            owner_password: None,
        })
        .await
        .expect("organization");
    let at = now();
    let usernames: Vec<String> = (0..users).map(|k| format!("dash{k:05}")).collect();
    let creations = usernames
        .iter()
        .map(|username| {
            let user = NewUser {
                org_id: org.id,
                username: username.clone(),
                email: format!("{username}@dashboards.example"),
                first_name: "Dana".into(),
                last_name: format!("Board {username}"),
                mobile: None,
                kind: UserKind::Staff,
                role: Role::Admin,
                products: vec![Product::Ehr],
                permissions: vec![],
                practice_ids: vec![],
                password_hash: None,
                encryption_key: vec![0; 32],
                created_at: at,
            };
            let creation = UserCreation {
                user,
                audit: AuditEntry::new(org.id, at, "user.invited"),
                setup_email: None,
            };
            (creation, Vec::new())
        })
        .collect();
    let import = UserImport {
        org_id: org.id,
        new_practices: Vec::new(),
        users: creations,
    };
    gatehouse
        .store
        .import_users(import, &|_| {})
        .await
        .expect("import");
    let hash = hasher.hash(PASSWORD).await.unwrap();
    load::Sql::connect(database)
        .await
        .activate(org.id, &hash)
        .await;
    ("dash.owner".into(), usernames)
}

/// The subscribers of one node, and when each APPLIED reached each of them.
struct Node {
    subscribers: usize,
    delays: Arc<Mutex<Vec<Duration>>>,
}

impl Node {
    /// Opens `count` subscriptions, `PER_USER` per signed-in user.
    async fn connect(server: &Server, tokens: &[String], count: usize) -> Node {
        let ws = server.url.replace("http://", "ws://") + "/ws";
        let delays = Arc::new(Mutex::new(Vec::new()));
        let opened = futures_util::stream::iter(0..count)
            .map(|n| {
                let (ws, token, delays) =
                    (ws.clone(), tokens[n / PER_USER].clone(), delays.clone());
                async move { subscribe(&ws, &token, delays).await }
            })
            .buffer_unordered(OPENING)
            .collect::<Vec<_>>()
            .await;
        for result in opened {
            result.expect("a subscriber connects");
        }
        Node {
            subscribers: count,
            delays,
        }
    }

    /// The delays once `expected` have arrived (or `within` has passed).
    async fn wait_for(&self, expected: usize, within: Duration) -> Vec<Duration> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.delays.lock().unwrap().clone();
            if got.len() >= expected || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One dashboard: connects, initialises with its token, subscribes, and from then on
/// notes how long after `appliedAt` each APPLIED update arrived.
async fn subscribe(ws: &str, token: &str, delays: Arc<Mutex<Vec<Duration>>>) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let mut request = ws.into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    // Small buffers: this process holds every node's subscribers.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|e| e.to_string())?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    match socket.next().await {
        Some(Ok(Message::Text(text))) if text.contains("connection_ack") => {}
        other => return Err(format!("no acknowledgement: {other:?}")),
    }
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription { requestUpdated { id status appliedAt } }" } });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // Reading answers the server's pings too.
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let arrived = chrono::Utc::now();
            // Only APPLIED is timed: the rest is not parsed, to keep this process light.
            if !text.contains("APPLIED") {
                continue;
            }
            let Ok(update) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let request = &update["payload"]["data"]["requestUpdated"];
            if request["status"] != "APPLIED" {
                continue;
            }
            let applied = request["appliedAt"]
                .as_str()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
            if let Some(applied) = applied {
                let delay = (arrived - applied.with_timezone(&chrono::Utc))
                    .to_std()
                    .unwrap_or_default();
                delays.lock().unwrap().push(delay);
            }
        }
    });
    Ok(())
}
