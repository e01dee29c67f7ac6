//! The composition root: [`AuthCore`] wires the ports into the shared pieces (event
//! recorder, guard, sign-in) and the services of each use case, each holding only the
//! ports it uses.

use std::fmt;
use std::sync::Arc;

use crate::flows::MailboxFlows;
use crate::guard::Guard;
use crate::jwt::TokenIssuer;
use crate::mfa::MfaService;
use crate::operators::OperatorService;
use crate::outbox::Outgoing;
use crate::passkeys::PasskeyService;
use crate::record::Recorder;
use crate::service::{AuthSettings, PasswordSessions, Ports};
use crate::sign_in::SignIn;
use crate::webhooks::WebhookService;
use crate::worker::OutboxWorker;

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

impl AuthCore {
    /// Wire the services.
    pub fn new(ports: Ports, settings: AuthSettings) -> Self {
        let settings = Arc::new(settings);
        let outgoing = Outgoing::new(ports.sealer.clone(), ports.rng.clone(), &settings.email);
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
            settings: settings.clone(),
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
            settings: settings.clone(),
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
            settings: settings.clone(),
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
            settings: settings.clone(),
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
            settings: settings.clone(),
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
            settings: settings.clone(),
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
