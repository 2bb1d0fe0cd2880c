//! Job figures for `/metrics`: queued, succeeded, failed and retried, per job kind.

use prometheus::{IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct JobMetrics {
    pub queued: IntCounterVec,
    pub succeeded: IntCounterVec,
    pub failed: IntCounterVec,
    pub retried: IntCounterVec,
}

impl JobMetrics {
    /// Creates the counters and registers them with `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let counter = IntCounterVec::new(Opts::new(name, help), &["kind"])?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        Ok(Self {
            queued: counter(
                "jobs_queued_total",
                "Jobs handed from the outbox to the queue, by kind",
            )?,
            succeeded: counter("jobs_succeeded_total", "Jobs completed, by kind")?,
            failed: counter("jobs_failed_total", "Jobs that failed for good, by kind")?,
            retried: counter(
                "jobs_retried_total",
                "Jobs rescheduled after a temporary failure, by kind",
            )?,
        })
    }
}
