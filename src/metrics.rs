//! Prometheus metrics, served as text at `/metrics`: HTTP requests and GraphQL operations
//! (counted as they happen), sign-ins and lockouts (the app's counts), and what the
//! database and the queue hold (read when scraped). The workers add the job figures.

use crate::app::stats::{LoginOutcome, Stats};
use crate::store::Gauges;
use gatehouse_workers::QueueDepth;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::{Arc, Mutex};

/// Latency buckets for answers from a millisecond to a few seconds.
const LATENCY: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    /// Per root field of an operation (`Query.users` is the search), by outcome.
    pub graphql_duration: HistogramVec,
    /// Open WebSocket connections of this node.
    pub ws_connections: IntGauge,
    scraped: Arc<Scraped>,
}

/// What is read when scraped. Counters kept elsewhere are brought up to date under the
/// lock, so that two scrapes at once cannot count twice.
struct Scraped {
    lock: Mutex<()>,
    logins: IntCounterVec,
    lockouts: IntCounterVec,
    requests: IntGaugeVec,
    outbox_backlog: IntGauge,
    outbox_oldest_age: IntGauge,
    users_locked: IntGauge,
    pool: IntGaugeVec,
    queue: IntGaugeVec,
    writes_retried: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("gatehouse".into()), None).expect("static prefix is valid");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by method, route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("static metric definition");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency, by method and route",
            )
            .buckets(LATENCY.to_vec()),
            &["method", "route"],
        )
        .expect("static metric definition");
        let graphql_duration = HistogramVec::new(
            HistogramOpts::new(
                "graphql_field_duration_seconds",
                "Time to resolve each root field of a GraphQL operation, by type, field and outcome",
            )
            .buckets(LATENCY.to_vec()),
            &["type", "field", "outcome"],
        )
        .expect("static metric definition");
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition")
        };
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help)).expect("static metric definition")
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition")
        };
        let scraped = Scraped {
            lock: Mutex::new(()),
            logins: counter(
                "logins_total",
                "Sign-ins, by outcome (success, invalid_credentials, rate_limited, error)",
                &["outcome"],
            ),
            lockouts: counter("lockouts_total", "Accounts locked by failed checks", &[]),
            requests: gauge_vec(
                "requests",
                "Requests, by kind and status",
                &["kind", "status"],
            ),
            outbox_backlog: gauge("outbox_backlog", "Jobs in the outbox not yet on the queue"),
            outbox_oldest_age: gauge(
                "outbox_oldest_age_seconds",
                "Age of the oldest job in the outbox not yet on the queue (0 when none)",
            ),
            users_locked: gauge("users_locked", "Accounts locked now"),
            pool: gauge_vec(
                "db_pool_connections",
                "Database connections, by state (open, idle, max)",
                &["state"],
            ),
            writes_retried: counter(
                "store_writes_retried_total",
                "Write transactions run again after the database aborted them as a deadlock's victim",
                &[],
            ),
            queue: gauge_vec(
                "queue_jobs",
                "Jobs on the queue, by state (pending, running)",
                &["state"],
            ),
        };
        let ws_connections = gauge("ws_connections", "Open WebSocket connections");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ws_connections.clone()),
            Box::new(http_duration.clone()),
            Box::new(graphql_duration.clone()),
            Box::new(scraped.logins.clone()),
            Box::new(scraped.lockouts.clone()),
            Box::new(scraped.requests.clone()),
            Box::new(scraped.outbox_backlog.clone()),
            Box::new(scraped.outbox_oldest_age.clone()),
            Box::new(scraped.users_locked.clone()),
            Box::new(scraped.pool.clone()),
            Box::new(scraped.queue.clone()),
            Box::new(scraped.writes_retried.clone()),
        ] {
            registry.register(collector).expect("registered once");
        }
        Self {
            registry,
            http_requests,
            http_duration,
            graphql_duration,
            ws_connections,
            scraped: Arc::new(scraped),
        }
    }

    /// Brings what is read when scraped up to date: the app's counts always, what the
    /// database and the queue hold when they answered.
    pub fn refresh(
        &self,
        stats: &Stats,
        gauges: Option<&Gauges>,
        queue: Option<QueueDepth>,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let s = &self.scraped;
        let _one_at_a_time = s.lock.lock().unwrap_or_else(|e| e.into_inner());
        for outcome in LoginOutcome::ALL {
            let counter = s.logins.with_label_values(&[outcome.label()]);
            counter.inc_by(stats.logins(outcome).saturating_sub(counter.get()));
        }
        let lockouts = s.lockouts.with_label_values(&[] as &[&str]);
        lockouts.inc_by(stats.lockouts().saturating_sub(lockouts.get()));
        if let Some(g) = gauges {
            s.requests.reset();
            for (kind, status, count) in &g.requests {
                s.requests.with_label_values(&[kind, status]).set(*count);
            }
            s.outbox_backlog.set(g.outbox_backlog);
            s.outbox_oldest_age.set(
                g.outbox_oldest
                    .map_or(0, |at| (now - at).num_seconds().max(0)),
            );
            s.users_locked.set(g.users_locked);
            for (state, value) in [
                ("open", g.pool_open),
                ("idle", g.pool_idle),
                ("max", g.pool_max),
            ] {
                s.pool.with_label_values(&[state]).set(i64::from(value));
            }
            let retried = s.writes_retried.with_label_values(&[] as &[&str]);
            retried.inc_by(g.writes_retried.saturating_sub(retried.get()));
        }
        if let Some(q) = queue {
            for (state, value) in [("pending", q.pending), ("running", q.running)] {
                s.queue
                    .with_label_values(&[state])
                    .set(i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
    }

    /// The registry, for other parts (the workers) to add their metrics to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
