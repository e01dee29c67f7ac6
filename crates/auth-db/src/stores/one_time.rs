//! [`OneTimeTokenStore`] for [`Database`]: one-time tokens and the account changes they
//! unlock, each one transaction (or one conditional statement).

use async_trait::async_trait;
use auth_core::model::{
    NewOneTimeToken, NewSession, OneTimeToken, OneTimeTokenKind, Session, TokenHash, UserId,
};
use auth_core::outbox::NewOutboxMessage;
use auth_core::ports::OneTimeTokenStore;
use auth_core::{AuthError, AuthResult};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{
    OneTimeTokenRow, OutboxRow, RecordRows, SessionRow, TokenRow, db_time, enabled_user_error,
    unknown_user_as_not_found,
};
use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
use crate::schema::one_time_tokens;

#[async_trait]
impl OneTimeTokenStore for Database {
    async fn issue_one_time_token(
        &self,
        token: &NewOneTimeToken,
        mail: &NewOutboxMessage,
    ) -> AuthResult<()> {
        let (token, mail) = (OneTimeTokenRow::new(token), OutboxRow::new(mail));
        // A token for a user who does not exist (any more) is refused by the foreign key.
        write_tx!(self, unknown_user_as_not_found, |conn| {
            store_one_time_token!(conn, &token).await?;
            enqueue!(conn, &mail).await?;
            Ok(())
        })
    }

    async fn one_time_token(&self, hash: &TokenHash) -> AuthResult<Option<OneTimeToken>> {
        let hash = hash.0.clone();
        let row = with_conn!(self, |conn| {
            one_time_tokens::table
                .find(&hash)
                .select(OneTimeTokenRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(OneTimeTokenRow::into_token).transpose()
    }

    async fn consume_one_time_token(
        &self,
        hash: &TokenHash,
        kind: OneTimeTokenKind,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<OneTimeToken>> {
        let hash = hash.0.clone();
        let now = db_time(now);
        // One conditional UPDATE: of two concurrent consumers, the second finds `used_at`
        // set (PostgreSQL re-checks the condition on the row the first one committed; SQLite
        // runs one writer at a time) and changes nothing.
        let row = with_conn!(self, |conn| {
            diesel::update(
                one_time_tokens::table
                    .find(&hash)
                    .filter(one_time_tokens::kind.eq(kind.as_str()))
                    .filter(one_time_tokens::used_at.is_null())
                    .filter(one_time_tokens::expires_at.gt(now)),
            )
            .set(one_time_tokens::used_at.eq(now))
            .returning(OneTimeTokenRow::as_returning())
            .get_result(conn)
            .await
            .optional()
        })?;
        row.map(OneTimeTokenRow::into_token).transpose()
    }

    async fn current_one_time_token(
        &self,
        kind: OneTimeTokenKind,
        email: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<OneTimeToken>> {
        let email = email.to_owned();
        let now = db_time(now);
        let row = with_conn!(self, |conn| {
            one_time_tokens::table
                .filter(one_time_tokens::kind.eq(kind.as_str()))
                .filter(one_time_tokens::email.eq(&email))
                .filter(one_time_tokens::used_at.is_null())
                .filter(one_time_tokens::expires_at.gt(now))
                .order((
                    one_time_tokens::created_at.desc(),
                    one_time_tokens::token_hash.desc(),
                ))
                .select(OneTimeTokenRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(OneTimeTokenRow::into_token).transpose()
    }

    async fn record_failed_attempt(
        &self,
        hash: &TokenHash,
        max: i32,
        now: DateTime<Utc>,
    ) -> AuthResult<i32> {
        let hash = hash.0.clone();
        let now = db_time(now);
        let count = write_tx!(self, |conn| {
            // The increment locks the row (PostgreSQL) or the database (SQLite) until the
            // transaction ends: concurrent wrong codes are all counted, and the one that
            // reaches `max` retires the token.
            let count: Option<i32> = diesel::update(one_time_tokens::table.find(&hash))
                .set(one_time_tokens::failed_attempts.eq(one_time_tokens::failed_attempts + 1))
                .returning(one_time_tokens::failed_attempts)
                .get_result(conn)
                .await
                .optional()?;
            if let Some(count) = count.filter(|count| *count >= max) {
                diesel::update(
                    one_time_tokens::table
                        .find(&hash)
                        .filter(one_time_tokens::used_at.is_null()),
                )
                .set(one_time_tokens::used_at.eq(now))
                .execute(conn)
                .await?;
                return Ok(Some(count));
            }
            Ok(count)
        })?;
        count.ok_or(AuthError::NotFound)
    }

    async fn redeem_password_reset(
        &self,
        hash: &TokenHash,
        user_id: UserId,
        password_hash: &str,
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let hash = hash.0.clone();
        let user_id = user_id.to_string();
        let password_hash = password_hash.to_owned();
        let notice = OutboxRow::new(notice);
        let now = db_time(now);
        write_tx!(self, |conn| {
            // The conditional consume decides, as in `consume_one_time_token`; when the token
            // is not usable nothing else happens. The token's user exists: the foreign key
            // (ON DELETE CASCADE) removes a user's tokens with the user.
            let consumed = diesel::update(
                one_time_tokens::table
                    .find(&hash)
                    .filter(one_time_tokens::kind.eq(OneTimeTokenKind::PasswordReset.as_str()))
                    .filter(one_time_tokens::user_id.eq(&user_id))
                    .filter(one_time_tokens::used_at.is_null())
                    .filter(one_time_tokens::expires_at.gt(now)),
            )
            .set(one_time_tokens::used_at.eq(now))
            .execute(conn)
            .await?;
            if consumed == 0 {
                return Ok(false);
            }
            // The reset proves the mailbox the token went to: an unverified account is
            // adopted (its creator's identities, passkeys and factors go) before the new
            // password is set.
            let mailbox: String = one_time_tokens::table
                .find(&hash)
                .select(one_time_tokens::email)
                .get_result(conn)
                .await?;
            prove_mailbox!(conn, &user_id, &mailbox, true, now).await?;
            retire_reset_tokens!(conn, &user_id, now).await?;
            set_password!(conn, &user_id, &password_hash, now).await?;
            revoke_all_sessions!(conn, &user_id, now).await?;
            enqueue!(conn, &notice).await?;
            Ok(true)
        })
    }

    async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        new_session: &NewSession,
        first_refresh: &TokenHash,
        notice: &NewOutboxMessage,
    ) -> AuthResult<Session> {
        let user_id = user_id.to_string();
        let password_hash = password_hash.to_owned();
        let session = SessionRow::new(new_session)?;
        let token = TokenRow::current(first_refresh, &session.id, session.created_at);
        let notice = OutboxRow::new(notice);
        let now = session.created_at;
        write_tx!(self, enabled_user_error, |conn| {
            if set_password!(conn, &user_id, &password_hash, now).await? == 0 {
                // Rolls back (nothing was written anyway) and maps to `NotFound`.
                return Err(DieselError::NotFound);
            }
            retire_reset_tokens!(conn, &user_id, now).await?;
            // Every session, the caller's included: the new session replaces it.
            revoke_all_sessions!(conn, &user_id, now).await?;
            open_session!(conn, &session, &token, &RecordRows::new(&[])).await?;
            enqueue!(conn, &notice).await?;
            Ok(session)
        })?
        .into_session()
    }
}
