//! Gatehouse background work: job payloads that the app writes to its outbox and the
//! workers carry out.

pub mod job;

pub use job::{Job, SetupPurpose};
