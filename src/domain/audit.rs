//! The audit chain: each organization's events hashed in sequence, SHA-256(previous ‖ canonical event).

use super::{OrgId, Timestamp, UserId};
use chrono::SecondsFormat;
use sha2::{Digest, Sha256};

/// The hash that precedes an organization's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub org_id: i64,
    pub seq: i64,
    pub at: Timestamp,
    pub action: String,
    pub actor_id: Option<i64>,
    pub subject_id: Option<i64>,
    pub request_id: Option<i64>,
    pub ip: Option<String>,
    /// JSON object text, hashed exactly as stored.
    pub details: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// The hashed content of one event.
pub struct EventContent<'a> {
    pub org_id: i64,
    pub seq: i64,
    pub at: &'a Timestamp,
    pub action: &'a str,
    pub actor_id: Option<i64>,
    pub subject_id: Option<i64>,
    pub request_id: Option<i64>,
    pub ip: Option<&'a str>,
    pub details: &'a str,
}

impl EventContent<'_> {
    /// The bytes that are hashed: a JSON array with a fixed field order, so the encoding
    /// never depends on a map's iteration order.
    pub fn canonical(&self) -> Vec<u8> {
        let value = serde_json::json!([
            self.org_id,
            self.seq,
            self.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            self.action,
            self.actor_id,
            self.subject_id,
            self.request_id,
            self.ip,
            self.details,
        ]);
        serde_json::to_vec(&value).expect("a JSON array of plain values always serializes")
    }
}

pub fn chain_hash(prev: &[u8], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical);
    hasher.finalize().into()
}

impl AuditRecord {
    fn canonical(&self) -> Vec<u8> {
        EventContent {
            org_id: self.org_id,
            seq: self.seq,
            at: &self.at,
            action: &self.action,
            actor_id: self.actor_id,
            subject_id: self.subject_id,
            request_id: self.request_id,
            ip: self.ip.as_deref(),
            details: &self.details,
        }
        .canonical()
    }
}

/// Where and why a chain stops being intact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("organization {org_id}: audit event {event_id} (seq {seq}): {problem}")]
pub struct ChainBreak {
    pub org_id: i64,
    pub event_id: i64,
    pub seq: i64,
    pub problem: String,
}

/// Walks one organization's chain in sequence order, fed page by page.
pub struct ChainVerifier {
    org_id: i64,
    expected_seq: i64,
    prev_hash: Vec<u8>,
}

impl ChainVerifier {
    pub fn new(org_id: i64) -> Self {
        Self {
            org_id,
            expected_seq: 1,
            prev_hash: GENESIS.to_vec(),
        }
    }

    /// Checks the next event; events must arrive in ascending `seq`.
    pub fn check(&mut self, event: &AuditRecord) -> Result<(), ChainBreak> {
        let fail = |problem: String| ChainBreak {
            org_id: self.org_id,
            event_id: event.id,
            seq: event.seq,
            problem,
        };
        if event.seq != self.expected_seq {
            return Err(fail(format!(
                "expected sequence {} here: an event was removed or reordered",
                self.expected_seq
            )));
        }
        if event.prev_hash != self.prev_hash {
            return Err(fail("its previous-hash link does not match the event before it: an event was removed or reordered".into()));
        }
        let recomputed = chain_hash(&self.prev_hash, &event.canonical());
        if event.hash != recomputed {
            return Err(fail(
                "its content does not match its hash: the event was altered".into(),
            ));
        }
        self.expected_seq += 1;
        self.prev_hash = event.hash.clone();
        Ok(())
    }

    /// Checks the chain's end against the head the organization records, which catches
    /// events removed from the end.
    pub fn finish(&self, head_seq: i64, head_hash: &[u8]) -> Result<(), ChainBreak> {
        if head_seq != self.expected_seq - 1 || head_hash != self.prev_hash.as_slice() {
            return Err(ChainBreak {
                org_id: self.org_id,
                event_id: 0,
                seq: self.expected_seq,
                problem: format!(
                    "the chain ends at sequence {} but the organization's head says {head_seq}: events were removed from the end",
                    self.expected_seq - 1
                ),
            });
        }
        Ok(())
    }
}

/// An audit event to append to its organization's chain.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub org_id: OrgId,
    pub at: Timestamp,
    pub action: &'static str,
    pub actor_id: Option<UserId>,
    pub subject_id: Option<UserId>,
    pub request_id: Option<i64>,
    pub ip: Option<String>,
    /// A JSON object; never a secret.
    pub details: serde_json::Value,
}

impl AuditEntry {
    pub fn new(org_id: OrgId, at: Timestamp, action: &'static str) -> Self {
        Self {
            org_id,
            at,
            action,
            actor_id: None,
            subject_id: None,
            request_id: None,
            ip: None,
            details: serde_json::json!({}),
        }
    }

    pub fn actor(mut self, actor: Option<UserId>) -> Self {
        self.actor_id = actor;
        self
    }

    pub fn subject(mut self, subject: UserId) -> Self {
        self.subject_id = Some(subject);
        self
    }

    pub fn ip(mut self, ip: Option<String>) -> Self {
        self.ip = ip;
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let mut e = AuditRecord {
                    id: seq * 10,
                    org_id: 7,
                    seq,
                    at: crate::domain::now(),
                    action: "user.updated".into(),
                    actor_id: Some(1),
                    subject_id: Some(2),
                    request_id: None,
                    ip: Some("127.0.0.1".into()),
                    details: format!("{{\"n\":{seq}}}"),
                    prev_hash: prev.clone(),
                    hash: vec![],
                };
                e.hash = chain_hash(&prev, &e.canonical()).to_vec();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(events: &[AuditRecord]) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::new(7);
        events.iter().try_for_each(|e| v.check(e))
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify(&chain(5)).is_ok());
    }

    #[test]
    fn altered_removed_and_reordered_events_are_named() {
        let mut altered = chain(5);
        altered[2].details = "{\"n\":99}".into();
        assert_eq!(verify(&altered).unwrap_err().event_id, 30);

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify(&removed).unwrap_err().event_id, 30);

        let mut reordered = chain(5);
        reordered.swap(1, 2);
        assert_eq!(verify(&reordered).unwrap_err().event_id, 30);
    }
}
