//! Domain records: users, sessions, refresh tokens.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::email::Email;
use crate::error::{AuthError, AuthResult};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a user.
    UserId
);
id_type!(
    /// Identifies a session: one sign-in and the refresh tokens that descend from it.
    SessionId
);

/// A user account as the rest of the system sees it (no credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable identifier, the `sub` of tokens.
    pub id: UserId,
    /// Email address (domain lowercased).
    pub email: String,
    /// Whether the user proved they own the address.
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Avatar chosen by the user; see [`User::avatar_url_or_gravatar`].
    pub avatar_url: Option<String>,
    /// Role names, carried in access tokens.
    pub roles: Vec<String>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// The avatar to show: the user's own, else the Gravatar of the email address.
    pub fn avatar_url_or_gravatar(&self) -> String {
        match &self.avatar_url {
            Some(url) => url.clone(),
            None => {
                let digest = Sha256::digest(self.email.trim().to_lowercase().as_bytes());
                format!(
                    "https://gravatar.com/avatar/{}?d=identicon",
                    hex::encode(digest)
                )
            }
        }
    }
}

/// How someone proved they read an account's mailbox, for
/// [`crate::ports::UserStore::mark_email_verified`]. It decides what happens to an account
/// whose address was not verified yet (pre-account hijacking: anyone can sign up with an
/// address they do not own, set a password and link things, then wait for the owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxProof {
    /// The verification link mailed for this account (at sign-up or re-sent to its
    /// signed-in user): the end of its creator's own sign-up, so the account stays as it is.
    SignupLink,
    /// A flow the account's creator did not complete: a magic link, an email code or a
    /// password reset. The mailbox owner adopts an unverified account: its password, its
    /// sessions, its linked identities, passkeys and second factors (all set up by whoever
    /// created it) are removed in the same transaction that marks the address verified.
    Adoption,
}

/// The account after [`crate::ports::UserStore::mark_email_verified`].
#[derive(Debug, Clone)]
pub struct ProvenMailbox {
    /// The account, now verified.
    pub user: User,
    /// The account was unverified and adopted: what its creator set up was removed.
    pub adopted: bool,
}

/// A user together with the stored password hash, for sign-in only.
#[derive(Clone)]
pub struct UserCredentials {
    /// The account.
    pub user: User,
    /// PHC string; `None` for accounts without a password (social sign-in only).
    pub password_hash: Option<String>,
}

impl fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// A user about to be created.
#[derive(Clone)]
pub struct NewUser {
    /// Identifier chosen by the core.
    pub id: UserId,
    /// Validated address.
    pub email: Email,
    /// Display name.
    pub name: Option<String>,
    /// PHC string of the password.
    pub password_hash: Option<String>,
    /// Whether the address is already proven (sign-up by magic link or code).
    pub email_verified: bool,
    /// Initial roles.
    pub roles: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A partial update of the user's own profile. `Some(None)` clears a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// New display name.
    pub name: Option<Option<String>>,
    /// New avatar URL.
    pub avatar_url: Option<Option<String>>,
}

/// Where a request came from, recorded on the session it opens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Client IP address.
    pub ip: Option<String>,
    /// `User-Agent` header, truncated.
    pub user_agent: Option<String>,
}

/// A signed-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The `sid` claim.
    pub id: SessionId,
    /// Whose session.
    pub user_id: UserId,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last refresh.
    pub last_used_at: DateTime<Utc>,
    /// Absolute end of the session, whatever its activity.
    pub expires_at: DateTime<Utc>,
    /// Set once the session is revoked (logout, reuse detected, password reset ...).
    pub revoked_at: Option<DateTime<Utc>>,
    /// Where the sign-in came from.
    pub client: ClientInfo,
    /// Authentication methods used (`pwd`, `otp` ...).
    pub amr: Vec<String>,
    /// Assurance level (`aal1`, `aal2`).
    pub aal: String,
}

impl Session {
    /// Whether the session may still be used at `now` with the given idle lifetime.
    pub fn is_active(&self, now: DateTime<Utc>, idle_ttl: Duration) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && now < self.last_used_at + idle_ttl
    }
}

/// SHA-256 of an opaque secret token, hex encoded: the only form in which tokens are stored.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub String);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not the token, but keep logs short and uninteresting.
        write!(f, "TokenHash({}…)", &self.0[..self.0.len().min(8)])
    }
}

/// A refresh token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Hash of the token.
    pub token_hash: TokenHash,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was exchanged for its successor; `None` while it is the current one.
    pub rotated_at: Option<DateTime<Utc>>,
    /// The successor, sealed so that only a holder of this token can recover it (hex).
    pub sealed_successor: Option<String>,
}

/// A session about to be created.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Identifier chosen by the core.
    pub id: SessionId,
    /// Whose session.
    pub user_id: UserId,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// Where the sign-in came from.
    pub client: ClientInfo,
    /// Authentication methods used.
    pub amr: Vec<String>,
    /// Assurance level.
    pub aal: String,
}

/// Result of the atomic rotation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// This call retired the presented token and stored its successor.
    Rotated,
    /// The presented token was not (or no longer) the current one: nothing changed.
    NotCurrent,
}

/// A signing key that the server generated and keeps in its store.
#[derive(Clone)]
pub struct StoredSigningKey {
    /// Algorithm name (`EdDSA`).
    pub algorithm: String,
    /// PKCS#8 PEM of the private key.
    pub private_pem: secrecy::SecretString,
    /// When it was generated.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OneTimeTokenKind {
    /// Confirms an email address.
    EmailVerification,
    /// Allows setting a new password.
    PasswordReset,
    /// Signs in by link.
    MagicLink,
    /// Signs in by a 6-digit code sent by mail.
    EmailOtp,
    /// A 6-digit code sent by SMS (second factor); `email` holds the factor key.
    SmsOtp,
}

impl OneTimeTokenKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
            Self::MagicLink => "magic_link",
            Self::EmailOtp => "email_otp",
            Self::SmsOtp => "sms_otp",
        }
    }

    /// Inverse of [`OneTimeTokenKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::EmailVerification,
            Self::PasswordReset,
            Self::MagicLink,
            Self::EmailOtp,
            Self::SmsOtp,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A one-time token about to be stored (only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOneTimeToken {
    /// SHA-256 of the token (or of the code with its email).
    pub token_hash: TokenHash,
    /// Purpose.
    pub kind: OneTimeTokenKind,
    /// The account it acts on; `None` for a sign-up by link or code.
    pub user_id: Option<UserId>,
    /// Canonical email it was sent to.
    pub email: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// Where a magic link leads after sign-in.
    pub redirect_to: Option<String>,
}

/// A stored one-time token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    /// SHA-256 of the token.
    pub token_hash: TokenHash,
    /// Purpose.
    pub kind: OneTimeTokenKind,
    /// The account it acts on.
    pub user_id: Option<UserId>,
    /// Canonical email it was sent to.
    pub email: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// Set when used or retired (by a newer token, too many wrong codes, a password change).
    pub used_at: Option<DateTime<Utc>>,
    /// Wrong codes presented so far.
    pub failed_attempts: i32,
    /// Where a magic link leads after sign-in.
    pub redirect_to: Option<String>,
}

const MAX_NAME_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2048;

pub(crate) fn normalise_name(name: Option<String>) -> AuthResult<Option<String>> {
    let Some(name) = name else { return Ok(None) };
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AuthError::InvalidField {
            field: "name",
            reason: "must be at most 200 characters",
        });
    }
    if name.chars().any(char::is_control) {
        return Err(AuthError::InvalidField {
            field: "name",
            reason: "must not contain control characters",
        });
    }
    Ok(Some(name.to_owned()))
}

impl ProfileUpdate {
    /// The update as [`crate::service::PasswordSessions::update_me`] stores it (trimmed, blank values cleared),
    /// or the field it refuses: lets a caller check it before other changes that go with it.
    pub fn normalised(self) -> AuthResult<Self> {
        Ok(Self {
            name: self.name.map(normalise_name).transpose()?,
            avatar_url: self.avatar_url.map(normalise_avatar_url).transpose()?,
        })
    }
}

fn normalise_avatar_url(url: Option<String>) -> AuthResult<Option<String>> {
    let Some(url) = url else { return Ok(None) };
    let url = url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    let invalid = |reason| AuthError::InvalidField {
        field: "avatar_url",
        reason,
    };
    if url.chars().count() > MAX_URL_CHARS {
        return Err(invalid("must be at most 2048 characters"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(invalid("must be an http or https URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must be an http or https URL"));
    }
    Ok(Some(url.to_owned()))
}
