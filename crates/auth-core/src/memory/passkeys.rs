//! [`PasskeyStore`] for [`MemoryStore`].

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::error::{AuthError, AuthResult};
use crate::model::{TokenHash, UserId};
use crate::outbox::NewOutboxMessage;
use crate::passkeys::{CeremonyKind, PasskeyCeremony, PasskeyStore, StoredPasskey};

/// Passkey state of the in-memory store.
#[derive(Default)]
pub(super) struct PasskeyState {
    pub(super) passkeys: Vec<StoredPasskey>,
    ceremonies: HashMap<TokenHash, PasskeyCeremony>,
}

impl PasskeyState {
    /// Remove every passkey and registration ceremony of `user_id`.
    pub(super) fn forget_user(&mut self, user_id: UserId) {
        self.passkeys.retain(|p| p.user_id != user_id);
        self.ceremonies.retain(|_, c| c.user_id != Some(user_id));
    }
}

#[async_trait]
impl PasskeyStore for MemoryStore {
    async fn insert_ceremony(&self, ceremony: &PasskeyCeremony) -> AuthResult<()> {
        self.state()
            .passkeys
            .ceremonies
            .insert(ceremony.token_hash.clone(), ceremony.clone());
        Ok(())
    }

    async fn take_ceremony(
        &self,
        hash: &TokenHash,
        kind: CeremonyKind,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<PasskeyCeremony>> {
        let mut s = self.state();
        match s.passkeys.ceremonies.get(hash) {
            Some(c) if c.kind == kind && now < c.expires_at => {
                Ok(s.passkeys.ceremonies.remove(hash))
            }
            _ => Ok(None),
        }
    }

    async fn insert_passkey(
        &self,
        passkey: &StoredPasskey,
        notice: &NewOutboxMessage,
    ) -> AuthResult<()> {
        let mut s = self.state();
        if s.passkeys
            .passkeys
            .iter()
            .any(|p| p.credential_id == passkey.credential_id)
        {
            return Err(AuthError::PasskeyTaken);
        }
        if !s.users.contains_key(&passkey.user_id) {
            return Err(AuthError::NotFound);
        }
        s.passkeys.passkeys.push(passkey.clone());
        s.enqueue(notice);
        Ok(())
    }

    async fn passkeys_of(&self, user_id: UserId) -> AuthResult<Vec<StoredPasskey>> {
        let mut out: Vec<StoredPasskey> = self
            .state()
            .passkeys
            .passkeys
            .iter()
            .filter(|p| p.user_id == user_id)
            .cloned()
            .collect();
        out.sort_by_key(|p| p.created_at);
        Ok(out)
    }

    async fn passkey_by_credential_id(
        &self,
        credential_id: &[u8],
    ) -> AuthResult<Option<StoredPasskey>> {
        Ok(self
            .state()
            .passkeys
            .passkeys
            .iter()
            .find(|p| p.credential_id == credential_id)
            .cloned())
    }

    async fn record_passkey_use(
        &self,
        id: Uuid,
        counter: u32,
        credential: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let mut s = self.state();
        match s.passkeys.passkeys.iter_mut().find(|p| p.id == id) {
            Some(p) if counter > p.counter || (counter == 0 && p.counter == 0) => {
                p.counter = counter;
                p.credential = credential.to_owned();
                p.last_used_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_passkey(
        &self,
        user_id: UserId,
        id: Uuid,
        notice: &NewOutboxMessage,
    ) -> AuthResult<bool> {
        let mut s = self.state();
        let before = s.passkeys.passkeys.len();
        s.passkeys
            .passkeys
            .retain(|p| !(p.id == id && p.user_id == user_id));
        if s.passkeys.passkeys.len() == before {
            return Ok(false);
        }
        s.enqueue(notice);
        Ok(true)
    }

    async fn purge_ceremonies_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64> {
        let mut s = self.state();
        let before = s.passkeys.ceremonies.len();
        s.passkeys.ceremonies.retain(|_, c| c.expires_at >= cutoff);
        Ok((before - s.passkeys.ceremonies.len()) as u64)
    }
}
