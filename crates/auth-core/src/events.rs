//! Security events: what happened to whom, emitted by the use cases for the audit trail.
//! They carry identifiers and reasons, never a password, token or code.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{ClientInfo, SessionId, UserId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An account was created.
    SignedUp,
    /// A password sign-in succeeded.
    LoginSucceeded,
    /// A password sign-in failed (`reason` says why).
    LoginFailed,
    /// A rotated refresh token came back after the grace window; its session was revoked.
    RefreshTokenReuseDetected,
    /// Sessions were ended by their user.
    LoggedOut,
    /// A session was revoked through token revocation or the sessions list.
    SessionRevoked,
    /// A verification link was issued.
    VerificationSent,
    /// An email address was confirmed.
    EmailVerified,
    /// A password reset was asked for (the account may not exist).
    PasswordResetRequested,
    /// A password was reset with a link; every session ended.
    PasswordReset,
    /// A password was changed while signed in; every other session ended.
    PasswordChanged,
    /// A sign-in by magic link.
    MagicLinkSignIn,
    /// A sign-in by email code.
    EmailCodeSignIn,
    /// A wrong email code was presented.
    EmailCodeFailed,
    /// Repeated failed sign-ins locked an identifier.
    AccountLocked,
    /// An administrator created an account (or the CLI created an administrator).
    UserCreated,
    /// An administrator changed an account's email, name or verified flag.
    UserUpdated,
    /// An administrator disabled an account; its sessions were revoked.
    UserDisabled,
    /// An administrator enabled an account again.
    UserEnabled,
    /// An administrator deleted an account.
    UserDeleted,
    /// An administrator locked an account's sign-in.
    UserLocked,
    /// An administrator lifted an account's sign-in lock.
    UserUnlocked,
    /// A role was created.
    RoleCreated,
    /// A role's capabilities or description changed.
    RoleUpdated,
    /// A role was deleted.
    RoleDeleted,
    /// A role was given to a user.
    RoleAssigned,
    /// A role was taken from a user.
    RoleRemoved,
    /// A webhook endpoint was created.
    WebhookCreated,
    /// A webhook endpoint was changed (URL, event types, enabled).
    WebhookUpdated,
    /// A webhook endpoint was deleted.
    WebhookDeleted,
    /// A webhook endpoint's signing secret was rotated.
    WebhookSecretRotated,
    /// The server disabled a webhook endpoint that kept failing.
    WebhookEndpointDisabled,
    /// A sign-in through an external identity provider.
    SocialSignIn,
    /// An external identity was linked to an account.
    IdentityLinked,
    /// An external identity was unlinked from an account.
    IdentityUnlinked,
    /// A second factor was activated.
    MfaFactorAdded,
    /// A second factor was removed.
    MfaFactorRemoved,
    /// A second factor was verified (sign-in or step-up).
    MfaVerified,
    /// A wrong second-factor code was presented.
    MfaFailed,
    /// A recovery code was used.
    RecoveryCodeUsed,
    /// The recovery codes were replaced by new ones.
    RecoveryCodesRegenerated,
    /// A passkey was registered.
    PasskeyAdded,
    /// A passkey was deleted.
    PasskeyRemoved,
    /// A sign-in with a passkey.
    PasskeySignIn,
    /// A passkey ceremony failed (`registration`, `assertion`, `counter_regression`).
    PasskeyFailed,
    /// A sign-in by SMS code.
    SmsCodeSignIn,
}

/// One security event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityEvent {
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at: DateTime<Utc>,
    /// The account concerned, when known.
    pub user_id: Option<UserId>,
    /// The session concerned, when any.
    pub session_id: Option<SessionId>,
    /// Where the request came from, when known.
    pub client: Option<ClientInfo>,
    /// A short machine-readable reason or detail (`wrong_password`, `scope=all` ...), or a
    /// small JSON object.
    pub detail: Option<String>,
    /// Who acted when it was not the user concerned (an administrator).
    pub actor: Option<UserId>,
}

/// Port: who hears of an event once the change that caused it is committed (the log,
/// metrics). The durable record (audit row, webhook deliveries) is not written here: the
/// stores write it in the change's transaction ([`crate::audit::Recorded`]). Observing
/// must not fail the use case: sinks log their own errors.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Observe one committed event.
    async fn record(&self, event: SecurityEvent);
}

/// Writes events to the log, target `audit`, one structured line each.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEventSink;

#[async_trait]
impl EventSink for LogEventSink {
    async fn record(&self, e: SecurityEvent) {
        let user = e.user_id.map(|u| u.to_string()).unwrap_or_default();
        let session = e.session_id.map(|s| s.to_string()).unwrap_or_default();
        let ip = e
            .client
            .as_ref()
            .and_then(|c| c.ip.clone())
            .unwrap_or_default();
        let detail = e.detail.unwrap_or_default();
        let actor = e.actor.map(|u| u.to_string()).unwrap_or_default();
        tracing::info!(target: "audit", event = ?e.kind, user_id = %user, session_id = %session, ip = %ip, detail = %detail, actor_id = %actor, "security event");
    }
}
