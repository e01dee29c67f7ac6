//! Connection pools, start-up (connect, migrate) and the mapping of pool and diesel errors
//! into [`AuthError`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use auth_core::{AuthError, AuthResult};
use deadpool::Runtime;
use deadpool::managed::{Object, PoolError as DeadpoolError};
use diesel::result::{ConnectionError, ConnectionResult, DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::BigInt;
use diesel::{SqliteConnection, sql_query};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{BuildError, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The SQLite connection: diesel's synchronous connection, run on tokio's blocking pool.
pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;
/// The PostgreSQL connection.
pub(crate) type PgConn = AsyncPgConnection;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Key of the PostgreSQL advisory lock held while migrating (`authmigr` in ASCII), so that
/// nodes starting together migrate one after the other.
const MIGRATION_LOCK_KEY: i64 = 0x6175_7468_6d69_6772;

/// Set on every SQLite connection. `busy_timeout` comes first: switching to WAL needs a lock.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// Pool size when [`DatabaseOptions::max_connections`] is `None`, for PostgreSQL.
const DEFAULT_POSTGRES_CONNECTIONS: usize = 16;
/// Pool size when [`DatabaseOptions::max_connections`] is `None`, for SQLite: one writer at a
/// time anyway, and each busy connection occupies a blocking thread.
const DEFAULT_SQLITE_CONNECTIONS: usize = 8;

/// Which database a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: the single-node embedded default.
    Sqlite,
    /// A PostgreSQL server, shared by every node.
    Postgres,
}

/// Pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseOptions {
    /// Upper bound of open connections; `None` picks the backend's default: 16 for
    /// PostgreSQL, 8 for SQLite.
    pub max_connections: Option<usize>,
    /// How long opening one connection may take (TCP connect and start-up, or opening the
    /// SQLite file and setting its pragmas).
    pub connect_timeout: Duration,
    /// How long a caller waits for a free connection when all are busy.
    pub acquire_timeout: Duration,
}

impl Default for DatabaseOptions {
    /// Backend default pool size, 5 s to connect, 5 s to acquire.
    fn default() -> Self {
        Self {
            max_connections: None,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Start-up failures: a bad URL, an unusable pool configuration, a failed migration.
///
/// The storage ports never return it; they answer [`AuthError`].
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither `sqlite://…` nor `postgres://…`/`postgresql://…`.
    #[error(
        "unsupported database URL scheme `{0}`: expected sqlite://, postgres:// or postgresql://"
    )]
    UnsupportedScheme(String),
    /// The URL has the right scheme but cannot be used.
    #[error("invalid database URL: {0}")]
    InvalidUrl(&'static str),
    /// The directory of the SQLite file could not be created.
    #[error("cannot create the database directory {}", path.display())]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pool configuration was refused.
    #[error("cannot build the connection pool")]
    Pool(#[from] BuildError),
    /// No connection could be opened, or the database refused a start-up statement.
    #[error("cannot connect to the database: {0}")]
    Connect(AuthError),
    /// A migration failed.
    #[error("database migration failed")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The storage adapter: a pool of SQLite or PostgreSQL connections. Cheap to clone (the
/// pool is shared).
///
/// Every port call runs on its own tokio task, so a caller that stops waiting (a client
/// that went away, a timeout) never cancels a query or a transaction halfway.
#[derive(Clone)]
pub struct Database {
    pub(crate) pool: DbPool,
    /// Longest wait for one port call (see [`Database::with_query_timeout`]).
    pub(crate) query_timeout: Option<Duration>,
}

/// One pool per backend; the query code matches on it (see `stores.rs`).
#[derive(Clone)]
pub(crate) enum DbPool {
    Sqlite(Pool<SqliteConn>),
    Postgres(Pool<PgConn>),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Build the connection pool for `url`.
    ///
    /// - `sqlite://path/to/auth.db` (relative to the working directory) or
    ///   `sqlite:///var/lib/auth/auth.db`: creates the file's directory if needed.
    /// - `postgres://…` or `postgresql://…` (libpq URL syntax, no TLS).
    ///
    /// Lazy: no connection is opened here, so a database that is down is reported by the
    /// first call that needs it ([`Database::migrate`] at start-up, or a port call answering
    /// [`AuthError::Unavailable`]). Needs a tokio runtime when connections are used.
    pub fn connect(url: &str, opts: &DatabaseOptions) -> Result<Self, DbError> {
        let pool = if let Some(path) = url.strip_prefix("sqlite://") {
            DbPool::Sqlite(sqlite_pool(path, opts)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DbPool::Postgres(postgres_pool(url, opts)?)
        } else {
            // Only the scheme: the rest of a URL may hold a password.
            let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
            return Err(DbError::UnsupportedScheme(scheme.to_owned()));
        };
        Ok(Self {
            pool,
            query_timeout: None,
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            DbPool::Sqlite(_) => Backend::Sqlite,
            DbPool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Apply the embedded migrations that are not applied yet; a no-op when there are none.
    ///
    /// On PostgreSQL, holds an advisory lock meanwhile so that nodes starting at the same
    /// time do not race. Runs diesel's synchronous migration harness on tokio's blocking
    /// pool, so it works on current-thread runtimes too.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let applied = match &self.pool {
            DbPool::Sqlite(pool) => {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| DbError::Connect(pool_error(e)))?;
                conn.spawn_blocking(|conn| Ok(run_migrations(conn, SQLITE_MIGRATIONS)))
                    .await
                    .map_err(|e| DbError::Connect(query_error(e)))??
            }
            DbPool::Postgres(pool) => {
                let conn = pool
                    .get()
                    .await
                    .map_err(|e| DbError::Connect(pool_error(e)))?;
                // Taken out of the pool: the wrapper below owns it and closes it when done,
                // which also releases the advisory lock whatever happens.
                let conn = Object::take(conn);
                tokio::task::spawn_blocking(move || migrate_postgres(conn))
                    .await
                    .map_err(|e| DbError::Migration(Box::new(e)))??
            }
        };
        tracing::info!(backend = ?self.backend(), applied, "database migrations applied");
        Ok(())
    }
}

fn sqlite_pool(path: &str, opts: &DatabaseOptions) -> Result<Pool<SqliteConn>, DbError> {
    if path.is_empty() {
        return Err(DbError::InvalidUrl("sqlite:// needs a file path"));
    }
    if path == ":memory:" {
        // Every pooled connection would get its own empty database.
        return Err(DbError::InvalidUrl(
            "in-memory SQLite cannot be pooled: use a file",
        ));
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDirectory {
            path: dir.to_owned(),
            source,
        })?;
    }
    let mut config = ManagerConfig::<SqliteConn>::default();
    // A local file does not drop connections: skip the round trip on every checkout.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(establish_sqlite);
    let manager = AsyncDieselConnectionManager::new_with_config(path, config);
    build_pool(
        manager,
        opts.max_connections.unwrap_or(DEFAULT_SQLITE_CONNECTIONS),
        opts,
    )
}

type SetupFuture<'a> = Pin<Box<dyn Future<Output = ConnectionResult<SqliteConn>> + Send + 'a>>;

fn establish_sqlite(path: &str) -> SetupFuture<'_> {
    Box::pin(async move {
        let mut conn = SqliteConn::establish(path).await?;
        conn.batch_execute(SQLITE_PRAGMAS)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok(conn)
    })
}

fn postgres_pool(url: &str, opts: &DatabaseOptions) -> Result<Pool<PgConn>, DbError> {
    let mut config = ManagerConfig::<PgConn>::default();
    // A connection whose server went away is detected as closed (`is_broken`) and dropped;
    // no `SELECT 1` round trip before every query.
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::new_with_config(url, config);
    build_pool(
        manager,
        opts.max_connections.unwrap_or(DEFAULT_POSTGRES_CONNECTIONS),
        opts,
    )
}

fn build_pool<C>(
    manager: AsyncDieselConnectionManager<C>,
    max_size: usize,
    opts: &DatabaseOptions,
) -> Result<Pool<C>, DbError>
where
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager,
{
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(opts.acquire_timeout))
        .create_timeout(Some(opts.connect_timeout))
        .recycle_timeout(Some(opts.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()?)
}

fn migrate_postgres(conn: PgConn) -> Result<usize, DbError> {
    let mut conn = AsyncConnectionWrapper::<PgConn>::from(conn);
    let lock = sql_query("SELECT pg_advisory_lock($1)").bind::<BigInt, _>(MIGRATION_LOCK_KEY);
    diesel::RunQueryDsl::execute(lock, &mut conn).map_err(|e| DbError::Connect(query_error(e)))?;
    let applied = run_migrations(&mut conn, POSTGRES_MIGRATIONS);
    let unlock = sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(MIGRATION_LOCK_KEY);
    if let Err(e) = diesel::RunQueryDsl::execute(unlock, &mut conn) {
        // Closing the connection (now) releases the lock anyway.
        tracing::warn!(error = %e, "could not release the migration lock");
    }
    applied
}

fn run_migrations<DB: diesel::backend::Backend>(
    conn: &mut impl MigrationHarness<DB>,
    migrations: EmbeddedMigrations,
) -> Result<usize, DbError> {
    conn.run_pending_migrations(migrations)
        .map(|applied| applied.len())
        .map_err(DbError::Migration)
}

/// A pool failure as the ports report it: a database that cannot be reached (or not in
/// time) is [`AuthError::Unavailable`].
pub(crate) fn pool_error(e: DeadpoolError<PoolError>) -> AuthError {
    match e {
        DeadpoolError::Backend(PoolError::QueryError(e)) => query_error(e),
        DeadpoolError::Backend(PoolError::ConnectionError(e)) => unavailable(e),
        DeadpoolError::NoRuntimeSpecified => internal(e),
        e @ (DeadpoolError::Timeout(_)
        | DeadpoolError::Closed
        | DeadpoolError::PostCreateHook(_)) => unavailable(e),
    }
}

/// A diesel failure as the ports report it: a lost connection, or SQLite still locked after
/// its busy timeout, is [`AuthError::Unavailable`] (worth retrying); anything else is
/// [`AuthError::Internal`]. The messages carry no SQL text and no bound values.
pub(crate) fn query_error(e: DieselError) -> AuthError {
    match &e {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => unavailable(e),
        DieselError::DatabaseError(_, info) if info.message() == "database is locked" => {
            unavailable(e)
        }
        _ => internal(e),
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> AuthError {
    tracing::warn!(error = %e, "database unavailable");
    AuthError::Unavailable(format!("database: {e}"))
}

fn internal(e: impl std::fmt::Display) -> AuthError {
    tracing::error!(error = %e, "database error");
    AuthError::Internal(format!("database: {e}"))
}

impl Database {
    /// Answer [`AuthError::Unavailable`] when a port call (waiting for a connection and
    /// the queries) takes longer than `timeout`: a database that stalls without closing
    /// its connections (a network partition) then gets 503s rather than hanging requests.
    /// The call itself goes on in the background and its transaction ends normally.
    pub fn with_query_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.query_timeout = timeout;
        self
    }
}

/// Run `work` on its own task and wait for it (at most `timeout`); see [`Database`] for
/// why.
pub(crate) async fn detach<T: Send + 'static>(
    timeout: Option<Duration>,
    work: impl Future<Output = AuthResult<T>> + Send + 'static,
) -> AuthResult<T> {
    let task = tokio::spawn(work);
    let joined = match timeout {
        None => task.await,
        Some(limit) => match tokio::time::timeout(limit, task).await {
            Ok(joined) => joined,
            Err(_) => {
                return Err(unavailable(format!(
                    "no answer within {} ms",
                    limit.as_millis()
                )));
            }
        },
    };
    joined.unwrap_or_else(|e| {
        if e.is_panic() {
            Err(internal("database task panicked"))
        } else {
            Err(unavailable(
                "database task cancelled: the runtime is shutting down",
            ))
        }
    })
}

/// Occupancy of the connection pool, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Upper bound of open connections.
    pub max_size: usize,
    /// Connections open now (busy or idle).
    pub size: usize,
    /// Idle connections ready to be handed out.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl Database {
    /// How full the pool is right now (no I/O).
    pub fn pool_status(&self) -> PoolStatus {
        let s = match &self.pool {
            DbPool::Sqlite(pool) => pool.status(),
            DbPool::Postgres(pool) => pool.status(),
        };
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }
}
