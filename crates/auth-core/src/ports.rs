//! Port traits: what the core needs from the outside world. Each method that must be
//! atomic is one call, made atomic by the adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::AuthResult;
use crate::model::{
    NewSession, NewUser, ProfileUpdate, RefreshTokenRecord, RotateOutcome, Session, SessionId,
    StoredSigningKey, TokenHash, User, UserCredentials, UserId,
};

/// Storage of user accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Insert a new user. Fails with [`crate::AuthError::EmailTaken`] when the canonical email
    /// is already registered (decided by a unique index, not by a prior read).
    async fn insert_user(&self, user: &NewUser) -> AuthResult<User>;
    /// A user by id.
    async fn user_by_id(&self, id: UserId) -> AuthResult<Option<User>>;
    /// A user and their password hash by canonical (lowercased) email.
    async fn credentials_by_email(
        &self,
        canonical_email: &str,
    ) -> AuthResult<Option<UserCredentials>>;
    /// Apply a profile update; `None` when the user does not exist.
    async fn update_profile(
        &self,
        id: UserId,
        update: &ProfileUpdate,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<User>>;
    /// Replace the password hash (re-hash on login, password change).
    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<()>;
}

/// Storage of sessions and their refresh tokens.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Create a session and its first refresh token, atomically.
    async fn create_session(
        &self,
        session: &NewSession,
        first_refresh: &TokenHash,
    ) -> AuthResult<Session>;
    /// A session by id, revoked or not.
    async fn session(&self, id: SessionId) -> AuthResult<Option<Session>>;
    /// Every session of a user that is not revoked (expired ones included; the core filters).
    async fn unrevoked_sessions_of(&self, user_id: UserId) -> AuthResult<Vec<Session>>;
    /// A refresh token by hash.
    async fn refresh_token(&self, hash: &TokenHash) -> AuthResult<Option<RefreshTokenRecord>>;
    /// Atomically: if `presented` is the current token of a session that is not revoked,
    /// mark it rotated at `now` with `sealed_successor`, store `successor` as the session's
    /// new current token and set the session's `last_used_at` to `now`. Otherwise change
    /// nothing and answer [`RotateOutcome::NotCurrent`].
    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        sealed_successor: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<RotateOutcome>;
    /// Revoke one session; `false` when it was unknown or already revoked.
    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> AuthResult<bool>;
    /// Revoke every session of a user except `keep`; returns how many were revoked.
    async fn revoke_sessions_of(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> AuthResult<u64>;
    /// Delete sessions (and their tokens) that ended before `cutoff`: expired or revoked.
    async fn purge_sessions_ended_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64>;
}

/// Storage of a server-generated signing key shared by every node.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Store `candidate` unless a key is already stored; return the stored key either way.
    /// Concurrent callers on several nodes all get the same key.
    async fn load_or_store(&self, candidate: &StoredSigningKey) -> AuthResult<StoredSigningKey>;
}

/// Liveness of a backing store, for readiness probes.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Succeeds when the store answers.
    async fn ping(&self) -> AuthResult<()>;
}
