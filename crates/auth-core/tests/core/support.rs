use std::sync::Arc;

use auth_core::AuthCore;
use auth_core::clock::{Clock as _, ManualClock};
use auth_core::events::{EventKind, EventSink, SecurityEvent};
use auth_core::jwt::{JwtIssuer, KeySet, SigningAlgorithm};
use auth_core::mail::{DeliveryError, EmailMessage, MailIntent, MailRenderer, Mailer};
use auth_core::memory::MemoryStore;
use auth_core::model::{MailboxProof, UserId};
use auth_core::password::{Argon2Hasher, HashingConfig};
use auth_core::ports::UserStore as _;
use auth_core::random::OsRandom;
use auth_core::secret_box::SecretBox;
use auth_core::{AuthSettings, Ports};
use chrono::{TimeZone, Utc};
use std::sync::Mutex;

pub const ISSUER: &str = "https://auth.test";
pub const AUDIENCE: &str = "authenticated";

pub fn key_pem(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn ed25519_issuer() -> JwtIssuer {
    let keys = KeySet::from_private_pem(
        SigningAlgorithm::EdDSA,
        &key_pem("ed25519-private.pem"),
        None,
    )
    .unwrap();
    JwtIssuer::new(keys, ISSUER, AUDIENCE, 0)
}

/// Cheap Argon2 parameters: these tests are about rules, not hashing cost.
pub fn fast_hashing() -> HashingConfig {
    HashingConfig {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 4,
        max_waiting: 64,
    }
}

/// Renders an intent as `template` + `key=value` lines: enough to read links and codes.
pub struct PlainRenderer;

impl MailRenderer for PlainRenderer {
    fn render(&self, intent: &MailIntent) -> Result<EmailMessage, auth_core::error::AdapterError> {
        let text = intent
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(EmailMessage {
            to: intent.to.clone(),
            subject: intent.template.name().to_owned(),
            text,
            html: String::new(),
        })
    }
}

/// Keeps what it is asked to send; can be switched to failing.
#[derive(Default)]
pub struct RecordingMailer {
    pub sent: Mutex<Vec<EmailMessage>>,
    pub failing: Mutex<Option<DeliveryError>>,
}

#[async_trait::async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        if let Some(e) = self.failing.lock().unwrap().clone() {
            return Err(e);
        }
        self.sent.lock().unwrap().push(message.clone());
        Ok(())
    }
}

impl RecordingMailer {
    /// Messages sent to `to` with subject (template name) `template`.
    pub fn to(&self, to: &str, template: &str) -> Vec<EmailMessage> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to == to && m.subject == template)
            .cloned()
            .collect()
    }

    /// The value `key` in the last `template` mail to `to`.
    pub fn value(&self, to: &str, template: &str, key: &str) -> Option<String> {
        let last = self.to(to, template).pop()?;
        last.text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
    }

    /// The token of the link in the last `template` mail to `to`.
    pub fn token(&self, to: &str, template: &str) -> Option<String> {
        self.value(to, template, "link")?
            .split("token=")
            .nth(1)
            .map(str::to_owned)
    }
}

/// Keeps every security event.
#[derive(Default)]
pub struct RecordingEvents(pub Mutex<Vec<SecurityEvent>>);

#[async_trait::async_trait]
impl EventSink for RecordingEvents {
    async fn record(&self, event: SecurityEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl RecordingEvents {
    pub fn kinds(&self) -> Vec<EventKind> {
        self.0.lock().unwrap().iter().map(|e| e.kind).collect()
    }
}

/// Keeps every text message it is asked to send.
#[derive(Default)]
pub struct RecordingSms(pub Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl auth_core::sms::SmsSender for RecordingSms {
    async fn send(&self, to: &str, body: &str) -> Result<(), DeliveryError> {
        self.0
            .lock()
            .unwrap()
            .push((to.to_owned(), body.to_owned()));
        Ok(())
    }
}

impl RecordingSms {
    /// The 6-digit code of the last message to `to`.
    pub fn last_code(&self, to: &str) -> Option<String> {
        let sent = self.0.lock().unwrap();
        let (_, body) = sent.iter().rev().find(|(t, _)| t == to)?;
        body.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .map(str::to_owned)
    }
}

pub struct Harness {
    pub events: Arc<RecordingEvents>,
    pub service: AuthCore,
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
    pub mailer: Arc<RecordingMailer>,
    pub sms: Arc<RecordingSms>,
}

impl Harness {
    /// Run the outbox worker until nothing is due.
    pub async fn deliver(&self) {
        while self.service.worker().process_outbox(16).await.unwrap() > 0 {}
    }

    /// Mark the account's address proven by its own sign-up link, as its creator following the
    /// verification mail would: a later mail sign-in then keeps what the account set up.
    pub async fn verify_email(&self, id: UserId, email: &str) {
        self.store
            .mark_email_verified(id, email, MailboxProof::SignupLink, self.clock.now())
            .await
            .unwrap()
            .expect("an account with this address");
    }
}

pub fn harness_with(settings: AuthSettings, hashing: HashingConfig) -> Harness {
    harness_on(Arc::new(MemoryStore::new()), settings, hashing)
}

/// A harness over an existing store (a second configuration of the same data).
pub fn harness_on(
    store: Arc<MemoryStore>,
    settings: AuthSettings,
    hashing: HashingConfig,
) -> Harness {
    harness_with_ceremonies(store, settings, hashing, None)
}

/// A harness whose passkey ceremonies are `ceremonies` (an embedder's adapter).
pub fn harness_with_ceremonies(
    store: Arc<MemoryStore>,
    settings: AuthSettings,
    hashing: HashingConfig,
    ceremonies: Option<Arc<dyn auth_core::passkeys::PasskeyCeremonies>>,
) -> Harness {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap(),
    ));
    let mailer = Arc::new(RecordingMailer::default());
    let events = Arc::new(RecordingEvents::default());
    let sms = Arc::new(RecordingSms::default());
    let ports = Ports {
        users: store.clone(),
        sessions: store.clone(),
        hasher: Arc::new(Argon2Hasher::new(&hashing).unwrap()),
        tokens: Arc::new(ed25519_issuer()),
        clock: clock.clone(),
        rng: Arc::new(OsRandom),
        one_time: store.clone(),
        outbox: store.clone(),
        sealer: Arc::new(SecretBox::new(&[(1, [9; 32])]).unwrap()),
        renderer: Arc::new(PlainRenderer),
        mailer: mailer.clone(),
        events: events.clone(),
        rate_limits: store.clone(),
        lockouts: store.clone(),
        captcha: None,
        breached: None,
        operators: store.clone(),
        audit: store.clone(),
        webhooks: store.clone(),
        webhook_sender: Arc::new(UnreachableWebhooks),
        mfa: store.clone(),
        passkeys: store.clone(),
        passkey_ceremonies: ceremonies,
        sms: Some(sms.clone()),
    };
    Harness {
        events,
        service: AuthCore::new(ports, settings),
        store,
        clock,
        mailer,
        sms,
    }
}

pub fn harness() -> Harness {
    harness_with(AuthSettings::default(), fast_hashing())
}

/// A webhook sender for tests that configure no endpoint: any delivery fails.
pub struct UnreachableWebhooks;

#[async_trait::async_trait]
impl auth_core::webhooks::WebhookSender for UnreachableWebhooks {
    async fn post(
        &self,
        _: &str,
        _: &[(String, String)],
        _: &[u8],
    ) -> Result<u16, auth_core::error::AdapterError> {
        Err("no webhook receiver in core tests".into())
    }
}
