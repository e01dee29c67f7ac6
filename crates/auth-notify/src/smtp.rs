//! [`SmtpMailer`]: delivery over SMTP with lettre.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::mail::{DeliveryError, EmailMessage, Mailer};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, Error as SmtpError};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use tokio::runtime::Handle;

use crate::message;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain text. Only for a relay on localhost or a test server.
    None,
    /// Plain connection upgraded with STARTTLS, which is then required (usually port 587).
    #[default]
    StartTls,
    /// TLS from the first byte, "SMTPS" (usually port 465).
    Tls,
}

impl FromStr for SmtpTls {
    type Err = String;

    /// Parses `none`, `starttls` or `tls` (any case), as written in the configuration.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            other => Err(format!(
                "mail.smtp.tls: {other:?} is not one of \"none\", \"starttls\", \"tls\""
            )),
        }
    }
}

/// Where and how to send mail.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Server host name (also the name its TLS certificate must carry).
    pub host: String,
    /// Server port (25, 465, 587 ...).
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// User name for SMTP AUTH; no authentication when `None`.
    pub username: Option<String>,
    /// Password for SMTP AUTH; required when `username` is set.
    pub password: Option<SecretString>,
    /// Sender: `"Name <address@example.com>"` or `address@example.com`.
    pub from: String,
    /// Limit for one delivery, end to end: connecting, TLS, the SMTP dialogue. Past it the
    /// delivery is abandoned as transient (the server may still have accepted it).
    pub timeout: Duration,
}

/// Delivers mail to an SMTP server over a pool of connections (lettre, tokio, rustls).
///
/// The pool is created on the first [`Mailer::send`], on the tokio runtime running it:
/// construction needs no runtime. Use one `SmtpMailer` from one runtime (the outbox
/// worker's): pooled connections belong to the runtime that opened them. A delivery that
/// times out discards the pool (a connection abandoned mid-dialogue must not be reused).
pub struct SmtpMailer {
    builder: AsyncSmtpTransportBuilder,
    active: Mutex<Option<Active>>,
    from: Mailbox,
    deadline: Duration,
    endpoint: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("endpoint", &self.endpoint)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Validates `settings` (sender address, host, port, credentials, TLS set-up) and
    /// prepares the transport. Errors name the configuration key (`mail.from` ...).
    pub fn new(settings: SmtpSettings) -> Result<Self, String> {
        let from = message::parse_from(&settings.from)?;
        let host = settings.host.trim();
        if host.is_empty() {
            return Err("mail.smtp.host: must not be empty".to_owned());
        }
        if settings.port == 0 {
            return Err("mail.smtp.port: must not be 0".to_owned());
        }
        if settings.timeout.is_zero() {
            return Err("mail.smtp.timeout_secs: must be greater than zero".to_owned());
        }
        type Transport = AsyncSmtpTransport<Tokio1Executor>;
        let tls_error =
            |e: SmtpError| format!("mail.smtp.tls: cannot set up TLS for {host:?}: {e}");
        let mut builder = match settings.tls {
            SmtpTls::None => Transport::builder_dangerous(host),
            SmtpTls::StartTls => Transport::starttls_relay(host).map_err(tls_error)?,
            SmtpTls::Tls => Transport::relay(host).map_err(tls_error)?,
        }
        .port(settings.port)
        .timeout(Some(settings.timeout));
        match (settings.username, settings.password) {
            (Some(user), Some(password)) => {
                builder = builder
                    .credentials(Credentials::new(user, password.expose_secret().to_owned()));
            }
            (Some(_), None) => {
                return Err(
                    "mail.smtp.password: required when mail.smtp.username is set".to_owned(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "mail.smtp.username: required when mail.smtp.password is set".to_owned(),
                );
            }
            (None, None) => {}
        }
        let scheme = match settings.tls {
            SmtpTls::None => "smtp",
            SmtpTls::StartTls => "smtp+starttls",
            SmtpTls::Tls => "smtps",
        };
        Ok(Self {
            builder,
            active: Mutex::new(None),
            from,
            deadline: settings.timeout,
            endpoint: format!("{scheme}://{host}:{}", settings.port),
        })
    }

    /// The sender put in the `From` header and the envelope.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Connects, greets and disconnects: a start-up or health check of the settings.
    pub async fn test_connection(&self) -> Result<(), DeliveryError> {
        let transport = self.transport();
        match tokio::time::timeout(self.deadline, transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(DeliveryError::Transient(format!(
                "SMTP server {} did not answer as expected",
                self.endpoint
            ))),
            Ok(Err(e)) => Err(classify(&self.endpoint, &e)),
            Err(_) => {
                self.discard(&transport);
                Err(self.timed_out())
            }
        }
    }

    /// The pooled transport, created on first use on the current runtime.
    fn transport(&self) -> Arc<AsyncSmtpTransport<Tokio1Executor>> {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(active) = active.as_ref() {
            return Arc::clone(&active.transport);
        }
        let transport = Arc::new(self.builder.clone().build());
        *active = Some(Active {
            transport: Arc::clone(&transport),
            handle: Handle::current(),
        });
        transport
    }

    /// Forgets `transport` (if still current): the next delivery starts a fresh pool, and
    /// this one is shut down once the deliveries still using it are over.
    fn discard(&self, transport: &Arc<AsyncSmtpTransport<Tokio1Executor>>) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if active
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(&a.transport, transport))
        {
            *active = None;
        }
    }

    fn timed_out(&self) -> DeliveryError {
        DeliveryError::Transient(format!(
            "SMTP server {} did not complete the delivery within {:?}",
            self.endpoint, self.deadline
        ))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let email = message::build(&self.from, message)?;
        let transport = self.transport();
        match tokio::time::timeout(self.deadline, transport.send(email)).await {
            Ok(Ok(_response)) => {
                tracing::debug!(endpoint = %self.endpoint, "mail accepted by the SMTP server");
                Ok(())
            }
            Ok(Err(e)) => Err(classify(&self.endpoint, &e)),
            Err(_) => {
                self.discard(&transport);
                Err(self.timed_out())
            }
        }
    }
}

impl Drop for SmtpMailer {
    fn drop(&mut self) {
        // Dropping lettre's pool spawns a clean-up task: outside a runtime that would panic,
        // so enter the runtime the pool was made on (a no-op spawn once that has stopped).
        let active = self
            .active
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Active { transport, handle }) = active else {
            return;
        };
        let _entered = Handle::try_current().is_err().then(|| handle.enter());
        drop(transport);
    }
}

/// The pool in use and the runtime it was made on.
struct Active {
    transport: Arc<AsyncSmtpTransport<Tokio1Executor>>,
    handle: Handle,
}

/// SMTP reply codes that say the *account* is wrong (authentication), not the message:
/// retrying after the operator fixes the settings delivers the mail.
const AUTH_CODES: [u16; 4] = [530, 534, 535, 538];

/// Sorts a lettre error into retry-later or give-up. lettre's error text holds the server's
/// reply, never the message body.
fn classify(endpoint: &str, e: &SmtpError) -> DeliveryError {
    let text = format!("SMTP delivery to {endpoint} failed: {e}");
    match e.status().map(u16::from) {
        Some(code) if e.is_permanent() && !AUTH_CODES.contains(&code) => {
            DeliveryError::Permanent(text)
        }
        // 4xx replies, authentication failures, connection and TLS failures, timeouts,
        // unparseable replies: the next attempt may well succeed.
        _ => DeliveryError::Transient(text),
    }
}
