//! Who is calling: sign-in and sessions, passwords and security questions, account setup,
//! and the rate limit and session watch that guard them.

pub mod credentials;
pub mod crypto;
pub mod lockout;
pub mod ratelimit;
pub mod session;
pub mod setup;
pub mod watch;

use super::service;

service!(
    /// Sign-in, sessions and credentials.
    Identity
);

impl Identity {
    /// Watches a session for a long-lived connection: `ended` turns true when it ends.
    pub fn watch_session(&self, session: crate::domain::SessionId) -> watch::Watching {
        let clock = self.config.clock.clone();
        self.sessions
            .watch(session, &self.store, self.config.session_idle, clock)
    }
}
