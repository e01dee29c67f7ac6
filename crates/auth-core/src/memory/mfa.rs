//! [`MfaStore`] for [`MemoryStore`]: factors, recovery codes and challenges in the same
//! mutex as the rest of the state, so each call is atomic.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::audit::Recorded;
use crate::error::AuthResult;
use crate::mfa::{FactorKind, MfaChallenge, MfaFactor, MfaStore, NewMfaChallenge};
use crate::model::{NewSession, Session, SessionId, TokenHash, UserId};
use crate::outbox::NewOutboxMessage;

/// A stored recovery code.
#[derive(Debug, Clone)]
pub(super) struct RecoveryCodeRow {
    used_at: Option<DateTime<Utc>>,
}

/// MFA state of the in-memory store.
#[derive(Default)]
pub(super) struct MfaState {
    factors: Vec<MfaFactor>,
    recovery_codes: HashMap<(UserId, TokenHash), RecoveryCodeRow>,
    challenges: HashMap<TokenHash, MfaChallenge>,
}

impl MfaState {
    /// Remove every factor, recovery code and pending challenge of `user_id`.
    pub(super) fn forget_user(&mut self, user_id: UserId) {
        self.factors.retain(|f| f.user_id != user_id);
        self.recovery_codes
            .retain(|(owner, _), _| *owner != user_id);
        self.challenges.retain(|_, c| c.user_id != user_id);
    }
}

#[async_trait]
impl MfaStore for MemoryStore {
    async fn insert_pending_factor(&self, factor: &MfaFactor) -> AuthResult<()> {
        let mut s = self.state();
        s.mfa.factors.retain(|f| {
            !(f.user_id == factor.user_id && f.kind == factor.kind && f.activated_at.is_none())
        });
        s.mfa.factors.push(factor.clone());
        Ok(())
    }

    async fn factors_of(&self, user_id: UserId) -> AuthResult<Vec<MfaFactor>> {
        let mut out: Vec<MfaFactor> = self
            .state()
            .mfa
            .factors
            .iter()
            .filter(|f| f.user_id == user_id)
            .cloned()
            .collect();
        out.sort_by_key(|f| f.created_at);
        Ok(out)
    }

    async fn active_factor_by_lookup(
        &self,
        kind: FactorKind,
        lookup: &TokenHash,
    ) -> AuthResult<Option<MfaFactor>> {
        Ok(self
            .state()
            .mfa
            .factors
            .iter()
            .filter(|f| {
                f.kind == kind && f.activated_at.is_some() && f.lookup_hash.as_ref() == Some(lookup)
            })
            .max_by_key(|f| f.activated_at)
            .cloned())
    }

    async fn activate_factor(
        &self,
        user_id: UserId,
        factor_id: Uuid,
        step: i64,
        recovery_codes: &[TokenHash],
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let mut s = self.state();
        let Some(kind) = s
            .mfa
            .factors
            .iter()
            .find(|f| f.id == factor_id && f.user_id == user_id && f.activated_at.is_none())
            .map(|f| f.kind)
        else {
            return Ok(false);
        };
        if s.mfa
            .factors
            .iter()
            .any(|f| f.user_id == user_id && f.kind == kind && f.activated_at.is_some())
        {
            return Ok(false);
        }
        for f in s.mfa.factors.iter_mut().filter(|f| f.id == factor_id) {
            f.activated_at = Some(now);
            f.last_used_step = Some(step);
            f.last_used_at = Some(now);
        }
        s.mfa.recovery_codes.retain(|(u, _), _| *u != user_id);
        for code in recovery_codes {
            s.mfa
                .recovery_codes
                .insert((user_id, code.clone()), RecoveryCodeRow { used_at: None });
        }
        s.enqueue(notice);
        Ok(true)
    }

    async fn use_totp_step(
        &self,
        factor_id: Uuid,
        step: i64,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let mut s = self.state();
        match s
            .mfa
            .factors
            .iter_mut()
            .find(|f| f.id == factor_id && f.activated_at.is_some())
        {
            Some(f) if f.last_used_step.is_none_or(|last| last < step) => {
                f.last_used_step = Some(step);
                f.last_used_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove_factor(
        &self,
        user_id: UserId,
        factor_id: Uuid,
        notice: Option<&NewOutboxMessage>,
        _now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let mut s = self.state();
        let before = s.mfa.factors.len();
        s.mfa
            .factors
            .retain(|f| !(f.id == factor_id && f.user_id == user_id));
        if s.mfa.factors.len() == before {
            return Ok(false);
        }
        if !s
            .mfa
            .factors
            .iter()
            .any(|f| f.user_id == user_id && f.activated_at.is_some())
        {
            s.mfa.recovery_codes.retain(|(u, _), _| *u != user_id);
        }
        if let Some(notice) = notice {
            s.enqueue(notice);
        }
        Ok(true)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        codes: &[TokenHash],
        _now: DateTime<Utc>,
    ) -> AuthResult<()> {
        let mut s = self.state();
        s.mfa.recovery_codes.retain(|(u, _), _| *u != user_id);
        for code in codes {
            s.mfa
                .recovery_codes
                .insert((user_id, code.clone()), RecoveryCodeRow { used_at: None });
        }
        Ok(())
    }

    async fn consume_recovery_code(
        &self,
        user_id: UserId,
        code: &TokenHash,
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let mut s = self.state();
        match s.mfa.recovery_codes.get_mut(&(user_id, code.clone())) {
            Some(row) if row.used_at.is_none() => {
                row.used_at = Some(now);
                s.enqueue(notice);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remaining_recovery_codes(&self, user_id: UserId) -> AuthResult<u64> {
        Ok(self
            .state()
            .mfa
            .recovery_codes
            .iter()
            .filter(|((u, _), row)| *u == user_id && row.used_at.is_none())
            .count() as u64)
    }

    async fn insert_challenge(&self, c: &NewMfaChallenge, records: &[Recorded]) -> AuthResult<()> {
        let mut s = self.state();
        // A disabled account gets no challenge (so no `mfa_token`).
        s.require_enabled(c.user_id)?;
        s.mfa.challenges.insert(
            c.token_hash.clone(),
            MfaChallenge {
                token_hash: c.token_hash.clone(),
                user_id: c.user_id,
                amr: c.amr.clone(),
                created_at: c.created_at,
                expires_at: c.expires_at,
                used_at: None,
                failed_attempts: 0,
            },
        );
        s.write_records(records);
        Ok(())
    }

    async fn challenge(&self, hash: &TokenHash) -> AuthResult<Option<MfaChallenge>> {
        Ok(self.state().mfa.challenges.get(hash).cloned())
    }

    async fn record_challenge_failure(
        &self,
        hash: &TokenHash,
        max: i32,
        now: DateTime<Utc>,
    ) -> AuthResult<i32> {
        let mut s = self.state();
        match s.mfa.challenges.get_mut(hash) {
            Some(c) if c.used_at.is_none() => {
                c.failed_attempts += 1;
                if c.failed_attempts >= max {
                    c.used_at = Some(now);
                }
                Ok(c.failed_attempts)
            }
            Some(c) => Ok(c.failed_attempts),
            None => Ok(0),
        }
    }

    async fn complete_challenge(
        &self,
        hash: &TokenHash,
        max: i32,
        session: &NewSession,
        first_refresh: &TokenHash,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<Option<Session>> {
        let mut s = self.state();
        let open = s.mfa.challenges.get(hash).is_some_and(|c| {
            c.user_id == session.user_id
                && c.used_at.is_none()
                && now < c.expires_at
                && c.failed_attempts < max
        });
        if !open {
            return Ok(None);
        }
        let opened = s.open_session(session, first_refresh, records)?;
        if let Some(c) = s.mfa.challenges.get_mut(hash) {
            c.used_at = Some(now);
        }
        Ok(Some(opened))
    }

    async fn step_up_session(
        &self,
        session_id: SessionId,
        method: &str,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<Option<Session>> {
        let mut s = self.state();
        let raised = match s.sessions.get_mut(&session_id) {
            Some(x) if x.revoked_at.is_none() && now < x.expires_at => {
                x.aal = "aal2".into();
                if !x.amr.iter().any(|m| m == method) {
                    x.amr.push(method.to_owned());
                }
                x.clone()
            }
            _ => return Ok(None),
        };
        s.write_records(records);
        Ok(Some(raised))
    }

    async fn purge_challenges_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let mut s = self.state();
        let before = s.mfa.challenges.len();
        s.mfa.challenges.retain(|_, c| c.expires_at >= cutoff);
        Ok((before - s.mfa.challenges.len()) as u64)
    }
}
