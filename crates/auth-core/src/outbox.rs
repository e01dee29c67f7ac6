//! The durable outbox: work that must happen after a state change (mail to send, a request
//! to serve without revealing whether an account exists), written in the same transaction
//! as the change and carried out by a background worker with retries.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::mail::MailIntent;

/// What an outbox entry asks for. Sealed at rest: it may carry links with tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum OutboxJob {
    /// Render and deliver a mail.
    Mail(MailIntent),
    /// Someone asked for a password reset for `email` (may not exist).
    PasswordResetRequested {
        /// Canonical email.
        email: String,
    },
    /// Someone asked for a magic link for `email` (may not exist).
    MagicLinkRequested {
        /// Canonical email.
        email: String,
        /// Where the link should lead, already checked against the allow-list.
        redirect_to: Option<String>,
    },
    /// Someone asked for a one-time sign-in code for `email` (may not exist).
    EmailOtpRequested {
        /// Canonical email.
        email: String,
    },
    /// Deliver a signed webhook message to one endpoint.
    Webhook(crate::webhooks::WebhookJob),
    /// Send a text message (it carries a code: sealed like everything here).
    Sms {
        /// E.164 number.
        to: String,
        /// Message text.
        body: String,
    },
    /// Someone asked for a sign-in code by SMS for `phone` (may belong to nobody).
    SmsOtpRequested {
        /// E.164 number.
        phone: String,
    },
}

impl fmt::Debug for OutboxJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

impl OutboxJob {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mail(_) => "mail",
            Self::PasswordResetRequested { .. } => "password_reset_requested",
            Self::MagicLinkRequested { .. } => "magic_link_requested",
            Self::EmailOtpRequested { .. } => "email_otp_requested",
            Self::Webhook(_) => crate::webhooks::JOB_KIND,
            Self::Sms { .. } => "sms",
            Self::SmsOtpRequested { .. } => "sms_otp_requested",
        }
    }
}

/// An entry about to be written.
#[derive(Clone, PartialEq, Eq)]
pub struct NewOutboxMessage {
    /// Identifier.
    pub id: Uuid,
    /// [`OutboxJob::kind`], in clear for operators.
    pub kind: String,
    /// The sealed [`OutboxJob`].
    pub payload: Vec<u8>,
    /// When it was written; it is due at once.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for NewOutboxMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewOutboxMessage")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// An entry claimed by a worker.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Identifier.
    pub id: Uuid,
    /// Job kind.
    pub kind: String,
    /// The sealed job.
    pub payload: Vec<u8>,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for OutboxMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxMessage")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
