//! Rate-limit counters in Redis, for deployments that already run one (`rate_limits.backend
//! = "redis"`). One `INCR` + `EXPIRE` per hit, in a transaction; keys expire by themselves.

use async_trait::async_trait;
use auth_core::guard::RateLimitStore;
use auth_core::{AuthError, AuthResult};
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

/// [`RateLimitStore`] on Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisRateLimits {
    connection: ConnectionManager,
    prefix: String,
    ttl_secs: i64,
}

impl std::fmt::Debug for RedisRateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisRateLimits")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimits {
    /// Connect to `url` (`redis://127.0.0.1:6379/0`). Keys start with `prefix` (several
    /// deployments may share one Redis). Counters live `ttl_secs` after their window
    /// starts: give it at least the longest window.
    pub async fn connect(url: &str, prefix: &str, ttl_secs: u64) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("rate_limits.redis_url: {e}"))?;
        let connection = ConnectionManager::new(client)
            .await
            .map_err(|e| format!("rate_limits.redis_url: cannot connect: {e}"))?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
            ttl_secs: i64::try_from(ttl_secs.max(1)).unwrap_or(i64::MAX),
        })
    }
}

#[async_trait]
impl RateLimitStore for RedisRateLimits {
    async fn hit(&self, key: &str, window_start: DateTime<Utc>) -> AuthResult<u32> {
        let key = format!(
            "{}:rl:{key}:{}",
            self.prefix,
            window_start.timestamp_millis()
        );
        let mut connection = self.connection.clone();
        let (count,): (u32,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, self.ttl_secs)
            .ignore()
            .query_async(&mut connection)
            .await
            .map_err(|e| AuthError::Unavailable(format!("redis: {}", e.category())))?;
        Ok(count)
    }

    async fn purge_windows_before(&self, _cutoff: DateTime<Utc>) -> AuthResult<u64> {
        // Keys expire on their own.
        Ok(0)
    }
}
