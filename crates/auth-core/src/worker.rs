//! The outbox worker: carries out due outbox entries (mail, SMS, webhook deliveries, and
//! the deferred halves of requests that must not reveal whether an account exists), retries
//! failures on their schedule and gives up on permanent ones. The flows only write jobs
//! (`Outgoing::seal`); this module is the one that reaches the mailer, the SMS
//! transport and the webhook sender.

use secrecy::ExposeSecret;

use crate::error::{AuthError, AuthResult};
use crate::flows::code_hash;
use crate::mail::{DeliveryError, MailTemplate};
use crate::model::{NewOneTimeToken, OneTimeTokenKind, UserId};
use crate::opaque;
use crate::outbox::{OUTBOX_CONTEXT, OutboxJob, OutboxMessage, minutes};
use crate::random::random_bytes;

/// The outbox worker: claims due jobs and carries them out (mail, SMS, webhook deliveries, the lookups of requests that must not reveal whether an account exists).
#[derive(Clone)]
pub struct OutboxWorker {
    pub(crate) clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub(crate) mailer: std::sync::Arc<dyn crate::mail::Mailer>,
    pub(crate) one_time: std::sync::Arc<dyn crate::ports::OneTimeTokenStore>,
    pub(crate) outbox: std::sync::Arc<dyn crate::ports::OutboxStore>,
    pub(crate) renderer: std::sync::Arc<dyn crate::mail::MailRenderer>,
    pub(crate) rng: std::sync::Arc<dyn crate::random::RandomSource>,
    pub(crate) sealer: std::sync::Arc<crate::secret_box::SecretBox>,
    pub(crate) sms: Option<std::sync::Arc<dyn crate::sms::SmsSender>>,
    pub(crate) users: std::sync::Arc<dyn crate::ports::UserStore>,
    pub(crate) outgoing: crate::outbox::Outgoing,
    pub(crate) email: crate::flows::EmailSettings,
    pub(crate) hooks: crate::webhooks::WebhookService,
    pub(crate) mfa_service: crate::mfa::MfaService,
}

impl std::fmt::Debug for OutboxWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxWorker").finish_non_exhaustive()
    }
}

impl OutboxWorker {
    /// Carry out up to `limit` due outbox entries; returns how many were claimed.
    pub async fn process_outbox(&self, limit: usize) -> AuthResult<usize> {
        let now = self.clock.now();
        let lease_until = now + self.email.lease;
        let batch = self.outbox.claim_due(now, lease_until, limit).await?;
        let claimed = batch.len();
        for entry in batch {
            let outcome = self.carry_out(&entry).await;
            let now = self.clock.now();
            match outcome {
                Ok(()) => self.outbox.mark_done(entry.id, now).await?,
                Err(failure) => {
                    let s = &self.email;
                    // Webhooks have their own schedule (more attempts, longer delays).
                    let (give_up, retry_at) = if entry.kind == crate::webhooks::JOB_KIND {
                        let next = (!failure.permanent)
                            .then(|| self.hooks.webhook_retry_at(entry.attempts, now))
                            .flatten();
                        (next.is_none(), next)
                    } else {
                        let give_up =
                            failure.permanent || now - entry.created_at >= s.give_up_after;
                        let retry_at = (!give_up).then(|| {
                            let exp = u32::try_from(entry.attempts.clamp(1, 20) - 1).unwrap_or(0);
                            now + (s.retry_base_delay * 2i32.pow(exp)).min(s.retry_max_delay)
                        });
                        (give_up, retry_at)
                    };
                    if give_up {
                        tracing::error!(id = %entry.id, kind = %entry.kind, attempts = entry.attempts, error = %failure.reason, "outbox entry given up");
                    } else {
                        tracing::warn!(id = %entry.id, kind = %entry.kind, attempts = entry.attempts, error = %failure.reason, "outbox entry failed; will retry");
                    }
                    self.outbox
                        .mark_failed(entry.id, &failure.reason, retry_at, now)
                        .await?;
                }
            }
        }
        Ok(claimed)
    }

    async fn carry_out(&self, entry: &OutboxMessage) -> Result<(), Failure> {
        let plain = self
            .sealer
            .open(OUTBOX_CONTEXT, &entry.payload)
            .map_err(|e| Failure::permanent(e.to_string()))?;
        let job: OutboxJob = serde_json::from_slice(&plain)
            .map_err(|e| Failure::permanent(format!("unreadable job: {e}")))?;
        let now = self.clock.now();
        let s = &self.email;
        match job {
            OutboxJob::Mail(intent) => {
                let message = self
                    .renderer
                    .render(&intent)
                    .map_err(|e| Failure::permanent(e.to_string()))?;
                self.mailer.send(&message).await.map_err(|e| match e {
                    DeliveryError::Permanent(r) => Failure::permanent(r),
                    DeliveryError::Transient(r) => Failure::transient(r),
                })?;
                tracing::info!(id = %entry.id, template = ?intent.template, "mail delivered");
                Ok(())
            }
            OutboxJob::PasswordResetRequested { email } => {
                let Some(user) = self
                    .users
                    .credentials_by_email(&email)
                    .await
                    .map_err(Failure::from)?
                else {
                    return Ok(());
                };
                let token = opaque::generate(self.rng.as_ref());
                let record = NewOneTimeToken {
                    token_hash: opaque::hash(token.expose_secret()),
                    kind: OneTimeTokenKind::PasswordReset,
                    user_id: Some(user.user.id),
                    email: email.clone(),
                    created_at: now,
                    expires_at: now + s.reset_ttl,
                    redirect_to: None,
                };
                let mail = self
                    .outgoing
                    .mail(
                        &user.user.email,
                        MailTemplate::PasswordReset,
                        &[
                            ("link", self.outgoing.link(&s.reset_path, &token)),
                            ("name", user.user.name.clone().unwrap_or_default()),
                            ("expires_in_minutes", minutes(s.reset_ttl)),
                        ],
                        now,
                    )
                    .map_err(Failure::from)?;
                self.one_time
                    .issue_one_time_token(&record, &mail)
                    .await
                    .map_err(Failure::from)
            }
            OutboxJob::MagicLinkRequested { email, redirect_to } => {
                let Some((user_id, to, name)) = self.passwordless_target(&email).await? else {
                    return Ok(());
                };
                let token = opaque::generate(self.rng.as_ref());
                let record = NewOneTimeToken {
                    token_hash: opaque::hash(token.expose_secret()),
                    kind: OneTimeTokenKind::MagicLink,
                    user_id,
                    email: email.clone(),
                    created_at: now,
                    expires_at: now + s.magic_link_ttl,
                    redirect_to,
                };
                let values = [
                    ("link", self.outgoing.link(&s.magic_link_path, &token)),
                    ("name", name),
                    ("expires_in_minutes", minutes(s.magic_link_ttl)),
                ];
                let mail = self
                    .outgoing
                    .mail(&to, MailTemplate::MagicLink, &values, now)
                    .map_err(Failure::from)?;
                self.one_time
                    .issue_one_time_token(&record, &mail)
                    .await
                    .map_err(Failure::from)
            }
            OutboxJob::EmailOtpRequested { email } => {
                let Some((user_id, to, name)) = self.passwordless_target(&email).await? else {
                    return Ok(());
                };
                let n = u32::from_be_bytes(random_bytes::<4>(self.rng.as_ref())) % 1_000_000;
                let code = format!("{n:06}");
                let record = NewOneTimeToken {
                    token_hash: code_hash(&email, &code),
                    kind: OneTimeTokenKind::EmailOtp,
                    user_id,
                    email: email.clone(),
                    created_at: now,
                    expires_at: now + s.otp_ttl,
                    redirect_to: None,
                };
                let values = [
                    ("code", code),
                    ("name", name),
                    ("expires_in_minutes", minutes(s.otp_ttl)),
                ];
                let mail = self
                    .outgoing
                    .mail(&to, MailTemplate::EmailOtp, &values, now)
                    .map_err(Failure::from)?;
                self.one_time
                    .issue_one_time_token(&record, &mail)
                    .await
                    .map_err(Failure::from)
            }
            OutboxJob::Webhook(job) => self
                .hooks
                .deliver_webhook(entry.attempts, job)
                .await
                .map_err(|(permanent, reason)| Failure { permanent, reason }),
            OutboxJob::Sms { to, body } => {
                let Some(sms) = &self.sms else {
                    return Err(Failure::permanent("no SMS transport is configured"));
                };
                sms.send(&to, &body).await.map_err(|e| match e {
                    DeliveryError::Permanent(r) => Failure::permanent(r),
                    DeliveryError::Transient(r) => Failure::transient(r),
                })?;
                tracing::info!(id = %entry.id, "SMS delivered");
                Ok(())
            }
            OutboxJob::SmsOtpRequested { phone } => self
                .mfa_service
                .issue_sms_sign_in_code(&phone)
                .await
                .map_err(Failure::from),
        }
    }

    /// Who a passwordless request is for: (user id or `None` for a sign-up, address, name);
    /// `None` when the address is unknown and sign-up by link or code is off.
    async fn passwordless_target(
        &self,
        email: &str,
    ) -> Result<Option<(Option<UserId>, String, String)>, Failure> {
        match self
            .users
            .credentials_by_email(email)
            .await
            .map_err(Failure::from)?
        {
            Some(c) => Ok(Some((
                Some(c.user.id),
                c.user.email,
                c.user.name.unwrap_or_default(),
            ))),
            None if self.email.passwordless_signup => {
                Ok(Some((None, email.to_owned(), String::new())))
            }
            None => Ok(None),
        }
    }
}

/// Why carrying out an outbox entry failed.
struct Failure {
    permanent: bool,
    reason: String,
}

impl Failure {
    fn permanent(reason: impl Into<String>) -> Self {
        Self {
            permanent: true,
            reason: reason.into(),
        }
    }

    fn transient(reason: impl Into<String>) -> Self {
        Self {
            permanent: false,
            reason: reason.into(),
        }
    }
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Self::transient(e.to_string())
    }
}
