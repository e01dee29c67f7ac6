//! External identities: the `IdentityProvider` port (OpenID Connect, OAuth2 user-info and
//! OAuth 1.0a providers implement it in `auth-oidc`), the identities a user holds, and the
//! storage port behind them.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AuthResult;
use crate::model::{NewUser, TokenHash, User, UserId};

/// Who a provider says the caller is, normalised across providers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExternalIdentity {
    /// The configured provider id (`google`, `github` ...).
    pub provider: String,
    /// The provider's stable identifier of the user (`sub`, numeric id ...).
    pub subject: String,
    /// Email address, when the provider shares one.
    pub email: Option<String>,
    /// Whether the provider vouches that the user owns `email`.
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Picture URL.
    pub avatar_url: Option<String>,
}

/// What the client presents to prove an identity at a provider.
pub enum ProviderCredential {
    /// An ID token obtained on the device (Google, Apple, any OpenID Connect issuer).
    IdToken {
        /// The compact JWT.
        id_token: SecretString,
        /// The nonce the app sent to the provider, when it used one.
        nonce: Option<String>,
    },
    /// A provider access token (OAuth2), or an OAuth 1.0a token and its secret.
    AccessToken {
        /// The access token.
        access_token: SecretString,
        /// The OAuth 1.0a token secret (X/Twitter legacy).
        access_token_secret: Option<SecretString>,
    },
}

impl fmt::Debug for ProviderCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IdToken { .. } => f.write_str("IdToken([redacted])"),
            Self::AccessToken { .. } => f.write_str("AccessToken([redacted])"),
        }
    }
}

/// How a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The ID token is malformed, badly signed, expired, for another audience or issuer,
    /// or carries the wrong nonce.
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),
    /// The provider refused the token or code (revoked, expired, another app's token).
    #[error("rejected by the provider: {0}")]
    Rejected(String),
    /// The provider could not be reached or answered nonsense.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider does not support this way in (e.g. an ID token at GitHub).
    #[error("not supported by this provider: {0}")]
    Unsupported(&'static str),
    /// An ID token was handed in without the nonce that binds it to this sign-in, and the
    /// provider is not set to accept that.
    #[error("an ID token without a nonce")]
    NonceRequired,
}

/// What the provider needs to start a browser sign-in.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// Our callback URL, registered at the provider.
    pub redirect_uri: String,
    /// Opaque value bound to the browser's flow.
    pub state: String,
    /// Value the ID token must carry back.
    pub nonce: String,
    /// PKCE S256 challenge of our own verifier.
    pub pkce_challenge: String,
}

/// What the provider needs to turn an authorization code into an identity.
pub struct CodeExchange {
    /// The code from the callback.
    pub code: String,
    /// The callback URL used in the authorization request.
    pub redirect_uri: String,
    /// Our PKCE verifier.
    pub pkce_verifier: SecretString,
    /// The nonce sent in the authorization request.
    pub nonce: String,
}

/// Port: one configured identity provider.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// Verify a credential obtained by the client and say whose it is.
    async fn verify(
        &self,
        credential: &ProviderCredential,
    ) -> Result<ExternalIdentity, ProviderError>;
    /// The URL to send the browser to.
    async fn authorization_url(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<String, ProviderError>;
    /// Exchange an authorization code (with PKCE) and say whose identity it proves.
    async fn exchange_code(
        &self,
        exchange: &CodeExchange,
    ) -> Result<ExternalIdentity, ProviderError>;
}

/// Identifies a linked identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdentityId(pub Uuid);

impl IdentityId {
    /// A new time-ordered identifier.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for IdentityId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for IdentityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for IdentityId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// An external identity linked to a user, keyed by (provider, subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Identifier.
    pub id: IdentityId,
    /// Owner.
    pub user_id: UserId,
    /// Provider id.
    pub provider: String,
    /// The provider's identifier of the user.
    pub subject: String,
    /// Email the provider gave at link time (informative only, never a key).
    pub email: Option<String>,
    /// Link time.
    pub created_at: DateTime<Utc>,
}

/// What a browser flow record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthRecordKind {
    /// The state of an authorization request, consumed by the callback.
    State,
    /// The one-time code handed to the app, consumed by the exchange.
    Code,
}

impl OAuthRecordKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::Code => "code",
        }
    }
}

/// A single-use record of the browser flow, stored by the hash of its handle with a
/// sealed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRecord {
    /// SHA-256 of the state or code.
    pub token_hash: TokenHash,
    /// State or code.
    pub kind: OAuthRecordKind,
    /// Sealed JSON payload (hex).
    pub payload: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
}

/// Result of an unlink attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkOutcome {
    /// The identity is gone.
    Removed,
    /// No such identity of this user.
    NotFound,
    /// It is the user's last way to sign in: kept.
    LastSignInMethod,
}

/// Storage of identities and of the browser flow's single-use records.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The identity of `subject` at `provider`.
    async fn identity_by_subject(
        &self,
        provider: &str,
        subject: &str,
    ) -> AuthResult<Option<Identity>>;
    /// Every identity of a user, oldest first.
    async fn identities_of(&self, user_id: UserId) -> AuthResult<Vec<Identity>>;
    /// Create a user and their first identity in one transaction. Fails with
    /// [`crate::AuthError::EmailTaken`] or [`crate::AuthError::IdentityExists`], writing
    /// nothing.
    async fn insert_user_with_identity(
        &self,
        user: &NewUser,
        identity: &Identity,
    ) -> AuthResult<User>;
    /// Link an identity to an existing user; [`crate::AuthError::IdentityExists`] when the
    /// (provider, subject) pair is already linked to anyone.
    async fn link_identity(&self, identity: &Identity) -> AuthResult<Identity>;
    /// Atomically remove an identity of `user_id` unless it is their last way to sign in
    /// (no password, no other identity and no passkey).
    async fn unlink_identity(
        &self,
        user_id: UserId,
        id: IdentityId,
        now: DateTime<Utc>,
    ) -> AuthResult<UnlinkOutcome>;
    /// Store a browser flow record.
    async fn put_oauth_record(&self, record: &OAuthRecord) -> AuthResult<()>;
    /// Remove and return the record if it is of `kind` and unexpired at `now`; two
    /// concurrent calls never both get it.
    async fn take_oauth_record(
        &self,
        hash: &TokenHash,
        kind: OAuthRecordKind,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<OAuthRecord>>;
    /// Delete the records that expired before `now` (abandoned sign-ins); returns how many.
    async fn purge_expired_oauth_records(&self, now: DateTime<Utc>) -> AuthResult<u64>;
}
