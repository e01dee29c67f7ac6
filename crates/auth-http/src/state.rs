//! What every handler can reach.

use std::sync::Arc;

use auth_core::AuthCore;
use auth_core::ports::HealthCheck;

use crate::settings::Settings;

/// Shared application state.
pub struct AppState {
    /// The password-session use cases.
    pub auth: Arc<AuthCore>,
    /// The database, for readiness.
    pub health: Arc<dyn HealthCheck>,
    /// The effective settings.
    pub settings: Arc<Settings>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<crate::settings::IpNet>,
    /// Start and stop: readiness answers 503 once a stop is asked for.
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// Social and OpenID Connect sign-in.
    pub social: Arc<auth_core::social::SocialService>,
}
