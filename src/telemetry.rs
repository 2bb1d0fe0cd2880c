//! Where the process's spans and log lines go: stderr as text or JSON lines, and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, an
//! OpenTelemetry collector over OTLP/HTTP: the spans of each HTTP request, GraphQL
//! operation, job and email, with the database statements run inside them as events.

use crate::config::{Config, LogFormat};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// What is exported to the collector: the spans at INFO, and each SQL statement (an
/// event of the span it ran in).
const EXPORTED: &str = "info,sqlx::query=debug";

/// The installed telemetry; [`Telemetry::shutdown`] sends what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber. Must run inside the Tokio runtime (the exporter's
/// batches are sent from a task on it).
pub fn init(config: &Config) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| {
        eprintln!(
            "gatehouse: RUST_LOG: {:?} is not a valid filter; using info",
            config.log
        );
        EnvFilter::new("info")
    });
    // PostgreSQL's notices ("relation … already exists, skipping" at every migration
    // check) are not news to an operator, unless the filter asks for sqlx's.
    let filter = if config.log.contains("sqlx") {
        filter
    } else {
        filter.add_directive("sqlx::postgres::notice=warn".parse()?)
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match config.log_format {
        LogFormat::Text => logs.boxed(),
        // One object per line: its fields, and those of every span it is in (the request
        // id of the HTTP request or job among them).
        LogFormat::Json => logs
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .flatten_event(true)
            .boxed(),
    }
    .with_filter(filter);
    let provider = match &config.otlp_endpoint {
        None => None,
        Some(_) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
                .map_err(|e| anyhow::anyhow!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
            let processor =
                BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name("gatehouse")
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_span_processor(processor)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("gatehouse"))
            .with_filter(EnvFilter::new(EXPORTED))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()?;
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter (waits up to its timeout).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(err)) = done {
                eprintln!("gatehouse: cannot send the last traces: {err}");
            }
        }
    }
}
