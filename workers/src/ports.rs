//! What the workers need from the application, as a port the root crate implements.

use crate::job::{Job, SetupPurpose};
use crate::templates::Email;
use async_trait::async_trait;
use std::time::Duration;

pub type PortError = Box<dyn std::error::Error + Send + Sync>;

/// A job waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub job: Job,
    /// The HTTP request that caused the job.
    pub request_id: Option<String>,
}

/// Who receives an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub name: String,
    pub address: String,
    /// Their organization's name, which the email speaks for.
    pub organization: String,
}

#[async_trait]
pub trait Ports: Send + Sync + 'static {
    /// Outbox jobs due for relay, leased for `lease` so other relays skip them meanwhile.
    async fn claim_outbox(&self, limit: i64, lease: Duration)
    -> Result<Vec<OutboxItem>, PortError>;
    /// The jobs are on the queue.
    async fn mark_relayed(&self, ids: &[i64]) -> Result<(), PortError>;
    /// The queue refused the job; try again after `retry_in`.
    async fn relay_failed(&self, id: i64, error: &str, retry_in: Duration)
    -> Result<(), PortError>;

    /// Notified when jobs were written to the outbox, so that the relay need not poll.
    fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify>;

    /// Mints a new setup token for the user (voiding older ones) and returns the email
    /// to send, or `None` when the account may no longer receive one.
    async fn setup_email(
        &self,
        user_id: i64,
        purpose: SetupPurpose,
        self_requested: bool,
    ) -> Result<Option<(Recipient, Email)>, PortError>;

    /// The name of an organization, for the emails sent to its people.
    async fn organization_name(&self, org_id: i64) -> Result<Option<String>, PortError>;

    /// Whether the email with this key has already been handled (sent or given up).
    async fn email_handled(&self, key: &str) -> Result<bool, PortError>;
    /// Claims the sending of an email so that two runs of its job never both send it:
    /// `false` while another run holds a claim renewed within `lease`.
    async fn claim_email(&self, key: &str, lease: Duration) -> Result<bool, PortError>;
    /// Keeps this run's claim fresh.
    async fn renew_email_claim(&self, key: &str) -> Result<(), PortError>;
    /// Gives the claim up after a failed send, for the retry.
    async fn release_email_claim(&self, key: &str) -> Result<(), PortError>;
    /// Records the email as sent (`failure: None`) or permanently failed, ending its claim.
    async fn record_email(
        &self,
        key: &str,
        recipient: &str,
        template: &str,
        failure: Option<&str>,
    ) -> Result<(), PortError>;

    /// Routes a newly filed request to its approvers; a request already routed is left as
    /// it is.
    async fn route_request(&self, request_id: i64) -> Result<(), PortError>;
    /// Applies an approved request (or records why it cannot be); a request no longer
    /// approved is left as it is. Returns how long ago the request was filed when this
    /// call applied it.
    async fn apply_request(&self, request_id: i64) -> Result<Option<Duration>, PortError>;

    /// Periodic housekeeping: expired setup tokens and sessions, request reminders and
    /// expiry. Safe to run from several processes at once.
    async fn sweep(&self) -> Result<(), PortError>;
}
