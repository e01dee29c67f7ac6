//! Second factors as stored: factor records, MFA challenges, what a user presents, and the
//! `MfaStore` port.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::Recorded;
use crate::error::AuthResult;
use crate::model::{NewSession, Session, SessionId, TokenHash, UserId};
use crate::outbox::NewOutboxMessage;

// ---- records --------------------------------------------------------------------------------

/// The kinds of second factor a user can enrol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// An authenticator app (RFC 6238).
    Totp,
    /// Codes sent by SMS to a verified phone number.
    Sms,
}

impl FactorKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Sms => "sms",
        }
    }

    /// How the factor is named in the mails to its owner.
    pub fn label(self) -> &'static str {
        match self {
            Self::Totp => "An authenticator app",
            Self::Sms => "Text messages to your phone",
        }
    }

    /// Inverse of [`FactorKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Totp, Self::Sms]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A second factor as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaFactor {
    /// Identifier.
    pub id: Uuid,
    /// Whose factor.
    pub user_id: UserId,
    /// What it is.
    pub kind: FactorKind,
    /// A name the user gave it.
    pub label: Option<String>,
    /// The secret, sealed with the configured encryption keys.
    pub sealed_secret: Vec<u8>,
    /// When enrolment started.
    pub created_at: DateTime<Utc>,
    /// When the first valid code activated it; `None` while pending.
    pub activated_at: Option<DateTime<Utc>>,
    /// The last TOTP time step accepted.
    pub last_used_step: Option<i64>,
    /// When a code of it was last accepted.
    pub last_used_at: Option<DateTime<Utc>>,
    /// SHA-256 of the phone number of an SMS factor, to find it by number.
    pub lookup_hash: Option<TokenHash>,
}

impl fmt::Debug for MfaFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaFactor")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("activated_at", &self.activated_at)
            .finish_non_exhaustive()
    }
}

/// A challenge about to be stored: the first factor passed, a second is awaited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMfaChallenge {
    /// SHA-256 of the `mfa_token`.
    pub token_hash: TokenHash,
    /// Who signed in.
    pub user_id: UserId,
    /// The first factor's methods (`pwd`, `email` ...).
    pub amr: Vec<String>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
}

/// A stored challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// SHA-256 of the `mfa_token`.
    pub token_hash: TokenHash,
    /// Who signed in.
    pub user_id: UserId,
    /// The first factor's methods.
    pub amr: Vec<String>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// Set when completed or killed by too many wrong codes.
    pub used_at: Option<DateTime<Utc>>,
    /// Wrong codes so far.
    pub failed_attempts: i32,
}

/// Port: storage of factors, recovery codes and challenges, and the session step-up. Each
/// method is one transaction.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// Store a pending factor, deleting the user's earlier pending factors of the same kind.
    async fn insert_pending_factor(&self, factor: &MfaFactor) -> AuthResult<()>;
    /// Every factor of the user, pending ones included, oldest first.
    async fn factors_of(&self, user_id: UserId) -> AuthResult<Vec<MfaFactor>>;
    /// The most recently activated active factor of `kind` with this lookup hash (an SMS
    /// factor by phone number).
    async fn active_factor_by_lookup(
        &self,
        kind: FactorKind,
        lookup: &TokenHash,
    ) -> AuthResult<Option<MfaFactor>>;
    /// Activate a pending factor of the user: set `activated_at` and `last_used_step`,
    /// replace the user's recovery codes with `recovery_codes` and write `notice` to the
    /// outbox. `false`, and no change, when it is not a pending factor of the user or the
    /// user already has an active factor of that kind.
    async fn activate_factor(
        &self,
        user_id: UserId,
        factor_id: Uuid,
        step: i64,
        recovery_codes: &[TokenHash],
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> AuthResult<bool>;
    /// Record that `step` was accepted for an active factor, only if it is later than the
    /// last step accepted (one conditional update). `false` (a replay) changes nothing.
    async fn use_totp_step(
        &self,
        factor_id: Uuid,
        step: i64,
        now: DateTime<Utc>,
    ) -> AuthResult<bool>;
    /// Delete a factor of the user and write `notice`; when no active factor remains the
    /// recovery codes are deleted too. `false` when the user has no such factor.
    async fn remove_factor(
        &self,
        user_id: UserId,
        factor_id: Uuid,
        notice: Option<&NewOutboxMessage>,
        now: DateTime<Utc>,
    ) -> AuthResult<bool>;
    /// Replace every recovery code of the user.
    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        codes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> AuthResult<()>;
    /// Mark an unused recovery code of the user used and write `notice`; `false` when
    /// there is none (two concurrent calls never both succeed).
    async fn consume_recovery_code(
        &self,
        user_id: UserId,
        code: &TokenHash,
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> AuthResult<bool>;
    /// How many unused recovery codes the user has.
    async fn remaining_recovery_codes(&self, user_id: UserId) -> AuthResult<u64>;
    /// Store a challenge and write `records` with it. Fails with
    /// [`crate::AuthError::AccountDisabled`] (and writes nothing) when the user is
    /// disabled: a disabled account gets no `mfa_token`.
    async fn insert_challenge(
        &self,
        challenge: &NewMfaChallenge,
        records: &[Recorded],
    ) -> AuthResult<()>;
    /// A challenge by hash, used or not.
    async fn challenge(&self, hash: &TokenHash) -> AuthResult<Option<MfaChallenge>>;
    /// Count a wrong code against an unused challenge; at `max` it is retired (`used_at`
    /// set). Returns the new count.
    async fn record_challenge_failure(
        &self,
        hash: &TokenHash,
        max: i32,
        now: DateTime<Utc>,
    ) -> AuthResult<i32>;
    /// Atomically: if the challenge is unused, unexpired at `now` and has fewer than `max`
    /// failures, mark it used, open `session` with `first_refresh` and write `records`.
    /// `None` (and nothing written) otherwise.
    /// Like [`crate::ports::SessionStore::create_session`], fails with
    /// [`crate::AuthError::AccountDisabled`] (and writes nothing) for a disabled user.
    async fn complete_challenge(
        &self,
        hash: &TokenHash,
        max: i32,
        session: &NewSession,
        first_refresh: &TokenHash,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<Option<Session>>;
    /// Raise a live (unrevoked, unexpired) session to `aal2`, appending `method` to its
    /// `amr` unless present, and write `records`. `None` (and nothing written) when the
    /// session is not live.
    async fn step_up_session(
        &self,
        session_id: SessionId,
        method: &str,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<Option<Session>>;
    /// Delete challenges that expired before `cutoff`.
    async fn purge_challenges_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64>;
}

/// What a user presents as a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactor {
    /// A code of the authenticator app.
    Totp,
    /// One of the recovery codes.
    RecoveryCode,
    /// A code sent by SMS.
    Sms,
}

impl SecondFactor {
    /// Name in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery_code",
            Self::Sms => "sms",
        }
    }

    /// Inverse of [`SecondFactor::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Totp, Self::RecoveryCode, Self::Sms]
            .into_iter()
            .find(|f| f.as_str() == s)
    }

    /// The `amr` value (RFC 8176 `otp` for TOTP).
    pub(crate) fn amr(self) -> &'static str {
        match self {
            Self::Totp => "otp",
            Self::RecoveryCode => "recovery_code",
            Self::Sms => "sms",
        }
    }
}
