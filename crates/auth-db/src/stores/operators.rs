//! [`OperatorStore`] and [`AuditStore`] for [`Database`]: roles, administrative changes to
//! accounts (each in one transaction with its event's record), and the audit trail.

use async_trait::async_trait;
use auth_core::audit::{AuditQuery, AuditRecord, AuditStore, Recorded};
use auth_core::model::{NewUser, SessionId, User, UserId};
use auth_core::operators::{
    AccountUpdate, ManagedUser, OperatorStore, Role, RoleChange, RoleDeletion, UserQuery,
};
use auth_core::{AuthError, AuthResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{
    AuditRow, OutboxRow, RecordRows, UserRow, concerns_table, db_time, from_json, to_json,
};
use crate::database::{
    Database, DbPool, PgConn, SqliteConn, detach, pool_error, query_error, unavailable,
};
use crate::schema::{audit_log, one_time_tokens, roles, sessions, users};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = roles)]
struct RoleRow {
    name: String,
    capabilities: String,
    description: Option<String>,
    built_in: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl RoleRow {
    fn new(role: &Role) -> AuthResult<Self> {
        Ok(Self {
            name: role.name.clone(),
            capabilities: to_json(&role.capabilities)?,
            description: role.description.clone(),
            built_in: role.built_in,
            created_at: db_time(role.created_at),
            updated_at: db_time(role.updated_at),
        })
    }

    fn into_role(self) -> AuthResult<Role> {
        Ok(Role {
            name: self.name,
            capabilities: from_json(&self.capabilities)?,
            description: self.description,
            built_in: self.built_in,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct AccountChanges {
    email: Option<String>,
    email_canonical: Option<String>,
    name: Option<Option<String>>,
    email_verified: Option<bool>,
    avatar_url: Option<Option<String>>,
    roles: Option<String>,
    updated_at: NaiveDateTime,
}

type ManagedRow = (UserRow, Option<NaiveDateTime>);

fn into_managed((row, disabled_at): ManagedRow) -> AuthResult<ManagedUser> {
    Ok(ManagedUser {
        user: row.into_user()?,
        disabled_at: disabled_at.map(|t| t.and_utc()),
    })
}

/// `%text%` for LIKE, with LIKE's own wildcards escaped by `\`.
fn like_containing(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// `lock_user!(conn, &id)`: a no-op update that locks the user row for the rest of the
/// transaction (so read-then-write steps on it do not race); answers 0 when there is no
/// such user.
macro_rules! lock_user {
    ($conn:expr, $id:expr) => {{
        diesel_async::RunQueryDsl::execute(
            diesel::update($crate::schema::users::table.find($id))
                .set($crate::schema::users::updated_at.eq($crate::schema::users::updated_at)),
            &mut *$conn,
        )
    }};
}

/// `lock_role!(conn, &name)`: a no-op update that locks the role row for the rest of the
/// transaction; answers 0 when there is no such role.
macro_rules! lock_role {
    ($conn:expr, $name:expr) => {{
        diesel_async::RunQueryDsl::execute(
            diesel::update($crate::schema::roles::table.find($name))
                .set($crate::schema::roles::name.eq($crate::schema::roles::name)),
            &mut *$conn,
        )
    }};
}

/// `select_managed!(conn, &id)`: the account and its disabled time.
macro_rules! select_managed {
    ($conn:expr, $id:expr) => {{
        diesel_async::RunQueryDsl::get_result::<ManagedRow>(
            users::table
                .find($id)
                .select((UserRow::as_select(), users::disabled_at)),
            &mut *$conn,
        )
    }};
}

fn email_taken(e: DieselError) -> AuthError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
            if concerns_table(info.as_ref(), "users") =>
        {
            AuthError::EmailTaken
        }
        e => query_error(e),
    }
}

fn role_exists(e: DieselError) -> AuthError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
            if concerns_table(info.as_ref(), "roles") =>
        {
            AuthError::Conflict("role_exists")
        }
        e => query_error(e),
    }
}

#[async_trait]
impl OperatorStore for Database {
    async fn roles(&self) -> AuthResult<Vec<Role>> {
        let rows = with_conn!(self, |conn| {
            roles::table
                .order(roles::name.asc())
                .select(RoleRow::as_select())
                .load(conn)
                .await
        })?;
        rows.into_iter().map(RoleRow::into_role).collect()
    }

    async fn insert_role(&self, role: &Role, record: &Recorded) -> AuthResult<()> {
        let row = RoleRow::new(role)?;
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, role_exists, |conn| {
            diesel::insert_into(roles::table)
                .values(&row)
                .execute(conn)
                .await?;
            write_records!(conn, &records).await?;
            Ok(())
        })
    }

    async fn update_role(&self, role: &Role, record: &Recorded) -> AuthResult<bool> {
        let row = RoleRow::new(role)?;
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| {
            let n = diesel::update(
                roles::table
                    .find(&row.name)
                    .filter(roles::built_in.eq(false)),
            )
            .set((
                roles::capabilities.eq(&row.capabilities),
                roles::description.eq(&row.description),
                roles::updated_at.eq(row.updated_at),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                return Ok(false);
            }
            write_records!(conn, &records).await?;
            Ok(true)
        })
    }

    async fn delete_role(&self, name: &str, record: &Recorded) -> AuthResult<RoleDeletion> {
        let name = name.to_owned();
        // users.roles is a JSON array of names: a holder's list contains `"name"`.
        let holder_pattern = like_containing(&format!("\"{name}\""));
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| {
            // Lock the role first, so that the holders counted next include any
            // assignment that was running (see `change_user_role`).
            if lock_role!(conn, &name).await? == 0 {
                return Ok(RoleDeletion::NotFound);
            }
            let holders: i64 = users::table
                .filter(users::roles.like(&holder_pattern).escape('\\'))
                .count()
                .get_result(conn)
                .await?;
            if holders > 0 {
                return Ok(RoleDeletion::InUse);
            }
            let n = diesel::delete(roles::table.find(&name).filter(roles::built_in.eq(false)))
                .execute(conn)
                .await?;
            if n == 0 {
                return Ok(RoleDeletion::NotFound);
            }
            write_records!(conn, &records).await?;
            Ok(RoleDeletion::Deleted)
        })
    }

    async fn managed_user(&self, id: UserId) -> AuthResult<Option<ManagedUser>> {
        let id = id.to_string();
        let row = with_conn!(self, |conn| select_managed!(conn, &id).await.optional())?;
        row.map(into_managed).transpose()
    }

    async fn list_users(&self, query: &UserQuery) -> AuthResult<Vec<ManagedUser>> {
        let pattern = like_containing(query.email_contains.as_deref().unwrap_or_default());
        // Identifiers are UUIDv7 strings: their order is creation order.
        let after = query.after.map(|a| a.to_string()).unwrap_or_default();
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let rows: Vec<ManagedRow> = with_conn!(self, |conn| {
            users::table
                .filter(users::email_canonical.like(&pattern).escape('\\'))
                .filter(users::id.gt(&after))
                .order(users::id.asc())
                .limit(limit)
                .select((UserRow::as_select(), users::disabled_at))
                .load(conn)
                .await
        })?;
        rows.into_iter().map(into_managed).collect()
    }

    async fn insert_managed_user(&self, new: &NewUser, record: &Recorded) -> AuthResult<User> {
        let row = UserRow::new(new)?;
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, email_taken, |conn| {
            diesel::insert_into(users::table)
                .values(&row)
                .execute(conn)
                .await?;
            write_records!(conn, &records).await?;
            Ok(row)
        })?
        .into_user()
    }

    async fn update_user(
        &self,
        id: UserId,
        update: &AccountUpdate,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<Option<ManagedUser>> {
        let id = id.to_string();
        let roles = update
            .roles
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(AuthError::internal)?;
        let changes = AccountChanges {
            email: update.email.as_ref().map(|e| e.as_str().to_owned()),
            email_canonical: update.email.as_ref().map(|e| e.canonical()),
            name: update.name.clone(),
            email_verified: update.email_verified,
            avatar_url: update.avatar_url.clone(),
            roles,
            updated_at: db_time(now),
        };
        // Roles are locked in name order (and after the user, as `change_user_role` does),
        // so that two updates never wait on each other's locks.
        let mut new_roles = update.roles.clone().unwrap_or_default();
        new_roles.sort();
        let records = RecordRows::new(records);
        let notice = update.old_address_notice.as_ref().map(OutboxRow::new);
        enum Step {
            Done(Box<ManagedRow>),
            UnknownUser,
            UnknownRole,
        }
        let step = write_tx!(self, email_taken, |conn| {
            // The row is locked, so the address compared is the one being replaced.
            if lock_user!(conn, &id).await? == 0 {
                return Ok(Step::UnknownUser);
            }
            // A role of the new set must exist; locking it makes a concurrent deletion of
            // the role wait for this change (and then see a holder).
            for role in &new_roles {
                if lock_role!(conn, role).await? == 0 {
                    return Ok(Step::UnknownRole);
                }
            }
            let old: String = users::table
                .find(&id)
                .select(users::email_canonical)
                .first(conn)
                .await?;
            let changes_email = changes
                .email_canonical
                .as_ref()
                .is_some_and(|new| *new != old);
            diesel::update(users::table.find(&id))
                .set(&changes)
                .execute(conn)
                .await?;
            if changes_email {
                revoke_all_sessions!(conn, &id, db_time(now)).await?;
                if let Some(notice) = &notice {
                    enqueue!(conn, notice).await?;
                }
            }
            write_records!(conn, &records).await?;
            select_managed!(conn, &id)
                .await
                .map(|row| Step::Done(Box::new(row)))
        })?;
        match step {
            Step::Done(row) => into_managed(*row).map(Some),
            Step::UnknownUser => Ok(None),
            Step::UnknownRole => Err(AuthError::NotFound),
        }
    }

    async fn change_user_role(
        &self,
        id: UserId,
        role: &str,
        assign: bool,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<RoleChange> {
        let id = id.to_string();
        let role = role.to_owned();
        let records = RecordRows::new(std::slice::from_ref(record));
        enum Step {
            Done(Box<ManagedRow>),
            UnknownUser,
            UnknownRole,
            Malformed,
        }
        let step = write_tx!(self, |conn| {
            if lock_user!(conn, &id).await? == 0 {
                return Ok(Step::UnknownUser);
            }
            // Locks the role row too: a concurrent deletion of the role either waits for
            // this assignment (and then sees a holder) or makes this one see no role.
            if assign && lock_role!(conn, &role).await? == 0 {
                return Ok(Step::UnknownRole);
            }
            let current: String = users::table
                .find(&id)
                .select(users::roles)
                .first(conn)
                .await?;
            let Ok(mut list) = serde_json::from_str::<Vec<String>>(&current) else {
                return Ok(Step::Malformed);
            };
            let has = list.contains(&role);
            if assign && !has {
                list.push(role.clone());
            } else if !assign && has {
                list.retain(|r| r != &role);
            }
            let Ok(json) = serde_json::to_string(&list) else {
                return Ok(Step::Malformed);
            };
            diesel::update(users::table.find(&id))
                .set((users::roles.eq(&json), users::updated_at.eq(db_time(now))))
                .execute(conn)
                .await?;
            write_records!(conn, &records).await?;
            select_managed!(conn, &id)
                .await
                .map(|row| Step::Done(Box::new(row)))
        })?;
        match step {
            Step::Done(row) => Ok(RoleChange::Changed(into_managed(*row)?)),
            Step::UnknownUser => Ok(RoleChange::UnknownUser),
            Step::UnknownRole => Ok(RoleChange::UnknownRole),
            Step::Malformed => Err(AuthError::Internal(
                "database: malformed JSON list in a stored row".into(),
            )),
        }
    }

    async fn set_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<Option<u64>> {
        let id = id.to_string();
        let disabled_at = disabled_at.map(db_time);
        let now = db_time(now);
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| {
            let n = diesel::update(users::table.find(&id))
                .set((
                    users::disabled_at.eq(disabled_at),
                    users::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
            if n == 0 {
                return Ok(None);
            }
            let revoked = if disabled_at.is_some() {
                revoke_all_sessions!(conn, &id, now).await?
            } else {
                0
            };
            write_records!(conn, &records).await?;
            Ok(Some(revoked as u64))
        })
    }

    async fn delete_user(&self, id: UserId, record: &Recorded) -> AuthResult<bool> {
        let id = id.to_string();
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| {
            let email: Option<String> = users::table
                .find(&id)
                .select(users::email_canonical)
                .first(conn)
                .await
                .optional()?;
            let Some(email) = email else {
                return Ok(false);
            };
            // Tokens sent to the address before the account existed name no user.
            diesel::delete(
                one_time_tokens::table.filter(
                    one_time_tokens::user_id
                        .eq(&id)
                        .or(one_time_tokens::email.eq(&email)),
                ),
            )
            .execute(conn)
            .await?;
            // The audit trail keeps the user id only.
            diesel::update(audit_log::table.filter(audit_log::user_id.eq(&id)))
                .set((
                    audit_log::ip.eq(None::<String>),
                    audit_log::user_agent.eq(None::<String>),
                ))
                .execute(conn)
                .await?;
            // Sessions and their refresh tokens go with the user (ON DELETE CASCADE).
            diesel::delete(users::table.find(&id)).execute(conn).await?;
            write_records!(conn, &records).await?;
            Ok(true)
        })
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        only: Option<SessionId>,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<u64> {
        let user_id = user_id.to_string();
        let only = only.map(|s| s.to_string());
        let now = db_time(now);
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| {
            let n = match &only {
                Some(sid) => {
                    diesel::update(
                        sessions::table
                            .find(sid)
                            .filter(sessions::user_id.eq(&user_id))
                            .filter(sessions::revoked_at.is_null()),
                    )
                    .set(sessions::revoked_at.eq(now))
                    .execute(conn)
                    .await?
                }
                None => revoke_all_sessions!(conn, &user_id, now).await?,
            };
            write_records!(conn, &records).await?;
            Ok(n as u64)
        })
    }
}

#[async_trait]
impl AuditStore for Database {
    async fn append(&self, record: &Recorded) -> AuthResult<()> {
        let records = RecordRows::new(std::slice::from_ref(record));
        write_tx!(self, |conn| write_records!(conn, &records).await)
    }

    async fn query(&self, q: &AuditQuery) -> AuthResult<Vec<AuditRecord>> {
        let user_id = q.user_id.map(|u| u.to_string());
        let event_type = q.event_type.clone();
        let from = q.from.map(db_time);
        let until = q.until.map(db_time);
        let before = q.before.map(|(at, id)| (db_time(at), id.to_string()));
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let rows: Vec<AuditRow> = with_conn!(self, |conn| {
            let mut query = audit_log::table.select(AuditRow::as_select()).into_boxed();
            if let Some(u) = &user_id {
                query = query.filter(audit_log::user_id.eq(u.clone()));
            }
            if let Some(t) = &event_type {
                query = query.filter(audit_log::event_type.eq(t.clone()));
            }
            if let Some(f) = from {
                query = query.filter(audit_log::at.ge(f));
            }
            if let Some(u) = until {
                query = query.filter(audit_log::at.lt(u));
            }
            if let Some((at, id)) = &before {
                query = query.filter(
                    audit_log::at
                        .lt(*at)
                        .or(audit_log::at.eq(*at).and(audit_log::id.lt(id.clone()))),
                );
            }
            query
                .order((audit_log::at.desc(), audit_log::id.desc()))
                .limit(limit)
                .load(conn)
                .await
        })?;
        rows.into_iter().map(AuditRow::into_record).collect()
    }

    async fn prune_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let cutoff = db_time(cutoff);
        let n = with_conn!(self, |conn| {
            diesel::delete(audit_log::table.filter(audit_log::at.lt(cutoff)))
                .execute(conn)
                .await
        })?;
        Ok(n as u64)
    }
}
