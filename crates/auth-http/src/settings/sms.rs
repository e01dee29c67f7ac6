//! `[sms]`: text messages (SMS second factor).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::redact;

/// `[sms]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettingsFile {
    /// `none` (SMS off), `file` (development: messages under `data_dir/sms`) or `twilio`.
    pub transport: String,
    /// Sender number or messaging service id given to the provider.
    pub from: String,
    /// Lifetime of a code.
    pub code_ttl_secs: u64,
    /// Whether the verified number of an SMS factor may sign in without a password
    /// (`POST /otp/send` and `/otp/verify` with `phone`).
    pub passwordless: bool,
    /// Twilio-compatible API.
    pub twilio: TwilioSettingsFile,
}

/// `[sms.twilio]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettingsFile {
    /// API base URL.
    pub base_url: String,
    /// Account SID (the Basic auth user).
    pub account_sid: String,
    /// Auth token (the Basic auth password).
    #[serde(default, serialize_with = "redact")]
    pub auth_token: Option<SecretString>,
    /// Request timeout.
    pub timeout_secs: u64,
}

impl SmsSettingsFile {
    /// Check the transport and its settings.
    pub fn validate(&self) -> Result<(), String> {
        if !(60..=900).contains(&self.code_ttl_secs) {
            return Err("sms.code_ttl_secs must be between 60 and 900".into());
        }
        match self.transport.as_str() {
            "none" | "file" => Ok(()),
            "twilio" => {
                if self.from.is_empty()
                    || self.twilio.account_sid.is_empty()
                    || self.twilio.auth_token.is_none()
                {
                    return Err("sms.from, sms.twilio.account_sid and sms.twilio.auth_token are required when sms.transport = twilio".into());
                }
                if self.twilio.timeout_secs == 0 {
                    return Err("sms.twilio.timeout_secs must be greater than 0".into());
                }
                Ok(())
            }
            other => Err(format!(
                "sms.transport: {other:?} is not one of none, file, twilio"
            )),
        }
    }
}
