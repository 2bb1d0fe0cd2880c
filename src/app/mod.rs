//! Use cases, one service per area. Every operation takes the calling `Actor` and decides
//! authorization here; what the other layers hold is a service, never the store.
//!
//! - [`Directory`]: organizations, users, practices and the batched reads of an
//!   [`OrgView`].
//! - [`Identity`]: sign-in, sessions, passwords, security questions, account setup.
//! - [`Requests`]: filing, reading and deciding account requests.
//! - [`Workflow`]: the worker side of requests (routing, applying, reminders) and the
//!   workers' ports.
//! - [`Audit`]: the audit log, as members read it and as the operator verifies it.

pub mod audit;
pub mod directory;
pub mod error;
pub mod feed;
pub mod identity;
pub mod jobs;
pub mod page;
pub mod policy;
pub mod request;
pub mod stats;
pub mod workflow;

/// A request's status change, as subscriptions receive it.
pub use crate::store::RequestChange;
pub use audit::Audit;
pub use directory::{Directory, OrgView};
pub use error::{AppError, AppResult};
pub use feed::LiveChange;
pub use identity::session::{Actor, Caller, ClientInfo, SelfView};
pub use identity::{Identity, crypto};
pub use request::Requests;
pub use workflow::Workflow;

use crate::config::Config;
use crate::store::Store;
use std::sync::Arc;

/// What every service works with: the store, the settings, the password hasher, the
/// sign-in limiter, the feed of request changes and the watch over long-lived sessions.
/// Only the services reach into it.
pub struct Shared {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    hasher: crypto::PasswordHasher,
    /// Sign-in attempts per client IP and minute.
    login_limiter: identity::ratelimit::RateLimiter,
    /// Request status changes, for subscriptions.
    feed: Arc<feed::RequestFeed>,
    /// Sessions that open WebSocket connections depend on.
    sessions: Arc<identity::watch::SessionWatch>,
    /// Counts of sign-ins and lockouts, for the metrics.
    stats: stats::Stats,
}

/// Declares an area service: a cheap handle on the shared parts.
macro_rules! service {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(std::sync::Arc<$crate::app::Shared>);

        impl std::ops::Deref for $name {
            type Target = $crate::app::Shared;
            fn deref(&self) -> &$crate::app::Shared {
                &self.0
            }
        }

        impl $name {
            /// Another area's service, for a use case that spans two.
            #[allow(dead_code)]
            fn area<S: From<std::sync::Arc<$crate::app::Shared>>>(&self) -> S {
                S::from(self.0.clone())
            }
        }

        impl From<std::sync::Arc<$crate::app::Shared>> for $name {
            fn from(shared: std::sync::Arc<$crate::app::Shared>) -> Self {
                Self(shared)
            }
        }
    };
}
pub(crate) use service;

/// The application, shared by the HTTP server, the command line and the workers.
#[derive(Clone)]
pub struct App {
    directory: Directory,
    identity: Identity,
    requests: Requests,
    workflow: Workflow,
    audit: Audit,
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>) -> Self {
        Self::build(store, config, None)
    }

    /// Like [`App::new`], counting rate limits in Redis, shared by every node using it.
    pub fn with_shared_limits(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        redis: redis::aio::ConnectionManager,
    ) -> Self {
        Self::build(store, config, Some(redis))
    }

    fn build(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> Self {
        let mut login_limiter = identity::ratelimit::RateLimiter::new(
            config.login_rate_limit,
            std::time::Duration::from_secs(60),
        );
        if let Some(redis) = redis {
            login_limiter = login_limiter.shared(redis);
        }
        let shared = Arc::new(Shared {
            hasher: crypto::PasswordHasher::new(config.argon2),
            store,
            config,
            login_limiter,
            feed: Arc::new(feed::RequestFeed::default()),
            sessions: Arc::default(),
            stats: stats::Stats::default(),
        });
        Self {
            directory: shared.clone().into(),
            identity: shared.clone().into(),
            requests: shared.clone().into(),
            workflow: shared.clone().into(),
            audit: shared.into(),
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The settings, read-only.
    pub fn config(&self) -> &Config {
        &self.directory.config
    }

    /// The current time, by the app's clock (what "locked" and "expired" are judged by).
    pub fn now(&self) -> crate::domain::Timestamp {
        self.directory.now()
    }

    /// Counts of sign-ins and lockouts since start.
    pub fn stats(&self) -> &stats::Stats {
        &self.directory.stats
    }

    /// What the database holds now that an operator watches (requests by kind and
    /// status, the outbox backlog, locked accounts, the connection pool).
    pub async fn gauges(&self) -> AppResult<crate::store::Gauges> {
        Ok(self.directory.store.gauges(self.now()).await?)
    }

    /// Whether the database answers, for the health endpoint.
    pub async fn database_ready(&self) -> AppResult<()> {
        Ok(self.directory.store.ping().await?)
    }

    /// What the signed-in caller's operation may read in batches: their organization.
    pub fn view(&self, caller: &Caller) -> OrgView {
        self.directory.view(caller)
    }
}

impl Shared {
    /// The current time, by the configured clock.
    pub(in crate::app) fn now(&self) -> crate::domain::Timestamp {
        self.config.clock.now()
    }

    /// A user of the caller's organization, for an operation on it; anything else is
    /// NOT_FOUND on `userId`.
    pub(in crate::app) async fn target(
        &self,
        actor: &Actor,
        id: crate::domain::UserId,
    ) -> AppResult<crate::domain::User> {
        match self.store.user(actor.org_id(), id).await {
            Err(crate::store::StoreError::NotFound) => Err(crate::domain::DomainError::new(
                crate::domain::ErrorCode::NotFound,
                "No such user.",
            )
            .on("userId")
            .into()),
            other => Ok(other?),
        }
    }
}
