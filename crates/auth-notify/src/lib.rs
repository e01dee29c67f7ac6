//! Outbound adapters of the auth server: mail, CAPTCHA verification, breached passwords.
//!
//! - [`SmtpMailer`]: delivers over SMTP (lettre, tokio, rustls on *ring*), with a connection
//!   pool, and sorts failures into [`DeliveryError::Transient`] (retry later) and
//!   [`DeliveryError::Permanent`] (give up).
//! - [`FileMailer`]: development drop: writes each message as an `.eml` file.
//! - [`TemplateRenderer`]: turns a [`MailIntent`] into an [`EmailMessage`] with the shipped
//!   subject, text and HTML templates, or with operator overrides from a directory.
//! - [`SiteverifyCaptcha`]: the [`CaptchaVerifier`] port over the siteverify API of
//!   hCaptcha, Cloudflare Turnstile and reCAPTCHA.
//! - [`HibpRangeClient`]: the [`BreachedPasswords`] port over the Have I Been Pwned range
//!   API (k-anonymity: only a 5-digit SHA-1 prefix leaves the process).
//! - `testing` (cargo feature `testing`): [`testing::SmtpSink`], a real SMTP server on
//!   loopback that records what it receives.
//!
//! Message bodies carry links with tokens and one-time codes: nothing in this crate logs a
//! body or puts one into an error. The HTTP adapters (reqwest, rustls on *ring*) follow no
//! redirects, bound every request with a timeout, and keep secrets, tokens and passwords
//! out of errors and logs.
//!
//! [`DeliveryError::Transient`]: auth_core::mail::DeliveryError::Transient
//! [`DeliveryError::Permanent`]: auth_core::mail::DeliveryError::Permanent
//! [`MailIntent`]: auth_core::mail::MailIntent
//! [`EmailMessage`]: auth_core::mail::EmailMessage
//! [`CaptchaVerifier`]: auth_core::guard::CaptchaVerifier
//! [`BreachedPasswords`]: auth_core::guard::BreachedPasswords

#![warn(missing_docs)]

mod captcha;
mod file;
mod hibp;
mod http;
mod message;
mod sms;
mod smtp;
mod templates;
mod webhook;

#[cfg(feature = "testing")]
pub mod testing;

pub use captcha::SiteverifyCaptcha;
pub use file::FileMailer;
pub use hibp::HibpRangeClient;
pub use sms::{FileSms, TwilioSms};
pub use smtp::{SmtpMailer, SmtpSettings, SmtpTls};
pub use templates::TemplateRenderer;
pub use webhook::HttpWebhookSender;
