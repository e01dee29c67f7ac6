//! The durable outbox: work that must happen after a state change (mail to send, a request
//! to serve without revealing whether an account exists), written in the same transaction
//! as the change and carried out by a background worker with retries.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AuthError, AuthResult};
use crate::mail::{MailIntent, MailTemplate};
use crate::random::RandomSource;
use crate::secret_box::SecretBox;

/// The sealing context of outbox jobs.
pub(crate) const OUTBOX_CONTEXT: &[u8] = b"auth-core/outbox/v1";

/// Where the token goes in links (`app.token_placement`: `query` or `fragment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenPlacement {
    /// `...?token=...`
    #[default]
    Query,
    /// `...#token=...` (never sent to servers or logged by proxies).
    Fragment,
}

/// What goes out through the outbox, ready to be written with the change that causes it:
/// sealed jobs, mails with the application's name and address, links that carry a token.
#[derive(Clone)]
pub(crate) struct Outgoing {
    sealer: Arc<SecretBox>,
    rng: Arc<dyn RandomSource>,
    app_name: String,
    app_url: String,
    token_placement: TokenPlacement,
}

impl Outgoing {
    pub(crate) fn new(
        sealer: Arc<SecretBox>,
        rng: Arc<dyn RandomSource>,
        (app_name, app_url): (&str, &str),
        token_placement: TokenPlacement,
    ) -> Self {
        Self {
            sealer,
            rng,
            app_name: app_name.to_owned(),
            app_url: app_url.to_owned(),
            token_placement,
        }
    }

    /// `job` sealed as an outbox entry written at `now`.
    pub(crate) fn seal(&self, job: &OutboxJob, now: DateTime<Utc>) -> AuthResult<NewOutboxMessage> {
        let json = serde_json::to_vec(job).map_err(AuthError::internal)?;
        let payload = self.sealer.seal(self.rng.as_ref(), OUTBOX_CONTEXT, &json)?;
        Ok(NewOutboxMessage {
            id: Uuid::now_v7(),
            kind: job.kind().to_owned(),
            payload,
            created_at: now,
        })
    }

    /// A mail of `template` to `to`, sealed; `email`, `name`, `app_name` and `app_url` are
    /// always among its values.
    pub(crate) fn mail(
        &self,
        to: &str,
        template: MailTemplate,
        values: &[(&str, String)],
        now: DateTime<Utc>,
    ) -> AuthResult<NewOutboxMessage> {
        let mut map: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        map.entry("email".into()).or_insert_with(|| to.to_owned());
        map.entry("name".into()).or_default();
        map.insert("app_name".into(), self.app_name.clone());
        map.insert("app_url".into(), self.app_url.clone());
        self.seal(
            &OutboxJob::Mail(MailIntent {
                to: to.to_owned(),
                template,
                values: map,
            }),
            now,
        )
    }

    /// The application's `path` with `token` where the settings place it.
    pub(crate) fn link(&self, path: &str, token: &SecretString) -> String {
        let sep = match self.token_placement {
            TokenPlacement::Query if path.contains('?') => '&',
            TokenPlacement::Query => '?',
            TokenPlacement::Fragment => '#',
        };
        format!("{}{path}{sep}token={}", self.app_url, token.expose_secret())
    }
}

/// A duration as whole minutes for a mail, at least 1.
pub(crate) fn minutes(d: chrono::Duration) -> String {
    d.num_minutes().max(1).to_string()
}

/// The outbox kind of webhook deliveries.
pub const JOB_KIND: &str = "webhook";

/// What the outbox carries for one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookJob {
    /// The endpoint.
    pub endpoint_id: Uuid,
    /// `webhook-id`.
    pub message_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// The JSON body, exactly as signed.
    pub body: String,
}

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
    Webhook(WebhookJob),
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
            Self::Webhook(_) => JOB_KIND,
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
