//! A fixed-window counter per key (a client IP), kept in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for `key`; false once the window's limit is used up.
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.len() > 100_000 {
            // Bound memory under a flood of distinct addresses: drop finished windows.
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.limit
    }
}

impl super::App {
    /// Counts an attempt at an operation that checks a secret or sends email without
    /// sign-in (login, changePassword, completeAccountSetup, requestAccountSetupEmail),
    /// per client IP.
    pub(crate) async fn limit_public_operation(
        &self,
        client: &super::session::ClientInfo,
    ) -> super::AppResult<()> {
        if let Some(ip) = &client.ip
            && !self.login_limiter.allow(ip)
        {
            return Err(super::AppError::RateLimited);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_key_per_window() {
        let limiter = RateLimiter::new(3, Duration::from_millis(200));
        assert!((0..3).all(|_| limiter.allow("a")));
        assert!(!limiter.allow("a"));
        assert!(limiter.allow("b"), "other keys are counted apart");
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.allow("a"), "a new window starts");
    }
}
