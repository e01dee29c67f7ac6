//! Typed settings: `config/default.toml` (embedded), then the files `config/default.toml`
//! and `config/{AUTH_ENV}.toml` when present, then `AUTH__SECTION__KEY` environment
//! variables. Deserialised once and validated at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use auth_core::flows::EmailConfirmation;
use auth_core::jwt::SigningAlgorithm;
use auth_core::outbox::TokenPlacement;
use auth_core::password::{HashingConfig, PasswordPolicy};
use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

pub mod mfa;
pub mod passkeys;
pub mod sms;

const EMBEDDED_DEFAULTS: &str = include_str!("../../../config/default.toml");

fn redact<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

fn redact_required<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[redacted]")
}

/// Every setting of the server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The `AUTH_ENV` overlay these settings were loaded with (`production` ...); not a key.
    #[serde(skip)]
    pub environment: Option<String>,
    /// Directory for generated keys and local state.
    pub data_dir: PathBuf,
    /// HTTP listener.
    pub server: ServerSettings,
    /// Storage.
    pub database: DatabaseSettings,
    /// Access and refresh tokens.
    pub tokens: TokenSettings,
    /// Sign-up and sign-in rules.
    pub auth: AuthRules,
    /// Password rules.
    pub password_policy: PasswordPolicy,
    /// Argon2id parameters.
    pub password_hashing: HashingConfig,
    /// Token introspection clients.
    pub introspection: IntrospectionSettings,
    /// The front end that handles links in mails.
    pub app: AppSettings,
    /// Outbound mail.
    pub mail: MailSettings,
    /// The background worker of the outbox.
    pub outbox: OutboxSettings,
    /// Keys sealing secrets at rest.
    pub secrets: SecretsSettings,
    /// Password strength and breach checks.
    pub password_checks: PasswordChecks,
    /// Rate limits per route group.
    pub rate_limits: RateLimitSettings,
    /// Account lockout.
    pub lockout: LockoutSettingsFile,
    /// CAPTCHA.
    pub captcha: CaptchaSettingsFile,
    /// Logging.
    pub log: LogSettings,
    /// Prometheus metrics.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Start-up retries and graceful shutdown.
    #[serde(default)]
    pub lifecycle: LifecycleSettings,
    /// Cross-origin requests from browsers.
    #[serde(default)]
    pub cors: CorsSettings,
    /// Browser sessions in cookies.
    #[serde(default)]
    pub cookies: CookieSettings,
    /// Signing key rotation.
    #[serde(default)]
    pub keys: KeyRotationSettings,
    /// The audit trail.
    #[serde(default)]
    pub audit: AuditSettings,
    /// Webhook deliveries.
    #[serde(default)]
    pub webhooks: WebhookSettingsFile,
    /// Identity providers by id (social and OpenID Connect sign-in).
    #[serde(default)]
    pub providers: std::collections::BTreeMap<String, crate::providers::ProviderSettings>,
    /// The browser redirect flow of social sign-in.
    #[serde(default)]
    pub oauth: crate::providers::OAuthFlowSettings,
    /// Multi-factor authentication.
    pub mfa: mfa::MfaSettingsFile,
    /// Passkeys (WebAuthn).
    pub passkeys: passkeys::PasskeySettingsFile,
    /// Text messages.
    pub sms: sms::SmsSettingsFile,
    /// Drop-in compatibility profiles.
    #[serde(default)]
    pub compat: crate::compat::CompatSettings,
}

/// `[keys]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyRotationSettings {
    /// Seconds between two reloads of the signing keys by a running server (picks up
    /// `keys rotate` and replaced PEM files); 0 disables reloading.
    pub reload_interval_secs: u64,
    /// A key added by `keys rotate` is published in the JWKS at once but signs only this
    /// many seconds later, so that every node and every JWKS cache knows it first.
    pub activation_delay_secs: u64,
}

impl Default for KeyRotationSettings {
    fn default() -> Self {
        Self {
            reload_interval_secs: 60,
            activation_delay_secs: 120,
        }
    }
}

/// `[webhooks]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettingsFile {
    /// Accept `http://` endpoint URLs (development only).
    pub allow_http: bool,
    /// Hosts endpoint URLs may name (`hooks.example.com`, `.example.com` for subdomains);
    /// empty allows any public host.
    pub allowed_hosts: Vec<String>,
    /// Allow loopback, private, link-local and metadata addresses (development, tests).
    pub allow_private_addresses: bool,
    /// Seconds one delivery attempt may take.
    pub timeout_secs: u64,
    /// Attempts per message, the first included.
    pub max_attempts: u32,
    /// Milliseconds before the second attempt; each next delay is four times longer.
    pub retry_initial_ms: u64,
    /// An endpoint failing without a success for this many seconds is disabled.
    pub disable_after_secs: u64,
    /// Seconds the previous secret keeps signing after a rotation.
    pub secret_overlap_secs: u64,
}

impl Default for WebhookSettingsFile {
    fn default() -> Self {
        Self {
            allow_http: false,
            allowed_hosts: Vec::new(),
            allow_private_addresses: false,
            timeout_secs: 10,
            max_attempts: 7,
            retry_initial_ms: 60_000,
            disable_after_secs: 259_200,
            secret_overlap_secs: 86_400,
        }
    }
}

/// `[metrics]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// A separate admin port for `/metrics`; 0 serves it on the main port.
    pub port: u16,
    /// Interface of the admin port.
    pub host: String,
    /// On the main port: callers must come from one of these IPs/CIDRs (the peer address,
    /// not forwarding headers); empty allows every address.
    pub allow_from: Vec<String>,
    /// On the main port: when set, callers must send `Authorization: Bearer <token>`.
    #[serde(serialize_with = "redact_string")]
    pub bearer_token: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            port: 0,
            host: "127.0.0.1".into(),
            allow_from: vec!["127.0.0.0/8".into(), "::1".into()],
            bearer_token: String::new(),
        }
    }
}

impl std::fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSettings")
            .field("enabled", &self.enabled)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// `[lifecycle]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleSettings {
    /// Seconds between SIGTERM (readiness turns 503) and closing the listener, so that
    /// load balancers stop sending new requests first.
    pub shutdown_delay_secs: u64,
    /// Seconds in-flight requests and background jobs get to finish after that.
    pub drain_timeout_secs: u64,
    /// Longest wait between two attempts to reach the database at start.
    pub db_retry_max_secs: u64,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            shutdown_delay_secs: 0,
            drain_timeout_secs: 30,
            db_retry_max_secs: 30,
        }
    }
}

/// `[cors]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Origins (`https://app.example.com`) allowed to call the API from a browser, with
    /// credentials; empty disables CORS (same-origin only).
    pub allowed_origins: Vec<String>,
    /// Seconds browsers may cache a preflight answer.
    pub max_age_secs: usize,
}

/// `cookies.same_site`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum SameSiteSetting {
    /// Sent on top-level navigations from other sites too.
    #[default]
    Lax,
    /// Never sent on cross-site requests.
    Strict,
}

/// `[cookies]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieSettings {
    /// Token responses also set `__Host-` cookies, and cookies authenticate requests.
    pub enabled: bool,
    /// `Lax` or `Strict`.
    pub same_site: SameSiteSetting,
}

/// `[audit]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Days audit rows are kept before housekeeping deletes them.
    pub retention_days: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Interface to listen on.
    pub host: String,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// Public base URL: the `iss` of tokens.
    pub public_url: String,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Seconds between purges of ended sessions.
    pub housekeeping_interval_secs: u64,
    /// Proxies whose forwarding headers are believed (IPs or CIDRs).
    pub trusted_proxies: Vec<String>,
}

/// `[database]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://user@host:port/db`.
    #[serde(serialize_with = "serialize_db_url")]
    pub url: String,
    /// Pool size; 0 means the backend default.
    pub max_connections: usize,
    /// Seconds to wait for a new connection.
    pub connect_timeout_secs: u64,
    /// Seconds to wait for a free pooled connection.
    pub acquire_timeout_secs: u64,
    /// Apply pending migrations at start.
    pub migrate_on_start: bool,
    /// Seconds one storage call (connection wait and queries) may take before the request
    /// gets 503 `unavailable`; 0 waits forever.
    #[serde(default = "default_query_timeout_secs")]
    pub query_timeout_secs: u64,
}

fn default_query_timeout_secs() -> u64 {
    15
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url_password(&self.url))
            .finish_non_exhaustive()
    }
}

fn serialize_db_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url_password(url))
}

/// `postgres://user:secret@host/db` -> `postgres://user:[redacted]@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

/// An extra key accepted for verification.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationKeySetting {
    /// `EdDSA`, `ES256` or `RS256`.
    pub algorithm: String,
    /// PEM file (public or private key).
    pub path: PathBuf,
}

/// `[tokens]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// `EdDSA`, `ES256`, `RS256` or `HS256`.
    pub algorithm: String,
    /// The `aud` claim.
    pub audience: String,
    /// Access token lifetime.
    pub access_ttl_secs: u64,
    /// Grace window of refresh token rotation.
    pub refresh_reuse_grace_secs: u64,
    /// Absolute session lifetime.
    pub refresh_absolute_ttl_secs: u64,
    /// Idle session lifetime.
    pub refresh_idle_ttl_secs: u64,
    /// Days ended sessions are kept before purge.
    pub session_retention_days: u64,
    /// Tolerated clock skew.
    pub leeway_secs: u64,
    /// PEM private key (ES256, RS256; EdDSA when not generated).
    #[serde(default)]
    pub private_key_path: Option<PathBuf>,
    /// PEM public key; derived from the private key when unset.
    #[serde(default)]
    pub public_key_path: Option<PathBuf>,
    /// HS256 shared secret (at least 32 bytes).
    #[serde(default, serialize_with = "redact")]
    pub hs256_secret: Option<SecretString>,
    /// Older keys still accepted.
    #[serde(default)]
    pub verification_keys: Vec<VerificationKeySetting>,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("algorithm", &self.algorithm)
            .field("private_key_path", &self.private_key_path)
            .finish_non_exhaustive()
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRules {
    /// Whether sign-in waits for email confirmation.
    pub email_confirmation: EmailConfirmation,
    /// Roles of every new account.
    pub default_roles: Vec<String>,
    /// Whether a magic link or code may create an account.
    pub passwordless_signup: bool,
    /// Lifetime of verification links.
    pub verification_ttl_secs: u64,
    /// Lifetime of reset links.
    pub reset_ttl_secs: u64,
    /// Lifetime of magic links.
    pub magic_link_ttl_secs: u64,
    /// Lifetime of email codes.
    pub email_otp_ttl_secs: u64,
    /// Wrong codes before a code dies.
    pub email_otp_max_attempts: u32,
}

/// `[app]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Front-end URL; empty means `server.public_url`.
    pub url: String,
    /// Product name in mails.
    pub name: String,
    /// Allowed magic-link destinations (origins).
    pub redirect_allow_list: Vec<String>,
    /// Where the token goes in links.
    pub token_placement: TokenPlacement,
    /// Path of the verification page.
    pub verify_path: String,
    /// Path of the reset page.
    pub reset_path: String,
    /// Path of the magic-link page.
    pub magic_link_path: String,
}

impl AppSettings {
    /// The effective front-end URL.
    pub fn effective_url<'a>(&'a self, server: &'a ServerSettings) -> &'a str {
        if self.url.is_empty() {
            &server.public_url
        } else {
            &self.url
        }
    }
}

/// `mail.transport`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Files under `data_dir/mail`.
    File,
    /// An SMTP server.
    Smtp,
}

/// `mail.smtp.tls`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTlsSetting {
    /// Plain text (loopback or a trusted network only).
    None,
    /// STARTTLS upgrade, required.
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// `[mail.smtp]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettingsFile {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTlsSetting,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default, serialize_with = "redact")]
    pub password: Option<SecretString>,
    /// Seconds before a send gives up.
    pub timeout_secs: u64,
}

impl std::fmt::Debug for SmtpSettingsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// `[mail]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// File or SMTP.
    pub transport: MailTransport,
    /// Sender address.
    pub from: String,
    /// Template overrides; empty for none.
    pub templates_dir: String,
    /// SMTP server.
    pub smtp: SmtpSettingsFile,
}

/// `[outbox]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// Milliseconds between looks for due entries.
    pub poll_interval_ms: u64,
    /// Entries claimed at once.
    pub batch_size: usize,
    /// First retry delay.
    pub retry_base_delay_ms: u64,
    /// Longest retry delay.
    pub retry_max_delay_secs: u64,
    /// Give up after this long.
    pub give_up_after_hours: u64,
    /// Days finished entries are kept.
    pub retention_days: u64,
}

/// `[secrets]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSettings {
    /// Base64 of 32 bytes; empty derives one from the signing key.
    #[serde(serialize_with = "redact_string")]
    pub encryption_key: String,
    /// Older keys, still accepted.
    #[serde(serialize_with = "redact_list")]
    pub previous_encryption_keys: Vec<String>,
}

impl std::fmt::Debug for SecretsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsSettings")
            .field("configured", &!self.encryption_key.is_empty())
            .finish_non_exhaustive()
    }
}

fn redact_string<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if v.is_empty() { "" } else { "[redacted]" })
}

fn redact_list<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for _ in v {
        seq.serialize_element("[redacted]")?;
    }
    seq.end()
}

/// `[password_checks]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChecks {
    /// Minimum zxcvbn score; 0 is off.
    pub min_score: u8,
    /// Ask the range API about new passwords.
    pub breached_check: bool,
    /// Base URL of the range API.
    pub breached_api_url: String,
    /// Seconds before the check gives up (and lets the password through).
    pub timeout_secs: u64,
}

/// One group's limits.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupLimitSetting {
    /// Hits per window by client IP; 0 is off.
    pub per_ip: u32,
    /// Hits per window by account; 0 is off.
    pub per_identifier: u32,
    /// Window length.
    pub window_secs: u64,
}

/// `rate_limits.backend`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    /// Memory on SQLite, the database on PostgreSQL.
    #[serde(rename = "")]
    Auto,
    /// In this process (one node only).
    Memory,
    /// The database (shared by every node).
    Database,
    /// A Redis server at `rate_limits.redis_url` (shared by every node).
    Redis,
}

/// `[rate_limits]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Whether limits apply.
    pub enabled: bool,
    /// Where counters live.
    pub backend: RateLimitBackend,
    /// Redis URL, for the `redis` backend.
    #[serde(serialize_with = "serialize_db_url")]
    pub redis_url: String,
    /// Prefix of every key, so deployments can share a Redis.
    pub redis_key_prefix: String,
    /// Password sign-in.
    pub login: GroupLimitSetting,
    /// Sign-up.
    pub signup: GroupLimitSetting,
    /// Refresh.
    pub refresh: GroupLimitSetting,
    /// Forgot and reset password.
    pub password_reset: GroupLimitSetting,
    /// Magic links and email codes.
    pub passwordless: GroupLimitSetting,
    /// Second factors.
    pub mfa_verify: GroupLimitSetting,
    /// Introspection.
    pub introspection: GroupLimitSetting,
    /// Per-IP limits count IPv6 clients by this network prefix (1 to 128).
    #[serde(default = "sixty_four")]
    pub ipv6_prefix_len: u8,
}

fn sixty_four() -> u8 {
    64
}

/// `[lockout]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LockoutSettingsFile {
    /// Whether failures lock.
    pub enabled: bool,
    /// Failures that lock.
    pub threshold: u32,
    /// Window of the count.
    pub window_secs: u64,
    /// Lock length.
    pub freeze_secs: u64,
    /// Wrong one-time codes an account may get per 24 hours (every client together); 0 off.
    pub code_failures_per_day: u32,
}

/// `[captcha]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaptchaSettingsFile {
    /// Whether CAPTCHA is checked.
    pub enabled: bool,
    /// Siteverify URL.
    pub verify_url: String,
    /// Provider secret.
    #[serde(serialize_with = "redact_string")]
    pub secret: String,
    /// Seconds before the provider is given up on (the request then gets 503).
    pub timeout_secs: u64,
    /// On sign-up.
    pub on_signup: bool,
    /// On sign-in.
    pub on_login: bool,
    /// On forgot-password.
    pub on_password_reset: bool,
    /// On magic-link and code sending.
    pub on_passwordless: bool,
}

impl std::fmt::Debug for CaptchaSettingsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaSettings")
            .field("enabled", &self.enabled)
            .field("verify_url", &self.verify_url)
            .finish_non_exhaustive()
    }
}

/// A trusted proxy: an address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parse `10.0.0.1`, `10.0.0.0/8`, `::1` or `fd00::/8`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (std::net::IpAddr::V4(net), std::net::IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (std::net::IpAddr::V6(net), std::net::IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Decode a base64 32-byte key; the error names `key`.
pub fn decode_key(value: &str, key: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| format!("{key} must be base64 (openssl rand -base64 32)"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{key} must decode to exactly 32 bytes"))
}

/// One introspection client.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentials {
    /// Client id.
    pub id: String,
    /// Client secret.
    #[serde(serialize_with = "redact_required")]
    pub secret: SecretString,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// `[introspection]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionSettings {
    /// Clients from the configuration file.
    pub clients: Vec<ClientCredentials>,
    /// One client from the environment.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its secret.
    #[serde(default, serialize_with = "redact")]
    pub client_secret: Option<SecretString>,
}

impl IntrospectionSettings {
    /// Every configured client.
    pub fn all_clients(&self) -> Vec<ClientCredentials> {
        let mut all = self.clients.clone();
        if let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret) {
            all.push(ClientCredentials {
                id: id.clone(),
                secret: secret.clone(),
            });
        }
        all
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for development.
    Pretty,
    /// One JSON object per line, for production.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// Filter directive (`info`, `auth_http=debug,info` ...).
    pub level: String,
}

/// Where settings come from.
#[derive(Debug, Clone, Default)]
pub struct SettingsSource {
    /// Directory of `default.toml` / `{env}.toml` overrides; `config` when unset.
    pub config_dir: Option<PathBuf>,
    /// The `AUTH_ENV` overlay name.
    pub environment: Option<String>,
    /// Environment variables to use instead of the process environment (tests).
    pub vars: Option<HashMap<String, String>>,
}

impl SettingsSource {
    /// Read from the process: `AUTH_CONFIG_DIR`, `AUTH_ENV`, and `AUTH__*` variables.
    pub fn from_process() -> Self {
        Self {
            config_dir: std::env::var_os("AUTH_CONFIG_DIR").map(PathBuf::from),
            environment: std::env::var("AUTH_ENV").ok().filter(|e| !e.is_empty()),
            vars: None,
        }
    }
}

impl Settings {
    /// Load and validate. The error names the offending key.
    pub fn load(source: &SettingsSource) -> Result<Self, String> {
        let dir = source
            .config_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("config"));
        let mut builder = Config::builder()
            .add_source(File::from_str(EMBEDDED_DEFAULTS, FileFormat::Toml))
            .add_source(File::from(dir.join("default.toml")).required(false));
        if let Some(env) = &source.environment {
            let overlay = dir.join(format!("{env}.toml"));
            if !Path::new(&overlay).exists() {
                return Err(format!("AUTH_ENV={env}: no file {}", overlay.display()));
            }
            builder = builder.add_source(File::from(overlay));
        }
        let env = Environment::with_prefix("AUTH")
            .separator("__")
            .prefix_separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("auth.default_roles")
            .with_list_parse_key("app.redirect_allow_list")
            .with_list_parse_key("server.trusted_proxies")
            .with_list_parse_key("secrets.previous_encryption_keys")
            .with_list_parse_key("metrics.allow_from")
            .with_list_parse_key("cors.allowed_origins")
            .with_list_parse_key("webhooks.allowed_hosts")
            .with_list_parse_key("passkeys.origins")
            .source(source.vars.clone());
        let mut settings: Settings = builder
            .add_source(env)
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| format!("configuration: {e}"))?;
        settings.environment.clone_from(&source.environment);
        settings.validate()?;
        Ok(settings)
    }

    /// Checks that serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        crate::providers::validate(self)?;
        self.compat.validate()?;
        let url = self.server.public_url.as_str();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
            return Err("server.public_url must be an http(s) URL without a trailing slash".into());
        }
        let algorithm = self.signing_algorithm()?;
        match algorithm {
            SigningAlgorithm::HS256 => match &self.tokens.hs256_secret {
                Some(s) if s.expose_secret().len() >= 32 => {}
                _ => return Err("tokens.hs256_secret must be set and at least 32 bytes when tokens.algorithm = HS256".into()),
            },
            SigningAlgorithm::ES256 | SigningAlgorithm::RS256 if self.tokens.private_key_path.is_none() => {
                return Err(format!("tokens.private_key_path is required when tokens.algorithm = {}", algorithm.as_str()));
            }
            _ => {}
        }
        for (i, key) in self.tokens.verification_keys.iter().enumerate() {
            match SigningAlgorithm::from_str(&key.algorithm) {
                Ok(SigningAlgorithm::HS256) | Err(_) => {
                    return Err(format!(
                        "tokens.verification_keys[{i}].algorithm must be EdDSA, ES256 or RS256"
                    ));
                }
                Ok(_) => {}
            }
        }
        let t = &self.tokens;
        for (key, value) in [
            ("tokens.access_ttl_secs", t.access_ttl_secs),
            (
                "tokens.refresh_absolute_ttl_secs",
                t.refresh_absolute_ttl_secs,
            ),
            ("tokens.refresh_idle_ttl_secs", t.refresh_idle_ttl_secs),
        ] {
            if value == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
        }
        if t.access_ttl_secs > 86_400 {
            return Err(
                "tokens.access_ttl_secs must be at most 86400: access tokens cannot be recalled"
                    .into(),
            );
        }
        if t.refresh_reuse_grace_secs > 300 {
            return Err("tokens.refresh_reuse_grace_secs must be at most 300".into());
        }
        let app_url = self.app.effective_url(&self.server);
        if auth_core::flows::origin_of(app_url).is_none() || app_url.ends_with('/') {
            return Err("app.url must be an http(s) URL without a trailing slash".into());
        }
        for (i, url) in self.app.redirect_allow_list.iter().enumerate() {
            if auth_core::flows::origin_of(url).is_none() {
                return Err(format!(
                    "app.redirect_allow_list[{i}] must be an http(s) URL"
                ));
            }
        }
        for (key, path) in [
            ("app.verify_path", &self.app.verify_path),
            ("app.reset_path", &self.app.reset_path),
            ("app.magic_link_path", &self.app.magic_link_path),
        ] {
            if !path.starts_with('/') {
                return Err(format!("{key} must start with /"));
            }
        }
        if !self.mail.from.contains('@') {
            return Err("mail.from must be an email address".into());
        }
        let a = &self.auth;
        for (key, value) in [
            ("auth.verification_ttl_secs", a.verification_ttl_secs),
            ("auth.reset_ttl_secs", a.reset_ttl_secs),
            ("auth.magic_link_ttl_secs", a.magic_link_ttl_secs),
            ("auth.email_otp_ttl_secs", a.email_otp_ttl_secs),
            (
                "auth.email_otp_max_attempts",
                u64::from(a.email_otp_max_attempts),
            ),
            ("outbox.poll_interval_ms", self.outbox.poll_interval_ms),
            ("outbox.batch_size", self.outbox.batch_size as u64),
            (
                "outbox.retry_base_delay_ms",
                self.outbox.retry_base_delay_ms,
            ),
            (
                "outbox.give_up_after_hours",
                self.outbox.give_up_after_hours,
            ),
        ] {
            if value == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
        }
        if !(1..=128).contains(&self.rate_limits.ipv6_prefix_len) {
            return Err("rate_limits.ipv6_prefix_len must be between 1 and 128".into());
        }
        if !self.secrets.encryption_key.is_empty() {
            decode_key(&self.secrets.encryption_key, "secrets.encryption_key")?;
        }
        for (i, k) in self.secrets.previous_encryption_keys.iter().enumerate() {
            decode_key(k, &format!("secrets.previous_encryption_keys[{i}]"))?;
        }
        if self.server.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".into());
        }
        if self.server.housekeeping_interval_secs == 0 {
            return Err("server.housekeeping_interval_secs must be greater than 0".into());
        }
        for c in self.introspection.all_clients() {
            if c.id.is_empty() || c.secret.expose_secret().len() < 16 {
                return Err(
                    "introspection client ids must be set and secrets at least 16 bytes".into(),
                );
            }
        }
        if !self.database.url.starts_with("sqlite://")
            && !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
        {
            return Err("database.url must start with sqlite:// or postgres://".into());
        }
        self.password_policy.validate()?;
        for (i, p) in self.server.trusted_proxies.iter().enumerate() {
            IpNet::parse(p).map_err(|e| format!("server.trusted_proxies[{i}]: {e}"))?;
        }
        if self.password_checks.min_score > 4 {
            return Err("password_checks.min_score must be between 0 and 4".into());
        }
        if self.password_checks.breached_check
            && auth_core::flows::origin_of(&self.password_checks.breached_api_url).is_none()
        {
            return Err("password_checks.breached_api_url must be an http(s) URL".into());
        }
        let r = &self.rate_limits;
        for (name, g) in [
            ("login", r.login),
            ("signup", r.signup),
            ("refresh", r.refresh),
            ("password_reset", r.password_reset),
            ("passwordless", r.passwordless),
            ("mfa_verify", r.mfa_verify),
            ("introspection", r.introspection),
        ] {
            if g.window_secs == 0 {
                return Err(format!(
                    "rate_limits.{name}.window_secs must be greater than 0"
                ));
            }
        }
        let l = &self.lockout;
        if l.enabled && (l.threshold == 0 || l.window_secs == 0 || l.freeze_secs == 0) {
            return Err("lockout.threshold, lockout.window_secs and lockout.freeze_secs must be greater than 0".into());
        }
        let c = &self.captcha;
        if c.enabled
            && (auth_core::flows::origin_of(&c.verify_url).is_none() || c.secret.is_empty())
        {
            return Err("captcha.verify_url (an http(s) URL) and captcha.secret are required when captcha.enabled".into());
        }
        if self
            .auth
            .default_roles
            .iter()
            .any(|r| r == auth_core::operators::ADMIN_ROLE)
        {
            return Err("auth.default_roles must not contain admin: every new account would be an administrator".into());
        }
        let w = &self.webhooks;
        if w.max_attempts == 0 || w.max_attempts > 20 {
            return Err("webhooks.max_attempts must be between 1 and 20".into());
        }
        if w.timeout_secs == 0 || w.timeout_secs > 300 {
            return Err("webhooks.timeout_secs must be between 1 and 300".into());
        }
        if w.retry_initial_ms == 0 || w.retry_initial_ms > 86_400_000 {
            return Err("webhooks.retry_initial_ms must be between 1 and 86400000".into());
        }
        for (i, host) in w.allowed_hosts.iter().enumerate() {
            if host.is_empty() || host.contains(['/', ':', '@', ' ']) {
                return Err(format!(
                    "webhooks.allowed_hosts[{i}] must be a host name (or .domain for its subdomains)"
                ));
            }
        }
        if self.audit.retention_days == 0 || self.audit.retention_days > 36_500 {
            return Err("audit.retention_days must be between 1 and 36500".into());
        }
        self.password_hashing.validate()?;
        self.validate_operations()?;
        self.mfa.validate()?;
        self.passkeys.validate()?;
        self.sms.validate()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| format!("log.level: {e}"))?;
        Ok(())
    }

    /// Metrics, CORS and lifecycle sections.
    fn validate_operations(&self) -> Result<(), String> {
        for (i, p) in self.metrics.allow_from.iter().enumerate() {
            IpNet::parse(p).map_err(|e| format!("metrics.allow_from[{i}]: {e}"))?;
        }
        if !self.metrics.bearer_token.is_empty() && self.metrics.bearer_token.len() < 16 {
            return Err("metrics.bearer_token must be at least 16 characters".into());
        }
        if self.metrics.port != 0 && self.metrics.port == self.server.port {
            return Err(
                "metrics.port must differ from server.port (0 serves /metrics on the main port)"
                    .into(),
            );
        }
        for (i, origin) in self.cors.allowed_origins.iter().enumerate() {
            if auth_core::flows::origin_of(origin).as_deref() != Some(origin.as_str()) {
                return Err(format!(
                    "cors.allowed_origins[{i}] must be an origin: scheme://host[:port], no path"
                ));
            }
        }
        if self.lifecycle.db_retry_max_secs == 0 {
            return Err("lifecycle.db_retry_max_secs must be greater than 0".into());
        }
        Ok(())
    }

    /// The configured signing algorithm.
    pub fn signing_algorithm(&self) -> Result<SigningAlgorithm, String> {
        SigningAlgorithm::from_str(&self.tokens.algorithm)
            .map_err(|e| format!("tokens.algorithm: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::load(&SettingsSource {
            config_dir: Some(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../config"
            ))),
            environment: None,
            vars: Some(
                vars.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        })
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let s = load(&[]).unwrap();
        assert_eq!(s.server.host, "127.0.0.1");
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.server.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://data/auth.db");
        assert_eq!(s.data_dir, PathBuf::from("data"));
        assert_eq!(s.tokens.access_ttl_secs, 900);
        assert_eq!(s.tokens.refresh_reuse_grace_secs, 10);
        assert_eq!(s.tokens.algorithm, "EdDSA");
        assert_eq!(s.tokens.audience, "authenticated");
        assert_eq!(s.auth.email_confirmation, EmailConfirmation::Optional);
        assert_eq!(s.password_hashing.memory_kib, 19456);
    }

    #[test]
    fn environment_variables_win() {
        let s = load(&[
            ("AUTH__SERVER__PORT", "0"),
            (
                "AUTH__DATABASE__URL",
                "postgres://postgres@127.0.0.1:5432/auth",
            ),
            ("AUTH__DATA_DIR", "/tmp/x"),
            ("AUTH__TOKENS__ACCESS_TTL_SECS", "60"),
            ("AUTH__AUTH__DEFAULT_ROLES", "member,beta"),
        ])
        .unwrap();
        assert_eq!(s.server.port, 0);
        assert_eq!(s.database.url, "postgres://postgres@127.0.0.1:5432/auth");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.tokens.access_ttl_secs, 60);
        assert_eq!(s.auth.default_roles, vec!["member", "beta"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (("AUTH__SERVER__PORT", "eighty"), "port"),
            (("AUTH__TOKENS__ALGORITHM", "none"), "tokens.algorithm"),
            (("AUTH__TOKENS__ALGORITHM", "HS256"), "tokens.hs256_secret"),
            (
                ("AUTH__TOKENS__ALGORITHM", "RS256"),
                "tokens.private_key_path",
            ),
            (
                ("AUTH__PASSWORD_POLICY__MIN_LENGTH", "4"),
                "password_policy.min_length",
            ),
            (("AUTH__SERVER__PUBLIC_URL", "ftp://x"), "server.public_url"),
            (("AUTH__DATABASE__URL", "mysql://x"), "database.url"),
            (
                ("AUTH__AUTH__EMAIL_CONFIRMATION", "sometimes"),
                "email_confirmation",
            ),
            (("AUTH__APP__URL", "not a url"), "app.url"),
            (
                (
                    "AUTH__APP__REDIRECT_ALLOW_LIST",
                    "https://ok.example,javascript:x",
                ),
                "app.redirect_allow_list[1]",
            ),
            (("AUTH__MAIL__TRANSPORT", "pigeon"), "transport"),
            (("AUTH__MAIL__SMTP__TLS", "maybe"), "tls"),
            (
                ("AUTH__SECRETS__ENCRYPTION_KEY", "c2hvcnQ="),
                "secrets.encryption_key",
            ),
            (("AUTH__OUTBOX__BATCH_SIZE", "0"), "outbox.batch_size"),
            (
                ("AUTH__TOKENS__ACCESS_TTL_SECS", "0"),
                "tokens.access_ttl_secs",
            ),
        ];
        for ((key, value), named) in cases {
            let err = load(&[(key, value)]).unwrap_err();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn mail_settings_come_from_the_documented_keys() {
        let s = load(&[
            ("AUTH__MAIL__TRANSPORT", "smtp"),
            ("AUTH__MAIL__FROM", "Auth <auth@example.com>"),
            ("AUTH__MAIL__SMTP__HOST", "mail.example.com"),
            ("AUTH__MAIL__SMTP__PORT", "587"),
            ("AUTH__MAIL__SMTP__TLS", "starttls"),
            ("AUTH__MAIL__SMTP__USERNAME", "auth"),
            ("AUTH__MAIL__SMTP__PASSWORD", "smtp-secret-password"),
            ("AUTH__APP__URL", "https://app.example.com"),
            (
                "AUTH__APP__REDIRECT_ALLOW_LIST",
                "https://a.example.com,https://b.example.com/x",
            ),
            ("AUTH__AUTH__EMAIL_CONFIRMATION", "required"),
        ])
        .unwrap();
        assert_eq!(s.mail.transport, MailTransport::Smtp);
        assert_eq!(s.mail.smtp.port, 587);
        assert_eq!(s.mail.smtp.tls, SmtpTlsSetting::Starttls);
        assert_eq!(s.app.redirect_allow_list.len(), 2);
        assert_eq!(s.auth.email_confirmation, EmailConfirmation::Required);
        let shown = serde_json::to_string(&s).unwrap();
        assert!(!shown.contains("smtp-secret-password"));
        let defaults = load(&[]).unwrap();
        assert_eq!(defaults.mail.transport, MailTransport::File);
        assert_eq!(
            defaults.app.effective_url(&defaults.server),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn hs256_with_a_long_secret_is_accepted() {
        let s = load(&[
            ("AUTH__TOKENS__ALGORITHM", "HS256"),
            (
                "AUTH__TOKENS__HS256_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
        ])
        .unwrap();
        assert_eq!(s.signing_algorithm().unwrap(), SigningAlgorithm::HS256);
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let s = load(&[
            ("AUTH__TOKENS__ALGORITHM", "HS256"),
            (
                "AUTH__TOKENS__HS256_SECRET",
                "super-secret-super-secret-super-secret",
            ),
            (
                "AUTH__DATABASE__URL",
                "postgres://app:hunter2hunter2@db:5432/auth",
            ),
            ("AUTH__INTROSPECTION__CLIENT_ID", "api"),
            (
                "AUTH__INTROSPECTION__CLIENT_SECRET",
                "introspection-secret-1",
            ),
        ])
        .unwrap();
        let shown = format!("{}\n{s:?}", serde_json::to_string(&s).unwrap());
        for secret in ["super-secret", "hunter2", "introspection-secret-1"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("postgres://app:[redacted]@db:5432/auth"));
    }
}
