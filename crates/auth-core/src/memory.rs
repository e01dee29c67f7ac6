//! In-memory implementation of the storage ports, for tests and for embedders who keep
//! state elsewhere. One mutex makes every port call atomic.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{AuthError, AuthResult};
use crate::model::{
    NewSession, NewUser, ProfileUpdate, RefreshTokenRecord, RotateOutcome, Session, SessionId,
    StoredSigningKey, TokenHash, User, UserCredentials, UserId,
};
use crate::ports::{HealthCheck, SessionStore, SigningKeyStore, UserStore};

#[derive(Default)]
struct State {
    users: HashMap<UserId, UserCredentials>,
    by_email: HashMap<String, UserId>,
    sessions: HashMap<SessionId, Session>,
    refresh_tokens: HashMap<TokenHash, RefreshTokenRecord>,
    signing_key: Option<StoredSigningKey>,
}

/// Every storage port, held in process memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change: every mutation
        // below is computed before it is written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, new: &NewUser) -> AuthResult<User> {
        let mut s = self.state();
        let key = new.email.canonical();
        if s.by_email.contains_key(&key) {
            return Err(AuthError::EmailTaken);
        }
        let user = User {
            id: new.id,
            email: new.email.as_str().to_owned(),
            email_verified: false,
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
        Ok(user)
    }

    async fn user_by_id(&self, id: UserId) -> AuthResult<Option<User>> {
        Ok(self.state().users.get(&id).map(|c| c.user.clone()))
    }

    async fn credentials_by_email(
        &self,
        canonical_email: &str,
    ) -> AuthResult<Option<UserCredentials>> {
        let s = self.state();
        Ok(s.by_email
            .get(canonical_email)
            .and_then(|id| s.users.get(id))
            .cloned())
    }

    async fn update_profile(
        &self,
        id: UserId,
        update: &ProfileUpdate,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<User>> {
        let mut s = self.state();
        let Some(creds) = s.users.get_mut(&id) else {
            return Ok(None);
        };
        if let Some(name) = &update.name {
            creds.user.name = name.clone();
        }
        if let Some(avatar) = &update.avatar_url {
            creds.user.avatar_url = avatar.clone();
        }
        creds.user.updated_at = now;
        Ok(Some(creds.user.clone()))
    }

    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<()> {
        let mut s = self.state();
        let creds = s.users.get_mut(&id).ok_or(AuthError::NotFound)?;
        creds.password_hash = Some(password_hash.to_owned());
        creds.user.updated_at = now;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(
        &self,
        new: &NewSession,
        first_refresh: &TokenHash,
    ) -> AuthResult<Session> {
        let mut s = self.state();
        if !s.users.contains_key(&new.user_id) {
            return Err(AuthError::NotFound);
        }
        let session = Session {
            id: new.id,
            user_id: new.user_id,
            created_at: new.created_at,
            last_used_at: new.created_at,
            expires_at: new.expires_at,
            revoked_at: None,
            client: new.client.clone(),
            amr: new.amr.clone(),
            aal: new.aal.clone(),
        };
        s.sessions.insert(new.id, session.clone());
        s.refresh_tokens.insert(
            first_refresh.clone(),
            RefreshTokenRecord {
                token_hash: first_refresh.clone(),
                session_id: new.id,
                created_at: new.created_at,
                rotated_at: None,
                sealed_successor: None,
            },
        );
        Ok(session)
    }

    async fn session(&self, id: SessionId) -> AuthResult<Option<Session>> {
        Ok(self.state().sessions.get(&id).cloned())
    }

    async fn unrevoked_sessions_of(&self, user_id: UserId) -> AuthResult<Vec<Session>> {
        let mut out: Vec<Session> = self
            .state()
            .sessions
            .values()
            .filter(|x| x.user_id == user_id && x.revoked_at.is_none())
            .cloned()
            .collect();
        out.sort_by_key(|x| std::cmp::Reverse(x.created_at));
        Ok(out)
    }

    async fn refresh_token(&self, hash: &TokenHash) -> AuthResult<Option<RefreshTokenRecord>> {
        Ok(self.state().refresh_tokens.get(hash).cloned())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        sealed_successor: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<RotateOutcome> {
        let mut s = self.state();
        let Some(record) = s.refresh_tokens.get(presented) else {
            return Ok(RotateOutcome::NotCurrent);
        };
        let session_id = record.session_id;
        let live = s
            .sessions
            .get(&session_id)
            .is_some_and(|x| x.revoked_at.is_none());
        if record.rotated_at.is_some() || !live {
            return Ok(RotateOutcome::NotCurrent);
        }
        if let Some(r) = s.refresh_tokens.get_mut(presented) {
            r.rotated_at = Some(now);
            r.sealed_successor = Some(sealed_successor.to_owned());
        }
        s.refresh_tokens.insert(
            successor.clone(),
            RefreshTokenRecord {
                token_hash: successor.clone(),
                session_id,
                created_at: now,
                rotated_at: None,
                sealed_successor: None,
            },
        );
        if let Some(session) = s.sessions.get_mut(&session_id) {
            session.last_used_at = now;
        }
        Ok(RotateOutcome::Rotated)
    }

    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> AuthResult<bool> {
        let mut s = self.state();
        match s.sessions.get_mut(&id) {
            Some(x) if x.revoked_at.is_none() => {
                x.revoked_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_sessions_of(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> AuthResult<u64> {
        let mut s = self.state();
        let mut n = 0;
        for x in s.sessions.values_mut() {
            if x.user_id == user_id && x.revoked_at.is_none() && Some(x.id) != keep {
                x.revoked_at = Some(now);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn purge_sessions_ended_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let mut s = self.state();
        let ended: Vec<SessionId> = s
            .sessions
            .values()
            .filter(|x| x.expires_at < cutoff || x.revoked_at.is_some_and(|r| r < cutoff))
            .map(|x| x.id)
            .collect();
        for id in &ended {
            s.sessions.remove(id);
        }
        s.refresh_tokens
            .retain(|_, r| !ended.contains(&r.session_id));
        Ok(ended.len() as u64)
    }
}

#[async_trait]
impl SigningKeyStore for MemoryStore {
    async fn load_or_store(&self, candidate: &StoredSigningKey) -> AuthResult<StoredSigningKey> {
        Ok(self
            .state()
            .signing_key
            .get_or_insert_with(|| candidate.clone())
            .clone())
    }
}

#[async_trait]
impl HealthCheck for MemoryStore {
    async fn ping(&self) -> AuthResult<()> {
        Ok(())
    }
}
