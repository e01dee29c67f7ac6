//! Outbound mail: what the core wants said ([`MailIntent`]), and the ports that render and
//! deliver it ([`MailRenderer`], [`Mailer`]).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The mails the server sends. Each has a subject, a text and an HTML template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailTemplate {
    /// "Confirm your email address" with a `link`.
    VerifyEmail,
    /// "Reset your password" with a `link`.
    PasswordReset,
    /// "Sign in" with a `link`.
    MagicLink,
    /// "Your sign-in code" with a `code`.
    EmailOtp,
    /// "Your password was changed".
    PasswordChanged,
    /// "Your password was reset".
    PasswordWasReset,
    /// Someone tried to sign up with an address that already has an account.
    SignupAttempted,
    /// The account was locked after repeated failed sign-ins (`locked_minutes`).
    AccountLocked,
    /// A second factor was added (`factor`).
    MfaFactorAdded,
    /// A second factor was removed (`factor`).
    MfaFactorRemoved,
    /// A recovery code was used (`remaining`).
    RecoveryCodeUsed,
    /// The account's address was changed (sent to the old address).
    EmailChanged,
}

impl MailTemplate {
    /// Every template, for renderers that load them all at start.
    pub const ALL: [MailTemplate; 12] = [
        Self::VerifyEmail,
        Self::PasswordReset,
        Self::MagicLink,
        Self::EmailOtp,
        Self::PasswordChanged,
        Self::PasswordWasReset,
        Self::SignupAttempted,
        Self::AccountLocked,
        Self::MfaFactorAdded,
        Self::MfaFactorRemoved,
        Self::RecoveryCodeUsed,
        Self::EmailChanged,
    ];

    /// File-name stem of the template (`verify_email`).
    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
            Self::MagicLink => "magic_link",
            Self::EmailOtp => "email_otp",
            Self::PasswordChanged => "password_changed",
            Self::PasswordWasReset => "password_was_reset",
            Self::SignupAttempted => "signup_attempted",
            Self::AccountLocked => "account_locked",
            Self::MfaFactorAdded => "mfa_factor_added",
            Self::MfaFactorRemoved => "mfa_factor_removed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::EmailChanged => "email_changed",
        }
    }
}

/// A mail to send: recipient, template and the values it refers to (`link`, `code`,
/// `email`, `name`, `expires_in_minutes`, `app_url`). Values may carry secrets (a link
/// with a token): the intent is sealed in the outbox and never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailIntent {
    /// Recipient address.
    pub to: String,
    /// Which mail.
    pub template: MailTemplate,
    /// Values substituted into the template.
    pub values: BTreeMap<String, String>,
}

impl fmt::Debug for MailIntent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailIntent")
            .field("template", &self.template)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A rendered message, ready for a transport.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

impl fmt::Debug for EmailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies carry links and codes: never printed.
        f.debug_struct("EmailMessage")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later (server down, timeout, 4xx SMTP reply).
    #[error("temporary delivery failure: {0}")]
    Transient(String),
    /// Retrying cannot help (invalid recipient, 5xx SMTP reply).
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

/// Port: turns an intent into a message (templates).
pub trait MailRenderer: Send + Sync {
    /// Render; fails only on a broken template.
    fn render(&self, intent: &MailIntent) -> Result<EmailMessage, crate::error::AdapterError>;
}

/// Port: delivers a message (SMTP, a development file drop ...).
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Send one message.
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError>;
}
