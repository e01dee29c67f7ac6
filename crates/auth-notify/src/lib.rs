//! Outbound adapters of the auth server: mail.
//!
//! - [`SmtpMailer`]: delivers over SMTP (lettre, tokio, rustls on *ring*), with a connection
//!   pool, and sorts failures into [`DeliveryError::Transient`] (retry later) and
//!   [`DeliveryError::Permanent`] (give up).
//! - [`FileMailer`]: development drop: writes each message as an `.eml` file.
//! - [`TemplateRenderer`]: turns a [`MailIntent`] into an [`EmailMessage`] with the shipped
//!   subject, text and HTML templates, or with operator overrides from a directory.
//! - `testing` (cargo feature `testing`): [`testing::SmtpSink`], a real SMTP server on
//!   loopback that records what it receives.
//!
//! Message bodies carry links with tokens and one-time codes: nothing in this crate logs a
//! body or puts one into an error.
//!
//! [`DeliveryError::Transient`]: auth_core::mail::DeliveryError::Transient
//! [`DeliveryError::Permanent`]: auth_core::mail::DeliveryError::Permanent
//! [`MailIntent`]: auth_core::mail::MailIntent
//! [`EmailMessage`]: auth_core::mail::EmailMessage

#![warn(missing_docs)]

mod file;
mod message;
mod smtp;
mod templates;

#[cfg(feature = "testing")]
pub mod testing;

pub use file::FileMailer;
pub use smtp::{SmtpMailer, SmtpSettings, SmtpTls};
pub use templates::TemplateRenderer;
