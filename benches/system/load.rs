//! Driving the server: its process and memory, the database beside it, clients at 1 and
//! 32 at a time, and the JSON line each figure is printed as.

use super::people::{self, Org};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Prints one figure as a JSON line.
pub fn figure(stack: &str, name: &str, values: Value) {
    let mut line = json!({ "stack": stack, "figure": name });
    if let (Some(line), Some(values)) = (line.as_object_mut(), values.as_object()) {
        line.extend(values.clone());
    }
    println!("{line}");
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Prints the median and 99th percentile of `times`.
pub fn latency_figure(stack: &str, name: &str, times: &mut [Duration]) {
    times.sort();
    figure(
        stack,
        name,
        json!({ "count": times.len(), "p50_ms": ms(percentile(times, 0.5)), "p99_ms": ms(percentile(times, 0.99)) }),
    );
}

/// The database, read and written beside the server.
pub enum Sql {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

macro_rules! on_pool {
    ($sql:expr, $pool:ident => $body:expr) => {
        match $sql {
            Sql::Sqlite($pool) => $body,
            Sql::Postgres($pool) => $body,
        }
    };
}

impl Sql {
    pub async fn connect(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else {
            Self::Postgres(sqlx::PgPool::connect(url).await.unwrap())
        }
    }

    /// Every status present: owners active with `hash` as their password (the import
    /// gave it to 65% of the members), and of the active members about 3% made inactive
    /// and 2% locked for a day; the rest stay invited.
    pub async fn set_statuses(&self, hash: &str) {
        let locked = gatehouse::domain::now() + chrono::TimeDelta::days(1);
        on_pool!(self, pool => {
            sqlx::query("UPDATE users SET status = 'ACTIVE', password_hash = $1 WHERE role = 'OWNER'")
                .bind(hash).execute(pool).await.unwrap();
            sqlx::query("UPDATE users SET status = 'INACTIVE', deactivated_at = $1 WHERE status = 'ACTIVE' AND role <> 'OWNER' AND id % 100 BETWEEN 60 AND 62")
                .bind(gatehouse::domain::now()).execute(pool).await.unwrap();
            sqlx::query("UPDATE users SET locked_until = $1 WHERE status = 'ACTIVE' AND role <> 'OWNER' AND id % 100 BETWEEN 63 AND 64")
                .bind(locked).execute(pool).await.unwrap();
        });
        // Owners get their password here: the setup emails their organizations queued
        // are withdrawn (they would otherwise be sent ahead of the measured jobs).
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM job_outbox").execute(pool).await.unwrap();
        });
        if let Sql::Postgres(pool) = self {
            sqlx::query("VACUUM ANALYZE").execute(pool).await.unwrap();
        }
    }

    /// Requests in every status, one of each filed by each organization's owner (a
    /// license request), each with its event; what a vendor's history holds beside the
    /// requests the benchmark files.
    pub async fn seed_requests(&self) {
        let statuses = [
            "SUBMITTED",
            "PENDING_APPROVAL",
            "APPROVED",
            "APPLIED",
            "REJECTED",
            "CANCELLED",
            "EXPIRED",
            "FAILED",
        ]
        .map(|s| format!("SELECT '{s}' AS status"))
        .join(" UNION ALL ");
        let requests = format!(
            "INSERT INTO requests (org_id, kind, status, requested_by, product, user_kind, quantity, \
             terms_accepted, failure_reason, created_at, expires_at, updated_at) \
             SELECT u.org_id, 'ADD_LICENSES', s.status, u.id, 'EHR', 'STAFF', 1, TRUE, \
             CASE WHEN s.status = 'FAILED' THEN 'seeded' END, $1, $2, $1 \
             FROM users u CROSS JOIN ({statuses}) s WHERE u.role = 'OWNER'"
        );
        let events = "INSERT INTO request_events (request_id, at, status) \
                      SELECT id, created_at, status FROM requests";
        let (at, expires) = (
            gatehouse::domain::now(),
            gatehouse::domain::now() + chrono::TimeDelta::days(7),
        );
        on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(requests)).bind(at).bind(expires).execute(pool).await.unwrap();
            sqlx::query(events).execute(pool).await.unwrap();
        });
    }

    /// Every user of `org` active, signing in with `hash`; their setup emails withdrawn.
    pub async fn activate(&self, org: gatehouse::domain::OrgId, hash: &str) {
        on_pool!(self, pool => {
            sqlx::query("UPDATE users SET status = 'ACTIVE', password_hash = $1 WHERE org_id = $2")
                .bind(hash).bind(org.0).execute(pool).await.unwrap();
            sqlx::query("DELETE FROM job_outbox").execute(pool).await.unwrap();
        });
    }

    /// Bytes on disk of each table and index.
    pub async fn sizes(&self) -> Vec<(String, i64)> {
        match self {
            Sql::Sqlite(pool) => {
                let by_name = sqlx::query_as(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC",
                )
                .fetch_all(pool)
                .await;
                let whole: (i64,) = sqlx::query_as(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                )
                .fetch_one(pool)
                .await
                .unwrap();
                let mut sizes = by_name.unwrap_or_default();
                sizes.push(("(database file)".into(), whole.0));
                sizes
            }
            Sql::Postgres(pool) => sqlx::query_as(
                "SELECT c.relname::text, pg_relation_size(c.oid) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') ORDER BY 2 DESC",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
        }
    }

    pub async fn owner_username(&self, org: gatehouse::domain::OrgId) -> String {
        let sql = "SELECT username FROM users WHERE org_id = $1 AND role = 'OWNER'";
        on_pool!(self, pool => sqlx::query_scalar(sql).bind(org.0).fetch_one(pool).await.unwrap())
    }

    /// Every organization's id by its name.
    pub async fn organization_ids(&self) -> std::collections::HashMap<String, i64> {
        let sql = "SELECT name, id FROM organizations";
        on_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await.unwrap())
            .into_iter()
            .collect()
    }

    /// Up to `n` members of `org` who can sign in.
    pub async fn active_usernames(&self, org: gatehouse::domain::OrgId, n: i64) -> Vec<String> {
        let sql = "SELECT username FROM users WHERE org_id = $1 AND status = 'ACTIVE' \
                   AND locked_until IS NULL AND role <> 'OWNER' ORDER BY id LIMIT $2";
        on_pool!(self, pool => sqlx::query_scalar(sql).bind(org.0).bind(n).fetch_all(pool).await.unwrap())
    }
}

/// `gatehouse serve` in its own process, with its memory sampled as it runs.
pub struct Server {
    pub url: String,
    /// `/proc/<pid>/status` of the server.
    status_file: String,
    pub client: reqwest::Client,
    child: tokio::process::Child,
    peak_rss_kib: Arc<AtomicU64>,
    peak_anon_kib: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
}

impl Server {
    pub async fn start(database: &str, queue: &str, dir: &std::path::Path) -> Self {
        Self::start_with(database, queue, dir, &["serve"], None).await
    }

    /// `gatehouse` with these arguments (`serve --no-workers` for an API-only node),
    /// sending its emails to `smtp` when given (else to files in `dir`).
    pub async fn start_with(
        database: &str,
        queue: &str,
        dir: &std::path::Path,
        args: &[&str],
        smtp: Option<&str>,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        if let Some(smtp) = smtp {
            command.env("GATEHOUSE_SMTP_URL", smtp);
        }
        let child = command
            .args(args)
            .env("GATEHOUSE_DATABASE_URL", database)
            .env("GATEHOUSE_QUEUE_URL", queue)
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEHOUSE_OUTBOX_DIR", dir.join("outbox"))
            .env("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1")
            .env("GATEHOUSE_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("gatehouse serve");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(128)
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let peak_rss_kib = Arc::new(AtomicU64::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let pid = child.id().unwrap();
        let status_file = format!("/proc/{pid}/status");
        let peak_anon_kib = Arc::new(AtomicU64::new(0));
        let (peak, anon, on, file) = (
            peak_rss_kib.clone(),
            peak_anon_kib.clone(),
            sampling.clone(),
            status_file.clone(),
        );
        std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                peak.fetch_max(status_kib(&file, "VmRSS:"), Ordering::Relaxed);
                anon.fetch_max(status_kib(&file, "RssAnon:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            url: format!("{base}/graphql"),
            status_file,
            client,
            child,
            peak_rss_kib,
            peak_anon_kib,
            sampling,
        }
    }

    /// The server's peak resident memory since the last call, in MiB: all of it, and
    /// its own (anonymous) memory without the pages of database files it maps.
    pub fn take_peak_rss_mb(&self) -> (f64, f64) {
        let mb = |kib: &AtomicU64| kib.swap(0, Ordering::Relaxed) as f64 / 1024.0;
        (mb(&self.peak_rss_kib), mb(&self.peak_anon_kib))
    }

    /// The CPU time the server has used so far (user, system).
    pub fn cpu(&self) -> (Duration, Duration) {
        cpu_of(&self.status_file.replace("/status", "/stat"))
    }

    /// The server's resident memory now, in MiB.
    pub fn rss_mb(&self) -> f64 {
        status_kib(&self.status_file, "VmRSS:") as f64 / 1024.0
    }

    /// Signs in from an address of its own (the server trusts 127.0.0.1 to name it), so
    /// that the per-address rate limit counts each simulated client apart.
    pub async fn login(&self, username: &str, password: &str) -> String {
        static NEXT_ADDRESS: AtomicU64 = AtomicU64::new(1 << 20);
        let address = NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed);
        try_login(&self.client, &self.url, username, password, address)
            .await
            .expect("sign-in")
    }
}

/// The CPU time (user, system) a process has used so far, from its `/proc/.../stat`.
pub fn cpu_of(stat: &str) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 14th
    // and 15th of the line, in ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        Duration::from_millis(ticks(11) * 10),
        Duration::from_millis(ticks(12) * 10),
    )
}

/// A memory figure of a process's status file, in KiB (0 when gone).
fn status_kib(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.child.start_kill();
    }
}

async fn try_login(
    client: &reqwest::Client,
    url: &str,
    username: &str,
    password: &str,
    n: u64,
) -> Result<String, String> {
    let query = "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { token } }";
    let address = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    let body: Value = client
        .post(url)
        .header("X-Forwarded-For", address)
        .json(&json!({ "query": query, "variables": { "u": username, "p": password } }))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    body["data"]["login"]["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| body.to_string())
}

/// A signed-in owner of one organization, searching it.
pub struct Target {
    pub label: &'static str,
    org: Org,
    url: String,
    token: String,
    client: reqwest::Client,
}

impl Target {
    pub fn new(server: &Server, label: &'static str, org: Org, token: String) -> Arc<Self> {
        Arc::new(Self {
            label,
            org,
            url: server.url.clone(),
            token,
            client: server.client.clone(),
        })
    }
}

/// One GraphQL request as the signed-in `token`: its JSON answer.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Value {
    client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

/// What each request asks.
#[derive(Clone, Copy)]
pub enum Ask {
    /// The floor: the cheapest authenticated query.
    Me,
    /// A page of 20 of the organization's users, with `totalCount` or without.
    Search { with_total: bool },
}

async fn ask(target: &Target, what: Ask, n: usize) -> Duration {
    let (query, variables) = match what {
        Ask::Me => ("query { me { id username } }", json!({})),
        Ask::Search { with_total } => (
            if with_total {
                "query($f: UserFilter) { users(filter: $f, first: 20) { totalCount edges { node { id username displayName email mobile status locked } } } }"
            } else {
                "query($f: UserFilter) { users(filter: $f, first: 20) { edges { node { id username displayName email mobile status locked } } } }"
            },
            json!({ "f": people::filter(&target.org, n) }),
        ),
    };
    let started = Instant::now();
    let body = post(&target.client, &target.url, &target.token, query, variables).await;
    assert!(body.get("errors").is_none(), "{body}");
    started.elapsed()
}

/// One client (latency), then 32 at once for `window` (throughput and latency); returns
/// the rate at 32 clients.
pub async fn measure(
    stack: &str,
    label: &str,
    target: &Arc<Target>,
    window: Duration,
    what: Ask,
) -> f64 {
    let name = match what {
        Ask::Me => "me".to_owned(),
        Ask::Search { with_total: false } => format!("search_{label}"),
        Ask::Search { with_total: true } => format!("search_{label}_total_count"),
    };
    for n in 0..100 {
        ask(target, what, n).await;
    }
    let mut one = Vec::new();
    let deadline = Instant::now() + window;
    for n in 0..2_000 {
        one.push(ask(target, what, n).await);
        if Instant::now() > deadline && n >= 100 {
            break;
        }
    }
    latency_figure(stack, &format!("{name}_1_client"), &mut one);
    let shared = target.clone();
    let (rate, mut times) = at_once(32, window, move |c, n| {
        let target = shared.clone();
        async move { ask(&target, what, c * 100_003 + n).await }
    })
    .await;
    times.sort();
    figure(
        stack,
        &format!("{name}_32_clients"),
        json!({ "per_second": rate, "p50_ms": ms(percentile(&times, 0.5)), "p99_ms": ms(percentile(&times, 0.99)) }),
    );
    rate
}

/// Runs `clients` loops of `step` for `window`; the rate of steps and their times.
async fn at_once<F, Fut>(clients: usize, window: Duration, step: F) -> (f64, Vec<Duration>)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Duration> + Send,
{
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let step = step.clone();
            tokio::spawn(async move {
                let mut times = Vec::new();
                while Instant::now() < deadline {
                    times.push(step(c, times.len()).await);
                }
                times
            })
        })
        .collect();
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await.unwrap());
    }
    (times.len() as f64 / started.elapsed().as_secs_f64(), times)
}

/// Sign-ins refused during the run.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// 32 clients signing in for `window` (each attempt from its own address, no two
/// clients signing the same person in at once), alone and then with 4 others
/// searching the organization meanwhile; returns the sign-ins per second alone.
pub async fn logins(
    stack: &str,
    target: &Arc<Target>,
    usernames: &[String],
    window: Duration,
) -> f64 {
    let usernames = Arc::new(usernames.to_vec());
    let mut alone = 0.0;
    for (round, searchers) in [(0u64, 0), (1, 4)] {
        REFUSED.store(0, Ordering::Relaxed);
        let signing = {
            let (client, url, usernames) =
                (target.client.clone(), target.url.clone(), usernames.clone());
            at_once(32, window, move |c, n| {
                let (client, url, usernames) = (client.clone(), url.clone(), usernames.clone());
                async move {
                    let i = c + 32 * n;
                    let started = Instant::now();
                    let username = &usernames[i % usernames.len()];
                    let signed_in = try_login(
                        &client,
                        &url,
                        username,
                        super::PASSWORD,
                        (round << 18) + i as u64,
                    )
                    .await;
                    if let Err(refusal) = signed_in
                        && REFUSED.fetch_add(1, Ordering::Relaxed) < 3
                    {
                        eprintln!("a sign-in failed: {refusal}");
                    }
                    started.elapsed()
                }
            })
        };
        let searching = {
            let target = target.clone();
            at_once(searchers, window, move |c, n| {
                let target = target.clone();
                async move { ask(&target, Ask::Search { with_total: false }, c * 100_003 + n).await }
            })
        };
        let ((attempts, mut login_times), (_, mut search_times)) = tokio::join!(signing, searching);
        let refused = REFUSED.load(Ordering::Relaxed);
        let rate = attempts * (1.0 - refused as f64 / login_times.len().max(1) as f64);
        login_times.sort();
        let name = if searchers == 0 {
            "logins_32_clients"
        } else {
            "logins_32_clients_with_4_searching"
        };
        figure(
            stack,
            name,
            json!({ "per_second": rate, "refused": refused, "p50_ms": ms(percentile(&login_times, 0.5)), "p99_ms": ms(percentile(&login_times, 0.99)) }),
        );
        if searchers == 0 {
            alone = rate;
        } else {
            latency_figure(stack, "search_during_logins", &mut search_times);
        }
    }
    alone
}

impl Sql {
    /// When each request filed since `since` was filed and applied (`None` while not yet).
    pub async fn request_times(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Vec<(
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    )> {
        let sql = "SELECT created_at, applied_at FROM requests WHERE created_at >= $1";
        on_pool!(self, pool => sqlx::query_as(sql).bind(since).fetch_all(pool).await.unwrap())
    }
}

/// Owners of 32 organizations file license requests at `rate` a second for `window`
/// (an owner's own request is approved as filed); then waits until every one is
/// APPLIED, its emails sent, and reports the requests applied per second from the first
/// filing to the last APPLIED, and the median and 99th percentile of each one's filing
/// → APPLIED. Run at a rate the stack should sustain, so that latency is not a backlog.
pub async fn requests_flow(
    stack: &str,
    server: &Server,
    tokens: Vec<String>,
    sql: &Sql,
    window: Duration,
    rate: f64,
) {
    let query = "mutation($i: RequestLicensesInput!) { requestLicenses(input: $i) { request { id status } userErrors { message } } }";
    let since = gatehouse::domain::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let deadline = Instant::now() + window;
    let mut filing = Vec::new();
    let mut n = 0;
    while Instant::now() < deadline {
        ticks.tick().await;
        let (client, url, token) = (
            server.client.clone(),
            server.url.clone(),
            tokens[n % tokens.len()].clone(),
        );
        n += 1;
        filing.push(tokio::spawn(async move {
            let input =
                json!({ "product": "EHR", "kind": "STAFF", "quantity": 1, "acceptTerms": true });
            let body = post(&client, &url, &token, query, json!({ "i": input })).await;
            assert!(
                body["data"]["requestLicenses"]["request"]["id"].is_string(),
                "{body}"
            );
        }));
    }
    for task in filing {
        task.await.unwrap();
    }
    let filed = n as f64 / window.as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    let times = loop {
        let times = sql.request_times(since).await;
        if times.iter().all(|(_, applied)| applied.is_some()) || Instant::now() > deadline {
            break times;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let applied: Vec<_> = times
        .iter()
        .filter_map(|(filed, applied)| Some((*filed, (*applied)?)))
        .collect();
    let first = applied.iter().map(|(f, _)| *f).min();
    let last = applied.iter().map(|(_, a)| *a).max();
    let span = match (first, last) {
        (Some(first), Some(last)) => (last - first).to_std().unwrap_or_default().as_secs_f64(),
        _ => 0.0,
    };
    let mut latencies: Vec<Duration> = applied
        .iter()
        .map(|(f, a)| (*a - *f).to_std().unwrap_or_default())
        .collect();
    latencies.sort();
    figure(
        stack,
        "filed_to_applied",
        json!({
            "filed_per_second": filed,
            "requests": times.len(),
            "applied": applied.len(),
            "applied_per_second": applied.len() as f64 / span.max(1e-9),
            "p50_ms": latencies.first().map(|_| ms(percentile(&latencies, 0.5))),
            "p99_ms": latencies.first().map(|_| ms(percentile(&latencies, 0.99))),
        }),
    );
}
