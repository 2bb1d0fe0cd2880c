//! Fresh databases for one test, on each backend, and the settings that use them.

use super::*;
use gatehouse::config::Config;
use std::collections::HashMap;
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

    /// Ends every other connection to this PostgreSQL database, as a restart or a
    /// failover of the server would; how many it ended.
    pub async fn drop_connections(&self) -> i64 {
        self.count("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            .await
    }

    /// How the database would run `sql`: SQLite's query plan, or PostgreSQL's with
    /// sequential scans discouraged (so that a tiny test table does not hide whether an
    /// index could serve it).
    pub async fn plan(&self, sql: &str) -> String {
        let explain = |prefix: &str| sqlx::AssertSqlSafe(format!("{prefix} {sql}"));
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(explain("EXPLAIN QUERY PLAN"))
                .fetch_all(&pool)
                .await
                .unwrap();
            rows.into_iter()
                .map(|row| row.3)
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            let mut connection = sqlx::PgPool::connect(&self.url)
                .await
                .unwrap()
                .acquire()
                .await
                .unwrap();
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *connection)
                .await
                .unwrap();
            let rows: Vec<String> = sqlx::query_scalar(explain("EXPLAIN"))
                .fetch_all(&mut *connection)
                .await
                .unwrap();
            rows.join("\n")
        }
    }

    /// On PostgreSQL, another client's open transaction that has run `sql` (`$1` bound to
    /// `id`), holding the rows it wrote until released: writes started meanwhile queue
    /// behind it and then start together. `None` on SQLite (one writer at a time anyway).
    pub async fn hold(&self, sql: &'static str, id: i64) -> Option<Held> {
        use sqlx::Connection as _;
        if self.url.starts_with("sqlite:") {
            return None;
        }
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query(sql).bind(id).execute(&mut conn).await.unwrap();
        Some(Held(conn))
    }

    /// Another process's write transaction that has run `sql` (`$1` bound to `id`) and
    /// stays open until committed: on SQLite it holds the database's one write lock (as a
    /// large import does while it writes), on PostgreSQL the rows it wrote.
    pub async fn begin_writing(&self, sql: &'static str, id: i64) -> Writing {
        use sqlx::Connection as _;
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(sql).bind(id).execute(&mut conn).await.unwrap();
            Writing::Sqlite(conn)
        } else {
            Writing::Postgres(self.hold(sql, id).await.expect("PostgreSQL").0)
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

/// Rows held by another client's transaction (see [`TestDb::hold`]).
pub struct Held(sqlx::PgConnection);

impl Held {
    /// Lets the writers queued behind it arrive, then commits.
    pub async fn release_after_half_a_second(mut self) {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        sqlx::query("COMMIT").execute(&mut self.0).await.unwrap();
    }
}

/// An open write transaction of another process (see [`TestDb::begin_writing`]).
pub enum Writing {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Writing {
    pub async fn commit(self) {
        match self {
            Writing::Sqlite(mut conn) => {
                sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
            }
            Writing::Postgres(mut conn) => {
                sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
            }
        }
    }
}
