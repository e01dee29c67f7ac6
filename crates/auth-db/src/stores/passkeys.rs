//! [`PasskeyStore`] for [`Database`]: passkeys and the WebAuthn ceremonies in progress.

use async_trait::async_trait;
use auth_core::model::{TokenHash, UserId};
use auth_core::outbox::NewOutboxMessage;
use auth_core::passkeys::{CeremonyKind, PasskeyCeremony, PasskeyStore, StoredPasskey};
use auth_core::{AuthError, AuthResult};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use super::{OutboxRow, db_time, parse, unknown_user_as_not_found};
use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
use crate::schema::{passkey_ceremonies, passkeys};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = passkeys)]
struct PasskeyRow {
    id: String,
    user_id: String,
    credential_id: String,
    credential: String,
    counter: i64,
    name: Option<String>,
    created_at: NaiveDateTime,
    last_used_at: Option<NaiveDateTime>,
}

impl PasskeyRow {
    fn new(p: &StoredPasskey) -> Self {
        Self {
            id: p.id.to_string(),
            user_id: p.user_id.to_string(),
            credential_id: URL_SAFE_NO_PAD.encode(&p.credential_id),
            credential: p.credential.clone(),
            counter: i64::from(p.counter),
            name: p.name.clone(),
            created_at: db_time(p.created_at),
            last_used_at: p.last_used_at.map(db_time),
        }
    }

    fn into_passkey(self) -> AuthResult<StoredPasskey> {
        let corrupt = || AuthError::Internal("database: malformed passkey row".into());
        Ok(StoredPasskey {
            id: parse(&self.id)?,
            user_id: parse(&self.user_id)?,
            credential_id: URL_SAFE_NO_PAD
                .decode(&self.credential_id)
                .map_err(|_| corrupt())?,
            credential: self.credential,
            counter: u32::try_from(self.counter).map_err(|_| corrupt())?,
            name: self.name,
            created_at: self.created_at.and_utc(),
            last_used_at: self.last_used_at.map(|t| t.and_utc()),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = passkey_ceremonies)]
struct CeremonyRow {
    token_hash: String,
    kind: String,
    user_id: Option<String>,
    state: Vec<u8>,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

impl CeremonyRow {
    fn into_ceremony(self) -> AuthResult<PasskeyCeremony> {
        let kind = match self.kind.as_str() {
            "registration" => CeremonyKind::Registration,
            "authentication" => CeremonyKind::Authentication,
            _ => {
                return Err(AuthError::Internal(
                    "database: unknown ceremony kind".into(),
                ));
            }
        };
        Ok(PasskeyCeremony {
            token_hash: TokenHash(self.token_hash),
            kind,
            user_id: self.user_id.as_deref().map(parse).transpose()?,
            sealed_state: self.state,
            created_at: self.created_at.and_utc(),
            expires_at: self.expires_at.and_utc(),
        })
    }
}

/// A credential id registered twice is refused by the unique index.
fn taken_or_unknown_user(e: DieselError) -> AuthError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            AuthError::PasskeyTaken
        }
        e => unknown_user_as_not_found(e),
    }
}

#[async_trait]
impl PasskeyStore for Database {
    async fn insert_ceremony(&self, c: &PasskeyCeremony) -> AuthResult<()> {
        let row = CeremonyRow {
            token_hash: c.token_hash.0.clone(),
            kind: c.kind.as_str().to_owned(),
            user_id: c.user_id.map(|u| u.to_string()),
            state: c.sealed_state.clone(),
            created_at: db_time(c.created_at),
            expires_at: db_time(c.expires_at),
        };
        with_conn!(self, unknown_user_as_not_found, |conn| {
            diesel::insert_into(passkey_ceremonies::table)
                .values(&row)
                .execute(conn)
                .await
        })?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        hash: &TokenHash,
        kind: CeremonyKind,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<PasskeyCeremony>> {
        let hash = hash.0.clone();
        let now = db_time(now);
        // One DELETE ... RETURNING: of two concurrent finishes only one gets the state.
        let row = with_conn!(self, |conn| {
            diesel::delete(
                passkey_ceremonies::table
                    .find(&hash)
                    .filter(passkey_ceremonies::kind.eq(kind.as_str()))
                    .filter(passkey_ceremonies::expires_at.gt(now)),
            )
            .returning(CeremonyRow::as_returning())
            .get_result(conn)
            .await
            .optional()
        })?;
        row.map(CeremonyRow::into_ceremony).transpose()
    }

    async fn insert_passkey(
        &self,
        passkey: &StoredPasskey,
        notice: &NewOutboxMessage,
    ) -> AuthResult<()> {
        let row = PasskeyRow::new(passkey);
        let notice = OutboxRow::new(notice);
        write_tx!(self, taken_or_unknown_user, |conn| {
            diesel::insert_into(passkeys::table)
                .values(&row)
                .execute(conn)
                .await?;
            enqueue!(conn, &notice).await?;
            Ok(())
        })
    }

    async fn passkeys_of(&self, user_id: UserId) -> AuthResult<Vec<StoredPasskey>> {
        let user_id = user_id.to_string();
        let rows: Vec<PasskeyRow> = with_conn!(self, |conn| {
            passkeys::table
                .filter(passkeys::user_id.eq(&user_id))
                .order((passkeys::created_at.asc(), passkeys::id.asc()))
                .select(PasskeyRow::as_select())
                .load(conn)
                .await
        })?;
        rows.into_iter().map(PasskeyRow::into_passkey).collect()
    }

    async fn passkey_by_credential_id(
        &self,
        credential_id: &[u8],
    ) -> AuthResult<Option<StoredPasskey>> {
        let credential_id = URL_SAFE_NO_PAD.encode(credential_id);
        let row = with_conn!(self, |conn| {
            passkeys::table
                .filter(passkeys::credential_id.eq(&credential_id))
                .select(PasskeyRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(PasskeyRow::into_passkey).transpose()
    }

    async fn record_passkey_use(
        &self,
        id: Uuid,
        counter: u32,
        credential: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let id = id.to_string();
        let counter = i64::from(counter);
        let credential = credential.to_owned();
        let now = db_time(now);
        // One conditional UPDATE: the counter only moves forward, even under concurrency
        // (authenticators without a counter report 0 every time).
        let updated = with_conn!(self, |conn| {
            diesel::update(
                passkeys::table.find(&id).filter(
                    passkeys::counter
                        .lt(counter)
                        .or(passkeys::counter.eq(0).and(passkeys::counter.eq(counter))),
                ),
            )
            .set((
                passkeys::counter.eq(counter),
                passkeys::credential.eq(&credential),
                passkeys::last_used_at.eq(now),
            ))
            .execute(conn)
            .await
        })?;
        Ok(updated == 1)
    }

    async fn delete_passkey(
        &self,
        user_id: UserId,
        id: Uuid,
        notice: &NewOutboxMessage,
    ) -> AuthResult<bool> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        let notice = OutboxRow::new(notice);
        write_tx!(self, |conn| {
            let deleted = diesel::delete(
                passkeys::table
                    .find(&id)
                    .filter(passkeys::user_id.eq(&user_id)),
            )
            .execute(conn)
            .await?;
            if deleted == 0 {
                return Ok(false);
            }
            enqueue!(conn, &notice).await?;
            Ok(true)
        })
    }

    async fn purge_ceremonies_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let cutoff = db_time(cutoff);
        let purged = with_conn!(self, |conn| {
            diesel::delete(
                passkey_ceremonies::table.filter(passkey_ceremonies::expires_at.lt(cutoff)),
            )
            .execute(conn)
            .await
        })?;
        Ok(purged as u64)
    }
}
