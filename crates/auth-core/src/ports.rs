//! Port traits: what the core needs from the outside world. Each method that must be
//! atomic is one call, made atomic by the adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use uuid::Uuid;

use crate::audit::Recorded;
use crate::error::AuthResult;
use crate::model::{
    MailboxProof, NewOneTimeToken, NewSession, NewUser, OneTimeToken, OneTimeTokenKind,
    ProfileUpdate, ProvenMailbox, RefreshTokenRecord, RotateOutcome, Session, SessionId,
    StoredSigningKey, TokenHash, User, UserCredentials, UserId,
};
use crate::outbox::{NewOutboxMessage, OutboxMessage};

/// Storage of user accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Insert a new user, and with it (same transaction) an email verification token and
    /// the mail that carries it. Fails with [`crate::AuthError::EmailTaken`] when the
    /// canonical email is already registered (decided by a unique index, not by a prior
    /// read); then nothing is written.
    async fn insert_user(
        &self,
        user: &NewUser,
        verification: Option<(&NewOneTimeToken, &NewOutboxMessage)>,
    ) -> AuthResult<User>;
    /// Mark the user's email verified if it still is `canonical_email`; `None` when the
    /// user does not exist or changed address meanwhile. With [`MailboxProof::Adoption`]
    /// an account that was unverified loses, in the same transaction, its password hash,
    /// its sessions (revoked), its linked identities, passkeys, second factors, recovery
    /// codes and pending MFA challenges; `adopted` says so. A verified account, or
    /// [`MailboxProof::SignupLink`], changes nothing but the flag.
    async fn mark_email_verified(
        &self,
        id: UserId,
        canonical_email: &str,
        proof: MailboxProof,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<ProvenMailbox>>;
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
    /// Create a session and its first refresh token, and write `records` (the sign-in's
    /// event), atomically. Fails with [`crate::AuthError::AccountDisabled`] (and writes
    /// nothing) when an administrator disabled the user; with
    /// [`crate::AuthError::NotFound`] when there is no such user.
    async fn create_session(
        &self,
        session: &NewSession,
        first_refresh: &TokenHash,
        records: &[Recorded],
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
    /// Revoke one session and write `records` with it; `false` (and nothing written)
    /// when it was unknown or already revoked.
    async fn revoke_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<bool>;
    /// Revoke every session of a user except `keep`, and write `records` (whatever the
    /// count); returns how many were revoked.
    async fn revoke_sessions_of(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<u64>;
    /// Delete sessions (and, with them, their refresh tokens) that ended before `cutoff`:
    /// expired or revoked.
    async fn purge_sessions_ended_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64>;
}

/// One-time tokens (email verification, password reset, magic link, email code) and the
/// account changes they unlock. Each method is one transaction.
#[async_trait]
pub trait OneTimeTokenStore: Send + Sync {
    /// Retire every unused token of the same kind for the same email, store `token`, and
    /// write `mail` to the outbox.
    async fn issue_one_time_token(
        &self,
        token: &NewOneTimeToken,
        mail: &NewOutboxMessage,
    ) -> AuthResult<()>;
    /// A token by hash, used or not.
    async fn one_time_token(&self, hash: &TokenHash) -> AuthResult<Option<OneTimeToken>>;
    /// Mark the token used if it is of `kind`, unused and unexpired at `now`; return it
    /// then, `None` otherwise. Two concurrent calls never both succeed.
    async fn consume_one_time_token(
        &self,
        hash: &TokenHash,
        kind: OneTimeTokenKind,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<OneTimeToken>>;
    /// The newest unused, unexpired token of `kind` for `email`.
    async fn current_one_time_token(
        &self,
        kind: OneTimeTokenKind,
        email: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<OneTimeToken>>;
    /// Count a wrong code against the token; at `max` failures it is retired (`used_at`
    /// set). Returns the new count.
    async fn record_failed_attempt(
        &self,
        hash: &TokenHash,
        max: i32,
        now: DateTime<Utc>,
    ) -> AuthResult<i32>;
    /// Redeem a password reset token: if `hash` is an unused, unexpired reset token of
    /// `user_id`, consume it, set the password hash, retire the user's other reset tokens,
    /// revoke every session of the user and write `notice` to the outbox. The reset proves
    /// the mailbox the token was sent to: when that is still the account's address and it
    /// was unverified, the account is verified and adopted as by
    /// [`UserStore::mark_email_verified`] with [`MailboxProof::Adoption`], in the same
    /// transaction. `false` (and no change) otherwise.
    async fn redeem_password_reset(
        &self,
        hash: &TokenHash,
        user_id: UserId,
        password_hash: &str,
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> AuthResult<bool>;
    /// Change a password while signed in: set the hash, retire the user's reset tokens,
    /// revoke every session of the user, open `new_session` with `first_refresh`, and write
    /// `notice` to the outbox. Fails with [`crate::AuthError::AccountDisabled`] (and writes
    /// nothing) for a disabled user, as every session-opening operation does.
    async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        new_session: &NewSession,
        first_refresh: &TokenHash,
        notice: &NewOutboxMessage,
    ) -> AuthResult<Session>;
}

/// The durable outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Write an entry on its own (when no other state changes with it).
    async fn enqueue(&self, message: &NewOutboxMessage) -> AuthResult<()>;
    /// Claim up to `limit` due entries (not sent, not dead, due at `now`, not leased by
    /// another worker): lease them until `lease_until` and count an attempt. Several
    /// workers on several nodes never claim the same entry at once.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> AuthResult<Vec<OutboxMessage>>;
    /// The entry was carried out: record it and erase its payload.
    async fn mark_done(&self, id: Uuid, now: DateTime<Utc>) -> AuthResult<()>;
    /// The attempt failed: retry at `retry_at`, or give up when `None` (dead letter, payload
    /// erased). `error` is kept for operators and must hold no secret.
    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> AuthResult<()>;
    /// Entries neither done nor dead.
    async fn backlog(&self) -> AuthResult<u64>;
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

/// A subscribed endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Identifier.
    pub id: Uuid,
    /// Where deliveries are posted.
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// Event types it receives (`login_failed` ...), or `*` for all.
    pub event_types: Vec<String>,
    /// Disabled endpoints receive nothing.
    pub enabled: bool,
    /// The signing secret, sealed (hex).
    pub secret_sealed: String,
    /// The secret before the last rotation, sealed, while it still signs.
    pub previous_secret_sealed: Option<String>,
    /// Until when the previous secret signs too.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// First failure since the last success.
    pub failing_since: Option<DateTime<Utc>>,
    /// Why the server disabled it, if it did.
    pub disabled_reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl WebhookEndpoint {
    /// Whether it receives events of `event_type`.
    pub fn subscribes_to(&self, event_type: &str) -> bool {
        self.enabled && self.event_types.iter().any(|t| t == "*" || t == event_type)
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// Identifier.
    pub id: Uuid,
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// The `webhook-id` (the same for every attempt of one message).
    pub message_id: Uuid,
    /// Event type delivered.
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: i32,
    /// When.
    pub attempted_at: DateTime<Utc>,
    /// HTTP status, when the endpoint answered.
    pub status_code: Option<i32>,
    /// Why it failed, when it did (no secret).
    pub error: Option<String>,
    /// 2xx answer.
    pub succeeded: bool,
}

/// Storage of endpoints and delivery attempts. Each write that causes an event writes its
/// `record` (audit row and webhook deliveries) in the same transaction.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Insert an endpoint.
    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        record: &Recorded,
    ) -> AuthResult<()>;
    /// Replace an endpoint's fields; `false` when there is no such endpoint.
    async fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        record: &Recorded,
    ) -> AuthResult<bool>;
    /// Delete an endpoint and its attempts; `false` when there is no such endpoint.
    async fn delete_endpoint(&self, id: Uuid, record: &Recorded) -> AuthResult<bool>;
    /// One endpoint.
    async fn endpoint(&self, id: Uuid) -> AuthResult<Option<WebhookEndpoint>>;
    /// Every endpoint, oldest first.
    async fn endpoints(&self) -> AuthResult<Vec<WebhookEndpoint>>;
    /// Record an attempt and, atomically, the endpoint's failure streak: cleared by a
    /// success, started (if not already) by a failure. Answers the start of the streak
    /// after this attempt (`None` after a success or when the endpoint is gone).
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> AuthResult<Option<DateTime<Utc>>>;
    /// Disable an endpoint that is still enabled, with a reason; `false` if it was not.
    async fn disable_endpoint(
        &self,
        id: Uuid,
        reason: &str,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<bool>;
    /// The newest attempts of an endpoint, newest first.
    async fn attempts(&self, endpoint_id: Uuid, limit: usize) -> AuthResult<Vec<DeliveryAttempt>>;
}
