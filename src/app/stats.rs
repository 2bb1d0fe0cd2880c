//! Counts the app keeps of what happens (sign-in outcomes, lockouts), read by the metrics
//! endpoint: plain atomics, so that the use cases need no metrics library.

use std::sync::atomic::{AtomicU64, Ordering};

/// How a sign-in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    /// A wrong password, an unknown or inactive user, or a locked account: one answer.
    InvalidCredentials,
    /// Too many attempts from the client's address.
    RateLimited,
    /// Anything else (the database down).
    Error,
}

impl LoginOutcome {
    pub const ALL: [LoginOutcome; 4] = [
        LoginOutcome::Success,
        LoginOutcome::InvalidCredentials,
        LoginOutcome::RateLimited,
        LoginOutcome::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::InvalidCredentials => "invalid_credentials",
            LoginOutcome::RateLimited => "rate_limited",
            LoginOutcome::Error => "error",
        }
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    logins: [AtomicU64; LoginOutcome::ALL.len()],
    lockouts: AtomicU64,
}

impl Stats {
    pub fn login(&self, outcome: LoginOutcome) {
        self.logins[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Sign-ins that ended so, since start.
    pub fn logins(&self, outcome: LoginOutcome) -> u64 {
        self.logins[outcome as usize].load(Ordering::Relaxed)
    }

    pub fn lockout(&self) {
        self.lockouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Accounts locked by failed checks, since start.
    pub fn lockouts(&self) -> u64 {
        self.lockouts.load(Ordering::Relaxed)
    }
}
