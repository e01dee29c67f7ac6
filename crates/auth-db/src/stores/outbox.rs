//! [`OutboxStore`] for [`Database`], and what operators and tests see of the outbox.

use async_trait::async_trait;
use auth_core::outbox::{NewOutboxMessage, OutboxMessage};
use auth_core::ports::OutboxStore;
use auth_core::{AuthError, AuthResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Timestamp};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::{OutboxRow, db_time, parse};
use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
use crate::schema::outbox;

/// Claims on PostgreSQL: several workers on several nodes run this at once. `FOR UPDATE
/// SKIP LOCKED` passes over the rows another claim has locked (and re-checks, against the
/// committed row, those it had seen free: an entry leased meanwhile no longer matches).
/// The candidates are a MATERIALIZED CTE, computed once: as `WHERE id IN (subquery)` the
/// planner may rescan the subquery inside a join, and each rescan with SKIP LOCKED can
/// return other rows, so one claim could lease more than `limit`.
const CLAIM_POSTGRES: &str = "\
WITH due AS MATERIALIZED (
    SELECT id FROM outbox
    WHERE done_at IS NULL AND dead_at IS NULL AND due_at <= $1
      AND (leased_until IS NULL OR leased_until <= $1)
    ORDER BY due_at, created_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox SET leased_until = $2, attempts = outbox.attempts + 1
FROM due
WHERE outbox.id = due.id
RETURNING outbox.id, outbox.kind, outbox.payload, outbox.attempts, outbox.created_at, \
          outbox.due_at";

/// An entry as a claim returns it.
#[derive(QueryableByName, Queryable, Selectable)]
#[diesel(table_name = outbox)]
struct ClaimedRow {
    id: String,
    kind: String,
    payload: Option<Vec<u8>>,
    attempts: i32,
    created_at: NaiveDateTime,
    due_at: NaiveDateTime,
}

/// One outbox entry and its delivery state, without its payload: for operators (a backlog
/// that grows, dead letters and why) and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntryView {
    /// Identifier.
    pub id: Uuid,
    /// Job kind (`mail` ...).
    pub kind: String,
    /// Claims so far.
    pub attempts: i32,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it is (or was last) due.
    pub due_at: DateTime<Utc>,
    /// Until when a worker holds it; an expired lease is free again.
    pub leased_until: Option<DateTime<Utc>>,
    /// When it was carried out.
    pub done_at: Option<DateTime<Utc>>,
    /// When it was given up.
    pub dead_at: Option<DateTime<Utc>>,
    /// The error of the last failed attempt (no secret in it, by contract).
    pub last_error: Option<String>,
    /// Whether its sealed payload is still stored (erased once done or dead).
    pub has_payload: bool,
}

type ViewRow = (
    String,
    String,
    i32,
    NaiveDateTime,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<String>,
    bool,
);

impl Database {
    /// Delete the outbox entries done or given up before `cutoff`; returns how many. Pending
    /// entries are never deleted, however old.
    pub async fn purge_outbox_finished_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let cutoff = db_time(cutoff);
        let purged = with_conn!(self, |conn| {
            diesel::delete(
                outbox::table.filter(outbox::done_at.lt(cutoff).or(outbox::dead_at.lt(cutoff))),
            )
            .execute(conn)
            .await
        })?;
        Ok(purged as u64)
    }

    /// Every outbox entry, oldest first, without payloads.
    pub async fn outbox_entries(&self) -> AuthResult<Vec<OutboxEntryView>> {
        let rows: Vec<ViewRow> = with_conn!(self, |conn| {
            outbox::table
                .order((outbox::created_at, outbox::id))
                .select((
                    outbox::id,
                    outbox::kind,
                    outbox::attempts,
                    outbox::created_at,
                    outbox::due_at,
                    outbox::leased_until,
                    outbox::done_at,
                    outbox::dead_at,
                    outbox::last_error,
                    outbox::payload.is_not_null(),
                ))
                .load(conn)
                .await
        })?;
        rows.into_iter()
            .map(
                |(
                    id,
                    kind,
                    attempts,
                    created,
                    due,
                    leased,
                    done,
                    dead,
                    last_error,
                    has_payload,
                )| {
                    Ok(OutboxEntryView {
                        id: parse(&id)?,
                        kind,
                        attempts,
                        created_at: created.and_utc(),
                        due_at: due.and_utc(),
                        leased_until: leased.map(|t| t.and_utc()),
                        done_at: done.map(|t| t.and_utc()),
                        dead_at: dead.map(|t| t.and_utc()),
                        last_error,
                        has_payload,
                    })
                },
            )
            .collect()
    }
}

#[async_trait]
impl OutboxStore for Database {
    async fn enqueue(&self, message: &NewOutboxMessage) -> AuthResult<()> {
        let row = OutboxRow::new(message);
        with_conn!(self, |conn| enqueue!(conn, &row).await.map(drop))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> AuthResult<Vec<OutboxMessage>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (now, lease_until) = (db_time(now), db_time(lease_until));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows: Vec<ClaimedRow> = on_backend!(self, query_error, |pooled|
            // One writer at a time: select, then lease what was selected.
            sqlite: pooled
                .immediate_transaction(async |conn: &mut SqliteConn| {
                    let ids: Vec<String> = outbox::table
                        .filter(outbox::done_at.is_null())
                        .filter(outbox::dead_at.is_null())
                        .filter(outbox::due_at.le(now))
                        .filter(outbox::leased_until.is_null().or(outbox::leased_until.le(now)))
                        .order((outbox::due_at, outbox::created_at, outbox::id))
                        .limit(limit)
                        .select(outbox::id)
                        .load(conn)
                        .await?;
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                        .set((
                            outbox::leased_until.eq(lease_until),
                            outbox::attempts.eq(outbox::attempts + 1),
                        ))
                        .returning(ClaimedRow::as_returning())
                        .load(conn)
                        .await
                })
                .await,
            postgres: {
                let conn: &mut PgConn = &mut pooled;
                diesel::sql_query(CLAIM_POSTGRES)
                    .bind::<Timestamp, _>(now)
                    .bind::<Timestamp, _>(lease_until)
                    .bind::<BigInt, _>(limit)
                    .load(conn)
                    .await
            },
        )?;
        // RETURNING follows no ORDER BY: oldest due first, as selected.
        rows.sort_by(|a, b| (a.due_at, a.created_at, &a.id).cmp(&(b.due_at, b.created_at, &b.id)));
        rows.into_iter()
            .map(|row| {
                Ok(OutboxMessage {
                    id: parse(&row.id)?,
                    kind: row.kind,
                    // A due entry is neither done nor dead, so its payload is still there.
                    payload: row.payload.unwrap_or_default(),
                    attempts: row.attempts,
                    created_at: row.created_at.and_utc(),
                })
            })
            .collect()
    }

    async fn mark_done(&self, id: Uuid, now: DateTime<Utc>) -> AuthResult<()> {
        let id = id.to_string();
        let now = db_time(now);
        with_conn!(self, |conn| {
            diesel::update(outbox::table.find(&id))
                .set((
                    outbox::done_at.eq(now),
                    outbox::leased_until.eq(None::<NaiveDateTime>),
                    outbox::payload.eq(None::<Vec<u8>>),
                ))
                .execute(conn)
                .await
                .map(drop)
        })
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> AuthResult<()> {
        let id = id.to_string();
        let error = error.to_owned();
        let retry_at = retry_at.map(db_time);
        let now = db_time(now);
        with_conn!(self, |conn| {
            let entry = outbox::table.find(&id);
            let failed = (
                outbox::last_error.eq(&error),
                outbox::leased_until.eq(None::<NaiveDateTime>),
            );
            match retry_at {
                Some(at) => {
                    diesel::update(entry)
                        .set((failed, outbox::due_at.eq(at)))
                        .execute(conn)
                        .await
                }
                // A dead letter keeps its error for operators, not its payload.
                None => {
                    diesel::update(entry)
                        .set((
                            failed,
                            outbox::dead_at.eq(now),
                            outbox::payload.eq(None::<Vec<u8>>),
                        ))
                        .execute(conn)
                        .await
                }
            }
            .map(drop)
        })
    }

    async fn backlog(&self) -> AuthResult<u64> {
        let count: i64 = with_conn!(self, |conn| {
            outbox::table
                .filter(outbox::done_at.is_null())
                .filter(outbox::dead_at.is_null())
                .count()
                .get_result(conn)
                .await
        })?;
        u64::try_from(count).map_err(AuthError::internal)
    }
}
