//! The workers: the outbox relay, the periodic sweep and the apalis worker that carries
//! out jobs, run together until shutdown. Jobs arrive at least once, so every handler
//! checks what was already done before acting.

use crate::job::{Envelope, Job};
use crate::mailer::Mailer;
use crate::metrics::JobMetrics;
use crate::ports::{PortError, Ports, Recipient};
use crate::queue::Queue;
use crate::templates::Templates;
use apalis::prelude::BackendExt as _;
use apalis::prelude::{BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument as _;

mod deliver;

/// Timing of the background work.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base of links in emails.
    pub public_url: String,
    /// How long a setup link works, as told in the email.
    pub setup_token_valid_hours: u64,
    /// First retry delay after a temporary failure; it doubles up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long temporary failures are retried before the job gives up.
    pub retry_window: Duration,
    pub relay_interval: Duration,
    pub sweep_interval: Duration,
    /// Jobs run at once by this process.
    pub concurrency: usize,
    /// Whom the emails tell people to ask for help; empty: their practice administrator.
    pub support_contact: String,
}

/// Why a job did not complete.
#[derive(Debug)]
enum Failure {
    /// Try again later (mail server or database unreachable, 4xx).
    Transient(String),
    /// Never going to work; already recorded.
    Permanent(String),
}

fn transient(err: PortError) -> Failure {
    Failure::Transient(err.to_string())
}

pub struct Workers {
    ports: Arc<dyn Ports>,
    mailer: Arc<Mailer>,
    templates: Arc<Templates>,
    queue: Queue,
    metrics: JobMetrics,
    settings: Settings,
}

impl Workers {
    pub fn new(
        ports: Arc<dyn Ports>,
        mailer: Arc<Mailer>,
        templates: Arc<Templates>,
        queue: Queue,
        metrics: JobMetrics,
        settings: Settings,
    ) -> Self {
        Self {
            ports,
            mailer,
            templates,
            queue,
            metrics,
            settings,
        }
    }

    /// Runs until `shutdown` completes, then lets jobs in flight finish (up to 30 s).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BoxDynError> {
        let (stop, stopped) = watch::channel(false);
        let this = Arc::new(self);
        let relay = tokio::spawn(this.clone().relay_loop(stopped.clone()));
        let sweeper = tokio::spawn(this.clone().sweep_loop(stopped));
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
            Ok(())
        };
        let name = format!("gatehouse-{}-{:08x}", std::process::id(), rand_suffix());
        tracing::info!(worker = %name, mailer = %this.mailer.describe(), "workers started");
        let concurrency = this.settings.concurrency;
        let monitor = Monitor::new()
            .shutdown_timeout(Duration::from_secs(30))
            .should_restart(|worker, error| {
                tracing::warn!(worker = %worker.name(), %error, "worker stopped; restarting");
                true
            });
        let monitor = match this.queue.clone() {
            Queue::Sqlite(storage, wakers) => {
                let this = this.clone();
                monitor.register(move |_| {
                    WorkerBuilder::new(name.clone())
                        .backend(storage.clone().poll_with_stream(wakers.subscribe()))
                        .concurrency(concurrency)
                        .data(this.clone())
                        .build(handle)
                })
            }
            Queue::Redis(storage, wakers) => {
                let this = this.clone();
                monitor.register(move |_| {
                    WorkerBuilder::new(name.clone())
                        .backend(storage.clone().poll_with_stream(wakers.subscribe()))
                        .concurrency(concurrency)
                        .data(this.clone())
                        .build(handle)
                })
            }
        };
        let result = monitor.run_with_signal(signal).await;
        let _ = relay.await;
        let _ = sweeper.await;
        tracing::info!("workers stopped");
        result.map_err(Into::into)
    }

    /// Moves jobs from the outbox to the queue, woken by every commit that writes one
    /// (polling every `relay_interval` only as the safety net). A job pushed but not
    /// marked (a crash in between) is pushed again later: harmless, since jobs act once.
    async fn relay_loop(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        // A claimed batch is leased for longer than pushing all of it could take (each
        // push gives up after the queue's call timeout), and pushing stops before the
        // lease would run out, so no other relay takes a job this one is still pushing.
        const BATCH: usize = 100;
        const LEASE: Duration = Duration::from_secs(120);
        const PUSH_BUDGET: Duration = Duration::from_secs(100);
        let signal = self.ports.outbox_signal();
        let mut full_batch = false;
        loop {
            if !full_batch {
                tokio::select! {
                    _ = stopped.changed() => return,
                    () = tokio::time::sleep(self.settings.relay_interval) => {}
                    () = signal.notified() => {}
                }
            }
            let items = match self.ports.claim_outbox(BATCH as i64, LEASE).await {
                Ok(items) => items,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the outbox");
                    full_batch = false;
                    continue;
                }
            };
            full_batch = items.len() == BATCH;
            let started = std::time::Instant::now();
            // Marked together once pushed: one write for the batch, not one per job.
            let mut relayed = Vec::with_capacity(items.len());
            for item in items {
                if started.elapsed() > PUSH_BUDGET {
                    // The rest are pushed once their lease runs out.
                    full_batch = false;
                    break;
                }
                let kind = item.job.kind();
                match self
                    .queue
                    .push(Envelope::new(item.id, item.job, item.request_id), None)
                    .await
                {
                    Ok(()) => {
                        self.metrics.queued.with_label_values(&[kind]).inc();
                        relayed.push(item.id);
                    }
                    Err(err) => {
                        full_batch = false;
                        tracing::warn!(outbox_id = item.id, error = %err, "queue unavailable; will retry");
                        let _ = self
                            .ports
                            .relay_failed(item.id, &err.to_string(), Duration::from_secs(1))
                            .await;
                        break;
                    }
                }
            }
            if !relayed.is_empty()
                && let Err(err) = self.ports.mark_relayed(&relayed).await
            {
                tracing::warn!(jobs = relayed.len(), error = %err, "queued, but cannot mark the outbox rows");
            }
        }
    }

    async fn sweep_loop(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        loop {
            if let Err(err) = self.ports.sweep().await {
                tracing::warn!(error = %err, "sweep failed; will retry");
            }
            tokio::select! {
                _ = stopped.changed() => return,
                () = tokio::time::sleep(self.settings.sweep_interval) => {}
            }
        }
    }

    /// Runs one job; temporary failures reschedule it with backoff until the retry window
    /// has passed.
    async fn process(&self, mut envelope: Envelope) -> Result<(), BoxDynError> {
        let kind = envelope.job.kind();
        match self.execute(&envelope).await {
            Ok(()) => {
                self.metrics.succeeded.with_label_values(&[kind]).inc();
                Ok(())
            }
            Err(Failure::Permanent(reason)) => {
                tracing::warn!(%reason, "job failed for good");
                self.metrics.failed.with_label_values(&[kind]).inc();
                Ok(())
            }
            Err(Failure::Transient(reason)) => {
                let now = chrono::Utc::now().timestamp();
                let first = *envelope.first_attempt_at.get_or_insert(now);
                let window =
                    i64::try_from(self.settings.retry_window.as_secs()).unwrap_or(i64::MAX);
                if now.saturating_sub(first) >= window {
                    let why = format!("gave up after {} attempts: {reason}", envelope.attempt);
                    tracing::warn!(reason = %why, "job failed for good");
                    if envelope.job.sends_email() {
                        self.ports
                            .record_email(&envelope.email_key(), "", kind, Some(&why))
                            .await?;
                    }
                    self.metrics.failed.with_label_values(&[kind]).inc();
                    return Ok(());
                }
                let delay = backoff(&self.settings, envelope.attempt);
                tracing::info!(%reason, retry_in = ?delay, "temporary failure; rescheduled");
                envelope.attempt += 1;
                // If the queue is down too, the error makes apalis retry this task itself.
                self.queue.push(envelope, Some(delay)).await?;
                self.metrics.retried.with_label_values(&[kind]).inc();
                Ok(())
            }
        }
    }

    async fn execute(&self, envelope: &Envelope) -> Result<(), Failure> {
        let key = envelope.email_key();
        match &envelope.job {
            Job::RouteRequest { request_id } => self
                .ports
                .route_request(*request_id)
                .await
                .map_err(transient),
            Job::ApplyRequest { request_id } => {
                let applied = self.ports.apply_request(*request_id).await;
                if let Some(since_filed) = applied.as_ref().ok().copied().flatten() {
                    self.metrics
                        .filed_to_applied
                        .observe(since_filed.as_secs_f64());
                }
                applied.map(drop).map_err(transient)
            }
            _ if self.ports.email_handled(&key).await.map_err(transient)? => {
                // A job that runs again finds its email handled: each email is sent once.
                tracing::info!(%key, "email already handled; nothing to do");
                Ok(())
            }
            Job::AccountSetupEmail {
                user_id,
                purpose,
                self_requested,
            } => {
                let prepared = self
                    .ports
                    .setup_email(*user_id, *purpose, *self_requested)
                    .await
                    .map_err(transient)?;
                let Some((to, email)) = prepared else {
                    tracing::info!(
                        user_id,
                        "account can no longer receive a setup email; skipped"
                    );
                    return Ok(());
                };
                self.deliver(&key, &to, &email).await
            }
            Job::Email {
                org_id,
                to_name,
                to_address,
                email,
            } => {
                let organization = match org_id {
                    Some(id) => self.ports.organization_name(*id).await.map_err(transient)?,
                    None => None,
                };
                let to = Recipient {
                    name: to_name.clone(),
                    address: to_address.clone(),
                    organization: organization.unwrap_or_default(),
                };
                self.deliver(&key, &to, email).await
            }
        }
    }
}

/// The apalis handler: one span per job.
async fn handle(envelope: Envelope, workers: Data<Arc<Workers>>) -> Result<(), BoxDynError> {
    let span = tracing::info_span!(
        "job",
        kind = envelope.job.kind(),
        outbox_id = envelope.outbox_id,
        attempt = envelope.attempt,
        request_id = envelope.request_id.as_deref(),
    );
    // The jobs this one writes carry the same request id.
    let request_id = envelope.request_id.clone();
    crate::trace::with_request_id(request_id, workers.process(envelope))
        .instrument(span)
        .await
}

/// `retry_base` doubled per attempt, capped at `retry_max`.
fn backoff(settings: &Settings, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    settings
        .retry_base
        .saturating_mul(factor)
        .min(settings.retry_max)
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    nanos.subsec_nanos() ^ std::process::id().rotate_left(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_covers_a_day() {
        let settings = Settings {
            public_url: String::new(),
            setup_token_valid_hours: 72,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            retry_window: Duration::from_secs(86_400),
            relay_interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(60),
            concurrency: 4,
            support_contact: String::new(),
        };
        assert_eq!(backoff(&settings, 1), Duration::from_secs(30));
        assert_eq!(backoff(&settings, 2), Duration::from_secs(60));
        assert_eq!(backoff(&settings, 8), Duration::from_secs(3600));
        assert_eq!(backoff(&settings, 500), Duration::from_secs(3600));
    }
}
