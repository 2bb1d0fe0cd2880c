//! The test kit: fresh databases on each backend, the app with its store, a served app
//! on port 0 with an HTTP client, an organization fixture, a WebSocket client, captured
//! logs, and the macro that runs a test on both databases.

mod db;
mod fixture;
mod logs;
mod practice;
mod server;
mod socket;
pub use db::*;
pub use fixture::*;
pub use logs::*;
pub use practice::*;
pub use server::*;
pub use socket::*;

use gatehouse::app::App;
use gatehouse::store::Store;
use std::sync::Arc;

/// What a test holds that reaches both the app and its store: a [`TestApp`] or a
/// [`TestServer`].
pub trait Parts {
    fn app(&self) -> &App;
    fn store(&self) -> &Arc<dyn Store>;
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
