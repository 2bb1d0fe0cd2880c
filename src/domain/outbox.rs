//! Follow-up work as the outbox keeps it: written in the same transaction as the change
//! that calls for it, relayed to the job queue afterwards. To the store it is opaque: a
//! kind (for metrics and logs) and a payload that the job layer encodes and decodes.

/// One job, as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub kind: String,
    pub payload: String,
}

/// A job made from the ID of a row written in the same transaction (the request to
/// route, the user to invite), which the caller does not know beforehand.
pub type OutboxFor<Id> = fn(Id) -> OutboxMessage;
