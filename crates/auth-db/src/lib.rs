//! `auth-db`: the SQLite and PostgreSQL adapters of the storage ports of `auth-core`.
//!
//! One [`Database`] handle holds a connection pool for either backend and implements
//! [`auth_core::ports::UserStore`], [`auth_core::ports::SessionStore`],
//! [`auth_core::ports::OneTimeTokenStore`], [`auth_core::ports::OutboxStore`],
//! [`auth_core::ports::SigningKeyStore`], [`auth_core::ports::HealthCheck`],
//! [`auth_core::guard::RateLimitStore`] and [`auth_core::guard::LockoutStore`]; and
//! [`RedisRateLimits`], rate-limit counters in Redis. Every query is
//! written once and stamped for each concrete connection type by a macro (diesel's
//! `MultiConnection` does not support diesel-async).
//!
//! ```no_run
//! # async fn start() -> Result<(), auth_db::DbError> {
//! use auth_db::{Database, DatabaseOptions};
//!
//! let db = Database::connect("sqlite://data/auth.db", &DatabaseOptions::default())?;
//! db.migrate().await?;
//! # Ok(())
//! # }
//! ```

mod database;
mod redis_limits;
mod schema;
mod stores;
#[cfg(feature = "testing")]
pub mod testing;

pub use database::{Backend, Database, DatabaseOptions, DbError, PoolStatus};
pub use redis_limits::RedisRateLimits;
pub use stores::{OutboxEntryView, RingKey};
