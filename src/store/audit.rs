//! Audit contracts: appending to and reading the hash-chained log.

use super::*;

/// The audit chain.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entry: AuditEntry) -> StoreResult<AuditRecord>;
    /// Events of one organization with `seq > after_seq`, ascending, at most `limit`.
    async fn audit_chain_page(
        &self,
        org_id: OrgId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>>;
    /// The organization's recorded chain head: last sequence number and hash.
    async fn audit_head(&self, org_id: OrgId) -> StoreResult<(i64, Vec<u8>)>;
    /// A page of the organization's events, newest first, with the total when asked.
    async fn audit_events(&self, query: AuditQuery)
    -> StoreResult<(Vec<AuditRecord>, Option<i64>)>;
    async fn audit_event(&self, org_id: OrgId, id: i64) -> StoreResult<Option<AuditRecord>>;
}

/// `auditEvents.totalCount` counts at most this many events (a log can be long; a count
/// must stay cheap).
pub const AUDIT_COUNT_LIMIT: i64 = 100_000;

/// Which audit events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub org_id: OrgId,
    pub actor_id: Option<i64>,
    pub subject_id: Option<i64>,
    pub request_id: Option<i64>,
    pub action: Option<String>,
    /// Actions starting with this (it ends in a dot).
    pub action_prefix: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Only events older than this sequence number (the cursor).
    pub before_seq: Option<i64>,
    pub limit: i64,
    pub with_total: bool,
}
