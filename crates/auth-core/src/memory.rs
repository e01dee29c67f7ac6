//! In-memory implementation of the storage ports, for tests and for embedders who keep
//! state elsewhere. One mutex makes every port call atomic.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{AuthError, AuthResult};
use uuid::Uuid;

mod identity;

use crate::guard::{LockoutState, LockoutStore, RateLimitStore};
use crate::model::{
    MailboxProof, NewOneTimeToken, NewSession, NewUser, OneTimeToken, OneTimeTokenKind,
    ProfileUpdate, ProvenMailbox, RefreshTokenRecord, RotateOutcome, Session, SessionId,
    StoredSigningKey, TokenHash, User, UserCredentials, UserId,
};
use crate::outbox::{NewOutboxMessage, OutboxMessage};
use crate::ports::{
    HealthCheck, OneTimeTokenStore, OutboxStore, SessionStore, SigningKeyStore, UserStore,
};

#[derive(Default)]
struct State {
    users: HashMap<UserId, UserCredentials>,
    by_email: HashMap<String, UserId>,
    sessions: HashMap<SessionId, Session>,
    refresh_tokens: HashMap<TokenHash, RefreshTokenRecord>,
    signing_key: Option<StoredSigningKey>,
    one_time_tokens: HashMap<TokenHash, OneTimeToken>,
    rate_windows: HashMap<(String, DateTime<Utc>), u32>,
    lockouts: HashMap<String, LockoutRow>,
    outbox: Vec<OutboxEntry>,
    roles: HashMap<String, crate::operators::Role>,
    disabled: HashMap<UserId, DateTime<Utc>>,
    audit: Vec<crate::audit::AuditRecord>,
    webhooks: Vec<crate::webhooks::WebhookEndpoint>,
    webhook_attempts: Vec<crate::webhooks::DeliveryAttempt>,
    identities: Vec<crate::identity::Identity>,
    oauth_records: HashMap<TokenHash, crate::identity::OAuthRecord>,
    mfa: mfa::MfaState,
    passkeys: passkeys::PasskeyState,
}

/// Failures in the current window: (count, window start, lock end).
type LockoutRow = (u32, DateTime<Utc>, Option<DateTime<Utc>>);

/// An outbox entry with its delivery state.
#[derive(Debug, Clone)]
struct OutboxEntry {
    message: OutboxMessage,
    due_at: DateTime<Utc>,
    leased_until: Option<DateTime<Utc>>,
    done_at: Option<DateTime<Utc>>,
    dead_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

impl State {
    /// The one disabled-account check of every operation that signs someone in (opening
    /// a session, storing an MFA challenge): a missing account is `NotFound`, a disabled
    /// one `AccountDisabled`. Callers check before their writes, so a refusal leaves no
    /// change behind.
    fn require_enabled(&self, user_id: UserId) -> AuthResult<()> {
        if !self.users.contains_key(&user_id) {
            return Err(AuthError::NotFound);
        }
        if self.disabled.contains_key(&user_id) {
            return Err(AuthError::AccountDisabled);
        }
        Ok(())
    }

    /// The one way this store opens a session, whichever sign-in asks
    /// ([`State::require_enabled`] first).
    /// The one way a session is written (see `open_session!` in auth-db): refuses a disabled
    /// user, then writes the session, its first refresh token and `records`.
    fn open_session(
        &mut self,
        new: &NewSession,
        first_refresh: &TokenHash,
        records: &[crate::audit::Recorded],
    ) -> AuthResult<Session> {
        self.require_enabled(new.user_id)?;
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
        self.sessions.insert(new.id, session.clone());
        self.refresh_tokens.insert(
            first_refresh.clone(),
            RefreshTokenRecord {
                token_hash: first_refresh.clone(),
                session_id: new.id,
                created_at: new.created_at,
                rotated_at: None,
                sealed_successor: None,
            },
        );
        self.write_records(records);
        Ok(session)
    }

    /// Verify `id`'s address if it still is `canonical_email`. With
    /// [`MailboxProof::Adoption`] an unverified account loses what its creator set up
    /// (password, sessions, identities, passkeys, second factors); see the port.
    fn prove_mailbox(
        &mut self,
        id: UserId,
        canonical_email: &str,
        proof: MailboxProof,
        now: DateTime<Utc>,
    ) -> Option<ProvenMailbox> {
        let c = self
            .users
            .get_mut(&id)
            .filter(|c| c.user.email.to_lowercase() == canonical_email)?;
        let adopted = proof == MailboxProof::Adoption && !c.user.email_verified;
        c.user.email_verified = true;
        c.user.updated_at = now;
        if adopted {
            c.password_hash = None;
        }
        let user = c.user.clone();
        if adopted {
            self.revoke_sessions_of(id, None, now);
            self.identities.retain(|i| i.user_id != id);
            self.mfa.forget_user(id);
            self.passkeys.forget_user(id);
        }
        Some(ProvenMailbox { user, adopted })
    }

    fn revoke_sessions_of(
        &mut self,
        user_id: UserId,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> u64 {
        let mut n = 0;
        for x in self.sessions.values_mut() {
            if x.user_id == user_id && x.revoked_at.is_none() && Some(x.id) != keep {
                x.revoked_at = Some(now);
                n += 1;
            }
        }
        n
    }

    fn retire_tokens(
        &mut self,
        kind: OneTimeTokenKind,
        matches: impl Fn(&OneTimeToken) -> bool,
        now: DateTime<Utc>,
    ) {
        for t in self.one_time_tokens.values_mut() {
            if t.kind == kind && t.used_at.is_none() && matches(t) {
                t.used_at = Some(now);
            }
        }
    }

    /// The audit rows and webhook deliveries of a change, with it.
    fn write_records(&mut self, records: &[crate::audit::Recorded]) {
        for r in records {
            self.audit.push(r.row.clone());
            for delivery in &r.deliveries {
                self.enqueue(delivery);
            }
        }
    }

    fn enqueue(&mut self, m: &NewOutboxMessage) {
        self.outbox.push(OutboxEntry {
            message: OutboxMessage {
                id: m.id,
                kind: m.kind.clone(),
                payload: m.payload.clone(),
                attempts: 0,
                created_at: m.created_at,
            },
            due_at: m.created_at,
            leased_until: None,
            done_at: None,
            dead_at: None,
            last_error: None,
        });
    }

    fn insert_one_time_token(&mut self, token: &NewOneTimeToken) {
        self.retire_tokens(token.kind, |t| t.email == token.email, token.created_at);
        self.one_time_tokens.insert(
            token.token_hash.clone(),
            OneTimeToken {
                token_hash: token.token_hash.clone(),
                kind: token.kind,
                user_id: token.user_id,
                email: token.email.clone(),
                created_at: token.created_at,
                expires_at: token.expires_at,
                used_at: None,
                failed_attempts: 0,
                redirect_to: token.redirect_to.clone(),
            },
        );
    }
}

impl MemoryStore {
    /// Outbox entries not yet done nor dead, with their kinds (for tests).
    pub fn pending_outbox_kinds(&self) -> Vec<String> {
        self.state()
            .outbox
            .iter()
            .filter(|e| e.done_at.is_none() && e.dead_at.is_none())
            .map(|e| e.message.kind.clone())
            .collect()
    }

    /// Payloads of the entries neither done nor dead (for tests).
    pub fn pending_outbox_payloads(&self) -> Vec<Vec<u8>> {
        self.state()
            .outbox
            .iter()
            .filter(|e| e.done_at.is_none() && e.dead_at.is_none())
            .map(|e| e.message.payload.clone())
            .collect()
    }

    /// Payloads of every entry (for tests).
    pub fn all_outbox_payloads(&self) -> Vec<Vec<u8>> {
        self.state()
            .outbox
            .iter()
            .map(|e| e.message.payload.clone())
            .collect()
    }

    /// The last error recorded on each outbox entry (for tests).
    pub fn outbox_errors(&self) -> Vec<Option<String>> {
        self.state()
            .outbox
            .iter()
            .map(|e| e.last_error.clone())
            .collect()
    }
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
    async fn insert_user(
        &self,
        new: &NewUser,
        verification: Option<(&NewOneTimeToken, &NewOutboxMessage)>,
    ) -> AuthResult<User> {
        let mut s = self.state();
        let key = new.email.canonical();
        if s.by_email.contains_key(&key) {
            return Err(AuthError::EmailTaken);
        }
        if let Some((token, mail)) = verification {
            s.insert_one_time_token(token);
            s.enqueue(mail);
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
        Ok(user)
    }

    async fn mark_email_verified(
        &self,
        id: UserId,
        canonical_email: &str,
        proof: MailboxProof,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<ProvenMailbox>> {
        Ok(self.state().prove_mailbox(id, canonical_email, proof, now))
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
        records: &[crate::audit::Recorded],
    ) -> AuthResult<Session> {
        self.state().open_session(new, first_refresh, records)
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

    async fn revoke_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
        records: &[crate::audit::Recorded],
    ) -> AuthResult<bool> {
        let mut s = self.state();
        match s.sessions.get_mut(&id) {
            Some(x) if x.revoked_at.is_none() => {
                x.revoked_at = Some(now);
                s.write_records(records);
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
        records: &[crate::audit::Recorded],
    ) -> AuthResult<u64> {
        let mut s = self.state();
        let revoked = s.revoke_sessions_of(user_id, keep, now);
        s.write_records(records);
        Ok(revoked)
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
impl OneTimeTokenStore for MemoryStore {
    async fn issue_one_time_token(
        &self,
        token: &NewOneTimeToken,
        mail: &NewOutboxMessage,
    ) -> AuthResult<()> {
        let mut s = self.state();
        s.insert_one_time_token(token);
        s.enqueue(mail);
        Ok(())
    }

    async fn one_time_token(&self, hash: &TokenHash) -> AuthResult<Option<OneTimeToken>> {
        Ok(self.state().one_time_tokens.get(hash).cloned())
    }

    async fn consume_one_time_token(
        &self,
        hash: &TokenHash,
        kind: OneTimeTokenKind,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<OneTimeToken>> {
        let mut s = self.state();
        match s.one_time_tokens.get_mut(hash) {
            Some(t) if t.kind == kind && t.used_at.is_none() && now < t.expires_at => {
                t.used_at = Some(now);
                Ok(Some(t.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn current_one_time_token(
        &self,
        kind: OneTimeTokenKind,
        email: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<OneTimeToken>> {
        Ok(self
            .state()
            .one_time_tokens
            .values()
            .filter(|t| {
                t.kind == kind && t.email == email && t.used_at.is_none() && now < t.expires_at
            })
            .max_by_key(|t| t.created_at)
            .cloned())
    }

    async fn record_failed_attempt(
        &self,
        hash: &TokenHash,
        max: i32,
        now: DateTime<Utc>,
    ) -> AuthResult<i32> {
        let mut s = self.state();
        let t = s.one_time_tokens.get_mut(hash).ok_or(AuthError::NotFound)?;
        t.failed_attempts += 1;
        if t.failed_attempts >= max && t.used_at.is_none() {
            t.used_at = Some(now);
        }
        Ok(t.failed_attempts)
    }

    async fn redeem_password_reset(
        &self,
        hash: &TokenHash,
        user_id: UserId,
        password_hash: &str,
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let mut s = self.state();
        let usable = s.one_time_tokens.get(hash).is_some_and(|t| {
            t.kind == OneTimeTokenKind::PasswordReset
                && t.user_id == Some(user_id)
                && t.used_at.is_none()
                && now < t.expires_at
        });
        if !usable || !s.users.contains_key(&user_id) {
            return Ok(false);
        }
        let mailbox = s.one_time_tokens[hash].email.clone();
        s.prove_mailbox(user_id, &mailbox, MailboxProof::Adoption, now);
        s.retire_tokens(
            OneTimeTokenKind::PasswordReset,
            |t| t.user_id == Some(user_id),
            now,
        );
        if let Some(c) = s.users.get_mut(&user_id) {
            c.password_hash = Some(password_hash.to_owned());
            c.user.updated_at = now;
        }
        s.revoke_sessions_of(user_id, None, now);
        s.enqueue(notice);
        Ok(true)
    }

    async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        new_session: &NewSession,
        first_refresh: &TokenHash,
        notice: &NewOutboxMessage,
    ) -> AuthResult<Session> {
        let mut s = self.state();
        let now = new_session.created_at;
        let session = s.open_session(new_session, first_refresh, &[])?;
        if let Some(creds) = s.users.get_mut(&user_id) {
            creds.password_hash = Some(password_hash.to_owned());
            creds.user.updated_at = now;
        }
        s.retire_tokens(
            OneTimeTokenKind::PasswordReset,
            |t| t.user_id == Some(user_id),
            now,
        );
        // Every session, the caller's included: the new session replaces it.
        s.revoke_sessions_of(user_id, Some(session.id), now);
        s.enqueue(notice);
        Ok(session)
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn enqueue(&self, message: &NewOutboxMessage) -> AuthResult<()> {
        self.state().enqueue(message);
        Ok(())
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> AuthResult<Vec<OutboxMessage>> {
        let mut s = self.state();
        let mut due: Vec<&mut OutboxEntry> = s
            .outbox
            .iter_mut()
            .filter(|e| {
                e.done_at.is_none()
                    && e.dead_at.is_none()
                    && e.due_at <= now
                    && e.leased_until.is_none_or(|l| l <= now)
            })
            .collect();
        // Oldest due first, as the SQL stores claim.
        due.sort_by_key(|e| (e.due_at, e.message.created_at));
        Ok(due
            .into_iter()
            .take(limit)
            .map(|e| {
                e.leased_until = Some(lease_until);
                e.message.attempts += 1;
                e.message.clone()
            })
            .collect())
    }

    async fn mark_done(&self, id: Uuid, now: DateTime<Utc>) -> AuthResult<()> {
        if let Some(e) = self.state().outbox.iter_mut().find(|e| e.message.id == id) {
            e.done_at = Some(now);
            e.leased_until = None;
            e.message.payload.clear();
        }
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> AuthResult<()> {
        if let Some(e) = self.state().outbox.iter_mut().find(|e| e.message.id == id) {
            e.last_error = Some(error.to_owned());
            e.leased_until = None;
            match retry_at {
                Some(at) => e.due_at = at,
                None => {
                    e.dead_at = Some(now);
                    e.message.payload.clear();
                }
            }
        }
        Ok(())
    }

    async fn backlog(&self) -> AuthResult<u64> {
        Ok(self
            .state()
            .outbox
            .iter()
            .filter(|e| e.done_at.is_none() && e.dead_at.is_none())
            .count() as u64)
    }
}

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn hit(&self, key: &str, window_start: DateTime<Utc>) -> AuthResult<u32> {
        let mut s = self.state();
        let count = s
            .rate_windows
            .entry((key.to_owned(), window_start))
            .or_insert(0);
        *count += 1;
        Ok(*count)
    }

    async fn purge_windows_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let mut s = self.state();
        let before = s.rate_windows.len();
        s.rate_windows.retain(|(_, start), _| *start >= cutoff);
        Ok((before - s.rate_windows.len()) as u64)
    }
}

#[async_trait]
impl LockoutStore for MemoryStore {
    async fn locked_until(
        &self,
        identifier: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<DateTime<Utc>>> {
        Ok(self
            .state()
            .lockouts
            .get(identifier)
            .and_then(|(_, _, until)| *until)
            .filter(|until| *until > now))
    }

    async fn register_failure(
        &self,
        identifier: &str,
        now: DateTime<Utc>,
        window: chrono::Duration,
        threshold: u32,
        freeze: chrono::Duration,
    ) -> AuthResult<LockoutState> {
        let mut s = self.state();
        let entry = s
            .lockouts
            .entry(identifier.to_owned())
            .or_insert((0, now, None));
        if now - entry.1 >= window {
            *entry = (0, now, entry.2);
        }
        entry.0 += 1;
        if entry.0 >= threshold {
            *entry = (0, now, Some(now + freeze));
            return Ok(LockoutState {
                failures: threshold,
                locked_until: entry.2,
            });
        }
        Ok(LockoutState {
            failures: entry.0,
            locked_until: entry.2.filter(|u| *u > now),
        })
    }

    async fn clear(&self, identifier: &str) -> AuthResult<()> {
        self.state().lockouts.remove(identifier);
        Ok(())
    }

    async fn clear_all(&self, identifier: &str) -> AuthResult<()> {
        let under = format!("{identifier}#");
        self.state()
            .lockouts
            .retain(|key, _| key != identifier && !key.starts_with(&under));
        Ok(())
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

// Roles, account administration and the audit trail.
mod mfa;
mod operators;
mod passkeys;
mod webhooks;
