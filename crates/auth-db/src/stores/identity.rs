//! [`IdentityStore`] for [`Database`]: external identities and the single-use records of
//! the browser redirect flow.

use async_trait::async_trait;
use auth_core::identity::{
    Identity, IdentityId, IdentityStore, OAuthRecord, OAuthRecordKind, UnlinkOutcome,
};
use auth_core::model::{NewUser, TokenHash, User, UserId};
use auth_core::{AuthError, AuthResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{UserRow, concerns_table, db_time, parse};
use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
use crate::schema::{identities, oauth_records, passkeys, users};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = identities)]
struct IdentityRow {
    id: String,
    user_id: String,
    provider: String,
    subject: String,
    email: Option<String>,
    created_at: NaiveDateTime,
}

impl IdentityRow {
    fn new(identity: &Identity) -> Self {
        Self {
            id: identity.id.to_string(),
            user_id: identity.user_id.to_string(),
            provider: identity.provider.clone(),
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            created_at: db_time(identity.created_at),
        }
    }

    fn into_identity(self) -> AuthResult<Identity> {
        Ok(Identity {
            id: parse(&self.id)?,
            user_id: parse(&self.user_id)?,
            provider: self.provider,
            subject: self.subject,
            email: self.email,
            created_at: self.created_at.and_utc(),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_records)]
struct OAuthRecordRow {
    token_hash: String,
    kind: String,
    payload: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

/// A unique violation on `identities` is the (provider, subject) pair; on `users` the email;
/// a missing user (foreign key) is `NotFound`.
fn identity_conflicts(e: DieselError) -> AuthError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
            if concerns_table(info.as_ref(), "identities") =>
        {
            AuthError::IdentityExists
        }
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
            if concerns_table(info.as_ref(), "users") =>
        {
            AuthError::EmailTaken
        }
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            AuthError::NotFound
        }
        e => query_error(e),
    }
}

#[async_trait]
impl IdentityStore for Database {
    async fn identity_by_subject(
        &self,
        provider: &str,
        subject: &str,
    ) -> AuthResult<Option<Identity>> {
        let (provider, subject) = (provider.to_owned(), subject.to_owned());
        let row = with_conn!(self, |conn| {
            identities::table
                .filter(identities::provider.eq(&provider))
                .filter(identities::subject.eq(&subject))
                .select(IdentityRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(IdentityRow::into_identity).transpose()
    }

    async fn identities_of(&self, user_id: UserId) -> AuthResult<Vec<Identity>> {
        let user_id = user_id.to_string();
        let rows = with_conn!(self, |conn| {
            identities::table
                .filter(identities::user_id.eq(&user_id))
                .order((identities::created_at.asc(), identities::id.asc()))
                .select(IdentityRow::as_select())
                .load(conn)
                .await
        })?;
        rows.into_iter().map(IdentityRow::into_identity).collect()
    }

    async fn insert_user_with_identity(
        &self,
        new: &NewUser,
        identity: &Identity,
    ) -> AuthResult<User> {
        let user = UserRow::new(new)?;
        let identity = IdentityRow::new(&Identity {
            user_id: new.id,
            ..identity.clone()
        });
        write_tx!(self, identity_conflicts, |conn| {
            diesel::insert_into(users::table)
                .values(&user)
                .execute(conn)
                .await?;
            diesel::insert_into(identities::table)
                .values(&identity)
                .execute(conn)
                .await?;
            Ok(user)
        })?
        .into_user()
    }

    async fn link_identity(&self, identity: &Identity) -> AuthResult<Identity> {
        let row = IdentityRow::new(identity);
        with_conn!(self, identity_conflicts, |conn| {
            diesel::insert_into(identities::table)
                .values(&row)
                .execute(conn)
                .await
        })?;
        Ok(identity.clone())
    }

    async fn unlink_identity(
        &self,
        user_id: UserId,
        id: IdentityId,
        now: DateTime<Utc>,
    ) -> AuthResult<UnlinkOutcome> {
        let (user_id, id, now) = (user_id.to_string(), id.to_string(), db_time(now));
        write_tx!(self, |conn| {
            // Touching the user row first locks it (PostgreSQL; SQLite holds the write lock
            // already): two concurrent unlinks of the same user run one after the other, so
            // they cannot both remove "the other" identity.
            let password: Option<Option<String>> = diesel::update(users::table.find(&user_id))
                .set(users::updated_at.eq(now))
                .returning(users::password_hash)
                .get_result(conn)
                .await
                .optional()?;
            let Some(password) = password else {
                return Ok(UnlinkOutcome::NotFound);
            };
            let ids: Vec<String> = identities::table
                .filter(identities::user_id.eq(&user_id))
                .select(identities::id)
                .load(conn)
                .await?;
            if !ids.contains(&id) {
                return Ok(UnlinkOutcome::NotFound);
            }
            // A passkey signs in without a password too.
            let passkey_count: i64 = passkeys::table
                .filter(passkeys::user_id.eq(&user_id))
                .count()
                .get_result(conn)
                .await?;
            if password.is_none() && ids.len() < 2 && passkey_count == 0 {
                return Ok(UnlinkOutcome::LastSignInMethod);
            }
            diesel::delete(identities::table.find(&id))
                .execute(conn)
                .await?;
            Ok(UnlinkOutcome::Removed)
        })
    }

    async fn put_oauth_record(&self, record: &OAuthRecord) -> AuthResult<()> {
        let row = OAuthRecordRow {
            token_hash: record.token_hash.0.clone(),
            kind: record.kind.as_str().to_owned(),
            payload: record.payload.clone(),
            created_at: db_time(record.created_at),
            expires_at: db_time(record.expires_at),
        };
        with_conn!(self, |conn| {
            diesel::insert_into(oauth_records::table)
                .values(&row)
                .execute(conn)
                .await
        })?;
        Ok(())
    }

    async fn take_oauth_record(
        &self,
        hash: &TokenHash,
        kind: OAuthRecordKind,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<OAuthRecord>> {
        let hash = hash.0.clone();
        let now = db_time(now);
        // One conditional DELETE ... RETURNING: of two concurrent takers only one gets a row.
        let row = with_conn!(self, |conn| {
            diesel::delete(
                oauth_records::table
                    .find(&hash)
                    .filter(oauth_records::kind.eq(kind.as_str()))
                    .filter(oauth_records::expires_at.gt(now)),
            )
            .returning(OAuthRecordRow::as_returning())
            .get_result(conn)
            .await
            .optional()
        })?;
        Ok(row.map(|r| OAuthRecord {
            token_hash: TokenHash(r.token_hash),
            kind,
            payload: r.payload,
            created_at: r.created_at.and_utc(),
            expires_at: r.expires_at.and_utc(),
        }))
    }

    async fn purge_expired_oauth_records(&self, now: DateTime<Utc>) -> AuthResult<u64> {
        let now = db_time(now);
        let n = with_conn!(self, |conn| {
            diesel::delete(oauth_records::table.filter(oauth_records::expires_at.le(now)))
                .execute(conn)
                .await
        })?;
        Ok(n as u64)
    }
}
