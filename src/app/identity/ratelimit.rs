//! Attempts per client IP and minute at the operations that check a secret or send email
//! without sign-in: counted in Redis when the queue is on Redis (shared by every API
//! node), else in this process, in bounded memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at once in process memory. Past this, with every window still
/// running, unknown addresses are refused until windows end: a flood of spoofed
/// addresses must neither exhaust memory nor reset the counts of real ones.
const MAX_KEYS: usize = 100_000;

/// A fixed-window counter per key, kept in memory.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
    redis: Option<redis::aio::ConnectionManager>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            counts: Mutex::new(HashMap::new()),
            redis: None,
        }
    }

    /// Counts in Redis from now on (falling back to this process when Redis fails).
    pub fn shared(mut self, redis: redis::aio::ConnectionManager) -> Self {
        self.redis = Some(redis);
        self
    }

    /// Counts one attempt for `key`; false once the window's limit is used up.
    pub async fn allow(&self, key: &str) -> bool {
        if let Some(redis) = &self.redis {
            match self.allow_in_redis(redis.clone(), key).await {
                Ok(allowed) => return allowed,
                Err(err) => {
                    tracing::warn!(error = %err, "rate limit: Redis unavailable; counting in this process");
                }
            }
        }
        self.allow_here(key)
    }

    /// INCR and EXPIRE in one transaction, on a key per window.
    async fn allow_in_redis(
        &self,
        mut redis: redis::aio::ConnectionManager,
        key: &str,
    ) -> redis::RedisResult<bool> {
        let window = self.window.as_secs().max(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let key = format!("gatehouse:ratelimit:{key}:{}", now / window);
        let (count,): (u64,) = tokio::time::timeout(Duration::from_secs(2), async {
            redis::pipe()
                .atomic()
                .incr(&key, 1u64)
                .expire(&key, i64::try_from(window + 1).unwrap_or(i64::MAX))
                .ignore()
                .query_async(&mut redis)
                .await
        })
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timed out")))??;
        Ok(count <= u64::from(self.limit))
    }

    fn allow_here(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if counts.len() >= MAX_KEYS {
                return false;
            }
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.limit
    }
}

/// The key an address is counted under: IPv6 clients by their /64, which one client
/// usually holds whole.
pub fn client_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => ip.to_owned(),
    }
}

impl crate::app::Shared {
    /// Counts an attempt at an operation that checks a secret or sends email without
    /// sign-in (login, changePassword, completeAccountSetup, requestAccountSetupEmail),
    /// per client IP.
    pub(crate) async fn limit_public_operation(
        &self,
        client: &super::session::ClientInfo,
    ) -> crate::app::AppResult<()> {
        if let Some(ip) = &client.ip
            && !self.login_limiter.allow(&client_key(ip)).await
        {
            return Err(crate::app::AppError::RateLimited);
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
        assert!((0..3).all(|_| limiter.allow_here("a")));
        assert!(!limiter.allow_here("a"));
        assert!(limiter.allow_here("b"), "other keys are counted apart");
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.allow_here("a"), "a new window starts");
    }

    #[test]
    fn a_flood_of_addresses_is_bounded() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        for i in 0..MAX_KEYS {
            assert!(limiter.allow_here(&i.to_string()));
        }
        assert!(!limiter.allow_here("one more"), "no room: refused");
        assert!(limiter.allow_here("7"), "known addresses keep their count");
        assert_eq!(limiter.counts.lock().unwrap().len(), MAX_KEYS);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(client_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(client_key("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
        assert_eq!(client_key("192.0.2.7"), "192.0.2.7");
    }
}
