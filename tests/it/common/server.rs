//! A served Gatehouse on 127.0.0.1:0 with its workers, and an HTTP client for it.

use super::*;
use gatehouse::app::App;
use gatehouse::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tempfile::TempDir;

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
    /// The server's clock: a test moves it forward to see a default lifetime run out.
    pub clock: gatehouse::domain::clock::Clock,
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
        let config = test_config(db, &vars);
        let clock = config.clock.clone();
        let gatehouse = gatehouse::Gatehouse::build(config)
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
            clock,
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

/// The setup token in an emailed link.
pub fn setup_token(text: &str) -> String {
    let start =
        text.find("/account/setup?token=").expect("setup link") + "/account/setup?token=".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}
