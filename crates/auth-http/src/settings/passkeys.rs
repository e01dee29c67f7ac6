//! `[passkeys]`: WebAuthn relying party.

use serde::{Deserialize, Serialize};

/// `[passkeys]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeySettingsFile {
    /// Whether the passkey routes work (they answer `not_enabled` otherwise).
    pub enabled: bool,
    /// Relying-party id: the registrable domain the passkeys belong to.
    pub rp_id: String,
    /// Name authenticators show; empty: `app.name`.
    pub rp_name: String,
    /// Origins allowed to run ceremonies; empty: the origin of `app.url`.
    pub origins: Vec<String>,
}

impl PasskeySettingsFile {
    /// Check that an enabled relying party is fully described.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.rp_id.is_empty() || self.rp_id.contains(['/', ':']) {
            return Err(
                "passkeys.rp_id must be a domain (example.com) when passkeys.enabled".into(),
            );
        }
        for origin in &self.origins {
            if auth_core::flows::origin_of(origin).as_deref() != Some(origin.trim_end_matches('/'))
            {
                return Err(format!(
                    "passkeys.origins: {origin} must be an origin (https://app.example.com)"
                ));
            }
        }
        Ok(())
    }
}
