//! Gatehouse background work: job payloads that the app writes to its outbox, the queue
//! they travel on, the workers that carry them out, the mailer and the email templates.
//! What the workers need from the database is the `Ports` trait, implemented by the app.

pub mod job;
pub mod mailer;
pub mod metrics;
pub mod ports;
pub mod queue;
pub mod runner;
pub mod templates;
pub mod tls;
pub mod trace;

pub use job::{Envelope, Job, SetupPurpose};
pub use mailer::{Mailer, SendError};
pub use metrics::JobMetrics;
pub use ports::{OutboxItem, PortError, Ports, Recipient};
pub use queue::{Queue, QueueDepth};
pub use runner::{Settings, Workers};
pub use templates::{Email, Outcome, RequestSummary};
pub use tls::TrustedCa;
pub use trace::{Traced, current_request_id, with_request_id};
