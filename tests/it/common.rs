//! Test fixtures: fresh databases on each backend, a served app on port 0, an HTTP client.

use gatehouse::app::App;
use gatehouse::config::Config;
use gatehouse::store::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tempfile::TempDir;

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    _dir: Option<TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name() -> String {
    format!(
        "gh_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
        TestDb {
            url,
            _dir: Some(dir),
        }
    }

    /// A new database on the server named by GATEHOUSE_TEST_POSTGRES_URL. Without that
    /// server the test is skipped, loudly; in CI (CI=true) it fails instead.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL") else {
            if in_ci() {
                panic!(
                    "CI=true but GATEHOUSE_TEST_POSTGRES_URL is not set: the PostgreSQL suite must run in CI"
                );
            }
            skipped("PostgreSQL test (set GATEHOUSE_TEST_POSTGRES_URL or run scripts/test)");
            return None;
        };
        let name = unique_name();
        let pool = sqlx::PgPool::connect(&admin_url)
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .expect("create test database");
        pool.close().await;
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("URL with a database name");
        Some(TestDb {
            url: format!("{base}/{name}"),
            _dir: None,
        })
    }

    /// A single number from a query, such as a COUNT(*).
    pub async fn count(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
        }
    }

    /// Runs raw SQL against the database, as an attacker with database access would.
    pub async fn execute(&self, sql: &str) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query(sql)
                .execute(&pool)
                .await
                .unwrap()
                .rows_affected()
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::query(sql)
                .execute(&pool)
                .await
                .unwrap()
                .rows_affected()
        }
    }
}

/// Settings for tests: cheap argon2 (from config, as in production), a fresh database.
pub fn test_config(db: &TestDb, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("GATEHOUSE_DATABASE_URL".into(), db.url.clone()),
        ("GATEHOUSE_ARGON2_M_KIB".into(), "64".into()),
        ("GATEHOUSE_ARGON2_T".into(), "1".into()),
        ("GATEHOUSE_LISTEN".into(), "127.0.0.1:0".into()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).expect("valid test config")
}

/// The application alone (no server, no workers) on the test database, with the store
/// beneath it for tests that arrange data directly.
pub struct TestApp {
    pub app: App,
    pub store: Arc<dyn Store>,
}

impl std::ops::Deref for TestApp {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

pub async fn test_app(db: &TestDb) -> TestApp {
    let (app, store) = gatehouse::build_app_and_store(test_config(db, &[]))
        .await
        .expect("build app");
    TestApp { app, store }
}

/// What a test holds that reaches both the app and its store: a [`TestApp`] or a
/// [`TestServer`].
pub trait Parts {
    fn app(&self) -> &App;
    fn store(&self) -> &Arc<dyn Store>;
}

impl Parts for TestApp {
    fn app(&self) -> &App {
        &self.app
    }
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

impl Parts for TestServer {
    fn app(&self) -> &App {
        &self.app
    }
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// Says loudly that a suite was skipped, and records it for the test command's summary
/// (the file named by GATEHOUSE_TEST_SKIPS), since the harness hides a passing test's
/// output.
pub fn skipped(what: &str) {
    eprintln!("SKIPPED: {what}");
    if let Some(path) = std::env::var_os("GATEHOUSE_TEST_SKIPS") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{what}");
        }
    }
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// How a test server is set up; the defaults are an SQLite queue and `.eml` files.
#[derive(Default)]
pub struct ServerOptions {
    pub queue_url: Option<String>,
    pub smtp_url: Option<String>,
    /// API only, as `gatehouse serve --no-workers`.
    pub no_workers: bool,
    /// Every job timing at its default (no faster retries or sweeps).
    pub defaults: bool,
    pub env: Vec<(&'static str, String)>,
}

/// A running server on 127.0.0.1:0 with its workers, stopped when dropped.
pub struct TestServer {
    pub app: App,
    pub store: Arc<dyn Store>,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// Holds the queue file and the `.eml` outbox folder.
    pub dir: TempDir,
    pub metrics: gatehouse::metrics::Metrics,
    pub queue: gatehouse_workers::Queue,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(db: &TestDb) -> TestServer {
        Self::start_with(db, ServerOptions::default()).await
    }

    pub async fn start_with(db: &TestDb, options: ServerOptions) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let queue = options
            .queue_url
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("queue.db").display()));
        let outbox = dir.path().join("outbox").display().to_string();
        let mut env: Vec<(&str, String)> = vec![
            ("GATEHOUSE_QUEUE_URL", queue),
            ("GATEHOUSE_OUTBOX_DIR", outbox),
            ("GATEHOUSE_PUBLIC_URL", "https://gatehouse.test".into()),
        ];
        if !options.defaults {
            env.extend(fast_jobs());
        }
        if let Some(smtp) = options.smtp_url {
            env.push(("GATEHOUSE_SMTP_URL", smtp));
        }
        env.extend(options.env);
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let gatehouse = gatehouse::Gatehouse::build(test_config(db, &vars))
            .await
            .expect("build gatehouse");
        let app = gatehouse.app.clone();
        let store = gatehouse.store.clone();
        let metrics = gatehouse.metrics.clone();
        let queue = gatehouse.queue.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mode = gatehouse::Mode::Serve {
            workers: !options.no_workers,
        };
        let task = tokio::spawn(gatehouse.run(mode, Some(listener), async move {
            let _ = stopped.await;
        }));
        TestServer {
            app,
            store,
            addr,
            client: reqwest::Client::new(),
            dir,
            metrics,
            queue,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The folder where emails land when no SMTP server is configured.
    pub fn outbox_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("outbox")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a GraphQL request; returns the status and the JSON body.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&serde_json::json!({
                "query": query, "variables": variables,
            }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// Signs in and returns the bearer token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let (_, body) = self
            .graphql(
                None,
                "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { token userErrors { code message } } }",
                serde_json::json!({ "u": username, "p": password }),
            )
            .await;
        body["data"]["login"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login of {username} failed: {body}"))
            .to_owned()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Job timings for tests: the default outbox relay and queue polling (work is woken, so
/// the defaults must be fast), but retries after a second and a sweep every second, so
/// that tests of retries, reminders and expiry need not wait for the real clock.
pub fn fast_jobs() -> Vec<(&'static str, String)> {
    vec![
        ("GATEHOUSE_JOB_RETRY_BASE", "1s".into()),
        ("GATEHOUSE_JOB_RETRY_MAX", "2s".into()),
        ("GATEHOUSE_SWEEP_INTERVAL", "1s".into()),
    ]
}

pub const OWNER_PASSWORD: &str = "sunrise owner passphrase";

/// Creates an organization whose ACTIVE owner signs in with `OWNER_PASSWORD`.
pub async fn seed_org(
    app: &App,
    name: &str,
    owner: &str,
) -> (gatehouse::domain::Organization, gatehouse::domain::User) {
    use gatehouse::app::directory::organization::CreateOrganization;
    use gatehouse::domain::{Product, UserKind};
    app.directory()
        .create_organization(CreateOrganization {
            name: name.into(),
            owner_username: owner.into(),
            owner_email: format!("{owner}@{}.example", name.to_lowercase().replace(' ', "-")),
            owner_first_name: "Olivia".into(),
            owner_last_name: "Owner".into(),
            owner_kind: UserKind::Staff,
            licenses: vec![
                (Product::Ehr, UserKind::Provider, 5),
                (Product::Ehr, UserKind::Staff, 10),
            ],
            owner_password: Some(OWNER_PASSWORD.into()),
        })
        .await
        .expect("seed organization")
}

/// Expands each listed async test body `fn(TestDb)` into one test per backend.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestDb::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::TestDb::postgres().await else { return };
                    super::$name(db).await;
                }
            )+
        }
    };
}

/// Adds a user to an organization directly through the store (the API for inviting users
/// belongs to the directory tests); with a password the user is ACTIVE.
pub async fn add_user(
    parts: &impl Parts,
    org: gatehouse::domain::OrgId,
    username: &str,
    role: gatehouse::domain::Role,
    password: Option<&str>,
) -> gatehouse::domain::User {
    use gatehouse::domain::{Product, UserKind, now};
    use gatehouse::store::{AuditEntry, NewUser, UserCreation};
    let password_hash = match password {
        Some(p) => Some(
            gatehouse::app::crypto::PasswordHasher::new(parts.app().config().argon2)
                .hash(p)
                .await
                .unwrap(),
        ),
        None => None,
    };
    let at = now();
    let creation = UserCreation {
        user: NewUser {
            org_id: org,
            username: username.into(),
            email: format!("{username}@staff.example"),
            first_name: "Sam".into(),
            last_name: username.into(),
            mobile: None,
            kind: UserKind::Staff,
            role,
            products: vec![Product::Ehr],
            permissions: vec![],
            practice_ids: vec![],
            password_hash,
            encryption_key: vec![1; 32],
            created_at: at,
        },
        audit: AuditEntry::new(org, at, "user.invited"),
        setup_email: None,
    };
    parts
        .store()
        .create_user(creation)
        .await
        .expect("user added")
}

/// The setup token in an emailed link.
pub fn setup_token(text: &str) -> String {
    let start =
        text.find("/account/setup?token=").expect("setup link") + "/account/setup?token=".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

static LOGS: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> =
    std::sync::OnceLock::new();

/// Sends every log line of this test process, at TRACE level, to a buffer.
pub fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    });
}

pub fn captured_logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A graphql-transport-ws client of `/graphql/ws`.
pub struct Subscriber {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Messages `closed_within` passed over, in order.
    pub skipped: Vec<serde_json::Value>,
}

/// How long a test waits for a WebSocket message.
const WS_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Subscriber {
    /// Opens a socket without initialising it.
    pub async fn open(server: &TestServer) -> Subscriber {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/graphql/ws", server.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket handshake");
        Subscriber {
            socket,
            skipped: Vec::new(),
        }
    }

    /// Opens and initialises a socket with the token; the error is what came instead of
    /// the acknowledgement.
    pub async fn connect(server: &TestServer, token: Option<&str>) -> Result<Subscriber, String> {
        let mut subscriber = Self::open(server).await;
        let payload = match token {
            Some(token) => serde_json::json!({ "Authorization": format!("Bearer {token}") }),
            None => serde_json::json!({}),
        };
        subscriber
            .send(serde_json::json!({ "type": "connection_init", "payload": payload }))
            .await;
        match subscriber.next().await {
            Some(message) if message["type"] == "connection_ack" => Ok(subscriber),
            other => Err(format!("{other:?}")),
        }
    }

    pub async fn send(&mut self, message: serde_json::Value) {
        self.send_text(message.to_string()).await;
    }

    /// Sends raw text (which may be anything but JSON).
    pub async fn send_text(&mut self, text: String) {
        use futures_util::SinkExt as _;
        // The server may have closed already; what it said is read by `next`.
        let _ = self
            .socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await;
    }

    /// Runs one operation and returns its first `next` payload (or the error message).
    pub async fn run(&mut self, id: &str, query: &str) -> serde_json::Value {
        self.send(
            serde_json::json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
        )
        .await;
        loop {
            let message = self.next().await.expect("an answer on the socket");
            // Other operations' messages, and the completion of earlier ones, pass by.
            if message["id"] == id && message["type"] != "complete" {
                return message;
            }
        }
    }

    /// The next JSON message, or `None` when the connection closed.
    pub async fn next(&mut self) -> Option<serde_json::Value> {
        use futures_util::StreamExt as _;
        loop {
            let message = tokio::time::timeout(WS_WAIT, self.socket.next())
                .await
                .expect("a message in time")?;
            match message.ok()? {
                tokio_tungstenite::tungstenite::Message::Text(text) => {
                    return Some(serde_json::from_str(&text).unwrap());
                }
                tokio_tungstenite::tungstenite::Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Waits for the server to close the connection, skipping other messages; the close
    /// code, or `None` when it stayed open that long (or closed without a code).
    pub async fn closed_within(&mut self, wait: std::time::Duration) -> Option<u16> {
        use futures_util::StreamExt as _;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match message {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                    self.skipped.push(serde_json::from_str(&text).unwrap());
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}
