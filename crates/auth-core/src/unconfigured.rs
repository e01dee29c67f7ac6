//! The adapter of ports an embedding does not use. [`crate::AuthCore::builder`] puts it
//! behind every store that password sign-in does not need and that was not given: reads
//! find nothing (no second factor, no webhook endpoint), writes are refused with
//! [`AuthError::Unavailable`] naming what is missing, and audit rows are not kept (the
//! events still reach the event sink). Nothing is ever stored where it would be lost.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::*;
use crate::error::{AuthError, AuthResult};
use crate::factors::*;
use crate::model::*;
use crate::operators::*;
use crate::outbox::*;
use crate::passkeys::*;
use crate::ports::*;

/// Stands in for the stores an embedding leaves out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unconfigured;

fn not_configured(what: &str) -> AuthError {
    AuthError::Unavailable(format!("{what}: no store is configured for it"))
}

#[async_trait]
impl MfaStore for Unconfigured {
    async fn insert_pending_factor(&self, _factor: &MfaFactor) -> AuthResult<()> {
        Err(not_configured("second factors"))
    }
    async fn factors_of(&self, _user_id: UserId) -> AuthResult<Vec<MfaFactor>> {
        Ok(Vec::new())
    }
    async fn active_factor_by_lookup(
        &self,
        _kind: FactorKind,
        _lookup: &TokenHash,
    ) -> AuthResult<Option<MfaFactor>> {
        Err(not_configured("second factors"))
    }
    async fn activate_factor(
        &self,
        _user_id: UserId,
        _factor_id: Uuid,
        _step: i64,
        _recovery_codes: &[TokenHash],
        _notice: &NewOutboxMessage,
        _now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        Err(not_configured("second factors"))
    }
    async fn use_totp_step(
        &self,
        _factor_id: Uuid,
        _step: i64,
        _now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        Err(not_configured("second factors"))
    }
    async fn remove_factor(
        &self,
        _user_id: UserId,
        _factor_id: Uuid,
        _notice: Option<&NewOutboxMessage>,
        _now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        Err(not_configured("second factors"))
    }
    async fn replace_recovery_codes(
        &self,
        _user_id: UserId,
        _codes: &[TokenHash],
        _now: DateTime<Utc>,
    ) -> AuthResult<()> {
        Err(not_configured("second factors"))
    }
    async fn consume_recovery_code(
        &self,
        _user_id: UserId,
        _code: &TokenHash,
        _notice: &NewOutboxMessage,
        _now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        Err(not_configured("second factors"))
    }
    async fn remaining_recovery_codes(&self, _user_id: UserId) -> AuthResult<u64> {
        Ok(0)
    }
    async fn insert_challenge(
        &self,
        _challenge: &NewMfaChallenge,
        _records: &[Recorded],
    ) -> AuthResult<()> {
        Err(not_configured("second factors"))
    }
    async fn challenge(&self, _hash: &TokenHash) -> AuthResult<Option<MfaChallenge>> {
        Err(not_configured("second factors"))
    }
    async fn record_challenge_failure(
        &self,
        _hash: &TokenHash,
        _max: i32,
        _now: DateTime<Utc>,
    ) -> AuthResult<i32> {
        Err(not_configured("second factors"))
    }
    async fn complete_challenge(
        &self,
        _hash: &TokenHash,
        _max: i32,
        _session: &NewSession,
        _first_refresh: &TokenHash,
        _now: DateTime<Utc>,
        _records: &[Recorded],
    ) -> AuthResult<Option<Session>> {
        Err(not_configured("second factors"))
    }
    async fn step_up_session(
        &self,
        _session_id: SessionId,
        _method: &str,
        _now: DateTime<Utc>,
        _records: &[Recorded],
    ) -> AuthResult<Option<Session>> {
        Err(not_configured("second factors"))
    }
    async fn purge_challenges_before(&self, _cutoff: DateTime<Utc>) -> AuthResult<u64> {
        Ok(0)
    }
}

#[async_trait]
impl PasskeyStore for Unconfigured {
    async fn insert_ceremony(&self, _ceremony: &PasskeyCeremony) -> AuthResult<()> {
        Err(not_configured("passkeys"))
    }
    async fn take_ceremony(
        &self,
        _hash: &TokenHash,
        _kind: CeremonyKind,
        _now: DateTime<Utc>,
    ) -> AuthResult<Option<PasskeyCeremony>> {
        Err(not_configured("passkeys"))
    }
    async fn insert_passkey(
        &self,
        _passkey: &StoredPasskey,
        _notice: &NewOutboxMessage,
    ) -> AuthResult<()> {
        Err(not_configured("passkeys"))
    }
    async fn passkeys_of(&self, _user_id: UserId) -> AuthResult<Vec<StoredPasskey>> {
        Ok(Vec::new())
    }
    async fn passkey_by_credential_id(
        &self,
        _credential_id: &[u8],
    ) -> AuthResult<Option<StoredPasskey>> {
        Err(not_configured("passkeys"))
    }
    async fn record_passkey_use(
        &self,
        _id: Uuid,
        _counter: u32,
        _credential: &str,
        _now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        Err(not_configured("passkeys"))
    }
    async fn delete_passkey(
        &self,
        _user_id: UserId,
        _id: Uuid,
        _notice: &NewOutboxMessage,
    ) -> AuthResult<bool> {
        Err(not_configured("passkeys"))
    }
    async fn purge_ceremonies_before(&self, _cutoff: DateTime<Utc>) -> AuthResult<u64> {
        Ok(0)
    }
}

#[async_trait]
impl OperatorStore for Unconfigured {
    async fn roles(&self) -> AuthResult<Vec<Role>> {
        Err(not_configured("account administration"))
    }
    async fn insert_role(&self, _role: &Role, _record: &Recorded) -> AuthResult<()> {
        Err(not_configured("account administration"))
    }
    async fn update_role(&self, _role: &Role, _record: &Recorded) -> AuthResult<bool> {
        Err(not_configured("account administration"))
    }
    async fn delete_role(&self, _name: &str, _record: &Recorded) -> AuthResult<RoleDeletion> {
        Err(not_configured("account administration"))
    }
    async fn managed_user(&self, _id: UserId) -> AuthResult<Option<ManagedUser>> {
        Err(not_configured("account administration"))
    }
    async fn list_users(&self, _query: &UserQuery) -> AuthResult<Vec<ManagedUser>> {
        Err(not_configured("account administration"))
    }
    async fn insert_managed_user(&self, _user: &NewUser, _record: &Recorded) -> AuthResult<User> {
        Err(not_configured("account administration"))
    }
    async fn update_user(
        &self,
        _id: UserId,
        _update: &AccountUpdate,
        _now: DateTime<Utc>,
        _records: &[Recorded],
    ) -> AuthResult<Option<ManagedUser>> {
        Err(not_configured("account administration"))
    }
    async fn change_user_role(
        &self,
        _id: UserId,
        _role: &str,
        _assign: bool,
        _now: DateTime<Utc>,
        _record: &Recorded,
    ) -> AuthResult<RoleChange> {
        Err(not_configured("account administration"))
    }
    async fn set_disabled(
        &self,
        _id: UserId,
        _disabled_at: Option<DateTime<Utc>>,
        _now: DateTime<Utc>,
        _record: &Recorded,
    ) -> AuthResult<Option<u64>> {
        Err(not_configured("account administration"))
    }
    async fn delete_user(&self, _id: UserId, _record: &Recorded) -> AuthResult<bool> {
        Err(not_configured("account administration"))
    }
    async fn revoke_user_sessions(
        &self,
        _user_id: UserId,
        _only: Option<SessionId>,
        _now: DateTime<Utc>,
        _record: &Recorded,
    ) -> AuthResult<u64> {
        Err(not_configured("account administration"))
    }
}

#[async_trait]
impl AuditStore for Unconfigured {
    async fn append(&self, _record: &Recorded) -> AuthResult<()> {
        Ok(())
    }
    async fn query(&self, _query: &AuditQuery) -> AuthResult<Vec<AuditRecord>> {
        Err(not_configured("the audit trail"))
    }
    async fn prune_before(&self, _cutoff: DateTime<Utc>) -> AuthResult<u64> {
        Ok(0)
    }
}

#[async_trait]
impl WebhookStore for Unconfigured {
    async fn insert_endpoint(
        &self,
        _endpoint: &WebhookEndpoint,
        _record: &Recorded,
    ) -> AuthResult<()> {
        Err(not_configured("webhooks"))
    }
    async fn update_endpoint(
        &self,
        _endpoint: &WebhookEndpoint,
        _record: &Recorded,
    ) -> AuthResult<bool> {
        Err(not_configured("webhooks"))
    }
    async fn delete_endpoint(&self, _id: Uuid, _record: &Recorded) -> AuthResult<bool> {
        Err(not_configured("webhooks"))
    }
    async fn endpoint(&self, _id: Uuid) -> AuthResult<Option<WebhookEndpoint>> {
        Err(not_configured("webhooks"))
    }
    async fn endpoints(&self) -> AuthResult<Vec<WebhookEndpoint>> {
        Ok(Vec::new())
    }
    async fn record_attempt(
        &self,
        _attempt: &DeliveryAttempt,
    ) -> AuthResult<Option<DateTime<Utc>>> {
        Err(not_configured("webhooks"))
    }
    async fn disable_endpoint(
        &self,
        _id: Uuid,
        _reason: &str,
        _now: DateTime<Utc>,
        _record: &Recorded,
    ) -> AuthResult<bool> {
        Err(not_configured("webhooks"))
    }
    async fn attempts(
        &self,
        _endpoint_id: Uuid,
        _limit: usize,
    ) -> AuthResult<Vec<DeliveryAttempt>> {
        Err(not_configured("webhooks"))
    }
}

#[async_trait]
impl crate::webhooks::WebhookSender for Unconfigured {
    async fn post(
        &self,
        url: &str,
        _: &[(String, String)],
        _: &[u8],
    ) -> Result<u16, crate::error::AdapterError> {
        Err(format!("no webhook sender is configured (delivery to {url})").into())
    }
}
