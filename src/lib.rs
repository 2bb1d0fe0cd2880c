//! Gatehouse: user accounts, licenses and approvals for healthcare practices.
//! This crate wires configuration, storage, the queue, the application, the HTTP server
//! and the workers together.

pub mod app;
pub mod config;
pub mod domain;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod store;
pub mod telemetry;

use anyhow::Context as _;
use app::App;
use config::{Config, redact_url};
use gatehouse_workers::templates::Templates;
use gatehouse_workers::{JobMetrics, Mailer, Queue, Workers};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Opens (and migrates) the configured database, trusting GATEHOUSE_TLS_CA_FILE.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn store::Store>> {
    let ca = config.tls_ca.as_ref().map(|ca| ca.pem());
    store::connect_trusting(&config.database_url, true, ca).await
}

/// Opens (and migrates) the configured database and builds the application, for
/// commands that need no queue.
pub async fn build_app(config: Config) -> anyhow::Result<App> {
    let store = open_store(&config).await?;
    Ok(App::new(store, Arc::new(config)))
}

/// The application and the store beneath it, for tools that load data in bulk (the
/// benchmark's seeding, the store's conformance tests).
pub async fn build_app_and_store(config: Config) -> anyhow::Result<(App, Arc<dyn store::Store>)> {
    let store = open_store(&config).await?;
    Ok((App::new(store.clone(), Arc::new(config)), store))
}

/// What this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The API, and the workers unless `workers` is false (API-only nodes).
    Serve { workers: bool },
    /// The workers alone.
    Worker,
}

/// Everything a Gatehouse process is made of, built once at start-up.
#[derive(Clone)]
pub struct Gatehouse {
    pub app: App,
    /// The store beneath the app, for bulk tools.
    pub store: Arc<dyn store::Store>,
    pub queue: Queue,
    pub metrics: metrics::Metrics,
    /// The email templates, built in or overridden from GATEHOUSE_TEMPLATE_DIR.
    pub templates: Arc<Templates>,
}

impl Gatehouse {
    /// Opens (and migrates) the database and connects to the queue; any failure names the
    /// setting at fault.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let templates = Templates::load(config.template_dir.as_deref(), config.public_url.as_str())
            .context("GATEHOUSE_TEMPLATE_DIR")?;
        if let Some(files) = &config.tls {
            http::tls::check(files)
                .map_err(anyhow::Error::msg)
                .context("GATEHOUSE_TLS_CERT_FILE, GATEHOUSE_TLS_KEY_FILE")?;
        }
        let queue = Queue::connect(
            &config.queue_url,
            config.jobs.heartbeat,
            config.tls_ca.as_ref(),
        )
        .await
        .with_context(|| format!("GATEHOUSE_QUEUE_URL: {}", redact_url(&config.queue_url)))?;
        let store = open_store(&config).await?;
        let config = Arc::new(config);
        let app = match queue.redis() {
            Some(redis) => App::with_shared_limits(store.clone(), config, redis),
            None => App::new(store.clone(), config),
        };
        Ok(Self {
            app,
            store,
            queue,
            metrics: metrics::Metrics::new(),
            templates: Arc::new(templates),
        })
    }

    /// Runs `mode` until `shutdown` completes: stops taking requests, finishes those in
    /// flight and lets running jobs end (each up to 30 s).
    pub async fn run(
        self,
        mode: Mode,
        listener: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let when_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let serve_api = matches!(mode, Mode::Serve { .. });
        let run_workers = matches!(mode, Mode::Serve { workers: true } | Mode::Worker);
        let workers = if run_workers {
            let config = self.app.config();
            let mailer = Mailer::new(
                config.smtp_url.as_deref(),
                config.outbox_dir.clone(),
                &config.mail_from,
                config.tls_ca.as_ref(),
            )
            .context("mail settings")?;
            let job_metrics =
                JobMetrics::register(self.metrics.registry()).context("job metrics")?;
            let settings = gatehouse_workers::Settings {
                public_url: config.public_url.to_string(),
                setup_token_valid_hours: config.setup_token_ttl.as_secs().div_ceil(3600),
                retry_base: config.jobs.retry_base,
                retry_max: config.jobs.retry_max,
                retry_window: config.jobs.retry_window,
                relay_interval: config.jobs.relay_interval,
                sweep_interval: sweep_every(config),
                // Jobs mostly wait (on the database, on the mail server). On Redis (and
                // PostgreSQL) 32 at a time: with 8, emails held the slots and 200 requests
                // a second fell to 120 over SMTP. On the SQLite queue 8: its writers queue
                // for one lock, and 32 made filing -> APPLIED slower (BENCHMARKS.md).
                concurrency: if self.queue.redis().is_some() { 32 } else { 8 },
                support_contact: config.support_contact.clone().unwrap_or_default(),
            };
            let ports = Arc::new(self.app.workflow().clone());
            let workers = Workers::new(
                ports,
                Arc::new(mailer),
                self.templates.clone(),
                self.queue.clone(),
                job_metrics,
                settings,
            );
            Some(tokio::spawn(workers.run(when_stopped())))
        } else {
            None
        };
        let api = if serve_api {
            let listener = listener.context("serving the API needs a listener")?;
            // Subscribers are served pushed changes from the first connection on. On
            // SQLite, workers in another process cannot push to this one: their changes
            // are read from the table every second.
            let other_writers = self.store.backend() == store::Backend::Sqlite && !run_workers;
            self.app
                .requests()
                .start_feed(other_writers.then_some(std::time::Duration::from_secs(1)))
                .await
                .context("cannot start the feed of request changes")?;
            let router = http::router(self.app.clone(), self.queue.clone(), self.metrics.clone());
            Some(match self.app.config().tls.clone() {
                Some(files) => tokio::spawn(async move {
                    http::tls::serve(listener, router, files, when_stopped())
                        .await
                        .context("the HTTPS server stopped with an error")
                }),
                None => {
                    use axum::serve::ListenerExt as _;
                    // Small messages (a subscription update) go out at once, not after
                    // the peer's delayed acknowledgement of the one before.
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    let server = axum::serve(
                        listener,
                        router.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(when_stopped());
                    tokio::spawn(async move {
                        server
                            .await
                            .context("the HTTP server stopped with an error")
                    })
                }
            })
        } else {
            None
        };
        if let Some(api) = api {
            api.await??;
        }
        if let Some(workers) = workers {
            workers
                .await?
                .map_err(|e| anyhow::anyhow!("workers: {e}"))?;
        }
        Ok(())
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests and jobs in flight");
}

/// How often the sweep runs: the configured interval, or more often when requests are
/// set to be reminded or to expire sooner (a tenth of the shorter, at least a second), so
/// that a short setting is kept to within about a tenth of itself.
fn sweep_every(config: &Config) -> std::time::Duration {
    let shortest = config.request_reminder.min(config.request_expiry);
    config
        .jobs
        .sweep_interval
        .min((shortest / 10).max(std::time::Duration::from_secs(1)))
}
