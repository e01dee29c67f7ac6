//! [`OperatorStore`] and [`AuditStore`] for [`MemoryStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, State};
use crate::audit::{AuditQuery, AuditRecord, AuditStore, Recorded};
use crate::error::{AuthError, AuthResult};
use crate::model::{NewUser, SessionId, User, UserCredentials, UserId};
use crate::operators::{
    AccountUpdate, ManagedUser, OperatorStore, Role, RoleChange, RoleDeletion, UserQuery,
};

impl State {
    /// The roles, with the built-in one that the migrations create in a database.
    fn roles_seeded(&mut self) -> &mut std::collections::HashMap<String, Role> {
        if !self.roles.contains_key(crate::operators::ADMIN_ROLE) {
            let admin = Role::admin(DateTime::<Utc>::UNIX_EPOCH);
            self.roles.insert(admin.name.clone(), admin);
        }
        &mut self.roles
    }

    fn managed(&self, id: UserId) -> Option<ManagedUser> {
        self.users.get(&id).map(|c| ManagedUser {
            user: c.user.clone(),
            disabled_at: self.disabled.get(&id).copied(),
        })
    }
}

#[async_trait]
impl OperatorStore for MemoryStore {
    async fn roles(&self) -> AuthResult<Vec<Role>> {
        let mut s = self.state();
        let mut roles: Vec<Role> = s.roles_seeded().values().cloned().collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    async fn insert_role(&self, role: &Role, record: &Recorded) -> AuthResult<()> {
        let mut s = self.state();
        if s.roles_seeded().contains_key(&role.name) {
            return Err(AuthError::Conflict("role_exists"));
        }
        s.roles.insert(role.name.clone(), role.clone());
        s.write_records(std::slice::from_ref(record));
        Ok(())
    }

    async fn update_role(&self, role: &Role, record: &Recorded) -> AuthResult<bool> {
        let mut s = self.state();
        match s.roles_seeded().get_mut(&role.name) {
            Some(r) if !r.built_in => {
                r.capabilities = role.capabilities.clone();
                r.description = role.description.clone();
                r.updated_at = role.updated_at;
            }
            _ => return Ok(false),
        }
        s.write_records(std::slice::from_ref(record));
        Ok(true)
    }

    async fn delete_role(&self, name: &str, record: &Recorded) -> AuthResult<RoleDeletion> {
        let mut s = self.state();
        if s.roles_seeded().get(name).is_none_or(|r| r.built_in) {
            return Ok(RoleDeletion::NotFound);
        }
        if s.users
            .values()
            .any(|c| c.user.roles.iter().any(|r| r == name))
        {
            return Ok(RoleDeletion::InUse);
        }
        s.roles.remove(name);
        s.write_records(std::slice::from_ref(record));
        Ok(RoleDeletion::Deleted)
    }

    async fn managed_user(&self, id: UserId) -> AuthResult<Option<ManagedUser>> {
        Ok(self.state().managed(id))
    }

    async fn list_users(&self, query: &UserQuery) -> AuthResult<Vec<ManagedUser>> {
        let s = self.state();
        let mut ids: Vec<UserId> = s
            .by_email
            .iter()
            .filter(|(email, _)| {
                query
                    .email_contains
                    .as_deref()
                    .is_none_or(|q| email.contains(q))
            })
            .map(|(_, id)| *id)
            .filter(|id| query.after.is_none_or(|after| *id > after))
            .collect();
        ids.sort();
        Ok(ids
            .into_iter()
            .take(query.limit)
            .filter_map(|id| s.managed(id))
            .collect())
    }

    async fn insert_managed_user(&self, new: &NewUser, record: &Recorded) -> AuthResult<User> {
        let mut s = self.state();
        let key = new.email.canonical();
        if s.by_email.contains_key(&key) {
            return Err(AuthError::EmailTaken);
        }
        let user = User {
            id: new.id,
            email: new.email.as_str().to_owned(),
            email_verified: new.email_verified,
            name: new.name.clone(),
            avatar_url: None,
            roles: new.roles.clone(),
            created_at: new.created_at,
            updated_at: new.created_at,
        };
        s.by_email.insert(key, new.id);
        s.users.insert(
            new.id,
            UserCredentials {
                user: user.clone(),
                password_hash: new.password_hash.clone(),
            },
        );
        s.write_records(std::slice::from_ref(record));
        Ok(user)
    }

    async fn update_user(
        &self,
        id: UserId,
        update: &AccountUpdate,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<Option<ManagedUser>> {
        let mut s = self.state();
        let Some(old_email) = s.users.get(&id).map(|c| c.user.email.clone()) else {
            return Ok(None);
        };
        if let Some(roles) = &update.roles {
            let known = s.roles_seeded();
            if roles.iter().any(|r| !known.contains_key(r)) {
                return Err(AuthError::NotFound);
            }
        }
        let changed = update.email.as_ref().is_some_and(|e| {
            crate::email::Email::parse(&old_email)
                .map_or(true, |old| old.canonical() != e.canonical())
        });
        if let Some(email) = &update.email {
            let key = email.canonical();
            if s.by_email.get(&key).is_some_and(|owner| *owner != id) {
                return Err(AuthError::EmailTaken);
            }
            let old_key = crate::email::Email::parse(&old_email)
                .map(|e| e.canonical())
                .unwrap_or(old_email);
            s.by_email.remove(&old_key);
            s.by_email.insert(key, id);
        }
        if changed {
            s.revoke_sessions_of(id, None, now);
            if let Some(notice) = &update.old_address_notice {
                s.enqueue(notice);
            }
        }
        if let Some(c) = s.users.get_mut(&id) {
            if let Some(email) = &update.email {
                c.user.email = email.as_str().to_owned();
            }
            if let Some(name) = &update.name {
                c.user.name = name.clone();
            }
            if let Some(v) = update.email_verified {
                c.user.email_verified = v;
            }
            if let Some(avatar_url) = &update.avatar_url {
                c.user.avatar_url = avatar_url.clone();
            }
            if let Some(roles) = &update.roles {
                c.user.roles = roles.clone();
            }
            c.user.updated_at = now;
        }
        s.write_records(records);
        Ok(s.managed(id))
    }

    async fn change_user_role(
        &self,
        id: UserId,
        role: &str,
        assign: bool,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<RoleChange> {
        let mut s = self.state();
        if !s.users.contains_key(&id) {
            return Ok(RoleChange::UnknownUser);
        }
        if assign && !s.roles_seeded().contains_key(role) {
            return Ok(RoleChange::UnknownRole);
        }
        if let Some(c) = s.users.get_mut(&id) {
            let has = c.user.roles.iter().any(|r| r == role);
            if assign && !has {
                c.user.roles.push(role.to_owned());
            } else if !assign && has {
                c.user.roles.retain(|r| r != role);
            }
            c.user.updated_at = now;
        }
        s.write_records(std::slice::from_ref(record));
        Ok(s.managed(id)
            .map_or(RoleChange::UnknownUser, RoleChange::Changed))
    }

    async fn set_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<Option<u64>> {
        let mut s = self.state();
        if !s.users.contains_key(&id) {
            return Ok(None);
        }
        let revoked = match disabled_at {
            Some(at) => {
                s.disabled.entry(id).or_insert(at);
                s.revoke_sessions_of(id, None, now)
            }
            None => {
                s.disabled.remove(&id);
                0
            }
        };
        s.write_records(std::slice::from_ref(record));
        Ok(Some(revoked))
    }

    async fn delete_user(&self, id: UserId, record: &Recorded) -> AuthResult<bool> {
        let mut s = self.state();
        let Some(creds) = s.users.remove(&id) else {
            return Ok(false);
        };
        s.by_email.retain(|_, owner| *owner != id);
        s.disabled.remove(&id);
        let sessions: Vec<SessionId> = s
            .sessions
            .values()
            .filter(|x| x.user_id == id)
            .map(|x| x.id)
            .collect();
        s.sessions.retain(|_, x| x.user_id != id);
        s.refresh_tokens
            .retain(|_, t| !sessions.contains(&t.session_id));
        let email = crate::email::Email::parse(&creds.user.email)
            .map(|e| e.canonical())
            .unwrap_or(creds.user.email);
        s.one_time_tokens
            .retain(|_, t| t.user_id != Some(id) && t.email != email);
        for row in s.audit.iter_mut().filter(|r| r.user_id == Some(id)) {
            row.ip = None;
            row.user_agent = None;
        }
        s.write_records(std::slice::from_ref(record));
        Ok(true)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        only: Option<SessionId>,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<u64> {
        let mut s = self.state();
        let mut n = 0;
        for x in s.sessions.values_mut() {
            if x.user_id == user_id && x.revoked_at.is_none() && only.is_none_or(|o| o == x.id) {
                x.revoked_at = Some(now);
                n += 1;
            }
        }
        s.write_records(std::slice::from_ref(record));
        Ok(n)
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append(&self, record: &Recorded) -> AuthResult<()> {
        self.state().write_records(std::slice::from_ref(record));
        Ok(())
    }

    async fn query(&self, q: &AuditQuery) -> AuthResult<Vec<AuditRecord>> {
        let s = self.state();
        let mut rows: Vec<AuditRecord> = s
            .audit
            .iter()
            .filter(|r| q.user_id.is_none_or(|u| r.user_id == Some(u)))
            .filter(|r| q.event_type.as_deref().is_none_or(|t| r.event_type == t))
            .filter(|r| q.from.is_none_or(|f| r.at >= f))
            .filter(|r| q.until.is_none_or(|u| r.at < u))
            .filter(|r| q.before.is_none_or(|(at, id)| (r.at, r.id) < (at, id)))
            .cloned()
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse((r.at, r.id)));
        rows.truncate(q.limit);
        Ok(rows)
    }

    async fn prune_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let mut s = self.state();
        let before = s.audit.len();
        s.audit.retain(|r| r.at >= cutoff);
        Ok((before - s.audit.len()) as u64)
    }
}
