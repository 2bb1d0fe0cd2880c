//! Settings: every GATEHOUSE_* variable read once into one `Config`, secrets redacted in Debug.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

mod env;
use env::{Env, otlp_endpoint, parse_origins, parse_proxies, tls_files};

/// A setting that cannot be used, named so the operator can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

#[derive(Clone)]
pub struct Config {
    /// The time the app goes by: the system's (tests may run it ahead).
    pub clock: crate::domain::clock::Clock,
    pub database_url: String,
    pub queue_url: String,
    pub smtp_url: Option<String>,
    pub outbox_dir: PathBuf,
    pub mail_from: String,
    /// Files that replace built-in email templates (GATEHOUSE_TEMPLATE_DIR).
    pub template_dir: Option<PathBuf>,
    /// Whom emails tell people to ask for help (GATEHOUSE_SUPPORT_CONTACT).
    pub support_contact: Option<String>,
    /// A private CA trusted beside the public roots by the connections to PostgreSQL,
    /// Redis and the mail server (GATEHOUSE_TLS_CA_FILE).
    pub tls_ca: Option<gatehouse_workers::TrustedCa>,
    /// Serve HTTPS with this certificate (GATEHOUSE_TLS_CERT_FILE, GATEHOUSE_TLS_KEY_FILE).
    pub tls: Option<TlsFiles>,
    pub listen: SocketAddr,
    pub public_url: Url,
    pub lockout_threshold: u32,
    pub lockout_duration: Duration,
    pub login_rate_limit: u32,
    /// Proxies whose X-Forwarded-For is believed when finding the client's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Web origins whose pages may call `/graphql` from a browser (CORS); `*` for any;
    /// none: same-origin pages only.
    pub cors_origins: Vec<String>,
    pub setup_token_ttl: Duration,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub request_reminder: Duration,
    pub request_expiry: Duration,
    pub argon2: Argon2Params,
    pub limits: Limits,
    pub jobs: JobTiming,
    pub log: String,
    pub log_format: LogFormat,
    /// Where traces go (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT,
    /// the standard variables, read by the exporter itself); none: not exported.
    pub otlp_endpoint: Option<Url>,
}

/// How log lines are written: for people, or one JSON object per line for a collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The HTTPS listener's certificate chain and private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Timing of the background workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTiming {
    /// How often a worker reports alive; one silent for two beats has its jobs taken over.
    pub heartbeat: Duration,
    /// First retry delay after a temporary failure (doubling up to `retry_max`).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long temporary failures (mail server unreachable) are retried.
    pub retry_window: Duration,
    /// How often the outbox is read and the sweep runs.
    pub relay_interval: Duration,
    pub sweep_interval: Duration,
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

/// Bounds on GraphQL documents and HTTP bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub max_body_bytes: usize,
    pub max_page_size: usize,
    /// Live (WebSocket) connections one node holds, and one user may hold.
    pub ws_max_connections: usize,
    pub ws_max_per_user: usize,
    /// How often an idle connection is pinged; one silent for two pings is dropped.
    pub ws_ping: Duration,
}

impl Config {
    /// Whether browsers reach Gatehouse over HTTPS (served here, or by a proxy in front
    /// of it): cookies are then `Secure` and HSTS is sent.
    pub fn https(&self) -> bool {
        self.tls.is_some() || self.public_url.scheme() == "https"
    }

    /// Reads the process environment (after loading `.env` when present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let public_url = env.parse_with("GATEHOUSE_PUBLIC_URL", "http://127.0.0.1:8080", |v| {
            let url = Url::parse(v).map_err(|e| e.to_string())?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err("must be an http:// or https:// URL".into());
            }
            Ok(url)
        })?;
        let config = Config {
            clock: Default::default(),
            database_url: env.parse_with(
                "GATEHOUSE_DATABASE_URL",
                "sqlite://data/gatehouse.db",
                |v| database_scheme(v).map(|_| v.to_owned()),
            )?,
            queue_url: env.parse_with("GATEHOUSE_QUEUE_URL", "sqlite://data/queue.db", |v| {
                if v.starts_with("sqlite:")
                    || v.starts_with("redis://")
                    || v.starts_with("rediss://")
                {
                    Ok(v.to_owned())
                } else {
                    Err("must be a sqlite:// or redis:// URL".into())
                }
            })?,
            smtp_url: match env.get("GATEHOUSE_SMTP_URL") {
                None => None,
                Some(v) => Some(parse_smtp_url(&v).map_err(|message| ConfigError {
                    variable: "GATEHOUSE_SMTP_URL",
                    message,
                })?),
            },
            outbox_dir: PathBuf::from(
                env.get("GATEHOUSE_OUTBOX_DIR")
                    .unwrap_or_else(|| "data/outbox".into()),
            ),
            mail_from: env.parse_with(
                "GATEHOUSE_MAIL_FROM",
                "Gatehouse <no-reply@localhost>",
                |v| {
                    if v.contains('@') && !v.contains(['\r', '\n']) {
                        Ok(v.to_owned())
                    } else {
                        Err("must be an address like 'Gatehouse <no-reply@example.com>'".into())
                    }
                },
            )?,
            template_dir: env.get("GATEHOUSE_TEMPLATE_DIR").map(PathBuf::from),
            tls: tls_files(&env)?,
            tls_ca: match env.get("GATEHOUSE_TLS_CA_FILE") {
                None => None,
                Some(path) => Some(
                    gatehouse_workers::TrustedCa::load(std::path::Path::new(&path)).map_err(
                        |message| ConfigError {
                            variable: "GATEHOUSE_TLS_CA_FILE",
                            message,
                        },
                    )?,
                ),
            },
            support_contact: match env.get("GATEHOUSE_SUPPORT_CONTACT") {
                Some(v) if v.chars().any(char::is_control) || v.chars().count() > 200 => {
                    return Err(ConfigError {
                        variable: "GATEHOUSE_SUPPORT_CONTACT",
                        message: "must be one line of at most 200 characters".into(),
                    });
                }
                v => v,
            },
            listen: env.parse_with("GATEHOUSE_LISTEN", "127.0.0.1:8080", |v| {
                v.parse()
                    .map_err(|_| "must be an address:port like 127.0.0.1:8080".to_owned())
            })?,
            public_url,
            lockout_threshold: env.number("GATEHOUSE_LOCKOUT_THRESHOLD", 5, 1..=1000)?,
            lockout_duration: env.duration("GATEHOUSE_LOCKOUT_DURATION", "60m")?,
            login_rate_limit: env.number("GATEHOUSE_LOGIN_RATE_LIMIT", 30, 1..=1_000_000)?,
            trusted_proxies: env.parse_with("GATEHOUSE_TRUSTED_PROXIES", "", parse_proxies)?,
            cors_origins: env.parse_with("GATEHOUSE_CORS_ORIGINS", "", parse_origins)?,
            setup_token_ttl: env.duration("GATEHOUSE_SETUP_TOKEN_TTL", "72h")?,
            session_idle: env.duration("GATEHOUSE_SESSION_IDLE", "30m")?,
            session_max: env.duration("GATEHOUSE_SESSION_MAX", "12h")?,
            request_reminder: env.duration("GATEHOUSE_REQUEST_REMINDER", "3d")?,
            request_expiry: env.duration("GATEHOUSE_REQUEST_EXPIRY", "14d")?,
            argon2: Argon2Params {
                m_kib: env.number("GATEHOUSE_ARGON2_M_KIB", 19_456, 8..=4_194_304)?,
                t: env.number("GATEHOUSE_ARGON2_T", 2, 1..=100)?,
                p: env.number("GATEHOUSE_ARGON2_P", 1, 1..=64)?,
            },
            limits: Limits {
                max_depth: env.number("GATEHOUSE_GRAPHQL_MAX_DEPTH", 12, 1..=1000)?,
                max_complexity: env.number(
                    "GATEHOUSE_GRAPHQL_MAX_COMPLEXITY",
                    1000,
                    1..=1_000_000,
                )?,
                max_aliases: env.number("GATEHOUSE_GRAPHQL_MAX_ALIASES", 30, 0..=10_000)?,
                max_body_bytes: env.number(
                    "GATEHOUSE_MAX_BODY_BYTES",
                    256 * 1024,
                    1024..=64 * 1024 * 1024,
                )?,
                max_page_size: env.number("GATEHOUSE_MAX_PAGE_SIZE", 100, 1..=10_000)?,
                ws_max_connections: env.number(
                    "GATEHOUSE_WS_MAX_CONNECTIONS",
                    10_000,
                    1..=1_000_000,
                )?,
                ws_max_per_user: env.number("GATEHOUSE_WS_MAX_PER_USER", 20, 1..=10_000)?,
                ws_ping: env.duration("GATEHOUSE_WS_PING", "30s")?,
            },
            jobs: JobTiming {
                heartbeat: env.duration("GATEHOUSE_WORKER_HEARTBEAT", "30s")?,
                retry_base: env.duration("GATEHOUSE_JOB_RETRY_BASE", "30s")?,
                retry_max: env.duration("GATEHOUSE_JOB_RETRY_MAX", "1h")?,
                retry_window: env.duration("GATEHOUSE_JOB_RETRY_WINDOW", "24h")?,
                relay_interval: env.duration("GATEHOUSE_OUTBOX_POLL", "500ms")?,
                sweep_interval: env.duration("GATEHOUSE_SWEEP_INTERVAL", "60s")?,
            },
            log: match env.get("GATEHOUSE_LOG") {
                Some(filter) => {
                    tracing_subscriber::EnvFilter::try_new(&filter).map_err(|err| ConfigError {
                        variable: "GATEHOUSE_LOG",
                        message: format!(
                            "must be a log filter like info or gatehouse=debug,sqlx=warn, not {filter:?} ({err})"
                        ),
                    })?;
                    filter
                }
                // RUST_LOG may be set for other programs: a bad one only warns (telemetry).
                None => lookup("RUST_LOG")
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_else(|| "info".into()),
            },
            log_format: env.parse_with("GATEHOUSE_LOG_FORMAT", "text", |v| {
                match v.to_ascii_lowercase().as_str() {
                    "text" => Ok(LogFormat::Text),
                    "json" => Ok(LogFormat::Json),
                    _ => Err(format!("must be text or json, not {v:?}")),
                }
            })?,
            otlp_endpoint: otlp_endpoint(&env)?,
        };
        if config.argon2.m_kib < 8 * config.argon2.p {
            return Err(ConfigError {
                variable: "GATEHOUSE_ARGON2_M_KIB",
                message: "must be at least 8 × GATEHOUSE_ARGON2_P".into(),
            });
        }
        Ok(config)
    }
}

/// The database behind the store, chosen once from its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Which database a URL names.
pub fn database_scheme(url: &str) -> Result<Backend, String> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err("must be a sqlite:// or postgres:// URL".into())
    }
}

fn parse_smtp_url(value: &str) -> Result<String, String> {
    let url = Url::parse(value).map_err(|e| format!("{e} in {}", redact_url(value)))?;
    match url.scheme() {
        "smtp" | "smtps" => {}
        other => return Err(format!("scheme must be smtp or smtps, not {other}")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("needs a host, like smtp://mail.example.com:587?tls=starttls".into());
    }
    for (key, val) in url.query_pairs() {
        if key == "tls" && !matches!(&*val, "starttls" | "none" | "required") {
            return Err(format!("tls must be starttls, required or none, not {val}"));
        }
    }
    Ok(value.to_owned())
}

/// The URL with any password replaced by `***`, fit for messages and logs.
pub fn redact_url(value: &str) -> String {
    match Url::parse(value) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => value.to_owned(),
        // Unparseable: show nothing after a possible `user:password@`.
        Err(_) => match value.split_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => value.to_owned(),
        },
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("queue_url", &redact_url(&self.queue_url))
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("outbox_dir", &self.outbox_dir)
            .field("mail_from", &self.mail_from)
            .field("template_dir", &self.template_dir)
            .field("support_contact", &self.support_contact)
            .field("tls_ca", &self.tls_ca)
            .field("tls", &self.tls)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url.as_str())
            .field("lockout_threshold", &self.lockout_threshold)
            .field("lockout_duration", &self.lockout_duration)
            .field("login_rate_limit", &self.login_rate_limit)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("cors_origins", &self.cors_origins)
            .field("setup_token_ttl", &self.setup_token_ttl)
            .field("session_idle", &self.session_idle)
            .field("session_max", &self.session_max)
            .field("request_reminder", &self.request_reminder)
            .field("request_expiry", &self.request_expiry)
            .field("argon2", &self.argon2)
            .field("limits", &self.limits)
            .field("jobs", &self.jobs)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_ref().map(|u| redact_url(u.as_str())),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn cors_origins_are_exact_web_origins() {
        let c = config(&[(
            "GATEHOUSE_CORS_ORIGINS",
            "https://portal.example.com, http://127.0.0.1:3000/",
        )])
        .unwrap();
        assert_eq!(
            c.cors_origins,
            ["https://portal.example.com", "http://127.0.0.1:3000"]
        );
        assert!(config(&[]).unwrap().cors_origins.is_empty());
    }

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, "sqlite://data/gatehouse.db");
        assert_eq!(c.queue_url, "sqlite://data/queue.db");
        assert_eq!(c.smtp_url, None);
        assert_eq!(c.outbox_dir, PathBuf::from("data/outbox"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.lockout_threshold, 5);
        assert_eq!(c.lockout_duration, Duration::from_secs(3600));
        assert_eq!(c.login_rate_limit, 30);
        assert_eq!(c.setup_token_ttl, Duration::from_secs(72 * 3600));
        assert_eq!(c.session_idle, Duration::from_secs(30 * 60));
        assert_eq!(c.session_max, Duration::from_secs(12 * 3600));
        assert_eq!(c.request_reminder, Duration::from_secs(3 * 86400));
        assert_eq!(c.request_expiry, Duration::from_secs(14 * 86400));
        assert_eq!(
            c.argon2,
            Argon2Params {
                m_kib: 19_456,
                t: 2,
                p: 1
            }
        );
        assert_eq!(c.limits.max_depth, 12);
        assert_eq!(c.limits.max_complexity, 1000);
        assert_eq!(c.limits.max_aliases, 30);
        assert_eq!(c.limits.max_body_bytes, 256 * 1024);
        assert_eq!(c.log, "info");
        assert_eq!(c.jobs.retry_window, Duration::from_secs(86_400));
        assert_eq!(c.jobs.heartbeat, Duration::from_secs(30));
    }

    #[test]
    fn durations_take_units() {
        let c = config(&[
            ("GATEHOUSE_LOCKOUT_DURATION", "90s"),
            ("GATEHOUSE_REQUEST_EXPIRY", "2d"),
        ])
        .unwrap();
        assert_eq!(c.lockout_duration, Duration::from_secs(90));
        assert_eq!(c.request_expiry, Duration::from_secs(2 * 86400));
    }

    #[test]
    fn live_connections_default_to_the_spec() {
        let limits = config(&[]).unwrap().limits;
        assert_eq!(limits.ws_max_connections, 10_000);
        assert_eq!(limits.ws_max_per_user, 20);
        assert_eq!(limits.ws_ping, Duration::from_secs(30));
    }

    #[test]
    fn the_https_certificate_and_key_come_together() {
        let err = config(&[("GATEHOUSE_TLS_CERT_FILE", "/etc/tls.crt")]).unwrap_err();
        assert_eq!(err.variable, "GATEHOUSE_TLS_KEY_FILE");
        let err = config(&[("GATEHOUSE_TLS_KEY_FILE", "/etc/tls.key")]).unwrap_err();
        assert_eq!(err.variable, "GATEHOUSE_TLS_CERT_FILE");
        let both = config(&[
            ("GATEHOUSE_TLS_CERT_FILE", "/etc/tls.crt"),
            ("GATEHOUSE_TLS_KEY_FILE", "/etc/tls.key"),
        ])
        .unwrap();
        assert!(both.https());
        assert!(!config(&[]).unwrap().https());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (key, value) in [
            ("GATEHOUSE_LOCKOUT_DURATION", "soon"),
            ("GATEHOUSE_LOCKOUT_THRESHOLD", "-1"),
            ("GATEHOUSE_LISTEN", "nowhere"),
            ("GATEHOUSE_DATABASE_URL", "mysql://x"),
            ("GATEHOUSE_QUEUE_URL", "amqp://x"),
            ("GATEHOUSE_SMTP_URL", "http://mail"),
            ("GATEHOUSE_PUBLIC_URL", "not a url"),
            ("GATEHOUSE_ARGON2_T", "0"),
            ("GATEHOUSE_LOG_FORMAT", "xml"),
            ("GATEHOUSE_LOG", "gatehouse=loud"),
            ("GATEHOUSE_CORS_ORIGINS", "https://portal.example/app"),
            ("GATEHOUSE_CORS_ORIGINS", "portal.example"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("GATEHOUSE_TLS_CA_FILE", "/nonexistent/ca.pem"),
        ] {
            let err = config(&[(key, value)]).unwrap_err();
            assert_eq!(err.variable, key);
            assert!(err.to_string().starts_with(key), "{err}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let c = config(&[
            ("GATEHOUSE_DATABASE_URL", "postgres://app:hunter2@db/gh"),
            (
                "GATEHOUSE_SMTP_URL",
                "smtps://mailer:s3cret@mail.example.com",
            ),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("***"));
    }
}
