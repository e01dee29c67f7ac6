//! Drop-in compatibility profiles: thin HTTP adapters that speak another auth backend's
//! routes, field names, status codes and error bodies over the same core services and
//! stores. Each enabled profile gets its own [`AuthCore`] view (its token issuer,
//! password rule, lifetimes) built with [`AuthCore::with_profile`], so its rules never
//! apply to the canonical API.

use std::sync::Arc;

use actix_web::web;
use auth_core::AuthCore;
use auth_core::jwt::{JwtIssuer, KeySet};
use auth_core::password::PasswordPolicy;
use auth_core::social::SocialService;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

pub mod gsdlabs;
pub mod nestjs_boilerplate;
pub mod sails_jwt;
pub mod service_authentication;
pub mod timelapseme;

fn redact<S: serde::Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

/// `[compat]`: the compatibility profiles.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatSettings {
    /// `[compat.nestjs_boilerplate]`
    pub nestjs_boilerplate: NestjsSettings,
    /// `[compat.gsdlabs]`
    pub gsdlabs: GsdlabsSettings,
    /// `[compat.sails_jwt]`
    pub sails_jwt: SailsSettings,
    /// `[compat.timelapseme]`
    pub timelapseme: TimelapsemeSettings,
    /// `[compat.service_authentication]`
    pub service_authentication: ServiceAuthSettings,
}

/// `[compat.service_authentication]`: the API of service-authentication.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceAuthSettings {
    /// Serve the profile.
    pub enabled: bool,
    /// Where its routes are mounted (`/` replaces the backend outright).
    pub prefix: String,
    /// The HS256 secret of its JWTs (at least 32 bytes).
    #[serde(serialize_with = "redact")]
    pub jwt_secret: Option<SecretString>,
    /// Access token lifetime.
    pub access_ttl_secs: u64,
    /// The `aud` of its tokens.
    pub audience: String,
    /// The cookie that carries the JWT.
    pub cookie_name: String,
    /// The cookie that carries the refresh token.
    pub refresh_cookie_name: String,
    /// Mark the cookies `Secure` (turn off only for plain-HTTP development).
    pub cookie_secure: bool,
}

impl Default for ServiceAuthSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "/compat/service-authentication".into(),
            jwt_secret: None,
            access_ttl_secs: 900,
            audience: "service-authentication".into(),
            cookie_name: "jwt".into(),
            refresh_cookie_name: "refresh_token".into(),
            cookie_secure: true,
        }
    }
}

/// `[compat.timelapseme]`: the API of the TimeLapseMe authentication server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimelapsemeSettings {
    /// Serve the profile.
    pub enabled: bool,
    /// Where its routes are mounted (`/` replaces the backend outright).
    pub prefix: String,
    /// `JWT_PRIVATE_KEY_PATH`: PEM RSA private key (RS256).
    pub private_key_path: Option<std::path::PathBuf>,
    /// `JWT_PUBLIC_KEY_PATH`: its PEM public key.
    pub public_key_path: Option<std::path::PathBuf>,
    /// `JWT_ISSUER`: the `iss` of its tokens; empty means `server.public_url`.
    pub issuer: String,
    /// `JWT_AUDIENCE`: the `aud` of its tokens.
    pub audience: String,
    /// Access token lifetime.
    pub access_ttl_secs: u64,
}

impl Default for TimelapsemeSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "/compat/timelapseme".into(),
            private_key_path: None,
            public_key_path: None,
            issuer: String::new(),
            audience: "timelapseme".into(),
            access_ttl_secs: 900,
        }
    }
}

/// `[compat.sails_jwt]`: the API of the Sails.js JWT authorization example.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SailsSettings {
    /// Serve the profile.
    pub enabled: bool,
    /// Where its routes are mounted (`/` replaces the backend outright).
    pub prefix: String,
    /// `JWT_SECRET`: the HS256 secret of its tokens (at least 32 bytes).
    #[serde(serialize_with = "redact")]
    pub jwt_secret: Option<SecretString>,
    /// Token lifetime (its clients have no refresh token).
    pub access_ttl_secs: u64,
    /// The `aud` of its tokens.
    pub audience: String,
    /// Failed sign-ins that lock the account...
    pub lockout_threshold: u32,
    /// ...within this many seconds...
    pub lockout_window_secs: u64,
    /// ...for this long.
    pub lockout_freeze_secs: u64,
}

impl Default for SailsSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "/compat/sails-jwt".into(),
            jwt_secret: None,
            access_ttl_secs: 86_400,
            audience: "sails-jwt".into(),
            lockout_threshold: 5,
            lockout_window_secs: 120,
            lockout_freeze_secs: 3600,
        }
    }
}

/// `[compat.gsdlabs]`: the API of the GSDLabs authentication challenge.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GsdlabsSettings {
    /// Serve the profile.
    pub enabled: bool,
    /// Where its routes are mounted (`/` replaces the backend outright).
    pub prefix: String,
    /// The HS256 secret of its access tokens (at least 32 bytes).
    #[serde(serialize_with = "redact")]
    pub jwt_secret: Option<SecretString>,
    /// Access token lifetime (the API documents 10 minutes).
    pub access_ttl_secs: u64,
    /// The `aud` of its access tokens.
    pub audience: String,
}

impl Default for GsdlabsSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "/compat/gsdlabs".into(),
            jwt_secret: None,
            access_ttl_secs: 600,
            audience: "gsdlabs".into(),
        }
    }
}

fn check_secret(key: &str, secret: Option<&SecretString>) -> Result<(), String> {
    if secret.is_none_or(|s| s.expose_secret().len() < 32) {
        return Err(format!("{key} must be set and at least 32 bytes"));
    }
    Ok(())
}

/// `[compat.nestjs_boilerplate]`: the API of brocoders/nestjs-boilerplate.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NestjsSettings {
    /// Serve the profile.
    pub enabled: bool,
    /// Where its routes are mounted (`/` replaces the backend outright).
    pub prefix: String,
    /// `AUTH_JWT_SECRET`: the HS256 secret of its access tokens (at least 32 bytes).
    #[serde(serialize_with = "redact")]
    pub jwt_secret: Option<SecretString>,
    /// `AUTH_JWT_TOKEN_EXPIRES_IN`, in seconds.
    pub access_ttl_secs: u64,
    /// The `aud` of its access tokens.
    pub audience: String,
    /// Minimum password length (the boilerplate asks for 6).
    pub password_min_length: usize,
}

impl Default for NestjsSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "/compat/nestjs-boilerplate".into(),
            jwt_secret: None,
            access_ttl_secs: 900,
            audience: "nestjs-boilerplate".into(),
            password_min_length: 6,
        }
    }
}

fn check_prefix(key: &str, prefix: &str) -> Result<(), String> {
    if prefix == "/"
        || (prefix.starts_with('/')
            && !prefix.ends_with('/')
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c)))
    {
        Ok(())
    } else {
        Err(format!(
            "{key} must be `/` or a path such as /compat/name (no trailing slash)"
        ))
    }
}

impl CompatSettings {
    /// Check the enabled profiles.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.nestjs_boilerplate;
        if n.enabled {
            check_prefix("compat.nestjs_boilerplate.prefix", &n.prefix)?;
            if n.jwt_secret
                .as_ref()
                .is_none_or(|s| s.expose_secret().len() < 32)
            {
                return Err(
                    "compat.nestjs_boilerplate.jwt_secret must be set and at least 32 bytes".into(),
                );
            }
            if n.access_ttl_secs == 0 {
                return Err("compat.nestjs_boilerplate.access_ttl_secs must be positive".into());
            }
            if !(1..=1024).contains(&n.password_min_length) {
                return Err(
                    "compat.nestjs_boilerplate.password_min_length must be 1 to 1024".into(),
                );
            }
        }
        let g = &self.gsdlabs;
        if g.enabled {
            check_prefix("compat.gsdlabs.prefix", &g.prefix)?;
            check_secret("compat.gsdlabs.jwt_secret", g.jwt_secret.as_ref())?;
            if g.access_ttl_secs == 0 {
                return Err("compat.gsdlabs.access_ttl_secs must be positive".into());
            }
        }
        let t = &self.timelapseme;
        if t.enabled {
            check_prefix("compat.timelapseme.prefix", &t.prefix)?;
            if t.private_key_path.is_none() || t.public_key_path.is_none() {
                return Err(
                    "compat.timelapseme.private_key_path and public_key_path are required".into(),
                );
            }
            if t.access_ttl_secs == 0 {
                return Err("compat.timelapseme.access_ttl_secs must be positive".into());
            }
        }
        let a = &self.service_authentication;
        if a.enabled {
            check_prefix("compat.service_authentication.prefix", &a.prefix)?;
            check_secret(
                "compat.service_authentication.jwt_secret",
                a.jwt_secret.as_ref(),
            )?;
            if a.access_ttl_secs == 0 {
                return Err(
                    "compat.service_authentication.access_ttl_secs must be positive".into(),
                );
            }
            let token_char = |c: char| c.is_ascii_alphanumeric() || "-_".contains(c);
            for (key, name) in [
                ("compat.service_authentication.cookie_name", &a.cookie_name),
                (
                    "compat.service_authentication.refresh_cookie_name",
                    &a.refresh_cookie_name,
                ),
            ] {
                if name.is_empty() || !name.chars().all(token_char) {
                    return Err(format!("{key} must be letters, digits, - or _"));
                }
            }
            if a.cookie_name == a.refresh_cookie_name {
                return Err("compat.service_authentication cookie names must differ".into());
            }
        }
        let j = &self.sails_jwt;
        if j.enabled {
            check_prefix("compat.sails_jwt.prefix", &j.prefix)?;
            check_secret("compat.sails_jwt.jwt_secret", j.jwt_secret.as_ref())?;
            for (key, value) in [
                ("compat.sails_jwt.access_ttl_secs", j.access_ttl_secs),
                (
                    "compat.sails_jwt.lockout_threshold",
                    u64::from(j.lockout_threshold),
                ),
                (
                    "compat.sails_jwt.lockout_window_secs",
                    j.lockout_window_secs,
                ),
                (
                    "compat.sails_jwt.lockout_freeze_secs",
                    j.lockout_freeze_secs,
                ),
            ] {
                if value == 0 {
                    return Err(format!("{key} must be positive"));
                }
            }
        }
        Ok(())
    }
}

/// The path of `route` under `prefix`.
pub(crate) fn path(prefix: &str, route: &str) -> String {
    if prefix == "/" {
        route.to_owned()
    } else {
        format!("{prefix}{route}")
    }
}

/// Marks a response whose body is in a profile's own error format, so the application's
/// problem+json error handler leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct ProfileBody;

/// Tag a profile response with [`ProfileBody`].
pub(crate) fn own_format(mut res: actix_web::HttpResponse) -> actix_web::HttpResponse {
    res.extensions_mut().insert(ProfileBody);
    res
}

/// A profile's error response as an actix error (kept as it is by the error handler).
pub(crate) fn fail(res: actix_web::HttpResponse) -> actix_web::Error {
    actix_web::error::InternalError::from_response("compatibility profile error", own_format(res))
        .into()
}

/// A profile's view of the core: the shared stores under its own issuer and rules.
pub(crate) fn profile_service(
    base: &AuthCore,
    settings: &Settings,
    keys: KeySet,
    audience: &str,
    access_ttl_secs: u64,
    password_policy: PasswordPolicy,
    lockout: Option<auth_core::guard::LockoutSettings>,
) -> Arc<AuthCore> {
    let issuer = JwtIssuer::new(
        keys,
        settings.server.public_url.clone(),
        audience.to_owned(),
        i64::try_from(settings.tokens.leeway_secs).unwrap_or(0),
    );
    profile_service_with(
        base,
        Arc::new(issuer),
        access_ttl_secs,
        password_policy,
        lockout,
    )
}

/// [`profile_service`] with a ready token issuer.
pub(crate) fn profile_service_with(
    base: &AuthCore,
    issuer: Arc<dyn auth_core::jwt::TokenIssuer>,
    access_ttl_secs: u64,
    password_policy: PasswordPolicy,
    lockout: Option<auth_core::guard::LockoutSettings>,
) -> Arc<AuthCore> {
    let mut rules = base.settings().clone();
    rules.sessions.access_ttl =
        chrono::Duration::seconds(i64::try_from(access_ttl_secs).unwrap_or(i64::MAX / 2));
    rules.password_policy = password_policy;
    // Their clients send no CAPTCHA token; rate limits and lockout still apply.
    rules.guard.captcha = auth_core::guard::CaptchaSettings::default();
    if let Some(lockout) = lockout {
        rules.guard.lockout = lockout;
    }
    Arc::new(base.with_profile(issuer, rules))
}

/// The enabled profiles, built once at start-up.
#[derive(Clone, Default)]
pub struct Profiles {
    nestjs: Option<web::Data<nestjs_boilerplate::Nestjs>>,
    gsdlabs: Option<web::Data<gsdlabs::Gsdlabs>>,
    sails: Option<web::Data<sails_jwt::Sails>>,
    timelapseme: Option<web::Data<timelapseme::Timelapseme>>,
    service_auth: Option<web::Data<service_authentication::ServiceAuth>>,
}

impl Profiles {
    /// Build every enabled profile over the canonical service's stores.
    pub fn build(
        settings: &Settings,
        base: &AuthCore,
        social: &SocialService,
    ) -> Result<Self, String> {
        let c = &settings.compat;
        let nestjs = if c.nestjs_boilerplate.enabled {
            Some(web::Data::new(nestjs_boilerplate::Nestjs::build(
                settings,
                base,
                social,
                &c.nestjs_boilerplate,
            )?))
        } else {
            None
        };
        let gsdlabs = if c.gsdlabs.enabled {
            Some(web::Data::new(gsdlabs::Gsdlabs::build(
                settings, base, &c.gsdlabs,
            )?))
        } else {
            None
        };
        let sails = if c.sails_jwt.enabled {
            Some(web::Data::new(sails_jwt::Sails::build(
                settings,
                base,
                &c.sails_jwt,
            )?))
        } else {
            None
        };
        let timelapseme = if c.timelapseme.enabled {
            Some(web::Data::new(timelapseme::Timelapseme::build(
                settings,
                base,
                social,
                &c.timelapseme,
            )?))
        } else {
            None
        };
        let service_auth = if c.service_authentication.enabled {
            Some(web::Data::new(service_authentication::ServiceAuth::build(
                settings,
                base,
                social,
                &c.service_authentication,
            )?))
        } else {
            None
        };
        Ok(Self {
            nestjs,
            gsdlabs,
            sails,
            timelapseme,
            service_auth,
        })
    }

    /// Register the routes of the enabled profiles (before the canonical routes: a profile
    /// mounted at `/` wins where its paths clash with canonical ones).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        if let Some(n) = &self.nestjs {
            nestjs_boilerplate::configure(cfg, n);
        }
        if let Some(g) = &self.gsdlabs {
            gsdlabs::configure(cfg, g);
        }
        if let Some(j) = &self.sails {
            sails_jwt::configure(cfg, j);
        }
        if let Some(t) = &self.timelapseme {
            timelapseme::configure(cfg, t);
        }
        if let Some(a) = &self.service_auth {
            service_authentication::configure(cfg, a);
        }
    }
}
