//! Audit chain verification for `gatehouse audit verify`.

use super::App;
use crate::domain::audit::{ChainBreak, ChainVerifier};

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

impl App {
    /// Recomputes every organization's chain, stopping at the first event that was
    /// altered, removed or reordered.
    pub async fn verify_audit(&self) -> anyhow::Result<VerifyReport> {
        let orgs = self.store.organization_ids().await?;
        let mut events = 0u64;
        for org in &orgs {
            let mut verifier = ChainVerifier::new(org.0);
            let mut after = 0;
            loop {
                let page = self.store.audit_chain_page(*org, after, PAGE).await?;
                for event in &page {
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
                    Some(last) if page.len() as i64 == PAGE => after = last.seq,
                    _ => break,
                }
            }
            let (head_seq, head_hash) = self.store.audit_head(*org).await?;
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
