//! [`SiteverifyCaptcha`]: CAPTCHA verification over the siteverify API shared by hCaptcha,
//! Cloudflare Turnstile and reCAPTCHA.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use auth_core::error::AdapterError;
use auth_core::guard::CaptchaVerifier;
use reqwest::{Client, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::http;

const SERVICE: &str = "captcha siteverify";
/// Siteverify answers are a few hundred bytes.
const BODY_LIMIT: usize = 64 * 1024;

/// Asks a siteverify endpoint whether a CAPTCHA token is valid: POSTs the form fields
/// `secret`, `response` and (when known) `remoteip`, and reads `{"success": bool, ...}`.
///
/// Known endpoints:
/// - hCaptcha: `https://api.hcaptcha.com/siteverify`
/// - Cloudflare Turnstile: `https://challenges.cloudflare.com/turnstile/v0/siteverify`
/// - reCAPTCHA: `https://www.google.com/recaptcha/api/siteverify`
///
/// A non-2xx status, a timeout, a refused connection, a redirect or an unparsable body is an
/// `Err` (the provider could not be asked); a parsed `"success": false` is `Ok(false)`.
/// Errors and logs never carry the secret or the token.
#[derive(Clone)]
pub struct SiteverifyCaptcha {
    client: Client,
    verify_url: Url,
    secret: SecretString,
}

impl fmt::Debug for SiteverifyCaptcha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteverifyCaptcha")
            .field("verify_url", &self.verify_url.as_str())
            .finish_non_exhaustive()
    }
}

impl SiteverifyCaptcha {
    /// Checks the URL (absolute http/https), the secret (not empty) and the timeout (not
    /// zero: it bounds each verification end to end) and builds the client. Needs no
    /// runtime.
    pub fn new(
        verify_url: String,
        secret: SecretString,
        timeout: Duration,
    ) -> Result<Self, String> {
        let verify_url = http::parse_url("captcha.verify_url", &verify_url)?;
        if secret.expose_secret().trim().is_empty() {
            return Err("captcha.secret: must not be empty".to_owned());
        }
        let client = http::client("captcha", timeout)?;
        Ok(Self {
            client,
            verify_url,
            secret,
        })
    }
}

/// The part of the siteverify answer we read; providers add more fields.
#[derive(Deserialize)]
struct SiteverifyAnswer {
    success: bool,
    #[serde(default, rename = "error-codes")]
    error_codes: Vec<String>,
}

#[async_trait]
impl CaptchaVerifier for SiteverifyCaptcha {
    async fn verify(&self, token: &str, remote_ip: Option<&str>) -> Result<bool, AdapterError> {
        let mut form: Vec<(&str, &str)> =
            vec![("secret", self.secret.expose_secret()), ("response", token)];
        if let Some(ip) = remote_ip.map(str::trim).filter(|ip| !ip.is_empty()) {
            form.push(("remoteip", ip));
        }
        let response = self
            .client
            .post(self.verify_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| http::request_error(SERVICE, e))?;
        let body = http::success_body(SERVICE, response, BODY_LIMIT).await?;
        let answer: SiteverifyAnswer = serde_json::from_slice(&body)
            .map_err(|e| format!("{SERVICE}: unparsable response: {e}"))?;
        if !answer.success {
            // Codes such as "invalid-input-secret" point at a misconfiguration, the others
            // at a bad token; none of them carries the secret or the token.
            if answer
                .error_codes
                .iter()
                .any(|code| code.contains("secret") || code.contains("sitekey"))
            {
                tracing::warn!(url = %self.verify_url, error_codes = ?answer.error_codes,
                    "the CAPTCHA provider refused our secret: check the configuration");
            } else {
                tracing::debug!(error_codes = ?answer.error_codes, "CAPTCHA token refused");
            }
        }
        Ok(answer.success)
    }
}
