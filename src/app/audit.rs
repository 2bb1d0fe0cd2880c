//! Audit chain verification for `gatehouse audit verify`.

use super::page::{Page, decode_cursor, encode_cursor, page_size, present};
use super::policy::Action;
use super::{Actor, AppError, AppResult, service};
use crate::domain::UserId;
use crate::domain::audit::AuditRecord;
use crate::domain::audit::{ChainBreak, ChainVerifier};
use crate::domain::id::ClientId;
use crate::store::AuditQuery;

/// Events read per page while verifying, to bound memory on long chains.
const PAGE: i64 = 5_000;

/// The outcome of verifying every organization's chain.
#[derive(Debug)]
pub struct VerifyReport {
    pub organizations: usize,
    pub events: u64,
    /// The first break found, if any.
    pub broken: Option<ChainBreak>,
}

/// What `auditEvents` filters on.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Each ID filter: absent is no filter; `Some(None)` names nothing (no event matches).
    pub actor_id: Option<ClientId<UserId>>,
    pub subject_id: Option<ClientId<UserId>>,
    pub request_id: Option<ClientId<crate::domain::RequestId>>,
    pub action: Option<String>,
    pub since: Option<crate::domain::Timestamp>,
    pub until: Option<crate::domain::Timestamp>,
}

service!(
    /// The audit log.
    Audit
);

impl Audit {
    /// The organization's audit log, newest first: for owners and admins.
    pub async fn events(
        &self,
        actor: &Actor,
        filter: AuditFilter,
        first: Option<i32>,
        after: Option<String>,
        with_total: bool,
    ) -> AppResult<Page<AuditRecord>> {
        actor.require(Action::ReadAuditEvents)?;
        let size = page_size(first, self.config.limits.max_page_size)?;
        let before_seq = match after.as_deref().map(decode_cursor).transpose()? {
            Some(key) => Some(key.parse::<i64>().map_err(|_| {
                AppError::BadUserInput("`after` is not a cursor from this list.".into())
            })?),
            None => None,
        };
        // An ID of the wrong kind or another organization matches nothing.
        let number = |id: Option<Option<i64>>| id.map(|id| id.unwrap_or(-1));
        let action = present(&filter.action).map(str::to_owned);
        let query = AuditQuery {
            org_id: actor.org_id(),
            actor_id: number(filter.actor_id.map(|id| id.map(|u| u.0))),
            subject_id: number(filter.subject_id.map(|id| id.map(|u| u.0))),
            request_id: number(filter.request_id.map(|id| id.map(|r| r.0))),
            action_prefix: action.as_ref().filter(|a| a.ends_with('.')).cloned(),
            action: action.filter(|a| !a.ends_with('.')),
            since: filter.since,
            until: filter.until,
            before_seq,
            limit: size as i64 + 1,
            with_total,
        };
        let (mut events, total) = self.store.audit_events(query).await?;
        let has_next = events.len() > size;
        events.truncate(size);
        let items = events
            .into_iter()
            .map(|e| (encode_cursor(&e.seq.to_string()), e))
            .collect();
        Ok(Page {
            items,
            has_next,
            total,
        })
    }

    /// One audit event of the caller's organization, for owners and admins.
    pub async fn event(&self, actor: &Actor, id: i64) -> AppResult<Option<AuditRecord>> {
        actor.require(Action::ReadAuditEvents)?;
        Ok(self.store.audit_event(actor.org_id(), id).await?)
    }

    /// Recomputes every organization's chain, stopping at the first event that was
    /// altered, removed or reordered. Safe while Gatehouse runs: each organization's head
    /// is read first and its chain walked up to it, so events appended meanwhile (after
    /// the head read) are left for the next run rather than taken for a break.
    pub async fn verify(&self) -> anyhow::Result<VerifyReport> {
        let orgs = self.store.organization_ids().await?;
        let mut events = 0u64;
        for org in &orgs {
            let (head_seq, head_hash) = self.store.audit_head(*org).await?;
            let mut verifier = ChainVerifier::new(org.0);
            let mut after = 0;
            loop {
                let page = self.store.audit_chain_page(*org, after, PAGE).await?;
                for event in page.iter().take_while(|e| e.seq <= head_seq) {
                    if let Err(broken) = verifier.check(event) {
                        return Ok(VerifyReport {
                            organizations: orgs.len(),
                            events,
                            broken: Some(broken),
                        });
                    }
                    events += 1;
                }
                match page.last() {
                    Some(last) if page.len() as i64 == PAGE && last.seq < head_seq => {
                        after = last.seq
                    }
                    _ => break,
                }
            }
            if let Err(broken) = verifier.finish(head_seq, &head_hash) {
                return Ok(VerifyReport {
                    organizations: orgs.len(),
                    events,
                    broken: Some(broken),
                });
            }
        }
        Ok(VerifyReport {
            organizations: orgs.len(),
            events,
            broken: None,
        })
    }
}
