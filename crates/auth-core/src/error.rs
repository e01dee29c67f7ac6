//! The one domain error type. Adapters map their failures into it; the HTTP edge maps it
//! to problem+json in one place.

use std::fmt;

/// Every way a use case can fail, independent of transport and storage.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request is structurally wrong (a missing or unknown value).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The email address does not parse.
    #[error("invalid email address: {0}")]
    InvalidEmail(&'static str),
    /// The password breaks the configured policy.
    #[error("password rejected: {0}")]
    WeakPassword(PasswordRejection),
    /// A field parses but breaks a rule (too long, bad URL ...).
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The offending field.
        field: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Another account already uses this email address.
    #[error("email address already registered")]
    EmailTaken,
    /// Unknown email or wrong password: deliberately the same error for both.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The refresh token is unknown, expired, revoked or reused.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The access token is missing, malformed, expired, or its session is revoked.
    #[error("invalid access token: {0}")]
    InvalidToken(&'static str),
    /// The calling client (introspection) failed to authenticate.
    #[error("invalid client credentials")]
    InvalidClient,
    /// Sign-in waits for the email address to be confirmed.
    #[error("email address not verified")]
    EmailNotVerified,
    /// A verification, reset or magic-link token is unknown, used or expired.
    #[error("invalid or expired token")]
    InvalidOneTimeToken,
    /// A one-time code is wrong, used, expired or has had too many wrong tries.
    #[error("invalid or expired code")]
    InvalidCode,
    /// The feature is switched off by configuration.
    #[error("not enabled: {0}")]
    NotEnabled(&'static str),
    /// Too many requests; retry after this many seconds.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the window ends.
        retry_after_secs: u64,
    },
    /// Too many failed sign-ins for this account; it unlocks by itself.
    #[error("account locked")]
    AccountLocked {
        /// Seconds until the lock ends.
        retry_after_secs: u64,
    },
    /// A CAPTCHA token is required and missing.
    #[error("captcha required")]
    CaptchaRequired,
    /// The CAPTCHA provider refused the token.
    #[error("captcha failed")]
    CaptchaFailed,
    /// The thing asked for does not exist (or is not the caller's).
    #[error("not found")]
    NotFound,
    /// Too much work is queued (password hashing); retry after this many seconds.
    #[error("overloaded")]
    Overloaded {
        /// About how long the queue needs to drain.
        retry_after_secs: u64,
    },
    /// A dependency (the database) is unreachable; the request may be retried.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; details go to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
    /// The caller is authenticated but lacks the capability.
    #[error("forbidden")]
    Forbidden,
    /// The account acted on, or a role being given, holds a capability the administrator
    /// does not hold themselves.
    #[error("insufficient capability")]
    InsufficientCapability,
    /// An administrator disabled the account: no sign-in by any means.
    #[error("account disabled")]
    AccountDisabled,
    /// The request conflicts with the current state; the stable code says how
    /// (`role_exists`, `role_in_use`, `built_in_role`, `cannot_target_self`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// No identity provider of that id is configured.
    #[error("unknown identity provider")]
    UnknownProvider,
    /// The ID token is malformed, badly signed, expired, for another audience or issuer,
    /// or carries the wrong nonce.
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),
    /// The provider refused the credential (revoked, expired, another app's token).
    #[error("rejected by the identity provider: {0}")]
    ProviderRejected(String),
    /// The identity provider is unreachable or answered nonsense.
    #[error("identity provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// Strict mode: the identity is unknown and sign-up must be asked for explicitly.
    #[error("sign-up required")]
    SignupRequired,
    /// The provider is not allowed to create accounts.
    #[error("sign-up disabled for this provider")]
    SignupDisabled,
    /// The external identity is already linked (to this or another account).
    #[error("identity already linked")]
    IdentityExists,
    /// An account has this email but has not verified it: its owner signs in, verifies
    /// the address, then signs in with the provider (or links it).
    #[error("account exists; verify its address, then link the identity")]
    LinkRequired,
    /// Linking an identity needs an account whose address is verified: an identity linked
    /// to an unverified (possibly pre-hijacked) account would outlive its adoption.
    #[error("verify the account's email address before linking an identity")]
    LinkNeedsVerifiedEmail,
    /// The provider gave no email address and a new account needs one.
    #[error("the provider gave no email address")]
    ProviderEmailMissing,
    /// Removing this identity would leave the account without a way to sign in.
    #[error("last way to sign in")]
    LastSignInMethod,
    /// The browser flow's state is unknown, used or expired.
    #[error("invalid or expired state")]
    InvalidOAuthState,
    /// A new account would carry an email address the provider has not verified (someone
    /// could pre-register another person's address and keep a way into the account).
    #[error("the provider has not verified the email address")]
    ProviderEmailUnverified,
    /// The `mfa_token` is unknown, used, expired or dead after too many wrong codes.
    #[error("invalid or expired mfa_token")]
    InvalidMfaToken,
    /// The user already has an active factor of that kind.
    #[error("second factor already enrolled")]
    MfaAlreadyEnrolled,
    /// The user has no active second factor.
    #[error("no second factor enrolled")]
    MfaNotEnrolled,
    /// A passkey ceremony failed: unknown or expired ceremony, unknown credential, bad
    /// signature, wrong origin, sign counter regression.
    #[error("passkey verification failed")]
    InvalidPasskey,
    /// The credential is already registered.
    #[error("passkey already registered")]
    PasskeyTaken,
    /// The action needs a session verified with a second factor (`aal2`).
    #[error("step-up required")]
    StepUpRequired,
}

impl AuthError {
    /// Wrap an unexpected failure.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Result alias used across the core.
pub type AuthResult<T> = Result<T, AuthError>;

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordRejection {
    /// Fewer characters than the minimum.
    TooShort {
        /// The configured minimum.
        min: usize,
    },
    /// More characters than the maximum (never silently truncated).
    TooLong {
        /// The configured maximum.
        max: usize,
    },
    /// Appears in the list of commonly used passwords.
    Common,
    /// The password is the account's email address.
    SameAsEmail,
    /// A required character class is missing.
    MissingClass(&'static str),
    /// Appears in known data breaches.
    Breached,
    /// Too easy to guess (zxcvbn score below the minimum).
    TooGuessable {
        /// The configured minimum score.
        min_score: u8,
    },
}

impl fmt::Display for PasswordRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { min } => write!(f, "password must be at least {min} characters"),
            Self::TooLong { max } => write!(f, "password must be at most {max} characters"),
            Self::Common => f.write_str("password is too common"),
            Self::SameAsEmail => f.write_str("password must not be the email address"),
            Self::MissingClass(class) => write!(f, "password must contain a {class} character"),
            Self::Breached => {
                f.write_str("password appears in known data breaches; choose another")
            }
            Self::TooGuessable { min_score } => write!(
                f,
                "password is too easy to guess (strength below {min_score} of 4)"
            ),
        }
    }
}

/// A value the core refuses to be configured with (a key, a policy, hashing parameters,
/// an imported hash); the message names the offending setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// What is wrong, naming the setting.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> Self {
        e.0
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

/// An adapter could not do its work (a provider down, a template broken, a request
/// refused); the message says why and carries no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AdapterError(String);

impl AdapterError {
    /// Why the adapter failed.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl From<String> for AdapterError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<AdapterError> for String {
    fn from(e: AdapterError) -> Self {
        e.0
    }
}

impl From<&str> for AdapterError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}
