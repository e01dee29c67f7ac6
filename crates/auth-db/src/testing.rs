//! Throw-away databases for tests (feature `testing`): a SQLite file in a fresh temporary
//! directory, or a fresh PostgreSQL database. Both are removed on drop.
//!
//! PostgreSQL tests need a server: `AUTH_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) names an account allowed to create
//! databases. When it is unreachable, [`TestDatabase::postgres`] panics, except outside CI
//! with `AUTH_TEST_SKIP_POSTGRES=1`, where it warns loudly and answers `None`.

use std::error::Error as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

use crate::{Database, DatabaseOptions};

/// Admin URL used when `AUTH_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for the lifetime of this value.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Directory(PathBuf),
    PostgresDatabase { admin_url: String, name: String },
}

impl TestDatabase {
    /// A SQLite file in a new directory under the system's temporary directory.
    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("auth-db-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .expect("cannot create a temporary directory for a SQLite test database");
        let url = format!("sqlite://{}", dir.join("auth.db").display());
        Self {
            url,
            cleanup: Cleanup::Directory(dir),
        }
    }

    /// A new, empty PostgreSQL database `auth_test_<uuid>` on the server of
    /// `AUTH_TEST_POSTGRES_URL`; `None` only when the server is unreachable and
    /// `AUTH_TEST_SKIP_POSTGRES=1` (never in CI).
    ///
    /// Blocking (it runs its own small runtime on another thread): call it from sync or
    /// async code alike.
    pub fn postgres() -> Option<Self> {
        let admin_url = std::env::var("AUTH_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.to_owned());
        let name = format!("auth_test_{}", Uuid::new_v4().simple());
        match run_admin_sql(&admin_url, format!("CREATE DATABASE {name}")) {
            Ok(()) => Some(Self {
                url: with_database_name(&admin_url, &name),
                cleanup: Cleanup::PostgresDatabase { admin_url, name },
            }),
            Err(AdminError::Unreachable(e)) => skip_or_panic(&admin_url, &e),
            Err(AdminError::Refused(e)) => {
                panic!("cannot create a PostgreSQL test database at {admin_url}: {e}")
            }
        }
    }

    /// The URL to give [`Database::connect`] or the server's configuration.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Run `sql` (one or more statements) on this database, beside whatever server uses it:
    /// for tests that change the database under a running server (a trigger that refuses
    /// writes). Blocking, like [`Self::postgres`].
    pub fn execute(&self, sql: &str) {
        match &self.cleanup {
            Cleanup::PostgresDatabase { .. } => run_admin_sql(&self.url, sql.to_owned())
                .unwrap_or_else(|e| panic!("cannot run SQL on the test database: {e:?}")),
            Cleanup::Directory(_) => {
                use diesel::connection::SimpleConnection as _;
                let path = self.url.trim_start_matches("sqlite://");
                let mut conn = <diesel::SqliteConnection as diesel::Connection>::establish(path)
                    .expect("cannot open the SQLite test database");
                conn.batch_execute(&format!("PRAGMA busy_timeout = 10000; {sql}"))
                    .expect("cannot run SQL on the SQLite test database");
            }
        }
    }

    /// A [`Database`] on this database, migrated, with short timeouts (a query that never
    /// answers fails after a minute).
    pub async fn database(&self) -> Database {
        let opts = DatabaseOptions {
            connect_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(10),
            ..DatabaseOptions::default()
        };
        // A query that never answers fails the test instead of hanging it.
        let db = Database::connect(&self.url, &opts)
            .expect("cannot open the test database")
            .with_query_timeout(Some(Duration::from_secs(60)));
        db.migrate()
            .await
            .expect("cannot migrate the test database");
        db
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Directory(dir) => {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    eprintln!(
                        "warning: cannot remove the test database directory {}: {e}",
                        dir.display()
                    );
                }
            }
            Cleanup::PostgresDatabase { admin_url, name } => {
                // FORCE closes the connections that pools may still hold.
                if let Err(e) = run_admin_sql(
                    admin_url,
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ) {
                    eprintln!("warning: cannot drop the PostgreSQL test database {name}: {e}");
                }
            }
        }
    }
}

fn skip_or_panic(admin_url: &str, error: &str) -> Option<TestDatabase> {
    let env_is = |name: &str, values: &[&str]| {
        std::env::var(name).is_ok_and(|v| values.contains(&v.as_str()))
    };
    if env_is("CI", &["true", "1"]) {
        panic!(
            "PostgreSQL at {admin_url} is unreachable ({error}), and CI must run the PostgreSQL tests"
        );
    }
    if env_is("AUTH_TEST_SKIP_POSTGRES", &["1"]) {
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "\n**********\nWARNING: PostgreSQL at {admin_url} is unreachable ({error}): SKIPPING \
             this PostgreSQL test (AUTH_TEST_SKIP_POSTGRES=1)\n**********\n"
        );
        return None;
    }
    panic!(
        "PostgreSQL at {admin_url} is unreachable ({error}). Start it, point AUTH_TEST_POSTGRES_URL at a server, \
         or set AUTH_TEST_SKIP_POSTGRES=1 to skip the PostgreSQL tests outside CI"
    );
}

#[derive(Debug)]
enum AdminError {
    /// No connection to the server.
    Unreachable(String),
    /// Connected, but the statement failed (or the URL is malformed).
    Refused(String),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(e) | Self::Refused(e) => f.write_str(e),
        }
    }
}

/// Run one statement as the admin, on a new thread with its own runtime: this works from
/// `Drop` and from inside any runtime.
fn run_admin_sql(admin_url: &str, sql: String) -> Result<(), AdminError> {
    let admin_url = admin_url.to_owned();
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let mut config: tokio_postgres::Config = admin_url
                .parse()
                .map_err(|e: tokio_postgres::Error| AdminError::Refused(e.to_string()))?;
            config.connect_timeout(Duration::from_secs(5));
            let (client, connection) =
                config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| match e.code() {
                        // The server answered: a wrong role or password is not "unreachable".
                        Some(_) => AdminError::Refused(with_sources(&e)),
                        None => AdminError::Unreachable(with_sources(&e)),
                    })?;
            let driver = tokio::spawn(connection);
            let result = client
                .batch_execute(&sql)
                .await
                .map_err(|e| AdminError::Refused(with_sources(&e)));
            drop(client);
            let _ = driver.await;
            result
        })
    });
    worker
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `e: its cause: its cause…`.
fn with_sources(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// `admin_url` with its database name replaced by `name` (query parameters kept).
fn with_database_name(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

/// Instantiates storage scenarios on every backend: `mod memory`, `mod sqlite` and
/// `mod postgres`, one `#[tokio::test]` per scenario in each. A scenario is an `async fn`
/// of the invoking module that takes the store as an `Arc` (of `MemoryStore` or
/// `Database`, coerced to the scenario's own trait object). The one copy of this loop for
/// every contract file.
#[macro_export]
macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(::std::sync::Arc::new(
                        ::auth_core::memory::MemoryStore::new(),
                    ))
                    .await;
                }
            )*
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let db = $crate::testing::TestDatabase::sqlite();
                    super::$scenario(::std::sync::Arc::new(db.database().await)).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(db) = $crate::testing::TestDatabase::postgres() else {
                        return;
                    };
                    super::$scenario(::std::sync::Arc::new(db.database().await)).await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database_name;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database_name("postgres://u@h:5432/postgres", "t"),
            "postgres://u@h:5432/t"
        );
        assert_eq!(
            with_database_name("postgres://u@h", "t"),
            "postgres://u@h/t"
        );
        assert_eq!(
            with_database_name("postgresql://u:p@h/db?sslmode=disable", "t"),
            "postgresql://u:p@h/t?sslmode=disable"
        );
    }
}
