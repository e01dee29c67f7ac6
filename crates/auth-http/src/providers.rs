//! Identity providers: the `[providers.<id>]` and `[oauth]` settings, and building the
//! `auth-oidc` adapters and the social sign-in service from them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auth_core::AuthCore;
use auth_core::identity::IdentityStore;
use auth_core::social::{ProviderEntry, SignupMode, SocialService, SocialSettings};
use auth_oidc::{NonceHashing, ProviderConfig, ProviderKind};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::settings::Settings;

fn redact<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

/// A list from TOML (`["a", "b"]`) or from an environment variable (`a,b` or `a b`).
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
        Number(i64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::List(list) => list,
        Raw::Text(text) => text
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Raw::Number(n) => vec![n.to_string()],
    })
}

/// A string, also when an environment variable looked like a number (Facebook app ids).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(i64),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| match r {
        Raw::Text(t) => t,
        Raw::Number(n) => n.to_string(),
    }))
}

fn ten() -> u64 {
    10
}

fn hour() -> u64 {
    3600
}

/// `[providers.<id>]`: one identity provider. The id names the routes
/// (`/api/v1/auth/oauth/<id>/...`); `kind` defaults to the id when it names a preset
/// (`google`, `apple`, `facebook`, `github`, `twitter`), else `oidc`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// `oidc`, `google`, `apple`, `facebook`, `github` or `twitter`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Allowed client ids (audiences); the first is used in the browser flow.
    #[serde(default, deserialize_with = "string_list")]
    pub client_ids: Vec<String>,
    /// Client secret (Facebook app secret, Apple client-secret JWT ...).
    #[serde(default, serialize_with = "redact")]
    pub client_secret: Option<SecretString>,
    /// Expected issuer (OpenID Connect).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Discovery document URL (default `<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// Authorization endpoint override.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Token endpoint override.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// JWKS URL override.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// User API base URL override (GitHub, Facebook Graph, X).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Scopes of the browser flow; empty takes the preset.
    #[serde(default, deserialize_with = "string_list")]
    pub scopes: Vec<String>,
    /// `auto` (first sign-in creates the account), `strict` (sign-up is a separate call),
    /// `disabled` (never creates accounts).
    #[serde(default)]
    pub signup: SignupMode,
    /// `plain` or `sha256` (how the ID token carries the app's nonce); preset by kind.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Accept ID tokens handed in by apps without a `nonce` (apps that cannot send one);
    /// off by default, a token without one could be replayed from anywhere it leaked.
    #[serde(default)]
    pub allow_missing_nonce: bool,
    /// OAuth 1.0a consumer key (X legacy tokens).
    #[serde(default, deserialize_with = "lenient_string")]
    pub consumer_key: Option<String>,
    /// OAuth 1.0a consumer secret.
    #[serde(default, serialize_with = "redact")]
    pub consumer_secret: Option<SecretString>,
    /// X: accept OAuth 2.0 access tokens handed in by apps, which X offers no way to check
    /// against our client id (a token issued to any other X app would sign its user in).
    #[serde(default)]
    pub accept_unbound_access_tokens: bool,
    /// Timeout of each call to the provider, seconds.
    #[serde(default = "ten")]
    pub timeout_secs: u64,
    /// How long discovery documents and key sets are cached, seconds.
    #[serde(default = "hour")]
    pub cache_ttl_secs: u64,
    /// Least seconds between two key-set refreshes caused by an unknown `kid`.
    #[serde(default = "ten")]
    pub jwks_refresh_min_interval_secs: u64,
}

fn sixty() -> u64 {
    60
}

fn ten_minutes() -> u64 {
    600
}

/// `[oauth]`: the browser redirect flow.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthFlowSettings {
    /// Lifetime of an authorization request (state, nonce, PKCE verifier), seconds.
    #[serde(default = "ten_minutes")]
    pub state_ttl_secs: u64,
    /// Lifetime of the one-time code handed to the app, seconds (at most 60).
    #[serde(default = "sixty")]
    pub code_ttl_secs: u64,
}

impl Default for OAuthFlowSettings {
    fn default() -> Self {
        Self {
            state_ttl_secs: ten_minutes(),
            code_ttl_secs: sixty(),
        }
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// The adapter configuration of one provider; the error names the offending key.
pub fn provider_config(id: &str, p: &ProviderSettings) -> Result<ProviderConfig, String> {
    let key = |k: &str| format!("providers.{id}.{k}");
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "providers.{id}: a provider id is lowercase letters, digits, '-' and '_'"
        ));
    }
    let kind_name = p.kind.clone().unwrap_or_else(|| {
        if ProviderKind::parse(id).is_some() {
            id.to_owned()
        } else {
            "oidc".to_owned()
        }
    });
    let kind = ProviderKind::parse(&kind_name).ok_or_else(|| {
        format!(
            "{} must be oidc, google, apple, facebook, github or twitter",
            key("kind")
        )
    })?;
    for (name, value) in [
        ("issuer", &p.issuer),
        ("discovery_url", &p.discovery_url),
        ("authorization_endpoint", &p.authorization_endpoint),
        ("token_endpoint", &p.token_endpoint),
        ("jwks_uri", &p.jwks_uri),
        ("api_base_url", &p.api_base_url),
    ] {
        if let Some(v) = value
            && !is_url(v)
        {
            return Err(format!("{} must be an http(s) URL", key(name)));
        }
    }
    let nonce_hashing = match p.nonce.as_deref() {
        None => None,
        Some("plain") => Some(NonceHashing::Plain),
        Some("sha256") => Some(NonceHashing::Sha256),
        Some(_) => return Err(format!("{} must be plain or sha256", key("nonce"))),
    };
    if p.timeout_secs == 0 {
        return Err(format!("{} must be at least 1", key("timeout_secs")));
    }
    Ok(ProviderConfig {
        id: id.to_owned(),
        kind,
        client_ids: p.client_ids.clone(),
        client_secret: p.client_secret.clone(),
        issuer: p.issuer.clone(),
        discovery_url: p.discovery_url.clone(),
        authorization_endpoint: p.authorization_endpoint.clone(),
        token_endpoint: p.token_endpoint.clone(),
        jwks_uri: p.jwks_uri.clone(),
        api_base_url: p.api_base_url.clone(),
        scopes: p.scopes.clone(),
        nonce_hashing,
        allow_missing_nonce: p.allow_missing_nonce,
        consumer_key: p.consumer_key.clone(),
        consumer_secret: p.consumer_secret.clone(),
        accept_unbound_access_tokens: p.accept_unbound_access_tokens,
        timeout: Duration::from_secs(p.timeout_secs),
        cache_ttl: Duration::from_secs(p.cache_ttl_secs),
        jwks_refresh_min_interval: Duration::from_secs(p.jwks_refresh_min_interval_secs),
    })
}

/// Check every provider and the flow settings (called by `Settings::validate`).
pub fn validate(settings: &Settings) -> Result<(), String> {
    for (id, p) in &settings.providers {
        auth_oidc::build(provider_config(id, p)?)?;
    }
    let flow = &settings.oauth;
    if flow.code_ttl_secs == 0 || flow.code_ttl_secs > 60 {
        return Err("oauth.code_ttl_secs must be between 1 and 60".into());
    }
    if flow.state_ttl_secs == 0 || flow.state_ttl_secs > 3600 {
        return Err("oauth.state_ttl_secs must be between 1 and 3600".into());
    }
    Ok(())
}

/// Build the social sign-in service over the configured providers.
pub fn social_service(
    settings: &Settings,
    auth: Arc<AuthCore>,
    identities: Arc<dyn IdentityStore>,
) -> Result<SocialService, String> {
    let mut providers = HashMap::new();
    for (id, p) in &settings.providers {
        let provider = auth_oidc::build(provider_config(id, p)?)?;
        providers.insert(
            id.clone(),
            ProviderEntry {
                provider,
                signup: p.signup,
            },
        );
    }
    let secs = |n: u64| chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX));
    Ok(SocialService::new(
        auth,
        identities,
        providers,
        SocialSettings {
            public_url: settings.server.public_url.clone(),
            redirect_allow_list: settings.app.redirect_allow_list.clone(),
            state_ttl: secs(settings.oauth.state_ttl_secs),
            code_ttl: secs(settings.oauth.code_ttl_secs),
        },
    ))
}

/// Housekeeping: delete abandoned browser-flow records now and then.
pub async fn purge_expired_oauth_records(social: Arc<SocialService>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    loop {
        tick.tick().await;
        match social.purge_expired_oauth_records().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired sign-in states and codes deleted"),
            Err(e) => tracing::warn!(error = %e, "could not purge expired sign-in states"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use crate::settings::{Settings, SettingsSource};

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
    fn providers_come_from_environment_variables() {
        let s = load(&[
            (
                "AUTH__PROVIDERS__GOOGLE__CLIENT_IDS",
                "web-id,ios-id, android-id",
            ),
            ("AUTH__PROVIDERS__GOOGLE__SIGNUP", "strict"),
            ("AUTH__PROVIDERS__FACEBOOK__CLIENT_IDS", "1234567890"),
            (
                "AUTH__PROVIDERS__FACEBOOK__CLIENT_SECRET",
                "fb-app-secret-1",
            ),
            (
                "AUTH__PROVIDERS__ACME__ISSUER",
                "https://login.acme.example",
            ),
            ("AUTH__PROVIDERS__ACME__CLIENT_IDS", "acme"),
        ])
        .unwrap();
        let google = &s.providers["google"];
        assert_eq!(google.client_ids, ["web-id", "ios-id", "android-id"]);
        assert_eq!(google.signup, auth_core::social::SignupMode::Strict);
        assert_eq!(s.providers["facebook"].client_ids, ["1234567890"]);
        let acme = super::provider_config("acme", &s.providers["acme"]).unwrap();
        assert_eq!(acme.kind, auth_oidc::ProviderKind::Oidc);
        let shown = format!("{}\n{s:?}", serde_json::to_string(&s).unwrap());
        assert!(!shown.contains("fb-app-secret-1"), "secret leaked: {shown}");
    }

    #[test]
    fn bad_provider_settings_name_their_key() {
        for (vars, key) in [
            (
                vec![("AUTH__PROVIDERS__GOOGLE__SIGNUP", "auto")],
                "providers.google.client_ids",
            ),
            (
                vec![
                    ("AUTH__PROVIDERS__X1__CLIENT_IDS", "a"),
                    ("AUTH__PROVIDERS__X1__KIND", "myspace"),
                ],
                "providers.x1.kind",
            ),
            (
                vec![
                    ("AUTH__PROVIDERS__ACME__CLIENT_IDS", "a"),
                    ("AUTH__PROVIDERS__ACME__ISSUER", "ftp://x"),
                ],
                "providers.acme.issuer",
            ),
            (
                vec![("AUTH__PROVIDERS__ACME__CLIENT_IDS", "a")],
                "providers.acme",
            ),
            (
                vec![("AUTH__PROVIDERS__FACEBOOK__CLIENT_IDS", "1")],
                "providers.facebook.client_secret",
            ),
            (
                vec![("AUTH__OAUTH__CODE_TTL_SECS", "600")],
                "oauth.code_ttl_secs",
            ),
        ] {
            let err = load(&vars).unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
