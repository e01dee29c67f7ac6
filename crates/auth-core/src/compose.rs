//! The composition root: [`AuthCore`] wires the ports into the shared pieces (event
//! recorder, guard, sign-in) and the services of each use case, each holding only the
//! ports it uses.

use std::fmt;
use std::sync::Arc;

use crate::audit::AuditStore;
use crate::clock::{Clock, SystemClock};
use crate::events::{EventSink, LogEventSink};
use crate::factors::MfaStore;
use crate::flows::MailboxFlows;
use crate::guard::Guard;
use crate::guard::{BreachedPasswords, CaptchaVerifier, LockoutStore, RateLimitStore};
use crate::jwt::TokenIssuer;
use crate::mail::{MailRenderer, Mailer};
use crate::mfa::MfaService;
use crate::operators::OperatorService;
use crate::operators::OperatorStore;
use crate::outbox::Outgoing;
use crate::passkeys::PasskeyService;
use crate::passkeys::{PasskeyCeremonies, PasskeyStore};
use crate::password::{Argon2Hasher, HashingConfig, PasswordHasher, PasswordPolicy};
use crate::ports::{OneTimeTokenStore, OutboxStore, WebhookStore};
use crate::ports::{SessionStore, UserStore};
use crate::random::OsRandom;
use crate::random::RandomSource;
use crate::record::Recorder;
use crate::secret_box::SecretBox;
use crate::service::{IntrospectionClient, PasswordSessions};
use crate::sign_in::SessionPolicy;
use crate::sign_in::SignIn;
use crate::sms::SmsSender;
use crate::unconfigured::Unconfigured;
use crate::webhooks::WebhookSender;
use crate::webhooks::WebhookService;
use crate::worker::OutboxWorker;

/// The rules of the service.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Token and session lifetimes.
    pub sessions: SessionPolicy,
    /// Password rules.
    pub password_policy: PasswordPolicy,
    /// Clients allowed to introspect tokens.
    pub introspection_clients: Vec<IntrospectionClient>,
    /// Roles given to every new account.
    pub default_roles: Vec<String>,
    /// Email verification, recovery and passwordless sign-in.
    pub email: crate::flows::EmailSettings,
    /// Rate limits, lockout, CAPTCHA and password strength.
    pub guard: crate::guard::GuardSettings,
    /// Roles, administration and the audit trail.
    pub operators: crate::operators::OperatorSettings,
    /// Webhook URL rules, retries and secret rotation.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Multi-factor authentication.
    pub mfa: crate::mfa::MfaSettings,
}

/// The adapters the service runs on.
#[derive(Clone)]
pub struct Ports {
    /// User accounts.
    pub users: Arc<dyn UserStore>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Access token signing and verification.
    pub tokens: Arc<dyn TokenIssuer>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub rng: Arc<dyn RandomSource>,
    /// Security events (the audit trail).
    pub events: Arc<dyn crate::events::EventSink>,
    /// Rate-limit counters.
    pub rate_limits: Arc<dyn crate::guard::RateLimitStore>,
    /// Failed sign-ins and locks.
    pub lockouts: Arc<dyn crate::guard::LockoutStore>,
    /// CAPTCHA verification, when enabled.
    pub captcha: Option<Arc<dyn crate::guard::CaptchaVerifier>>,
    /// Breached-password check, when enabled.
    pub breached: Option<Arc<dyn crate::guard::BreachedPasswords>>,
    /// One-time tokens and the account changes they unlock.
    pub one_time: Arc<dyn crate::ports::OneTimeTokenStore>,
    /// The durable outbox.
    pub outbox: Arc<dyn crate::ports::OutboxStore>,
    /// Seals outbox payloads at rest.
    pub sealer: Arc<crate::secret_box::SecretBox>,
    /// Mail templates.
    pub renderer: Arc<dyn crate::mail::MailRenderer>,
    /// Mail delivery.
    pub mailer: Arc<dyn crate::mail::Mailer>,
    /// Roles and the administration of accounts.
    pub operators: Arc<dyn crate::operators::OperatorStore>,
    /// The audit trail (read side; events are written through `events`).
    pub audit: Arc<dyn crate::audit::AuditStore>,
    /// Webhook endpoints and delivery attempts.
    pub webhooks: Arc<dyn crate::webhooks::WebhookStore>,
    /// Outbound HTTP of webhook deliveries.
    pub webhook_sender: Arc<dyn crate::webhooks::WebhookSender>,
    /// Second factors, recovery codes, MFA challenges and session step-up.
    pub mfa: Arc<dyn crate::mfa::MfaStore>,
    /// Passkeys and passkey ceremonies in progress.
    pub passkeys: Arc<dyn crate::passkeys::PasskeyStore>,
    /// WebAuthn ceremonies, when passkeys are enabled.
    pub passkey_ceremonies: Option<Arc<dyn crate::passkeys::PasskeyCeremonies>>,
    /// Text messages, when SMS is configured.
    pub sms: Option<Arc<dyn crate::sms::SmsSender>>,
}

/// The core of the auth server: one service per use case over one set of adapters.
pub struct AuthCore {
    pub(crate) ports: Ports,
    pub(crate) settings: Arc<AuthSettings>,
    pub(crate) recorder: Recorder,
    pub(crate) guard: Guard,
    pub(crate) sign_in: SignIn,
    sessions: PasswordSessions,
    mailbox: MailboxFlows,
    mfa: MfaService,
    operators: OperatorService,
    passkeys: PasskeyService,
    webhooks: WebhookService,
    worker: OutboxWorker,
}

impl fmt::Debug for AuthCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why [`AuthCoreBuilder::build`] refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A port that has no sensible default was not given.
    #[error("auth-core builder: `{0}` is required")]
    Missing(&'static str),
    /// The default password hasher refused its configuration.
    #[error("auth-core builder: password hashing: {0}")]
    Hashing(crate::error::ConfigError),
}

/// Builds an [`AuthCore`] from the ports an embedding has, with defaults for the rest.
///
/// Required: `users`, `sessions`, `one_time`, `outbox` (the stores sign-up and sign-in
/// write), `tokens`, `sealer` (the key of sealed outbox jobs must outlive a restart),
/// `renderer` and `mailer` (sign-up mails a verification link).
///
/// Defaults: Argon2id with [`HashingConfig::default`], the system clock, the OS random
/// source, events to the log ([`LogEventSink`]); with the `memory` feature, rate-limit and
/// lockout counters in process memory (right for one node; a cluster gives shared stores);
/// no CAPTCHA, breach check, SMS or passkey ceremonies; and [`Unconfigured`] for the stores
/// of second factors, passkeys, administration, the audit trail and webhooks: nothing is
/// found there, and a use case that would write there answers
/// [`crate::AuthError::Unavailable`].
#[derive(Default)]
#[must_use]
pub struct AuthCoreBuilder {
    users: Option<Arc<dyn UserStore>>,
    sessions: Option<Arc<dyn SessionStore>>,
    one_time: Option<Arc<dyn OneTimeTokenStore>>,
    outbox: Option<Arc<dyn OutboxStore>>,
    tokens: Option<Arc<dyn TokenIssuer>>,
    sealer: Option<Arc<SecretBox>>,
    renderer: Option<Arc<dyn MailRenderer>>,
    mailer: Option<Arc<dyn Mailer>>,
    hasher: Option<Arc<dyn PasswordHasher>>,
    clock: Option<Arc<dyn Clock>>,
    rng: Option<Arc<dyn RandomSource>>,
    events: Option<Arc<dyn EventSink>>,
    rate_limits: Option<Arc<dyn RateLimitStore>>,
    lockouts: Option<Arc<dyn LockoutStore>>,
    captcha: Option<Arc<dyn CaptchaVerifier>>,
    breached: Option<Arc<dyn BreachedPasswords>>,
    operators: Option<Arc<dyn OperatorStore>>,
    audit: Option<Arc<dyn AuditStore>>,
    webhooks: Option<Arc<dyn WebhookStore>>,
    webhook_sender: Option<Arc<dyn WebhookSender>>,
    mfa: Option<Arc<dyn MfaStore>>,
    passkeys: Option<Arc<dyn PasskeyStore>>,
    passkey_ceremonies: Option<Arc<dyn PasskeyCeremonies>>,
    sms: Option<Arc<dyn SmsSender>>,
    settings: AuthSettings,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, port: Arc<$ty>) -> Self {
                self.$name = Some(port);
                self
            }
        )*
    };
}

impl AuthCoreBuilder {
    setters! {
        /// User accounts (required).
        users: dyn UserStore;
        /// Sessions and refresh tokens (required).
        sessions: dyn SessionStore;
        /// One-time tokens: verification, reset, magic links, codes (required).
        one_time: dyn OneTimeTokenStore;
        /// The durable outbox (required).
        outbox: dyn OutboxStore;
        /// Access-token signing and verification (required).
        tokens: dyn TokenIssuer;
        /// The key that seals outbox jobs at rest (required).
        sealer: SecretBox;
        /// Mail templates (required).
        renderer: dyn MailRenderer;
        /// Mail delivery (required).
        mailer: dyn Mailer;
        /// Password hashing (default: Argon2id, default parameters).
        hasher: dyn PasswordHasher;
        /// Time (default: the system clock).
        clock: dyn Clock;
        /// Randomness (default: the OS).
        rng: dyn RandomSource;
        /// Observers of committed events (default: the log).
        events: dyn EventSink;
        /// Rate-limit counters (default with `memory`: in process).
        rate_limits: dyn RateLimitStore;
        /// Failed sign-ins and locks (default with `memory`: in process).
        lockouts: dyn LockoutStore;
        /// CAPTCHA verification (default: none).
        captcha: dyn CaptchaVerifier;
        /// Breached-password check (default: none).
        breached: dyn BreachedPasswords;
        /// Roles and account administration (default: unconfigured).
        operators: dyn OperatorStore;
        /// The audit trail (default: unconfigured, rows not kept).
        audit: dyn AuditStore;
        /// Webhook endpoints and attempts (default: unconfigured, no endpoint).
        webhooks: dyn WebhookStore;
        /// Outbound HTTP of webhook deliveries (default: unconfigured).
        webhook_sender: dyn WebhookSender;
        /// Second factors (default: unconfigured, nobody has one).
        mfa: dyn MfaStore;
        /// Passkeys (default: unconfigured, nobody has one).
        passkeys: dyn PasskeyStore;
        /// WebAuthn ceremonies (default: none, passkeys off).
        passkey_ceremonies: dyn PasskeyCeremonies;
        /// Text messages (default: none, SMS off).
        sms: dyn SmsSender;
    }

    /// The rules (default: [`AuthSettings::default`]).
    pub fn settings(mut self, settings: AuthSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Wire the core, or say which required port is missing.
    pub fn build(self) -> Result<AuthCore, BuildError> {
        fn required<T: ?Sized>(
            port: Option<Arc<T>>,
            name: &'static str,
        ) -> Result<Arc<T>, BuildError> {
            port.ok_or(BuildError::Missing(name))
        }
        let hasher: Arc<dyn PasswordHasher> = match self.hasher {
            Some(h) => h,
            None => {
                Arc::new(Argon2Hasher::new(&HashingConfig::default()).map_err(BuildError::Hashing)?)
            }
        };
        let (rate_limits, lockouts) = counters(self.rate_limits, self.lockouts)?;
        let ports = Ports {
            users: required(self.users, "users")?,
            sessions: required(self.sessions, "sessions")?,
            one_time: required(self.one_time, "one_time")?,
            outbox: required(self.outbox, "outbox")?,
            tokens: required(self.tokens, "tokens")?,
            sealer: required(self.sealer, "sealer")?,
            renderer: required(self.renderer, "renderer")?,
            mailer: required(self.mailer, "mailer")?,
            hasher,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            rng: self.rng.unwrap_or_else(|| Arc::new(OsRandom)),
            events: self.events.unwrap_or_else(|| Arc::new(LogEventSink)),
            rate_limits,
            lockouts,
            captcha: self.captcha,
            breached: self.breached,
            operators: self.operators.unwrap_or_else(|| Arc::new(Unconfigured)),
            audit: self.audit.unwrap_or_else(|| Arc::new(Unconfigured)),
            webhooks: self.webhooks.unwrap_or_else(|| Arc::new(Unconfigured)),
            webhook_sender: self
                .webhook_sender
                .unwrap_or_else(|| Arc::new(Unconfigured)),
            mfa: self.mfa.unwrap_or_else(|| Arc::new(Unconfigured)),
            passkeys: self.passkeys.unwrap_or_else(|| Arc::new(Unconfigured)),
            passkey_ceremonies: self.passkey_ceremonies,
            sms: self.sms,
        };
        Ok(AuthCore::new(ports, self.settings))
    }
}

type Counters = (Arc<dyn RateLimitStore>, Arc<dyn LockoutStore>);

#[cfg(feature = "memory")]
fn counters(
    rate_limits: Option<Arc<dyn RateLimitStore>>,
    lockouts: Option<Arc<dyn LockoutStore>>,
) -> Result<Counters, BuildError> {
    let local = Arc::new(crate::memory::MemoryStore::new());
    Ok((
        rate_limits.unwrap_or_else(|| local.clone()),
        lockouts.unwrap_or(local),
    ))
}

#[cfg(not(feature = "memory"))]
fn counters(
    rate_limits: Option<Arc<dyn RateLimitStore>>,
    lockouts: Option<Arc<dyn LockoutStore>>,
) -> Result<Counters, BuildError> {
    Ok((
        rate_limits.ok_or(BuildError::Missing("rate_limits"))?,
        lockouts.ok_or(BuildError::Missing("lockouts"))?,
    ))
}

impl AuthCore {
    /// A builder with sensible defaults for every port but the stores an embedding owns
    /// ([`AuthCoreBuilder`]).
    pub fn builder() -> AuthCoreBuilder {
        AuthCoreBuilder::default()
    }

    /// Wire the services over a complete set of ports.
    pub fn new(ports: Ports, settings: AuthSettings) -> Self {
        let settings = Arc::new(settings);
        let outgoing = Outgoing::new(
            ports.sealer.clone(),
            ports.rng.clone(),
            (&settings.email.app_name, &settings.email.app_url),
            settings.email.token_placement,
        );
        let recorder = Recorder {
            webhooks: ports.webhooks.clone(),
            audit: ports.audit.clone(),
            events: ports.events.clone(),
            clock: ports.clock.clone(),
            outgoing: outgoing.clone(),
        };
        let guard = Guard {
            settings: settings.guard.clone(),
            password_policy: settings.password_policy.clone(),
            clock: ports.clock.clone(),
            rate_limits: ports.rate_limits.clone(),
            lockouts: ports.lockouts.clone(),
            captcha: ports.captcha.clone(),
            breached: ports.breached.clone(),
            outbox: ports.outbox.clone(),
            outgoing: outgoing.clone(),
            recorder: recorder.clone(),
        };
        let sign_in = SignIn {
            users: ports.users.clone(),
            sessions: ports.sessions.clone(),
            mfa: ports.mfa.clone(),
            tokens: ports.tokens.clone(),
            clock: ports.clock.clone(),
            rng: ports.rng.clone(),
            recorder: recorder.clone(),
            policy: settings.sessions.clone(),
            challenge_ttl: settings.mfa.challenge_ttl,
        };
        let password_sessions = crate::service::PasswordSessions {
            clock: ports.clock.clone(),
            hasher: ports.hasher.clone(),
            lockouts: ports.lockouts.clone(),
            operators: ports.operators.clone(),
            rng: ports.rng.clone(),
            sessions: ports.sessions.clone(),
            tokens: ports.tokens.clone(),
            users: ports.users.clone(),
            guard: guard.clone(),
            recorder: recorder.clone(),
            sign_in: sign_in.clone(),
            email: settings.email.clone(),
            guard_settings: settings.guard.clone(),
            introspection_clients: settings.introspection_clients.clone(),
            policy: settings.sessions.clone(),
        };
        let mailbox_flows = crate::flows::MailboxFlows {
            clock: ports.clock.clone(),
            hasher: ports.hasher.clone(),
            one_time: ports.one_time.clone(),
            outbox: ports.outbox.clone(),
            rng: ports.rng.clone(),
            users: ports.users.clone(),
            guard: guard.clone(),
            outgoing: outgoing.clone(),
            recorder: recorder.clone(),
            sign_in: sign_in.clone(),
            default_roles: settings.default_roles.clone(),
            email: settings.email.clone(),
            guard_settings: settings.guard.clone(),
            policy: settings.sessions.clone(),
        };
        let mfa_service = crate::mfa::MfaService {
            clock: ports.clock.clone(),
            mfa: ports.mfa.clone(),
            one_time: ports.one_time.clone(),
            outbox: ports.outbox.clone(),
            rng: ports.rng.clone(),
            sealer: ports.sealer.clone(),
            sms: ports.sms.clone(),
            users: ports.users.clone(),
            guard: guard.clone(),
            outgoing: outgoing.clone(),
            recorder: recorder.clone(),
            sign_in: sign_in.clone(),
            email: settings.email.clone(),
            guard_settings: settings.guard.clone(),
            mfa_settings: settings.mfa.clone(),
            policy: settings.sessions.clone(),
        };
        let operator_service = crate::operators::OperatorService {
            sign_in: sign_in.clone(),
            audit: ports.audit.clone(),
            clock: ports.clock.clone(),
            hasher: ports.hasher.clone(),
            lockouts: ports.lockouts.clone(),
            operators: ports.operators.clone(),
            sessions: ports.sessions.clone(),
            guard: guard.clone(),
            outgoing: outgoing.clone(),
            recorder: recorder.clone(),
            default_roles: settings.default_roles.clone(),
            guard_settings: settings.guard.clone(),
            operator_settings: settings.operators.clone(),
            policy: settings.sessions.clone(),
        };
        let passkey_service = crate::passkeys::PasskeyService {
            clock: ports.clock.clone(),
            passkey_ceremonies: ports.passkey_ceremonies.clone(),
            passkeys: ports.passkeys.clone(),
            rng: ports.rng.clone(),
            sealer: ports.sealer.clone(),
            users: ports.users.clone(),
            guard: guard.clone(),
            outgoing: outgoing.clone(),
            recorder: recorder.clone(),
            sign_in: sign_in.clone(),
        };
        let hooks = crate::webhooks::WebhookService {
            clock: ports.clock.clone(),
            rng: ports.rng.clone(),
            sealer: ports.sealer.clone(),
            webhook_sender: ports.webhook_sender.clone(),
            webhooks: ports.webhooks.clone(),
            recorder: recorder.clone(),
            webhook_settings: settings.webhooks.clone(),
        };
        let outbox_worker = crate::worker::OutboxWorker {
            clock: ports.clock.clone(),
            mailer: ports.mailer.clone(),
            one_time: ports.one_time.clone(),
            outbox: ports.outbox.clone(),
            renderer: ports.renderer.clone(),
            rng: ports.rng.clone(),
            sealer: ports.sealer.clone(),
            sms: ports.sms.clone(),
            users: ports.users.clone(),
            outgoing: outgoing.clone(),
            email: settings.email.clone(),
            hooks: hooks.clone(),
            mfa_service: mfa_service.clone(),
        };
        Self {
            ports,
            settings,
            recorder,
            guard,
            sign_in,
            sessions: password_sessions,
            mailbox: mailbox_flows,
            mfa: mfa_service,
            operators: operator_service,
            passkeys: passkey_service,
            webhooks: hooks,
            worker: outbox_worker,
        }
    }

    /// The same stores and adapters under another token issuer and other rules: a
    /// compatibility profile signs its own tokens and applies its own password rule,
    /// lifetimes and lockout without changing the canonical core.
    pub fn with_profile(&self, tokens: Arc<dyn TokenIssuer>, settings: AuthSettings) -> Self {
        let mut ports = self.ports.clone();
        ports.tokens = tokens;
        Self::new(ports, settings)
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The token issuer (for the JWK Set and discovery).
    pub fn tokens(&self) -> &dyn TokenIssuer {
        self.ports.tokens.as_ref()
    }

    /// Sign-in, refresh, sign-out, revocation, introspection, the profile and sessions.
    pub fn sessions(&self) -> &PasswordSessions {
        &self.sessions
    }

    /// Sign-up, verification, password reset and change, magic links, email codes.
    pub fn mailbox(&self) -> &MailboxFlows {
        &self.mailbox
    }

    /// Second factors, recovery codes, MFA challenges and step-up.
    pub fn mfa(&self) -> &MfaService {
        &self.mfa
    }

    /// Capabilities, account administration, roles and the audit trail.
    pub fn operators(&self) -> &OperatorService {
        &self.operators
    }

    /// Passkeys.
    pub fn passkeys(&self) -> &PasskeyService {
        &self.passkeys
    }

    /// Webhook endpoints and deliveries.
    pub fn webhooks(&self) -> &WebhookService {
        &self.webhooks
    }

    /// The outbox worker.
    pub fn worker(&self) -> &OutboxWorker {
        &self.worker
    }
}
