//! The end every sign-in shares: the first-factor finish (the second-factor rule, then one
//! session-opening store operation that refuses a disabled account in its transaction and
//! writes the sign-in event with it), the tokens a session hands out, and the check of an
//! access token against its live session.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::{AuthError, AuthResult};
use crate::events::EventKind;
use crate::factors::{MfaFactor, MfaStore, NewMfaChallenge, SecondFactor};
use crate::jwt::{AccessClaims, TokenIssuer};
use crate::model::{ClientInfo, NewSession, Session, SessionId, User, UserId};
use crate::opaque;
use crate::ports::SessionStore;
use crate::random::RandomSource;
use crate::record::Recorder;

/// Lifetimes of access tokens, sessions and refresh tokens.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// A session ends this long after sign-in, however active it is.
    pub absolute_ttl: Duration,
    /// A session ends when it has not been refreshed for this long.
    pub idle_ttl: Duration,
    /// A just-rotated refresh token presented again within this window gets the current
    /// one back instead of counting as reuse.
    pub reuse_grace: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            access_ttl: Duration::seconds(900),
            absolute_ttl: Duration::days(30),
            idle_ttl: Duration::days(7),
            reuse_grace: Duration::seconds(10),
        }
    }
}

/// What a successful sign-in or refresh hands the client.
pub struct IssuedTokens {
    /// Signed access token.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Expiry of the access token, seconds since the epoch.
    pub expires_at: i64,
    /// Opaque refresh token.
    pub refresh_token: SecretString,
    /// The session the tokens belong to.
    pub session_id: SessionId,
    /// The signed-in user.
    pub user: User,
}

impl fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("session_id", &self.session_id)
            .field("user", &self.user.id)
            .finish_non_exhaustive()
    }
}

/// The caller behind a verified access token whose session is live.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The user.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
    /// The verified claims.
    pub claims: AccessClaims,
}

/// The end of a first factor.
#[derive(Debug)]
pub enum SignInOutcome {
    /// No second factor needed: signed in.
    SignedIn(Box<IssuedTokens>),
    /// The user has an active factor: present it with the `mfa_token`.
    MfaRequired(MfaRequired),
}

impl SignInOutcome {
    /// The tokens, when signed in.
    pub fn tokens(self) -> Option<IssuedTokens> {
        match self {
            Self::SignedIn(t) => Some(*t),
            Self::MfaRequired(_) => None,
        }
    }

    /// The challenge, when a second factor is required.
    pub fn mfa_required(self) -> Option<MfaRequired> {
        match self {
            Self::SignedIn(_) => None,
            Self::MfaRequired(m) => Some(m),
        }
    }

    /// The session opened, when signed in.
    pub fn session_id(&self) -> Option<SessionId> {
        match self {
            Self::SignedIn(t) => Some(t.session_id),
            Self::MfaRequired(_) => None,
        }
    }
}

/// A second factor is required to finish signing in.
pub struct MfaRequired {
    /// Opaque, single use, short-lived.
    pub mfa_token: SecretString,
    /// What the user can present: `totp`, `recovery_code`.
    pub factors: Vec<String>,
    /// When the `mfa_token` dies.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for MfaRequired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaRequired")
            .field("factors", &self.factors)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Sessions and the sign-in that opens them, with only the ports they use.
#[derive(Clone)]
pub(crate) struct SignIn {
    pub(crate) users: Arc<dyn crate::ports::UserStore>,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) mfa: Arc<dyn MfaStore>,
    pub(crate) tokens: Arc<dyn TokenIssuer>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Arc<dyn RandomSource>,
    pub(crate) recorder: Recorder,
    pub(crate) policy: SessionPolicy,
    pub(crate) challenge_ttl: Duration,
}

impl SignIn {
    /// Open a session of `user` at `aal`, and with it (same transaction) the event of the
    /// sign-in, when there is one: `(kind, detail)`, about the new session.
    pub(crate) async fn open_session(
        &self,
        user: User,
        client: ClientInfo,
        amr: Vec<String>,
        aal: &str,
        signed_in: Option<(EventKind, Option<String>)>,
        now: DateTime<Utc>,
    ) -> AuthResult<IssuedTokens> {
        let refresh_token = opaque::generate(self.rng.as_ref());
        let id = SessionId::new();
        let mut records = Vec::new();
        if let Some((kind, detail)) = signed_in {
            let event = self
                .recorder
                .event(kind, Some(user.id), Some(id), Some(&client), detail);
            records.push(self.recorder.recorded(event).await?);
        }
        let session = self
            .sessions
            .create_session(
                &NewSession {
                    id,
                    user_id: user.id,
                    created_at: now,
                    expires_at: now + self.policy.absolute_ttl,
                    client,
                    amr,
                    aal: aal.to_owned(),
                },
                &opaque::hash(refresh_token.expose_secret()),
                &records,
            )
            .await?;
        self.recorder.committed(records).await;
        self.issue(user, &session, refresh_token, now)
    }

    pub(crate) fn issue(
        &self,
        user: User,
        session: &Session,
        refresh_token: SecretString,
        now: DateTime<Utc>,
    ) -> AuthResult<IssuedTokens> {
        let ttl = self.policy.access_ttl;
        // An access token never outlives its session.
        let exp = (now + ttl).min(session.expires_at);
        let claims = AccessClaims {
            iss: self.tokens.issuer().to_owned(),
            aud: self.tokens.audience().to_owned(),
            sub: user.id.to_string(),
            sid: session.id.to_string(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: exp.timestamp(),
            jti: Uuid::new_v4().to_string(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            name: user.name.clone(),
            roles: user.roles.clone(),
            amr: session.amr.clone(),
            aal: session.aal.clone(),
        };
        let access_token = self.tokens.sign(&claims)?;
        Ok(IssuedTokens {
            access_token,
            expires_in: claims.exp - claims.iat,
            expires_at: claims.exp,
            refresh_token,
            session_id: session.id,
            user,
        })
    }

    /// Verify an access token and check that its session is still live, so a revoked
    /// session is refused at once rather than when the token expires.
    pub(crate) async fn authenticate(&self, access_token: &str) -> AuthResult<Authenticated> {
        let now = self.clock.now();
        let claims = self.tokens.verify(access_token, now)?;
        let bad = || AuthError::InvalidToken("malformed subject or session");
        let user_id: UserId = claims.sub.parse().map_err(|_| bad())?;
        let session_id: SessionId = claims.sid.parse().map_err(|_| bad())?;
        let session = self.sessions.session(session_id).await?;
        match session {
            Some(s) if s.user_id == user_id && s.revoked_at.is_none() && now < s.expires_at => {
                Ok(Authenticated {
                    user_id,
                    session_id,
                    claims,
                })
            }
            _ => Err(AuthError::InvalidToken("session revoked or expired")),
        }
    }

    pub(crate) async fn active_factors(&self, user_id: UserId) -> AuthResult<Vec<MfaFactor>> {
        Ok(self
            .mfa
            .factors_of(user_id)
            .await?
            .into_iter()
            .filter(|f| f.activated_at.is_some())
            .collect())
    }

    /// The one end of every first factor (password, magic link, email code, passkey
    /// without user verification, social sign-in): opens an `aal1` session with `method` in
    /// its `amr` when the user has no active factor, otherwise stores a challenge and answers
    /// [`SignInOutcome::MfaRequired`]. Either way the sign-in event `kind` is written in the
    /// same transaction, with `detail` (`mfa_required` when a challenge is stored and the
    /// caller gave none).
    pub(crate) async fn finish_first_factor(
        &self,
        user: User,
        client: ClientInfo,
        method: &str,
        (kind, detail): (EventKind, Option<String>),
        now: DateTime<Utc>,
    ) -> AuthResult<SignInOutcome> {
        // A factor never counts twice: after a sign-in by SMS code, SMS is not asked again.
        let active: Vec<MfaFactor> = self
            .active_factors(user.id)
            .await?
            .into_iter()
            .filter(|f| f.kind.as_str() != method)
            .collect();
        if active.is_empty() {
            let amr = vec![method.to_owned()];
            let tokens = self
                .open_session(user, client, amr, "aal1", Some((kind, detail)), now)
                .await?;
            return Ok(SignInOutcome::SignedIn(Box::new(tokens)));
        }
        let mut factors: Vec<String> = active.iter().map(|f| f.kind.as_str().into()).collect();
        factors.dedup();
        if self.mfa.remaining_recovery_codes(user.id).await? > 0 {
            factors.push(SecondFactor::RecoveryCode.as_str().into());
        }
        let token = opaque::generate(self.rng.as_ref());
        let expires_at = now + self.challenge_ttl;
        let detail = detail.or_else(|| Some("mfa_required".to_owned()));
        let event = self
            .recorder
            .event(kind, Some(user.id), None, Some(&client), detail);
        let records = [self.recorder.recorded(event).await?];
        self.mfa
            .insert_challenge(
                &NewMfaChallenge {
                    token_hash: opaque::hash(token.expose_secret()),
                    user_id: user.id,
                    amr: vec![method.to_owned()],
                    created_at: now,
                    expires_at,
                },
                &records,
            )
            .await?;
        self.recorder.committed(records).await;
        Ok(SignInOutcome::MfaRequired(MfaRequired {
            mfa_token: token,
            factors,
            expires_at,
        }))
    }

    /// The account behind an authenticated caller.
    pub(crate) async fn me(&self, caller: &Authenticated) -> AuthResult<User> {
        self.users
            .user_by_id(caller.user_id)
            .await?
            .ok_or(AuthError::InvalidToken("user no longer exists"))
    }
}
