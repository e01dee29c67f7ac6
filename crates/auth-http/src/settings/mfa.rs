//! `[mfa]`: multi-factor authentication.

use serde::{Deserialize, Serialize};

/// `[mfa]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MfaSettingsFile {
    /// Name authenticator apps show; empty: `app.name`.
    pub issuer: String,
    /// Lifetime of an `mfa_token`.
    pub challenge_ttl_secs: u64,
    /// Wrong codes that kill an `mfa_token`.
    pub max_attempts: u32,
    /// TOTP time steps (30 s) of clock skew accepted either side.
    pub totp_skew_steps: u32,
    /// How long a TOTP enrolment waits for its first code.
    pub enrollment_ttl_secs: u64,
}

impl MfaSettingsFile {
    /// Check the ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(30..=3600).contains(&self.challenge_ttl_secs) {
            return Err("mfa.challenge_ttl_secs must be between 30 and 3600".into());
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err("mfa.max_attempts must be between 1 and 20".into());
        }
        if self.totp_skew_steps > 2 {
            return Err("mfa.totp_skew_steps must be 0, 1 or 2".into());
        }
        if !(60..=86_400).contains(&self.enrollment_ttl_secs) {
            return Err("mfa.enrollment_ttl_secs must be between 60 and 86400".into());
        }
        if self.issuer.chars().count() > 100 || self.issuer.chars().any(char::is_control) {
            return Err("mfa.issuer must be at most 100 printable characters".into());
        }
        Ok(())
    }
}
