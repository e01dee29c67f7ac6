//! [`MfaStore`] for [`Database`]: second factors, recovery codes, MFA challenges and the
//! session step-up, each one transaction or one conditional statement.

use async_trait::async_trait;
use auth_core::audit::Recorded;
use auth_core::mfa::{FactorKind, MfaChallenge, MfaFactor, MfaStore, NewMfaChallenge};
use auth_core::model::{NewSession, Session, SessionId, TokenHash, UserId};
use auth_core::outbox::NewOutboxMessage;
use auth_core::{AuthError, AuthResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    OutboxRow, RecordRows, SessionRow, TokenRow, db_time, enabled_user_error, from_json, parse,
    to_json, unknown_user_as_not_found,
};
use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
use crate::schema::{mfa_challenges, mfa_factors, mfa_recovery_codes, sessions};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = mfa_factors)]
struct FactorRow {
    id: String,
    user_id: String,
    kind: String,
    label: Option<String>,
    secret: Vec<u8>,
    created_at: NaiveDateTime,
    activated_at: Option<NaiveDateTime>,
    last_used_step: Option<i64>,
    last_used_at: Option<NaiveDateTime>,
    lookup_hash: Option<String>,
}

impl FactorRow {
    fn new(f: &MfaFactor) -> Self {
        Self {
            id: f.id.to_string(),
            user_id: f.user_id.to_string(),
            kind: f.kind.as_str().to_owned(),
            label: f.label.clone(),
            secret: f.sealed_secret.clone(),
            created_at: db_time(f.created_at),
            activated_at: f.activated_at.map(db_time),
            last_used_step: f.last_used_step,
            last_used_at: f.last_used_at.map(db_time),
            lookup_hash: f.lookup_hash.as_ref().map(|h| h.0.clone()),
        }
    }

    fn into_factor(self) -> AuthResult<MfaFactor> {
        Ok(MfaFactor {
            id: parse(&self.id)?,
            user_id: parse(&self.user_id)?,
            kind: FactorKind::parse(&self.kind).ok_or_else(|| {
                AuthError::Internal("database: unknown factor kind in a stored row".into())
            })?,
            label: self.label,
            sealed_secret: self.secret,
            created_at: self.created_at.and_utc(),
            activated_at: self.activated_at.map(|t| t.and_utc()),
            last_used_step: self.last_used_step,
            last_used_at: self.last_used_at.map(|t| t.and_utc()),
            lookup_hash: self.lookup_hash.map(TokenHash),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = mfa_recovery_codes)]
struct RecoveryCodeRow {
    user_id: String,
    code_hash: String,
    created_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
}

fn recovery_rows(user_id: &str, codes: &[TokenHash], now: NaiveDateTime) -> Vec<RecoveryCodeRow> {
    codes
        .iter()
        .map(|c| RecoveryCodeRow {
            user_id: user_id.to_owned(),
            code_hash: c.0.clone(),
            created_at: now,
            used_at: None,
        })
        .collect()
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = mfa_challenges)]
struct ChallengeRow {
    token_hash: String,
    user_id: String,
    amr: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    failed_attempts: i32,
}

impl ChallengeRow {
    fn into_challenge(self) -> AuthResult<MfaChallenge> {
        Ok(MfaChallenge {
            token_hash: TokenHash(self.token_hash),
            user_id: parse(&self.user_id)?,
            amr: from_json(&self.amr)?,
            created_at: self.created_at.and_utc(),
            expires_at: self.expires_at.and_utc(),
            used_at: self.used_at.map(|t| t.and_utc()),
            failed_attempts: self.failed_attempts,
        })
    }
}

/// A second active factor of the same kind is refused by the partial unique index; the
/// activation then answers `false`.
fn already_enrolled(e: DieselError) -> AuthError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
        | DieselError::RollbackTransaction => AuthError::MfaAlreadyEnrolled,
        e => query_error(e),
    }
}

#[async_trait]
impl MfaStore for Database {
    async fn insert_pending_factor(&self, factor: &MfaFactor) -> AuthResult<()> {
        let row = FactorRow::new(factor);
        write_tx!(self, unknown_user_as_not_found, |conn| {
            diesel::delete(
                mfa_factors::table
                    .filter(mfa_factors::user_id.eq(&row.user_id))
                    .filter(mfa_factors::kind.eq(&row.kind))
                    .filter(mfa_factors::activated_at.is_null()),
            )
            .execute(conn)
            .await?;
            diesel::insert_into(mfa_factors::table)
                .values(&row)
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    async fn factors_of(&self, user_id: UserId) -> AuthResult<Vec<MfaFactor>> {
        let user_id = user_id.to_string();
        let rows: Vec<FactorRow> = with_conn!(self, |conn| {
            mfa_factors::table
                .filter(mfa_factors::user_id.eq(&user_id))
                .order((mfa_factors::created_at.asc(), mfa_factors::id.asc()))
                .select(FactorRow::as_select())
                .load(conn)
                .await
        })?;
        rows.into_iter().map(FactorRow::into_factor).collect()
    }

    async fn active_factor_by_lookup(
        &self,
        kind: FactorKind,
        lookup: &TokenHash,
    ) -> AuthResult<Option<MfaFactor>> {
        let lookup = lookup.0.clone();
        let row = with_conn!(self, |conn| {
            mfa_factors::table
                .filter(mfa_factors::kind.eq(kind.as_str()))
                .filter(mfa_factors::lookup_hash.eq(&lookup))
                .filter(mfa_factors::activated_at.is_not_null())
                .order(mfa_factors::activated_at.desc())
                .select(FactorRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(FactorRow::into_factor).transpose()
    }

    async fn activate_factor(
        &self,
        user_id: UserId,
        factor_id: Uuid,
        step: i64,
        recovery_codes: &[TokenHash],
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let (user_id, factor_id) = (user_id.to_string(), factor_id.to_string());
        let now = db_time(now);
        let codes = recovery_rows(&user_id, recovery_codes, now);
        let notice = OutboxRow::new(notice);
        let activated = write_tx!(self, already_enrolled, |conn| {
            let activated = diesel::update(
                mfa_factors::table
                    .find(&factor_id)
                    .filter(mfa_factors::user_id.eq(&user_id))
                    .filter(mfa_factors::activated_at.is_null()),
            )
            .set((
                mfa_factors::activated_at.eq(now),
                mfa_factors::last_used_step.eq(step),
                mfa_factors::last_used_at.eq(now),
            ))
            .execute(conn)
            .await?;
            if activated == 0 {
                // Nothing written: roll back and answer `false`.
                return Err(DieselError::RollbackTransaction);
            }
            diesel::delete(
                mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(&user_id)),
            )
            .execute(conn)
            .await?;
            // One row at a time: SQLite has no multi-row INSERT with DEFAULT in diesel.
            for code in &codes {
                diesel::insert_into(mfa_recovery_codes::table)
                    .values(code)
                    .execute(conn)
                    .await?;
            }
            enqueue!(conn, &notice).await?;
            Ok(())
        });
        match activated {
            Ok(()) => Ok(true),
            Err(AuthError::MfaAlreadyEnrolled) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn use_totp_step(
        &self,
        factor_id: Uuid,
        step: i64,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let factor_id = factor_id.to_string();
        let now = db_time(now);
        // One conditional UPDATE: of two concurrent uses of the same code, the second finds
        // `last_used_step` already at `step` and changes nothing.
        let updated = with_conn!(self, |conn| {
            diesel::update(
                mfa_factors::table
                    .find(&factor_id)
                    .filter(mfa_factors::activated_at.is_not_null())
                    .filter(
                        mfa_factors::last_used_step
                            .is_null()
                            .or(mfa_factors::last_used_step.lt(step)),
                    ),
            )
            .set((
                mfa_factors::last_used_step.eq(step),
                mfa_factors::last_used_at.eq(now),
            ))
            .execute(conn)
            .await
        })?;
        Ok(updated == 1)
    }

    async fn remove_factor(
        &self,
        user_id: UserId,
        factor_id: Uuid,
        notice: Option<&NewOutboxMessage>,
        _now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let (user_id, factor_id) = (user_id.to_string(), factor_id.to_string());
        let notice = notice.map(OutboxRow::new);
        write_tx!(self, |conn| {
            let removed = diesel::delete(
                mfa_factors::table
                    .find(&factor_id)
                    .filter(mfa_factors::user_id.eq(&user_id)),
            )
            .execute(conn)
            .await?;
            if removed == 0 {
                return Ok(false);
            }
            let active: i64 = mfa_factors::table
                .filter(mfa_factors::user_id.eq(&user_id))
                .filter(mfa_factors::activated_at.is_not_null())
                .count()
                .get_result(conn)
                .await?;
            if active == 0 {
                diesel::delete(
                    mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(&user_id)),
                )
                .execute(conn)
                .await?;
            }
            if let Some(notice) = &notice {
                enqueue!(conn, notice).await?;
            }
            Ok(true)
        })
    }

    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        codes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> AuthResult<()> {
        let user_id = user_id.to_string();
        let codes = recovery_rows(&user_id, codes, db_time(now));
        write_tx!(self, unknown_user_as_not_found, |conn| {
            diesel::delete(
                mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(&user_id)),
            )
            .execute(conn)
            .await?;
            // One row at a time: SQLite has no multi-row INSERT with DEFAULT in diesel.
            for code in &codes {
                diesel::insert_into(mfa_recovery_codes::table)
                    .values(code)
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
    }

    async fn consume_recovery_code(
        &self,
        user_id: UserId,
        code: &TokenHash,
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let (user_id, code) = (user_id.to_string(), code.0.clone());
        let notice = OutboxRow::new(notice);
        let now = db_time(now);
        write_tx!(self, |conn| {
            // Conditional: of two concurrent uses of one code, only one finds it unused.
            let consumed = diesel::update(
                mfa_recovery_codes::table
                    .find((&user_id, &code))
                    .filter(mfa_recovery_codes::used_at.is_null()),
            )
            .set(mfa_recovery_codes::used_at.eq(now))
            .execute(conn)
            .await?;
            if consumed == 0 {
                return Ok(false);
            }
            enqueue!(conn, &notice).await?;
            Ok(true)
        })
    }

    async fn remaining_recovery_codes(&self, user_id: UserId) -> AuthResult<u64> {
        let user_id = user_id.to_string();
        let n: i64 = with_conn!(self, |conn| {
            mfa_recovery_codes::table
                .filter(mfa_recovery_codes::user_id.eq(&user_id))
                .filter(mfa_recovery_codes::used_at.is_null())
                .count()
                .get_result(conn)
                .await
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn insert_challenge(
        &self,
        challenge: &NewMfaChallenge,
        records: &[Recorded],
    ) -> AuthResult<()> {
        let records = RecordRows::new(records);
        let row = ChallengeRow {
            token_hash: challenge.token_hash.0.clone(),
            user_id: challenge.user_id.to_string(),
            amr: to_json(&challenge.amr)?,
            created_at: db_time(challenge.created_at),
            expires_at: db_time(challenge.expires_at),
            used_at: None,
            failed_attempts: 0,
        };
        // A disabled account gets no challenge (so no `mfa_token`).
        write_tx!(self, enabled_user_error, |conn| {
            lock_enabled_user!(conn, &row.user_id).await?;
            diesel::insert_into(mfa_challenges::table)
                .values(&row)
                .execute(conn)
                .await?;
            write_records!(conn, &records).await
        })
    }

    async fn challenge(&self, hash: &TokenHash) -> AuthResult<Option<MfaChallenge>> {
        let hash = hash.0.clone();
        let row = with_conn!(self, |conn| {
            mfa_challenges::table
                .find(&hash)
                .select(ChallengeRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(ChallengeRow::into_challenge).transpose()
    }

    async fn record_challenge_failure(
        &self,
        hash: &TokenHash,
        max: i32,
        now: DateTime<Utc>,
    ) -> AuthResult<i32> {
        let hash = hash.0.clone();
        let now = db_time(now);
        let count = write_tx!(self, |conn| {
            // The increment locks the row (PostgreSQL) or the database (SQLite) until the
            // end of the transaction: concurrent wrong codes are all counted, and the one
            // that reaches `max` kills the challenge.
            let count: Option<i32> = diesel::update(
                mfa_challenges::table
                    .find(&hash)
                    .filter(mfa_challenges::used_at.is_null()),
            )
            .set(mfa_challenges::failed_attempts.eq(mfa_challenges::failed_attempts + 1))
            .returning(mfa_challenges::failed_attempts)
            .get_result(conn)
            .await
            .optional()?;
            if count.is_some_and(|count| count >= max) {
                diesel::update(mfa_challenges::table.find(&hash))
                    .set(mfa_challenges::used_at.eq(now))
                    .execute(conn)
                    .await?;
            }
            Ok(count)
        })?;
        Ok(count.unwrap_or(max))
    }

    async fn complete_challenge(
        &self,
        hash: &TokenHash,
        max: i32,
        session: &NewSession,
        first_refresh: &TokenHash,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<Option<Session>> {
        let records = RecordRows::new(records);
        let hash = hash.0.clone();
        let now = db_time(now);
        let session = SessionRow::new(session)?;
        let token = TokenRow::current(first_refresh, &session.id, session.created_at);
        let opened = write_tx!(self, enabled_user_error, |conn| {
            let completed = diesel::update(
                mfa_challenges::table
                    .find(&hash)
                    .filter(mfa_challenges::user_id.eq(&session.user_id))
                    .filter(mfa_challenges::used_at.is_null())
                    .filter(mfa_challenges::expires_at.gt(now))
                    .filter(mfa_challenges::failed_attempts.lt(max)),
            )
            .set(mfa_challenges::used_at.eq(now))
            .execute(conn)
            .await?;
            if completed == 0 {
                return Ok(None);
            }
            open_session!(conn, &session, &token, &records).await?;
            Ok(Some(session))
        })?;
        opened.map(SessionRow::into_session).transpose()
    }

    async fn step_up_session(
        &self,
        session_id: SessionId,
        method: &str,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<Option<Session>> {
        let records = RecordRows::new(records);
        let id = session_id.to_string();
        let method = method.to_owned();
        let now = db_time(now);
        let row = write_tx!(self, |conn| {
            let row: Option<SessionRow> = sessions::table
                .find(&id)
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(now))
                .select(SessionRow::as_select())
                .first(conn)
                .await
                .optional()?;
            let Some(mut row) = row else {
                return Ok(None);
            };
            let mut amr: Vec<String> = serde_json::from_str(&row.amr)
                .map_err(|e| DieselError::DeserializationError(Box::new(e)))?;
            if !amr.contains(&method) {
                amr.push(method.clone());
            }
            row.amr = serde_json::to_string(&amr)
                .map_err(|e| DieselError::SerializationError(Box::new(e)))?;
            row.aal = "aal2".to_owned();
            diesel::update(sessions::table.find(&id))
                .set((sessions::amr.eq(&row.amr), sessions::aal.eq(&row.aal)))
                .execute(conn)
                .await?;
            write_records!(conn, &records).await?;
            Ok(Some(row))
        })?;
        row.map(SessionRow::into_session).transpose()
    }

    async fn purge_challenges_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let cutoff = db_time(cutoff);
        let purged = with_conn!(self, |conn| {
            diesel::delete(mfa_challenges::table.filter(mfa_challenges::expires_at.lt(cutoff)))
                .execute(conn)
                .await
        })?;
        Ok(purged as u64)
    }
}
