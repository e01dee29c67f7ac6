//! [`RateLimitStore`] and [`LockoutStore`] for [`Database`]: counters that every node on one
//! database shares, each changed by one statement or one write transaction.

use async_trait::async_trait;
use auth_core::guard::{LockoutState, LockoutStore, RateLimitStore};
use auth_core::{AuthError, AuthResult};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::db_time;
use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
use crate::schema::{login_lockouts, rate_limit_windows};

#[async_trait]
impl RateLimitStore for Database {
    async fn hit(&self, key: &str, window_start: DateTime<Utc>) -> AuthResult<u32> {
        let key = key.to_owned();
        let window_start = db_time(window_start);
        // One upsert, atomic on its own: PostgreSQL locks the row it increments (a
        // concurrent insert of the same key waits for it, then increments), SQLite runs one
        // writer at a time (the statement takes the write lock before it reads).
        let hits: i32 = with_conn!(self, |conn| {
            diesel::insert_into(rate_limit_windows::table)
                .values((
                    rate_limit_windows::key.eq(&key),
                    rate_limit_windows::window_start.eq(window_start),
                    rate_limit_windows::hits.eq(1),
                ))
                .on_conflict((rate_limit_windows::key, rate_limit_windows::window_start))
                .do_update()
                .set(rate_limit_windows::hits.eq(rate_limit_windows::hits + 1))
                .returning(rate_limit_windows::hits)
                .get_result(conn)
                .await
        })?;
        to_count(hits)
    }

    async fn purge_windows_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let cutoff = db_time(cutoff);
        let purged = with_conn!(self, |conn| {
            diesel::delete(
                rate_limit_windows::table.filter(rate_limit_windows::window_start.lt(cutoff)),
            )
            .execute(conn)
            .await
        })?;
        Ok(purged as u64)
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = login_lockouts)]
struct LockoutRow {
    identifier: String,
    failures: i32,
    window_started_at: NaiveDateTime,
    locked_until: Option<NaiveDateTime>,
}

/// The state after one more failure, from the state before it (the rules of the in-memory
/// reference store): a window of `window` or older restarts the count, keeping any lock;
/// reaching `threshold` locks until `now + freeze` and restarts the count at `now`.
/// Answers the row to store and the state to report.
fn after_failure(
    row: LockoutRow,
    now: NaiveDateTime,
    window: Duration,
    threshold: u32,
    freeze: Duration,
) -> AuthResult<(LockoutRow, LockoutState)> {
    let (mut failures, mut started, locked) = (
        to_count(row.failures)?,
        row.window_started_at,
        row.locked_until,
    );
    if now - started >= window {
        (failures, started) = (0, now);
    }
    failures = failures.saturating_add(1);
    if failures >= threshold {
        let until = db_time((now + freeze).and_utc());
        let next = LockoutRow {
            identifier: row.identifier,
            failures: 0,
            window_started_at: now,
            locked_until: Some(until),
        };
        let state = LockoutState {
            failures: threshold,
            locked_until: Some(until.and_utc()),
        };
        return Ok((next, state));
    }
    let state = LockoutState {
        failures,
        locked_until: locked.filter(|until| *until > now).map(|t| t.and_utc()),
    };
    let next = LockoutRow {
        identifier: row.identifier,
        failures: i32::try_from(failures).map_err(AuthError::internal)?,
        window_started_at: started,
        locked_until: locked,
    };
    Ok((next, state))
}

#[async_trait]
impl LockoutStore for Database {
    async fn locked_until(
        &self,
        identifier: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<DateTime<Utc>>> {
        let identifier = identifier.to_owned();
        let now = db_time(now);
        let until: Option<Option<NaiveDateTime>> = with_conn!(self, |conn| {
            login_lockouts::table
                .find(&identifier)
                .filter(login_lockouts::locked_until.gt(now))
                .select(login_lockouts::locked_until)
                .first(conn)
                .await
                .optional()
        })?;
        Ok(until.flatten().map(|t| t.and_utc()))
    }

    async fn register_failure(
        &self,
        identifier: &str,
        now: DateTime<Utc>,
        window: Duration,
        threshold: u32,
        freeze: Duration,
    ) -> AuthResult<LockoutState> {
        let fresh = LockoutRow {
            identifier: identifier.to_owned(),
            failures: 0,
            window_started_at: db_time(now),
            locked_until: None,
        };
        let now = fresh.window_started_at;
        write_tx!(self, |conn| {
            // Creates the row when there is none, and locks it either way (a no-op update):
            // on PostgreSQL a concurrent failure of the same identifier waits here until this
            // transaction ends, then reads what it wrote; SQLite's BEGIN IMMEDIATE already
            // lets one writer in at a time.
            let row: LockoutRow = diesel::insert_into(login_lockouts::table)
                .values(&fresh)
                .on_conflict(login_lockouts::identifier)
                .do_update()
                .set(login_lockouts::failures.eq(login_lockouts::failures))
                .returning(LockoutRow::as_returning())
                .get_result(conn)
                .await?;
            let (next, state) = match after_failure(row, now, window, threshold, freeze) {
                Ok(next) => next,
                // A corrupt stored count: reported below, the row left as it was.
                Err(e) => return Ok(Err(e)),
            };
            diesel::update(login_lockouts::table.find(&next.identifier))
                .set((
                    login_lockouts::failures.eq(next.failures),
                    login_lockouts::window_started_at.eq(next.window_started_at),
                    login_lockouts::locked_until.eq(next.locked_until),
                ))
                .execute(conn)
                .await?;
            Ok(Ok(state))
        })?
    }

    async fn clear(&self, identifier: &str) -> AuthResult<()> {
        let identifier = identifier.to_owned();
        with_conn!(self, |conn| {
            diesel::delete(login_lockouts::table.find(&identifier))
                .execute(conn)
                .await
                .map(drop)
        })
    }

    async fn clear_all(&self, identifier: &str) -> AuthResult<()> {
        let exact = identifier.to_owned();
        // `identifier#` followed by anything, the pattern's own wildcards escaped.
        let mut under = String::with_capacity(identifier.len() + 2);
        for c in identifier.chars() {
            if matches!(c, '\\' | '%' | '_') {
                under.push('\\');
            }
            under.push(c);
        }
        under.push_str("#%");
        with_conn!(self, |conn| {
            diesel::delete(
                login_lockouts::table.filter(
                    login_lockouts::identifier
                        .eq(&exact)
                        .or(login_lockouts::identifier.like(&under).escape('\\')),
                ),
            )
            .execute(conn)
            .await
            .map(drop)
        })
    }
}

/// A stored count as the ports answer it.
fn to_count(n: i32) -> AuthResult<u32> {
    u32::try_from(n)
        .map_err(|_| AuthError::Internal("database: negative count in a stored row".to_owned()))
}
