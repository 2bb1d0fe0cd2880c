//! Job figures for `/metrics`: queued, succeeded, failed and retried, per job kind; emails
//! by outcome; the time from filing a request to its application.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct JobMetrics {
    pub queued: IntCounterVec,
    pub succeeded: IntCounterVec,
    pub failed: IntCounterVec,
    pub retried: IntCounterVec,
    /// Send attempts by outcome: sent, failed (for good), retrying.
    pub emails: IntCounterVec,
    pub filed_to_applied: Histogram,
}

impl JobMetrics {
    /// Creates the counters and registers them with `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let counter = IntCounterVec::new(Opts::new(name, help), &["kind"])?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let emails = IntCounterVec::new(
            Opts::new(
                "emails_total",
                "Email send attempts, by outcome (sent, failed, retrying)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(emails.clone()))?;
        let filed_to_applied = Histogram::with_opts(
            HistogramOpts::new(
                "request_filed_to_applied_seconds",
                "Time from filing a request to its application",
            )
            .buckets(vec![
                0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 60.0, 600.0, 3600.0, 14_400.0, 86_400.0, 259_200.0,
            ]),
        )?;
        registry.register(Box::new(filed_to_applied.clone()))?;
        let metrics = Self {
            emails,
            filed_to_applied,
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
        };
        // Every series exists from the start, at 0, so that a rate over it is defined.
        for kind in crate::Job::KINDS {
            for counter in [
                &metrics.queued,
                &metrics.succeeded,
                &metrics.failed,
                &metrics.retried,
            ] {
                counter.with_label_values(&[kind]);
            }
        }
        for outcome in ["sent", "failed", "retrying"] {
            metrics.emails.with_label_values(&[outcome]);
        }
        Ok(metrics)
    }
}
