//! The use cases of password sessions: sign-up, sign-in, refresh, sign-out, token
//! revocation and introspection, the signed-in user's profile and sessions.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::email::Email;
use crate::error::{AuthError, AuthResult};
use crate::events::{EventKind, SecurityEvent};
use crate::jwt::AccessClaims;
use crate::model::{ClientInfo, ProfileUpdate, RotateOutcome, Session, SessionId, User, UserId};
use crate::opaque;
use crate::password::PasswordMatch;
use crate::sign_in::SignInOutcome;

pub use crate::flows::SignupRequest;
pub use crate::sign_in::{Authenticated, IssuedTokens, SessionPolicy};

/// A client allowed to call token introspection (RFC 7662).
#[derive(Clone)]
pub struct IntrospectionClient {
    /// Client id.
    pub id: String,
    /// Client secret.
    pub secret: SecretString,
}

impl fmt::Debug for IntrospectionClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionClient")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Which sessions a sign-out ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogoutScope {
    /// The caller's session.
    #[default]
    Session,
    /// Every session of the user but the caller's.
    Others,
    /// Every session of the user.
    All,
}

/// A session as listed to its owner.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The session.
    pub session: Session,
    /// Whether it is the session of the request.
    pub current: bool,
}

/// The answer of token introspection (RFC 7662).
#[derive(Debug, Clone)]
pub enum Introspection {
    /// Unknown, expired, revoked or malformed.
    Inactive,
    /// A live access token.
    AccessToken(Box<AccessClaims>),
    /// A live refresh token.
    RefreshToken {
        /// The user id.
        sub: UserId,
        /// The session id.
        sid: SessionId,
        /// When the session ends at the latest.
        exp: DateTime<Utc>,
        /// When the token was issued.
        iat: DateTime<Utc>,
    },
}

// No password can be this long under any allowed policy (1024 characters of up to 4 bytes):
// refuse before hashing so nobody makes us hash megabytes.
const MAX_PASSWORD_BYTES: usize = 4096;

/// The password-session use cases: sign-in, refresh, sign-out, token revocation and
/// introspection, the signed-in user's profile and sessions (sign-up is in
/// [`crate::flows`]).
#[derive(Clone)]
pub struct PasswordSessions {
    pub(crate) clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub(crate) hasher: std::sync::Arc<dyn crate::password::PasswordHasher>,
    pub(crate) lockouts: std::sync::Arc<dyn crate::guard::LockoutStore>,
    pub(crate) operators: std::sync::Arc<dyn crate::operators::OperatorStore>,
    pub(crate) rng: std::sync::Arc<dyn crate::random::RandomSource>,
    pub(crate) sessions: std::sync::Arc<dyn crate::ports::SessionStore>,
    pub(crate) tokens: std::sync::Arc<dyn crate::jwt::TokenIssuer>,
    pub(crate) users: std::sync::Arc<dyn crate::ports::UserStore>,
    pub(crate) guard: crate::guard::Guard,
    pub(crate) recorder: crate::record::Recorder,
    pub(crate) sign_in: crate::sign_in::SignIn,
    pub(crate) email: crate::flows::EmailSettings,
    pub(crate) guard_settings: crate::guard::GuardSettings,
    pub(crate) introspection_clients: Vec<crate::service::IntrospectionClient>,
    pub(crate) policy: crate::sign_in::SessionPolicy,
}

impl std::fmt::Debug for PasswordSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordSessions").finish_non_exhaustive()
    }
}

impl PasswordSessions {
    /// Sign in with email and password. A user with an active second factor gets
    /// [`SignInOutcome::MfaRequired`] instead of tokens.
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
        client: ClientInfo,
        captcha_token: Option<&str>,
    ) -> AuthResult<SignInOutcome> {
        let identifier = crate::guard::lockout_identifier(email);
        self.guard
            .limit(crate::guard::LimitGroup::Login, &client, Some(&identifier))
            .await?;
        self.guard
            .captcha(self.guard_settings.captcha.login, captcha_token, &client)
            .await?;
        // While locked, no password is checked: the lock is no oracle.
        if let Err(locked) = self.guard.refuse_if_locked(&identifier, &client).await {
            let detail = Some("locked".to_owned());
            self.recorder
                .emit(EventKind::LoginFailed, None, None, Some(&client), detail)
                .await?;
            return Err(locked);
        }
        if password.expose_secret().len() > MAX_PASSWORD_BYTES {
            self.guard.count_failure(&identifier, &client, None).await?;
            return Err(AuthError::InvalidCredentials);
        }
        let found = match Email::parse(email) {
            Ok(email) => self.users.credentials_by_email(&email.canonical()).await?,
            Err(_) => None,
        };
        // Unknown account or no password: burn the same hashing time, then refuse.
        let Some((creds, stored)) = found.and_then(|c| c.password_hash.clone().map(|h| (c, h)))
        else {
            self.hasher.verify_dummy(password).await?;
            self.recorder
                .emit(
                    EventKind::LoginFailed,
                    None,
                    None,
                    Some(&client),
                    Some("unknown_account".into()),
                )
                .await?;
            self.guard.count_failure(&identifier, &client, None).await?;
            return Err(AuthError::InvalidCredentials);
        };
        let PasswordMatch::Match { needs_rehash } = self.hasher.verify(password, &stored).await?
        else {
            let id = Some(creds.user.id);
            self.recorder
                .emit(
                    EventKind::LoginFailed,
                    id,
                    None,
                    Some(&client),
                    Some("wrong_password".into()),
                )
                .await?;
            self.guard
                .count_failure(&identifier, &client, Some(&creds.user))
                .await?;
            return Err(AuthError::InvalidCredentials);
        };
        let confirmation = self.email.confirmation;
        if confirmation == crate::flows::EmailConfirmation::Required && !creds.user.email_verified {
            let id = Some(creds.user.id);
            self.recorder
                .emit(
                    EventKind::LoginFailed,
                    id,
                    None,
                    Some(&client),
                    Some("email_not_verified".into()),
                )
                .await?;
            return Err(AuthError::EmailNotVerified);
        }
        let now = self.clock.now();
        if needs_rehash {
            // Upgrading the hash is best effort: the sign-in itself already succeeded.
            match self.hasher.hash(password).await {
                Ok(fresh) => {
                    if let Err(e) = self
                        .users
                        .set_password_hash(creds.user.id, &fresh, now)
                        .await
                    {
                        tracing::warn!(user_id = %creds.user.id, error = %e, "could not store re-hashed password");
                    }
                }
                Err(e) => {
                    tracing::warn!(user_id = %creds.user.id, error = %e, "could not re-hash password")
                }
            }
        }
        self.guard.clear_failures(&identifier, &client).await?;
        let outcome = self
            .sign_in
            .finish_first_factor(
                creds.user,
                client.clone(),
                "pwd",
                (EventKind::LoginSucceeded, None),
                now,
            )
            .await?;
        Ok(outcome)
    }

    /// Exchange a refresh token for a new access token and its rotated successor.
    ///
    /// A token rotated less than the grace window ago gets the session's current token
    /// back (concurrent tabs converge); an older one is reuse: the whole session is revoked.
    pub async fn refresh(
        &self,
        presented: &SecretString,
        client: &ClientInfo,
    ) -> AuthResult<IssuedTokens> {
        self.guard
            .limit(crate::guard::LimitGroup::Refresh, client, None)
            .await?;
        let token = presented.expose_secret();
        if !opaque::is_well_formed(token) {
            return Err(AuthError::InvalidRefreshToken);
        }
        let hash = opaque::hash(token);
        let sessions = &self.sessions;
        let record = sessions
            .refresh_token(&hash)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let now = self.clock.now();
        let session = self.live_session(record.session_id, now).await?;

        if record.rotated_at.is_none() {
            let successor = opaque::generate(self.rng.as_ref());
            let sealed = opaque::seal_successor(presented, &successor)
                .ok_or_else(|| AuthError::internal("cannot seal successor"))?;
            let successor_hash = opaque::hash(successor.expose_secret());
            if sessions
                .rotate_refresh_token(&hash, &successor_hash, &sealed, now)
                .await?
                == RotateOutcome::Rotated
            {
                let user = self.session_user(&session).await?;
                return self.sign_in.issue(user, &session, successor, now);
            }
        }

        // Already rotated, by an earlier request or by a concurrent one just now.
        let record = sessions
            .refresh_token(&hash)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let rotated_at = record.rotated_at.ok_or(AuthError::InvalidRefreshToken)?;
        if now - rotated_at > self.policy.reuse_grace {
            let (user, sid) = (Some(session.user_id), Some(session.id));
            let event =
                self.recorder
                    .event(EventKind::RefreshTokenReuseDetected, user, sid, None, None);
            if self.revoke_session(session.id, event, now).await? {
                tracing::warn!(user_id = %session.user_id, session_id = %session.id, "refresh token reused after rotation: session revoked");
            }
            return Err(AuthError::InvalidRefreshToken);
        }
        let current = self
            .current_refresh_token(token.to_owned(), record.sealed_successor)
            .await?;
        let session = self.live_session(session.id, now).await?;
        let user = self.session_user(&session).await?;
        self.sign_in.issue(user, &session, current, now)
    }

    /// Follow sealed successors from a rotated token to the session's current token.
    async fn current_refresh_token(
        &self,
        mut token: String,
        mut sealed: Option<String>,
    ) -> AuthResult<SecretString> {
        // The chain only grows by one per rotation; a long walk means something is wrong.
        for _ in 0..64 {
            let next = sealed
                .as_deref()
                .and_then(|s| opaque::unseal_successor(&token, s))
                .ok_or(AuthError::InvalidRefreshToken)?;
            let record = self
                .sessions
                .refresh_token(&opaque::hash(next.expose_secret()))
                .await?
                .ok_or(AuthError::InvalidRefreshToken)?;
            if record.rotated_at.is_none() {
                return Ok(next);
            }
            token = next.expose_secret().to_owned();
            sealed = record.sealed_successor;
        }
        Err(AuthError::InvalidRefreshToken)
    }

    async fn live_session(&self, id: SessionId, now: DateTime<Utc>) -> AuthResult<Session> {
        self.sessions
            .session(id)
            .await?
            .filter(|s| s.is_active(now, self.policy.idle_ttl))
            .ok_or(AuthError::InvalidRefreshToken)
    }

    /// Verify an access token and check that its session is still live, so a revoked
    /// session is refused at once rather than when the token expires.
    pub async fn authenticate(&self, access_token: &str) -> AuthResult<Authenticated> {
        self.sign_in.authenticate(access_token).await
    }

    async fn session_user(&self, session: &Session) -> AuthResult<User> {
        self.users
            .user_by_id(session.user_id)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)
    }

    /// End the caller's session, the others, or all of them.
    pub async fn logout(&self, caller: &Authenticated, scope: LogoutScope) -> AuthResult<()> {
        let now = self.clock.now();
        let sessions = &self.sessions;
        // The count is known only inside the transaction; the row says what was asked.
        let detail = format!("scope={scope:?}").to_lowercase();
        let (user, sid) = (Some(caller.user_id), Some(caller.session_id));
        let event = self
            .recorder
            .event(EventKind::LoggedOut, user, sid, None, Some(detail));
        let records = [self.recorder.recorded(event).await?];
        let written = match scope {
            LogoutScope::Session => {
                sessions
                    .revoke_session(caller.session_id, now, &records)
                    .await?
            }
            LogoutScope::Others => {
                sessions
                    .revoke_sessions_of(caller.user_id, Some(caller.session_id), now, &records)
                    .await?;
                true
            }
            LogoutScope::All => {
                sessions
                    .revoke_sessions_of(caller.user_id, None, now, &records)
                    .await?;
                true
            }
        };
        if written {
            self.recorder.committed(records).await;
        }
        Ok(())
    }

    /// RFC 7009 revocation: ends the session of a refresh or access token. Unknown and
    /// invalid tokens are not an error (the client cannot act on the difference).
    pub async fn revoke(&self, token: &SecretString) -> AuthResult<()> {
        let token = token.expose_secret();
        let now = self.clock.now();
        let session_id = if opaque::is_well_formed(token) {
            self.sessions
                .refresh_token(&opaque::hash(token))
                .await?
                .map(|r| r.session_id)
        } else {
            match self.tokens.verify(token, now) {
                Ok(claims) => claims.sid.parse().ok(),
                Err(_) => None,
            }
        };
        if let Some(id) = session_id {
            let detail = Some("token_revocation".to_owned());
            let event =
                self.recorder
                    .event(EventKind::SessionRevoked, None, Some(id), None, detail);
            self.revoke_session(id, event, now).await?;
        }
        Ok(())
    }

    /// Revoke one session with `event` in the same transaction; `false` (and no event)
    /// when it was unknown or already revoked.
    async fn revoke_session(
        &self,
        id: SessionId,
        event: SecurityEvent,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let records = [self.recorder.recorded(event).await?];
        let revoked = self.sessions.revoke_session(id, now, &records).await?;
        if revoked {
            self.recorder.committed(records).await;
        }
        Ok(revoked)
    }

    /// Check an introspection client's credentials in constant time.
    pub fn authenticate_introspection_client(
        &self,
        id: &str,
        secret: &SecretString,
    ) -> AuthResult<()> {
        let mut ok = false;
        for client in &self.introspection_clients {
            let id_eq = client.id.as_bytes().ct_eq(id.as_bytes());
            let secret_eq = client
                .secret
                .expose_secret()
                .as_bytes()
                .ct_eq(secret.expose_secret().as_bytes());
            ok |= bool::from(id_eq & secret_eq);
        }
        if ok {
            Ok(())
        } else {
            Err(AuthError::InvalidClient)
        }
    }

    /// RFC 7662 introspection of an access or refresh token. The caller must have passed
    /// [`PasswordSessions::authenticate_introspection_client`].
    pub async fn introspect(
        &self,
        token: &SecretString,
        client: &ClientInfo,
    ) -> AuthResult<Introspection> {
        self.guard
            .limit(crate::guard::LimitGroup::Introspection, client, None)
            .await?;
        let token = token.expose_secret();
        if !opaque::is_well_formed(token) {
            return match self.authenticate(token).await {
                Ok(caller) => Ok(Introspection::AccessToken(Box::new(caller.claims))),
                Err(AuthError::InvalidToken(_)) => Ok(Introspection::Inactive),
                Err(e) => Err(e),
            };
        }
        let now = self.clock.now();
        let Some(record) = self.sessions.refresh_token(&opaque::hash(token)).await? else {
            return Ok(Introspection::Inactive);
        };
        let session = self.sessions.session(record.session_id).await?;
        match session {
            Some(s) if record.rotated_at.is_none() && s.is_active(now, self.policy.idle_ttl) => {
                Ok(Introspection::RefreshToken {
                    sub: s.user_id,
                    sid: s.id,
                    exp: s.expires_at.min(s.last_used_at + self.policy.idle_ttl),
                    iat: record.created_at,
                })
            }
            _ => Ok(Introspection::Inactive),
        }
    }

    /// The signed-in user.
    pub async fn me(&self, caller: &Authenticated) -> AuthResult<User> {
        self.sign_in.me(caller).await
    }

    /// Update the signed-in user's name and avatar.
    pub async fn update_me(
        &self,
        caller: &Authenticated,
        update: ProfileUpdate,
    ) -> AuthResult<User> {
        let update = update.normalised()?;
        let now = self.clock.now();
        self.users
            .update_profile(caller.user_id, &update, now)
            .await?
            .ok_or(AuthError::InvalidToken("user no longer exists"))
    }

    /// The caller's live sessions, newest first.
    pub async fn sessions(&self, caller: &Authenticated) -> AuthResult<Vec<SessionView>> {
        let now = self.clock.now();
        let idle = self.policy.idle_ttl;
        Ok(self
            .sessions
            .unrevoked_sessions_of(caller.user_id)
            .await?
            .into_iter()
            .filter(|s| s.is_active(now, idle))
            .map(|session| SessionView {
                current: session.id == caller.session_id,
                session,
            })
            .collect())
    }

    /// Revoke one of the caller's own sessions.
    pub async fn revoke_own_session(
        &self,
        caller: &Authenticated,
        id: SessionId,
    ) -> AuthResult<()> {
        let now = self.clock.now();
        match self.sessions.session(id).await? {
            Some(s) if s.user_id == caller.user_id && s.revoked_at.is_none() => {
                let detail = Some("by_user".to_owned());
                let user = Some(caller.user_id);
                let event =
                    self.recorder
                        .event(EventKind::SessionRevoked, user, Some(id), None, detail);
                self.revoke_session(id, event, now).await?;
                Ok(())
            }
            _ => Err(AuthError::NotFound),
        }
    }

    /// Delete sessions that ended more than `retention` ago (housekeeping).
    pub async fn purge_ended_sessions(&self, retention: Duration) -> AuthResult<u64> {
        let cutoff = self.clock.now() - retention;
        self.sessions.purge_sessions_ended_before(cutoff).await
    }
}

impl PasswordSessions {
    /// A new access token for the session of a refresh token, without rotating it: for
    /// compatibility profiles whose clients keep one refresh token for the whole session.
    /// A rotated (or unknown) token is refused, as is a session that has ended.
    pub async fn reissue_access_token(
        &self,
        presented: &SecretString,
        client: &ClientInfo,
    ) -> AuthResult<IssuedTokens> {
        self.guard
            .limit(crate::guard::LimitGroup::Refresh, client, None)
            .await?;
        let token = presented.expose_secret();
        if !opaque::is_well_formed(token) {
            return Err(AuthError::InvalidRefreshToken);
        }
        let record = self
            .sessions
            .refresh_token(&opaque::hash(token))
            .await?
            .filter(|r| r.rotated_at.is_none())
            .ok_or(AuthError::InvalidRefreshToken)?;
        let now = self.clock.now();
        let session = self.live_session(record.session_id, now).await?;
        let user = self.session_user(&session).await?;
        self.sign_in.issue(user, &session, presented.clone(), now)
    }

    /// Delete the signed-in user's own account (its sessions, factors and identities go
    /// with it), recorded in the audit trail as `user.deleted` by the user themself.
    pub async fn delete_own_account(&self, caller: &Authenticated) -> AuthResult<()> {
        let user = self.me(caller).await?;
        let event = SecurityEvent {
            kind: EventKind::UserDeleted,
            at: self.clock.now(),
            user_id: Some(user.id),
            session_id: Some(caller.session_id),
            client: None,
            detail: None,
            actor: Some(user.id),
        };
        let record = self.recorder.recorded(event).await?;
        if !self.operators.delete_user(user.id, &record).await? {
            return Err(AuthError::InvalidToken("user no longer exists"));
        }
        self.lockouts
            .clear_all(&crate::guard::lockout_identifier(&user.email))
            .await?;
        self.recorder.committed([record]).await;
        Ok(())
    }
}
