//! The storage ports for [`Database`]: one query code base for both backends.
//!
//! Users, sessions and signing keys here; one-time tokens in [`one_time`], the outbox in
//! [`outbox`], rate limits and lockouts in [`guard`]. The statements that several ports
//! share (issue a one-time token, enqueue an outbox entry, revoke a user's sessions ...)
//! are macros too, so that each transaction reads as the list of its steps.

use std::str::FromStr;

use async_trait::async_trait;
use auth_core::audit::{AuditRecord, Recorded};
use auth_core::model::{
    ClientInfo, MailboxProof, NewOneTimeToken, NewSession, NewUser, OneTimeToken, OneTimeTokenKind,
    ProfileUpdate, ProvenMailbox, RefreshTokenRecord, RotateOutcome, Session, SessionId,
    StoredSigningKey, TokenHash, User, UserCredentials, UserId,
};
use auth_core::outbox::NewOutboxMessage;
use auth_core::ports::{HealthCheck, SessionStore, SigningKeyStore, UserStore};
use auth_core::{AuthError, AuthResult};
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};

use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
// Not `outbox`: that name is the module of the outbox port.
use crate::schema::{one_time_tokens, refresh_tokens, sessions, signing_keys, users};

pub use outbox::OutboxEntryView;

/// Stamps a query body once per backend: `$pooled` names the pooled connection in each arm,
/// each arm evaluates to a `QueryResult` (it may `.await` and use `?`), mapped into
/// [`AuthError`] with `$map_err`. Runs on its own task (see [`detach`]), so the body must
/// only capture owned values.
macro_rules! on_backend {
    ($db:expr, $map_err:expr, |$pooled:ident| sqlite: $sqlite:expr, postgres: $postgres:expr $(,)?) => {
        match &$db.pool {
            DbPool::Sqlite(pool) => on_backend!(@run $db, pool, $map_err, |$pooled| $sqlite),
            DbPool::Postgres(pool) => on_backend!(@run $db, pool, $map_err, |$pooled| $postgres),
        }
    };
    (@run $db:expr, $pool:ident, $map_err:expr, |$pooled:ident| $body:expr) => {{
        let (pool, map_err, timeout) = ($pool.clone(), $map_err, $db.query_timeout);
        detach(timeout, async move {
            let mut $pooled = pool.get().await.map_err(pool_error)?;
            let result: QueryResult<_> = async { $body }.await;
            match result {
                // A server that ends the connection (shutdown, failover, an administrator)
                // says why in an error of unknown kind: unavailable if the connection is gone.
                Err(e @ DieselError::DatabaseError(DatabaseErrorKind::Unknown, _)) => {
                    let ping = diesel::sql_query("SELECT 1").execute(&mut *$pooled).await;
                    Err(if ping.is_err() { unavailable(e) } else { map_err(e) })
                }
                result => result.map_err(map_err),
            }
        })
        .await
    }};
}

/// `with_conn!(db, [map_err,] |conn| body)`: run `body` (a `QueryResult`, may `.await`) with
/// `conn: &mut` the backend's connection. Errors map with `map_err`, by default
/// [`query_error`].
macro_rules! with_conn {
    ($db:expr, |$conn:ident| $body:expr) => {
        with_conn!($db, query_error, |$conn| $body)
    };
    ($db:expr, $map_err:expr, |$conn:ident| $body:expr) => {
        on_backend!($db, $map_err, |pooled|
            sqlite: {
                let $conn: &mut SqliteConn = &mut pooled;
                $body
            },
            postgres: {
                let $conn: &mut PgConn = &mut pooled;
                $body
            },
        )
    };
}

/// `write_tx!(db, [map_err,] |conn| body)`: like [`with_conn!`], in a write transaction that
/// commits when `body` answers `Ok`. On SQLite it starts with `BEGIN IMMEDIATE`: a deferred
/// transaction that reads and then writes fails with "database is locked" under
/// concurrency instead of waiting for the lock.
macro_rules! write_tx {
    ($db:expr, |$conn:ident| $body:expr) => {
        write_tx!($db, query_error, |$conn| $body)
    };
    ($db:expr, $map_err:expr, |$conn:ident| $body:expr) => {
        on_backend!($db, $map_err, |pooled|
            sqlite: pooled.immediate_transaction(async |$conn: &mut SqliteConn| $body).await,
            postgres: {
                let conn: &mut PgConn = &mut pooled;
                conn.transaction(async |$conn: &mut PgConn| $body).await
            },
        )
    };
}

// ---- statements shared by several transactions ------------------------------------------
//
// Each expands to a future of a `QueryResult<_>` for the `conn` it is given (either
// backend), to be `.await`ed inside a `with_conn!`/`write_tx!` body. Table paths are
// absolute, so they expand the same in any module; the row types must be in scope.

/// `store_one_time_token!(conn, &OneTimeTokenRow)`: retire every unused token of the same
/// kind for the same email (at the new token's issue time), then insert the new one.
macro_rules! store_one_time_token {
    ($conn:expr, $row:expr) => {
        async {
            use $crate::schema::one_time_tokens as t;
            let row: &OneTimeTokenRow = $row;
            diesel_async::RunQueryDsl::execute(
                diesel::update(
                    t::table
                        .filter(t::kind.eq(&row.kind))
                        .filter(t::email.eq(&row.email))
                        .filter(t::used_at.is_null()),
                )
                .set(t::used_at.eq(row.created_at)),
                &mut *$conn,
            )
            .await?;
            diesel_async::RunQueryDsl::execute(
                diesel::insert_into(t::table).values(row),
                &mut *$conn,
            )
            .await
        }
    };
}

/// `retire_reset_tokens!(conn, &user_id, now)`: mark every unused password reset token of
/// the user used at `now`.
macro_rules! retire_reset_tokens {
    ($conn:expr, $user_id:expr, $now:expr) => {{
        use $crate::schema::one_time_tokens as t;
        diesel_async::RunQueryDsl::execute(
            diesel::update(
                t::table
                    .filter(t::kind.eq(OneTimeTokenKind::PasswordReset.as_str()))
                    .filter(t::user_id.eq($user_id))
                    .filter(t::used_at.is_null()),
            )
            .set(t::used_at.eq($now)),
            &mut *$conn,
        )
    }};
}

/// `revoke_all_sessions!(conn, &user_id, now)`: revoke, at `now`, every session of the user
/// that is not revoked yet (an earlier revocation time is kept).
macro_rules! revoke_all_sessions {
    ($conn:expr, $user_id:expr, $now:expr) => {{
        use $crate::schema::sessions as s;
        diesel_async::RunQueryDsl::execute(
            diesel::update(
                s::table
                    .filter(s::user_id.eq($user_id))
                    .filter(s::revoked_at.is_null()),
            )
            .set(s::revoked_at.eq($now)),
            &mut *$conn,
        )
    }};
}

/// `enqueue!(conn, &OutboxRow)`: write an outbox entry.
macro_rules! enqueue {
    ($conn:expr, $row:expr) => {{
        let row: &$crate::stores::OutboxRow = $row;
        diesel_async::RunQueryDsl::execute(
            diesel::insert_into($crate::schema::outbox::table).values(row),
            &mut *$conn,
        )
    }};
}

/// `write_records!(conn, &RecordRows)`: write the audit rows and webhook deliveries of a
/// change, in its transaction (the one write path of events: see `auth_core::audit::Recorded`).
macro_rules! write_records {
    ($conn:expr, $rows:expr) => {
        async {
            let rows: &$crate::stores::RecordRows = $rows;
            for row in &rows.audit {
                diesel_async::RunQueryDsl::execute(
                    diesel::insert_into($crate::schema::audit_log::table).values(row),
                    &mut *$conn,
                )
                .await?;
            }
            for delivery in &rows.deliveries {
                enqueue!($conn, delivery).await?;
            }
            Ok::<(), diesel::result::Error>(())
        }
    };
}

/// `set_password!(conn, &user_id, &hash, now)`: replace the user's password hash; answers
/// how many rows changed (0: no such user).
macro_rules! set_password {
    ($conn:expr, $user_id:expr, $hash:expr, $now:expr) => {{
        use $crate::schema::users as u;
        diesel_async::RunQueryDsl::execute(
            diesel::update(u::table.find($user_id))
                .set((u::password_hash.eq($hash), u::updated_at.eq($now))),
            &mut *$conn,
        )
    }};
}

/// `prove_mailbox!(conn, &user_id, &canonical_email, adopt, now)`: someone proved they read
/// the mailbox of `canonical_email`; mark it verified if it still is the user's address.
/// With `adopt` (a flow the account's creator did not complete: see
/// [`auth_core::model::MailboxProof`]) an account that was unverified also loses its
/// password hash, its sessions, linked identities, passkeys (and registration ceremonies),
/// second factors, recovery codes and pending challenges. Answers `Some(adopted)`, or
/// `None` when the user does not exist or has another address.
macro_rules! prove_mailbox {
    ($conn:expr, $user_id:expr, $email:expr, $adopt:expr, $now:expr) => {
        async {
            use diesel_async::RunQueryDsl as _;
            use $crate::schema::{
                identities, mfa_challenges, mfa_factors, mfa_recovery_codes, passkey_ceremonies,
                passkeys, users as u,
            };
            let (user_id, email, now): (&String, &String, chrono::NaiveDateTime) =
                ($user_id, $email, $now);
            let target = u::table.find(user_id).filter(u::email_canonical.eq(email));
            // The conditional update decides (and locks the row): only the first proof of an
            // unverified account adopts it.
            let adopted = $adopt
                && diesel::update(target.filter(u::email_verified.eq(false)))
                    .set((
                        u::email_verified.eq(true),
                        u::password_hash.eq(None::<String>),
                        u::updated_at.eq(now),
                    ))
                    .execute(&mut *$conn)
                    .await?
                    == 1;
            if adopted {
                revoke_all_sessions!($conn, user_id, now).await?;
                diesel::delete(identities::table.filter(identities::user_id.eq(user_id)))
                    .execute(&mut *$conn)
                    .await?;
                diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id)))
                    .execute(&mut *$conn)
                    .await?;
                diesel::delete(
                    passkey_ceremonies::table.filter(passkey_ceremonies::user_id.eq(user_id)),
                )
                .execute(&mut *$conn)
                .await?;
                diesel::delete(mfa_factors::table.filter(mfa_factors::user_id.eq(user_id)))
                    .execute(&mut *$conn)
                    .await?;
                diesel::delete(
                    mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)),
                )
                .execute(&mut *$conn)
                .await?;
                diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user_id)))
                    .execute(&mut *$conn)
                    .await?;
                return Ok::<_, DieselError>(Some(true));
            }
            let updated = diesel::update(target)
                .set((u::email_verified.eq(true), u::updated_at.eq(now)))
                .execute(&mut *$conn)
                .await?;
            Ok((updated == 1).then_some(false))
        }
    };
}

/// `lock_enabled_user!(conn, &user_id)`: lock the user's row until the end of the
/// transaction and refuse a disabled or missing account: the one disabled-account check
/// of every operation that signs someone in ([`open_session!`], storing an MFA
/// challenge). A disabled account fails the whole transaction with
/// `DieselError::RollbackTransaction`, a missing one with `DieselError::NotFound`; the
/// transaction maps both with [`enabled_user_error`].
macro_rules! lock_enabled_user {
    ($conn:expr, $user_id:expr) => {
        async {
            use $crate::schema::users as u;
            let user_id: &String = $user_id;
            // A no-op update locks the user row: a concurrent disable (which updates the
            // same row, then revokes the user's sessions) either sees what this transaction
            // wrote or makes this statement see the account disabled.
            let enabled = diesel_async::RunQueryDsl::execute(
                diesel::update(u::table.find(user_id).filter(u::disabled_at.is_null()))
                    .set(u::disabled_at.eq(u::disabled_at)),
                &mut *$conn,
            )
            .await?;
            if enabled == 1 {
                return Ok(());
            }
            let exists: i64 =
                diesel_async::RunQueryDsl::get_result(u::table.find(user_id).count(), &mut *$conn)
                    .await?;
            Err(if exists == 0 {
                diesel::result::Error::NotFound
            } else {
                diesel::result::Error::RollbackTransaction
            })
        }
    };
}

/// `open_session!(conn, &SessionRow, &TokenRow, &RecordRows)`: the one statement sequence that opens a
/// session, whichever sign-in opened it: [`lock_enabled_user!`], then insert the session
/// and its first refresh token. Every store operation that creates a session goes
/// through it, inside its transaction.
macro_rules! open_session {
    ($conn:expr, $session:expr, $token:expr, $records:expr) => {
        async {
            let (session, token): (&SessionRow, &TokenRow) = ($session, $token);
            lock_enabled_user!($conn, &session.user_id).await?;
            diesel_async::RunQueryDsl::execute(
                diesel::insert_into($crate::schema::sessions::table).values(session),
                &mut *$conn,
            )
            .await?;
            diesel_async::RunQueryDsl::execute(
                diesel::insert_into($crate::schema::refresh_tokens::table).values(token),
                &mut *$conn,
            )
            .await?;
            write_records!($conn, $records).await
        }
    };
}

/// The single row of `signing_keys` that [`SigningKeyStore::load_or_store`] manages.
const GENERATED_KEY_SLOT: &str = "generated";

// ---- rows -------------------------------------------------------------------------------

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    email: String,
    email_canonical: String,
    email_verified: bool,
    name: Option<String>,
    avatar_url: Option<String>,
    roles: String,
    password_hash: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl UserRow {
    fn new(new: &NewUser) -> AuthResult<Self> {
        let created_at = db_time(new.created_at);
        Ok(Self {
            id: new.id.to_string(),
            email: new.email.as_str().to_owned(),
            email_canonical: new.email.canonical(),
            email_verified: new.email_verified,
            name: new.name.clone(),
            avatar_url: None,
            roles: to_json(&new.roles)?,
            password_hash: new.password_hash.clone(),
            created_at,
            updated_at: created_at,
        })
    }

    fn into_credentials(self) -> AuthResult<UserCredentials> {
        let password_hash = self.password_hash.clone();
        Ok(UserCredentials {
            user: self.into_user()?,
            password_hash,
        })
    }

    fn into_user(self) -> AuthResult<User> {
        Ok(User {
            id: parse(&self.id)?,
            email: self.email,
            email_verified: self.email_verified,
            name: self.name,
            avatar_url: self.avatar_url,
            roles: from_json(&self.roles)?,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct ProfileChanges {
    name: Option<Option<String>>,
    avatar_url: Option<Option<String>>,
    updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
struct SessionRow {
    id: String,
    user_id: String,
    created_at: NaiveDateTime,
    last_used_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    ip: Option<String>,
    user_agent: Option<String>,
    amr: String,
    aal: String,
}

impl SessionRow {
    /// A new session, not used since it was opened.
    fn new(new: &NewSession) -> AuthResult<Self> {
        let created_at = db_time(new.created_at);
        Ok(Self {
            id: new.id.to_string(),
            user_id: new.user_id.to_string(),
            created_at,
            last_used_at: created_at,
            expires_at: db_time(new.expires_at),
            revoked_at: None,
            ip: new.client.ip.clone(),
            user_agent: new.client.user_agent.clone(),
            amr: to_json(&new.amr)?,
            aal: new.aal.clone(),
        })
    }

    fn into_session(self) -> AuthResult<Session> {
        Ok(Session {
            id: parse(&self.id)?,
            user_id: parse(&self.user_id)?,
            created_at: self.created_at.and_utc(),
            last_used_at: self.last_used_at.and_utc(),
            expires_at: self.expires_at.and_utc(),
            revoked_at: self.revoked_at.map(|t| t.and_utc()),
            client: ClientInfo {
                ip: self.ip,
                user_agent: self.user_agent,
            },
            amr: from_json(&self.amr)?,
            aal: self.aal,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
struct TokenRow {
    token_hash: String,
    session_id: String,
    created_at: NaiveDateTime,
    rotated_at: Option<NaiveDateTime>,
    sealed_successor: Option<String>,
}

impl TokenRow {
    fn current(hash: &TokenHash, session_id: &str, created_at: NaiveDateTime) -> Self {
        Self {
            token_hash: hash.0.clone(),
            session_id: session_id.to_owned(),
            created_at,
            rotated_at: None,
            sealed_successor: None,
        }
    }

    fn into_record(self) -> AuthResult<RefreshTokenRecord> {
        Ok(RefreshTokenRecord {
            token_hash: TokenHash(self.token_hash),
            session_id: parse(&self.session_id)?,
            created_at: self.created_at.and_utc(),
            rotated_at: self.rotated_at.map(|t| t.and_utc()),
            sealed_successor: self.sealed_successor,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
struct SigningKeyRow {
    slot: String,
    algorithm: String,
    private_pem: String,
    created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = one_time_tokens)]
struct OneTimeTokenRow {
    token_hash: String,
    kind: String,
    user_id: Option<String>,
    email: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    failed_attempts: i32,
    redirect_to: Option<String>,
}

impl OneTimeTokenRow {
    /// A new token: unused, no failed attempt.
    fn new(new: &NewOneTimeToken) -> Self {
        Self {
            token_hash: new.token_hash.0.clone(),
            kind: new.kind.as_str().to_owned(),
            user_id: new.user_id.as_ref().map(UserId::to_string),
            email: new.email.clone(),
            created_at: db_time(new.created_at),
            expires_at: db_time(new.expires_at),
            used_at: None,
            failed_attempts: 0,
            redirect_to: new.redirect_to.clone(),
        }
    }

    fn into_token(self) -> AuthResult<OneTimeToken> {
        Ok(OneTimeToken {
            token_hash: TokenHash(self.token_hash),
            kind: OneTimeTokenKind::parse(&self.kind).ok_or_else(|| {
                AuthError::Internal("database: unknown one-time token kind in a stored row".into())
            })?,
            user_id: self.user_id.as_deref().map(parse).transpose()?,
            email: self.email,
            created_at: self.created_at.and_utc(),
            expires_at: self.expires_at.and_utc(),
            used_at: self.used_at.map(|t| t.and_utc()),
            failed_attempts: self.failed_attempts,
            redirect_to: self.redirect_to,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::schema::audit_log)]
pub(crate) struct AuditRow {
    id: String,
    at: NaiveDateTime,
    event_type: String,
    actor_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: Option<String>,
}

impl AuditRow {
    pub(crate) fn new(r: &AuditRecord) -> Self {
        Self {
            id: r.id.to_string(),
            at: db_time(r.at),
            event_type: r.event_type.clone(),
            actor_id: r.actor_id.map(|u| u.to_string()),
            user_id: r.user_id.map(|u| u.to_string()),
            session_id: r.session_id.map(|s| s.to_string()),
            ip: r.ip.clone(),
            user_agent: r.user_agent.clone(),
            detail: r.detail.as_ref().map(ToString::to_string),
        }
    }

    pub(crate) fn into_record(self) -> AuthResult<AuditRecord> {
        Ok(AuditRecord {
            id: parse(&self.id)?,
            at: self.at.and_utc(),
            event_type: self.event_type,
            actor_id: self.actor_id.as_deref().map(parse).transpose()?,
            user_id: self.user_id.as_deref().map(parse).transpose()?,
            session_id: self.session_id.as_deref().map(parse).transpose()?,
            ip: self.ip,
            user_agent: self.user_agent,
            detail: self
                .detail
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| {
                    AuthError::Internal("database: malformed audit detail in a stored row".into())
                })?,
        })
    }
}

/// The audit rows and webhook deliveries of a change (its [`Recorded`] events), as written
/// in its transaction by [`write_records!`].
pub(crate) struct RecordRows {
    audit: Vec<AuditRow>,
    deliveries: Vec<OutboxRow>,
}

impl RecordRows {
    pub(crate) fn new(records: &[Recorded]) -> Self {
        Self {
            audit: records.iter().map(|r| AuditRow::new(&r.row)).collect(),
            deliveries: records
                .iter()
                .flat_map(|r| &r.deliveries)
                .map(OutboxRow::new)
                .collect(),
        }
    }
}

/// An outbox entry as written: due at once, never attempted.
#[derive(Insertable)]
#[diesel(table_name = crate::schema::outbox)]
pub(crate) struct OutboxRow {
    id: String,
    kind: String,
    payload: Option<Vec<u8>>,
    attempts: i32,
    created_at: NaiveDateTime,
    due_at: NaiveDateTime,
}

impl OutboxRow {
    fn new(new: &NewOutboxMessage) -> Self {
        let created_at = db_time(new.created_at);
        Self {
            id: new.id.to_string(),
            kind: new.kind.clone(),
            payload: Some(new.payload.clone()),
            attempts: 0,
            created_at,
            due_at: created_at,
        }
    }
}

// ---- conversions ------------------------------------------------------------------------

/// A timestamp as stored: UTC, truncated to microseconds (what PostgreSQL keeps), so both
/// backends give back exactly what they were given.
fn db_time(t: DateTime<Utc>) -> NaiveDateTime {
    t.trunc_subsecs(6).naive_utc()
}

fn parse<T: FromStr>(s: &str) -> AuthResult<T> {
    s.parse().map_err(|_| {
        AuthError::Internal("database: malformed identifier in a stored row".to_owned())
    })
}

fn from_json(s: &str) -> AuthResult<Vec<String>> {
    serde_json::from_str(s).map_err(|_| {
        AuthError::Internal("database: malformed JSON list in a stored row".to_owned())
    })
}

fn to_json(list: &[String]) -> AuthResult<String> {
    serde_json::to_string(list).map_err(AuthError::internal)
}

/// Whether a constraint violation is on `table`. PostgreSQL names the table; SQLite only
/// says it in the message (`UNIQUE constraint failed: users.email_canonical`).
fn concerns_table(info: &dyn DatabaseErrorInformation, table: &str) -> bool {
    info.table_name() == Some(table)
        || info
            .message()
            .strip_prefix("UNIQUE constraint failed: ")
            .is_some_and(|columns| columns.starts_with(&format!("{table}.")))
}

/// Error mapping of the calls that name a user who must exist: a foreign key violation (a
/// session or token of no user) and diesel's `NotFound` (raised by a transaction body to
/// roll back) are [`AuthError::NotFound`].
/// The error mapping of every transaction that runs [`lock_enabled_user!`] (so every
/// [`open_session!`]): the account it named is missing (`NotFound`) or disabled
/// (`AccountDisabled`).
fn enabled_user_error(e: DieselError) -> AuthError {
    match e {
        DieselError::RollbackTransaction => AuthError::AccountDisabled,
        e => unknown_user_as_not_found(e),
    }
}

fn unknown_user_as_not_found(e: DieselError) -> AuthError {
    match e {
        DieselError::NotFound
        | DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            AuthError::NotFound
        }
        e => query_error(e),
    }
}

// ---- ports ------------------------------------------------------------------------------

#[async_trait]
impl UserStore for Database {
    async fn insert_user(
        &self,
        new: &NewUser,
        verification: Option<(&NewOneTimeToken, &NewOutboxMessage)>,
    ) -> AuthResult<User> {
        let row = UserRow::new(new)?;
        let verification =
            verification.map(|(token, mail)| (OneTimeTokenRow::new(token), OutboxRow::new(mail)));
        let taken_as_email_taken = |e| match e {
            // The unique index on `email_canonical` decides (the primary key cannot collide:
            // identifiers are UUIDs). Only a violation on `users` is the email: one on the
            // token or the outbox entry would be a bug of the caller, not a taken address.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
                if concerns_table(info.as_ref(), "users") =>
            {
                AuthError::EmailTaken
            }
            e => query_error(e),
        };
        // The user first: when its email is taken, the transaction stops there and nothing
        // is written.
        write_tx!(self, taken_as_email_taken, |conn| {
            diesel::insert_into(users::table)
                .values(&row)
                .execute(conn)
                .await?;
            if let Some((token, mail)) = &verification {
                store_one_time_token!(conn, token).await?;
                enqueue!(conn, mail).await?;
            }
            Ok(row)
        })?
        .into_user()
    }

    async fn user_by_id(&self, id: UserId) -> AuthResult<Option<User>> {
        let id = id.to_string();
        let row = with_conn!(self, |conn| {
            users::table
                .find(&id)
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(UserRow::into_user).transpose()
    }

    async fn credentials_by_email(
        &self,
        canonical_email: &str,
    ) -> AuthResult<Option<UserCredentials>> {
        let email = canonical_email.to_owned();
        let row = with_conn!(self, |conn| {
            users::table
                .filter(users::email_canonical.eq(&email))
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(UserRow::into_credentials).transpose()
    }

    async fn update_profile(
        &self,
        id: UserId,
        update: &ProfileUpdate,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<User>> {
        let id = id.to_string();
        let changes = ProfileChanges {
            name: update.name.clone(),
            avatar_url: update.avatar_url.clone(),
            updated_at: db_time(now),
        };
        let row = with_conn!(self, |conn| {
            diesel::update(users::table.find(&id))
                .set(&changes)
                .returning(UserRow::as_returning())
                .get_result(conn)
                .await
                .optional()
        })?;
        row.map(UserRow::into_user).transpose()
    }

    async fn mark_email_verified(
        &self,
        id: UserId,
        canonical_email: &str,
        proof: MailboxProof,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<ProvenMailbox>> {
        let id = id.to_string();
        let email = canonical_email.to_owned();
        let adopt = proof == MailboxProof::Adoption;
        let proven = write_tx!(self, |conn| {
            let Some(adopted) = prove_mailbox!(conn, &id, &email, adopt, db_time(now)).await?
            else {
                return Ok(None);
            };
            let row = users::table
                .find(&id)
                .select(UserRow::as_select())
                .get_result(conn)
                .await?;
            Ok(Some((row, adopted)))
        })?;
        proven
            .map(|(row, adopted)| {
                Ok(ProvenMailbox {
                    user: row.into_user()?,
                    adopted,
                })
            })
            .transpose()
    }

    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<()> {
        let id = id.to_string();
        let hash = password_hash.to_owned();
        let updated = with_conn!(self, |conn| {
            diesel::update(users::table.find(&id))
                .set((
                    users::password_hash.eq(&hash),
                    users::updated_at.eq(db_time(now)),
                ))
                .execute(conn)
                .await
        })?;
        if updated == 0 {
            Err(AuthError::NotFound)
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SessionStore for Database {
    async fn create_session(
        &self,
        new: &NewSession,
        first_refresh: &TokenHash,
        records: &[Recorded],
    ) -> AuthResult<Session> {
        let session = SessionRow::new(new)?;
        let token = TokenRow::current(first_refresh, &session.id, session.created_at);
        let records = RecordRows::new(records);
        write_tx!(self, enabled_user_error, |conn| {
            open_session!(conn, &session, &token, &records).await?;
            Ok(session)
        })?
        .into_session()
    }

    async fn session(&self, id: SessionId) -> AuthResult<Option<Session>> {
        let id = id.to_string();
        let row = with_conn!(self, |conn| {
            sessions::table
                .find(&id)
                .select(SessionRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(SessionRow::into_session).transpose()
    }

    async fn unrevoked_sessions_of(&self, user_id: UserId) -> AuthResult<Vec<Session>> {
        let user_id = user_id.to_string();
        let rows = with_conn!(self, |conn| {
            sessions::table
                .filter(sessions::user_id.eq(&user_id))
                .filter(sessions::revoked_at.is_null())
                .order((sessions::created_at.desc(), sessions::id.desc()))
                .select(SessionRow::as_select())
                .load(conn)
                .await
        })?;
        rows.into_iter().map(SessionRow::into_session).collect()
    }

    async fn refresh_token(&self, hash: &TokenHash) -> AuthResult<Option<RefreshTokenRecord>> {
        let hash = hash.0.clone();
        let row = with_conn!(self, |conn| {
            refresh_tokens::table
                .find(&hash)
                .select(TokenRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        row.map(TokenRow::into_record).transpose()
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        sealed_successor: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<RotateOutcome> {
        let presented = presented.0.clone();
        let successor = successor.clone();
        let sealed = sealed_successor.to_owned();
        let now = db_time(now);
        write_tx!(self, |conn| {
            // A token never changes session: reading it first only keeps the conditional
            // update below to one session (a subquery over every live session would scan
            // them all on SQLite).
            let session_id: Option<String> = refresh_tokens::table
                .find(&presented)
                .select(refresh_tokens::session_id)
                .first(conn)
                .await
                .optional()?;
            let Some(session_id) = session_id else {
                return Ok(RotateOutcome::NotCurrent);
            };
            let live_session = sessions::table
                .filter(sessions::id.eq(&session_id))
                .filter(sessions::revoked_at.is_null());
            let retired = diesel::update(
                refresh_tokens::table
                    .find(&presented)
                    .filter(refresh_tokens::rotated_at.is_null())
                    .filter(refresh_tokens::session_id.eq_any(live_session.select(sessions::id))),
            )
            .set((
                refresh_tokens::rotated_at.eq(now),
                refresh_tokens::sealed_successor.eq(&sealed),
            ))
            .execute(conn)
            .await?;
            if retired == 0 {
                return Ok(RotateOutcome::NotCurrent);
            }
            diesel::insert_into(refresh_tokens::table)
                .values(TokenRow::current(&successor, &session_id, now))
                .execute(conn)
                .await?;
            diesel::update(sessions::table.find(&session_id))
                .set(sessions::last_used_at.eq(now))
                .execute(conn)
                .await?;
            Ok(RotateOutcome::Rotated)
        })
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<bool> {
        let id = id.to_string();
        let records = RecordRows::new(records);
        write_tx!(self, |conn| {
            let revoked = diesel::update(
                sessions::table
                    .find(&id)
                    .filter(sessions::revoked_at.is_null()),
            )
            .set(sessions::revoked_at.eq(db_time(now)))
            .execute(conn)
            .await?;
            if revoked == 0 {
                return Ok(false);
            }
            write_records!(conn, &records).await?;
            Ok(true)
        })
    }

    async fn revoke_sessions_of(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<u64> {
        let user_id = user_id.to_string();
        let keep: Vec<String> = keep.iter().map(SessionId::to_string).collect();
        let records = RecordRows::new(records);
        let revoked = write_tx!(self, |conn| {
            let revoked = diesel::update(
                sessions::table
                    .filter(sessions::user_id.eq(&user_id))
                    .filter(sessions::revoked_at.is_null())
                    .filter(sessions::id.ne_all(&keep)),
            )
            .set(sessions::revoked_at.eq(db_time(now)))
            .execute(conn)
            .await?;
            write_records!(conn, &records).await?;
            Ok(revoked)
        })?;
        Ok(revoked as u64)
    }

    async fn purge_sessions_ended_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let cutoff = db_time(cutoff);
        // Refresh tokens go with their session (ON DELETE CASCADE; SQLite connections run
        // with `foreign_keys = ON`).
        let purged = with_conn!(self, |conn| {
            diesel::delete(
                sessions::table.filter(
                    sessions::expires_at
                        .lt(cutoff)
                        .or(sessions::revoked_at.lt(cutoff)),
                ),
            )
            .execute(conn)
            .await
        })?;
        Ok(purged as u64)
    }
}

#[async_trait]
impl SigningKeyStore for Database {
    async fn load_or_store(&self, candidate: &StoredSigningKey) -> AuthResult<StoredSigningKey> {
        let row = SigningKeyRow {
            slot: GENERATED_KEY_SLOT.to_owned(),
            algorithm: candidate.algorithm.clone(),
            private_pem: candidate.private_pem.expose_secret().to_owned(),
            created_at: db_time(candidate.created_at),
        };
        // The first insert wins, on every node; everyone then reads the winner.
        let stored = with_conn!(self, |conn| {
            diesel::insert_into(signing_keys::table)
                .values(&row)
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            signing_keys::table
                .find(GENERATED_KEY_SLOT)
                .select(SigningKeyRow::as_select())
                .first(conn)
                .await
        })?;
        Ok(StoredSigningKey {
            algorithm: stored.algorithm,
            private_pem: SecretString::from(stored.private_pem),
            created_at: stored.created_at.and_utc(),
        })
    }
}

#[async_trait]
impl HealthCheck for Database {
    async fn ping(&self) -> AuthResult<()> {
        with_conn!(self, |conn| diesel::sql_query("SELECT 1")
            .execute(conn)
            .await
            .map(drop))
    }
}

// After the macros above: textual scope.
mod guard;
mod identity;
mod keys;
mod mfa;
mod one_time;
mod operators;
mod outbox;
mod passkeys;
mod webhooks;

pub use keys::RingKey;
