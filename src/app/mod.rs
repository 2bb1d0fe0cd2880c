//! Use cases. Every operation takes the calling `Actor` and decides authorization here.

pub mod audit;
pub mod credentials;
pub mod crypto;
pub mod directory;
pub mod error;
pub mod feed;
pub mod organization;
pub mod policy;
pub mod ratelimit;
pub mod request;
pub mod session;
pub mod user;
pub mod watch;

pub use error::{AppError, AppResult};
pub use session::{Actor, Caller, SelfView};

use crate::config::Config;
use crate::store::Store;
use std::sync::Arc;

/// The application: the store, the settings and the password hasher, shared by the HTTP
/// server, the command line and the workers.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub hasher: crypto::PasswordHasher,
    /// Sign-in attempts per client IP and minute.
    pub login_limiter: Arc<ratelimit::RateLimiter>,
    /// Request status changes, for subscriptions.
    pub feed: Arc<feed::RequestFeed>,
    /// Sessions that open WebSocket connections depend on.
    sessions: Arc<watch::SessionWatch>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>) -> Self {
        let hasher = crypto::PasswordHasher::new(config.argon2);
        let login_limiter = Arc::new(ratelimit::RateLimiter::new(
            config.login_rate_limit,
            std::time::Duration::from_secs(60),
        ));
        Self {
            store,
            config,
            hasher,
            login_limiter,
            feed: Arc::new(feed::RequestFeed::new(std::time::Duration::from_millis(
                250,
            ))),
            sessions: Arc::default(),
        }
    }

    /// Counts rate limits in Redis, shared by every node using it.
    pub fn with_shared_limits(mut self, redis: redis::aio::ConnectionManager) -> Self {
        let limiter = ratelimit::RateLimiter::new(
            self.config.login_rate_limit,
            std::time::Duration::from_secs(60),
        )
        .shared(redis);
        self.login_limiter = Arc::new(limiter);
        self
    }

    /// Watches a session for a long-lived connection: `ended` turns true when it ends.
    pub fn watch_session(&self, session: crate::domain::SessionId) -> watch::Watching {
        self.sessions
            .watch(session, &self.store, self.config.session_idle)
    }
}
