//! [`IdentityStore`] in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::error::{AuthError, AuthResult};
use crate::identity::{
    Identity, IdentityId, IdentityStore, OAuthRecord, OAuthRecordKind, UnlinkOutcome,
};
use crate::model::{NewUser, TokenHash, User, UserCredentials, UserId};

#[async_trait]
impl IdentityStore for MemoryStore {
    async fn identity_by_subject(
        &self,
        provider: &str,
        subject: &str,
    ) -> AuthResult<Option<Identity>> {
        Ok(self
            .state()
            .identities
            .iter()
            .find(|i| i.provider == provider && i.subject == subject)
            .cloned())
    }

    async fn identities_of(&self, user_id: UserId) -> AuthResult<Vec<Identity>> {
        let mut list: Vec<Identity> = self
            .state()
            .identities
            .iter()
            .filter(|i| i.user_id == user_id)
            .cloned()
            .collect();
        list.sort_by_key(|i| (i.created_at, i.id.0));
        Ok(list)
    }

    async fn insert_user_with_identity(
        &self,
        new: &NewUser,
        identity: &Identity,
    ) -> AuthResult<User> {
        let mut s = self.state();
        let key = new.email.canonical();
        if s.by_email.contains_key(&key) {
            return Err(AuthError::EmailTaken);
        }
        if s.identities
            .iter()
            .any(|i| i.provider == identity.provider && i.subject == identity.subject)
        {
            return Err(AuthError::IdentityExists);
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
        s.identities.push(Identity {
            user_id: new.id,
            ..identity.clone()
        });
        Ok(user)
    }

    async fn link_identity(&self, identity: &Identity) -> AuthResult<Identity> {
        let mut s = self.state();
        if !s.users.contains_key(&identity.user_id) {
            return Err(AuthError::NotFound);
        }
        if s.identities
            .iter()
            .any(|i| i.provider == identity.provider && i.subject == identity.subject)
        {
            return Err(AuthError::IdentityExists);
        }
        s.identities.push(identity.clone());
        Ok(identity.clone())
    }

    async fn unlink_identity(
        &self,
        user_id: UserId,
        id: IdentityId,
        _now: DateTime<Utc>,
    ) -> AuthResult<UnlinkOutcome> {
        let mut s = self.state();
        let Some(pos) = s
            .identities
            .iter()
            .position(|i| i.id == id && i.user_id == user_id)
        else {
            return Ok(UnlinkOutcome::NotFound);
        };
        let has_password = s
            .users
            .get(&user_id)
            .is_some_and(|c| c.password_hash.is_some());
        let others = s
            .identities
            .iter()
            .filter(|i| i.user_id == user_id && i.id != id)
            .count();
        // A passkey signs in without a password too.
        let passkeys = s
            .passkeys
            .passkeys
            .iter()
            .filter(|p| p.user_id == user_id)
            .count();
        if !has_password && others == 0 && passkeys == 0 {
            return Ok(UnlinkOutcome::LastSignInMethod);
        }
        s.identities.remove(pos);
        Ok(UnlinkOutcome::Removed)
    }

    async fn put_oauth_record(&self, record: &OAuthRecord) -> AuthResult<()> {
        self.state()
            .oauth_records
            .insert(record.token_hash.clone(), record.clone());
        Ok(())
    }

    async fn take_oauth_record(
        &self,
        hash: &TokenHash,
        kind: OAuthRecordKind,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<OAuthRecord>> {
        let mut s = self.state();
        let usable = s
            .oauth_records
            .get(hash)
            .is_some_and(|r| r.kind == kind && now < r.expires_at);
        if !usable {
            return Ok(None);
        }
        Ok(s.oauth_records.remove(hash))
    }

    async fn purge_expired_oauth_records(&self, now: DateTime<Utc>) -> AuthResult<u64> {
        let mut s = self.state();
        let before = s.oauth_records.len();
        s.oauth_records.retain(|_, r| r.expires_at > now);
        Ok((before - s.oauth_records.len()) as u64)
    }
}
