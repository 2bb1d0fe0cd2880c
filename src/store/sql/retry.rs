//! Write transactions run again when the database aborted them for another's sake.

use crate::store::{StoreError, StoreResult};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many times in all a write transaction is tried.
const ATTEMPTS: u32 = 5;

/// Runs `attempt` (one write transaction, from its begin to its commit) again when
/// PostgreSQL aborted it as a deadlock's victim or could not serialize it. Two
/// transactions that lock the same rows in opposite orders (a rename spreading its
/// neighbours out while one of them is renamed or changes status) wait for each other
/// until the database notices and aborts one; it rolled back whole, so running it again
/// is as if it had been called a moment later. Nothing runs after a commit that could
/// fail this way.
/// Each run again is counted in `retried`.
pub(crate) async fn retrying<T, F, Fut>(retried: &AtomicU64, mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut tried = 1;
    loop {
        match attempt().await {
            Err(err) if tried < ATTEMPTS && aborted_for_another(&err) => {
                tracing::warn!(error = %err, attempt = tried, "write aborted by the database; trying it again");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(tried))).await;
                tried += 1;
                retried.fetch_add(1, Ordering::Relaxed);
            }
            done => return done,
        }
    }
}

/// A deadlock's victim (40P01) or a serialization failure (40001).
fn aborted_for_another(err: &StoreError) -> bool {
    match err {
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}
