//! [`SmsSender`] adapters: [`TwilioSms`], the Twilio Messages API (or any API speaking its
//! wire format), and [`FileSms`], a development drop.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use auth_core::mail::DeliveryError;
use auth_core::sms::SmsSender;
use chrono::Utc;
use reqwest::{Client, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::http;

/// Sends through `POST {base}/2010-04-01/Accounts/{sid}/Messages.json` with the form
/// fields `To`, `From`, `Body` and HTTP Basic `sid:token`, as Twilio (and compatible
/// services) take it. 2xx is sent; 429 and 5xx are transient; other 4xx are permanent
/// (invalid number, unverified sender ...). Never logs the body (it carries codes).
pub struct TwilioSms {
    client: Client,
    endpoint: Url,
    account_sid: String,
    auth_token: SecretString,
    from: String,
}

impl std::fmt::Debug for TwilioSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSms")
            .field("endpoint", &self.endpoint.as_str())
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl TwilioSms {
    /// `base_url` is `https://api.twilio.com` for Twilio itself.
    pub fn new(
        base_url: &str,
        account_sid: String,
        auth_token: SecretString,
        from: String,
        timeout: Duration,
    ) -> Result<Self, String> {
        let base = http::parse_url("sms.twilio.base_url", base_url)?;
        if account_sid.is_empty() || !account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("sms.twilio.account_sid must be set (letters and digits)".into());
        }
        if auth_token.expose_secret().is_empty() || from.is_empty() {
            return Err("sms.twilio.auth_token and sms.from must be set".into());
        }
        let endpoint = base
            .join(&format!("/2010-04-01/Accounts/{account_sid}/Messages.json"))
            .map_err(|e| format!("sms.twilio.base_url: {e}"))?;
        Ok(Self {
            client: http::client("sms.twilio", timeout)?,
            endpoint,
            account_sid,
            auth_token,
            from,
        })
    }
}

#[async_trait]
impl SmsSender for TwilioSms {
    async fn send(&self, to: &str, body: &str) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&[("To", to), ("From", self.from.as_str()), ("Body", body)])
            .send()
            .await
            .map_err(|e| DeliveryError::Transient(http::request_error("sms", e)))?;
        let status = response.status();
        if status.is_success() {
            tracing::info!(status = status.as_u16(), "SMS accepted by the provider");
            return Ok(());
        }
        let reason = format!("sms: provider answered HTTP {status}");
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(DeliveryError::Transient(reason))
        } else {
            Err(DeliveryError::Permanent(reason))
        }
    }
}

/// Development drop: logs each message's recipient (masked) and writes it to
/// `<dir>/<UTC timestamp>-<uuid>.txt` (`To:` line, blank line, body).
#[derive(Debug, Clone)]
pub struct FileSms {
    dir: PathBuf,
}

impl FileSms {
    /// Creates `dir` if needed.
    pub fn new(dir: PathBuf) -> Result<Self, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("SMS directory {}: {e}", dir.display()))?;
        Ok(Self { dir })
    }
}

#[async_trait]
impl SmsSender for FileSms {
    async fn send(&self, to: &str, body: &str) -> Result<(), DeliveryError> {
        let name = format!(
            "{}-{}.txt",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            Uuid::new_v4()
        );
        let path = self.dir.join(name);
        let text = format!("To: {to}\n\n{body}\n");
        let target = path.clone();
        tokio::task::spawn_blocking(move || crate::file::write_new(&target, text.as_bytes()))
            .await
            .map_err(|e| DeliveryError::Transient(format!("SMS file: {e}")))?
            .map_err(|e| DeliveryError::Transient(format!("SMS file {}: {e}", path.display())))?;
        let masked = to.get(to.len().saturating_sub(2)..).unwrap_or_default();
        tracing::info!(file = %path.display(), to_last_digits = masked, "SMS written (development transport)");
        Ok(())
    }
}
