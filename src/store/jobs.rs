//! Job contracts: the outbox and the record of emails sent.

use super::*;

/// A job waiting in the outbox to be handed to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxJob {
    pub id: i64,
    pub message: OutboxMessage,
    pub created_at: Timestamp,
    pub attempts: i32,
}

/// The job outbox and the record of emails sent.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Files a job in the outbox on its own.
    async fn enqueue(&self, job: OutboxMessage, at: Timestamp) -> StoreResult<i64>;
    /// Outbox jobs not yet relayed, oldest first.
    async fn pending_jobs(&self, limit: i64) -> StoreResult<Vec<OutboxJob>>;
    /// Leases up to `limit` due outbox jobs until `lease_until`; a job leased by another
    /// relay is skipped.
    async fn claim_jobs(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<OutboxJob>>;
    /// These jobs are on the queue.
    async fn mark_jobs_relayed(&self, ids: &[i64], now: Timestamp) -> StoreResult<()>;
    async fn job_relay_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> StoreResult<()>;

    /// Whether the email with this key was sent or given up.
    async fn email_handled(&self, key: &str) -> StoreResult<bool>;
    /// Records an email's outcome once; a second record of the same key is ignored.
    async fn record_email(&self, delivery: EmailDelivery) -> StoreResult<()>;
    /// Claims the sending of an email, in one statement: `false` when another run holds a
    /// claim renewed since `stale_before`.
    async fn claim_email(
        &self,
        key: &str,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool>;
    /// Keeps a claim fresh while its email is being sent.
    async fn renew_email_claim(&self, key: &str, now: Timestamp) -> StoreResult<()>;
    /// Gives a claim up (the send failed and will be retried).
    async fn release_email_claim(&self, key: &str) -> StoreResult<()>;
}

/// The outcome of one email.
#[derive(Debug, Clone)]
pub struct EmailDelivery {
    pub key: String,
    pub recipient: String,
    pub template: String,
    /// `None`: sent. `Some`: failed for good, with why.
    pub failure: Option<String>,
    pub at: Timestamp,
}
