//! `auth-oidc`: identity-provider adapters implementing `auth_core::identity::IdentityProvider`.
//!
//! - [`oidc::OidcProvider`]: any OpenID Connect issuer (Google and Apple presets), ID tokens
//!   verified with the `openidconnect` crate against the provider's JWKS (discovery document
//!   and key set cached; the key set refreshed, rate limited, on an unknown `kid`).
//! - [`userinfo`]: OAuth2 providers without ID tokens: Facebook (Graph API with
//!   `appsecret_proof`, token checked to belong to our app), GitHub (user and verified
//!   emails), X/Twitter (OAuth 2.0 `users/me`, and OAuth 1.0a `verify_credentials` signed per
//!   RFC 5849 by [`oauth1`]).
//!
//! Every HTTP client has redirects disabled (no SSRF through a provider's redirect) and
//! timeouts.

use std::sync::Arc;
use std::time::Duration;

use auth_core::identity::{IdentityProvider, ProviderError};
use secrecy::SecretString;

pub mod oauth1;
pub mod oidc;
pub mod userinfo;

/// Which implementation and presets a provider uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenID Connect issuer, by discovery.
    Oidc,
    /// Google (OpenID Connect).
    Google,
    /// Sign in with Apple (OpenID Connect; nonce as SHA-256 hex).
    Apple,
    /// Facebook Login (Graph API).
    Facebook,
    /// GitHub OAuth apps.
    Github,
    /// X/Twitter (OAuth 2.0 and OAuth 1.0a).
    Twitter,
}

impl ProviderKind {
    /// Parse a kind name (`oidc`, `google`, `apple`, `facebook`, `github`, `twitter`/`x`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "oidc" => Self::Oidc,
            "google" => Self::Google,
            "apple" => Self::Apple,
            "facebook" => Self::Facebook,
            "github" => Self::Github,
            "twitter" | "x" => Self::Twitter,
            _ => return None,
        })
    }
}

/// How the ID token's `nonce` relates to the nonce the app sends us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceHashing {
    /// The token carries the nonce itself (Google, most issuers).
    Plain,
    /// The token carries the SHA-256 hex of the nonce (Apple).
    Sha256,
}

/// Everything an adapter needs; endpoints left `None` take the preset of the kind.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Configured id (`google`, `acme-sso` ...).
    pub id: String,
    /// Implementation and presets.
    pub kind: ProviderKind,
    /// Allowed client ids (audiences); the first one is used in the browser flow. For
    /// Facebook, the app id.
    pub client_ids: Vec<String>,
    /// Client secret (Facebook: app secret; Apple: the client secret JWT).
    pub client_secret: Option<SecretString>,
    /// Expected `iss` (OpenID Connect).
    pub issuer: Option<String>,
    /// Discovery document URL.
    pub discovery_url: Option<String>,
    /// Authorization endpoint.
    pub authorization_endpoint: Option<String>,
    /// Token endpoint.
    pub token_endpoint: Option<String>,
    /// JWKS URL.
    pub jwks_uri: Option<String>,
    /// Base URL of the provider's user API (GitHub, Graph, X).
    pub api_base_url: Option<String>,
    /// Scopes asked for in the browser flow; empty takes the preset.
    pub scopes: Vec<String>,
    /// Nonce comparison; `None` takes the preset (SHA-256 for Apple).
    pub nonce_hashing: Option<NonceHashing>,
    /// Accept ID tokens an app hands in without a nonce. Off by default: without one,
    /// nothing binds the token to this sign-in, and a token leaked from anywhere (another
    /// app's logs, a relying party of the same client id) can be replayed until it expires.
    pub allow_missing_nonce: bool,
    /// OAuth 1.0a consumer key (X legacy tokens).
    pub consumer_key: Option<String>,
    /// OAuth 1.0a consumer secret.
    pub consumer_secret: Option<SecretString>,
    /// X: accept OAuth 2.0 access tokens an app hands in, although nothing proves they were
    /// issued to our client (X has no token check). Off by default.
    pub accept_unbound_access_tokens: bool,
    /// Timeout of each call to the provider.
    pub timeout: Duration,
    /// How long discovery documents and key sets are cached.
    pub cache_ttl: Duration,
    /// Least time between two key-set refreshes caused by unknown `kid`s.
    pub jwks_refresh_min_interval: Duration,
}

impl ProviderConfig {
    /// A configuration with the kind's presets and default timings.
    pub fn new(id: &str, kind: ProviderKind) -> Self {
        Self {
            id: id.to_owned(),
            kind,
            client_ids: Vec::new(),
            client_secret: None,
            issuer: None,
            discovery_url: None,
            authorization_endpoint: None,
            token_endpoint: None,
            jwks_uri: None,
            api_base_url: None,
            scopes: Vec::new(),
            nonce_hashing: None,
            allow_missing_nonce: false,
            consumer_key: None,
            consumer_secret: None,
            accept_unbound_access_tokens: false,
            timeout: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(3600),
            jwks_refresh_min_interval: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("client_ids", &self.client_ids)
            .finish_non_exhaustive()
    }
}

/// Build the adapter of a configured provider.
pub fn build(config: ProviderConfig) -> Result<Arc<dyn IdentityProvider>, String> {
    if config.client_ids.is_empty() && config.consumer_key.is_none() {
        return Err(format!(
            "providers.{}.client_ids: at least one client id is required",
            config.id
        ));
    }
    Ok(match config.kind {
        ProviderKind::Oidc | ProviderKind::Google | ProviderKind::Apple => {
            Arc::new(oidc::OidcProvider::new(config)?)
        }
        ProviderKind::Facebook => Arc::new(userinfo::Facebook::new(config)?),
        ProviderKind::Github => Arc::new(userinfo::Github::new(config)?),
        ProviderKind::Twitter => Arc::new(userinfo::Twitter::new(config)?),
    })
}

/// An HTTP client for provider calls: no redirects, bounded time.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("auth-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// A transport failure: the provider is unreachable.
pub(crate) fn unavailable(e: reqwest::Error) -> ProviderError {
    ProviderError::Unavailable(without_url(e).to_string())
}

fn without_url(e: reqwest::Error) -> reqwest::Error {
    // URLs may carry tokens in their query (Graph API): keep them out of errors and logs.
    e.without_url()
}

/// Read a JSON answer: 2xx parses, 400/401/403 is a refusal, anything else an outage.
pub(crate) async fn json_answer<T: serde::de::DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> Result<T, ProviderError> {
    let response = response.map_err(unavailable)?;
    let status = response.status();
    if status.is_success() {
        return response.json::<T>().await.map_err(|e| {
            ProviderError::Unavailable(format!("{what}: malformed answer: {}", without_url(e)))
        });
    }
    if matches!(status.as_u16(), 400 | 401 | 403) {
        return Err(ProviderError::Rejected(format!("{what}: HTTP {status}")));
    }
    Err(ProviderError::Unavailable(format!("{what}: HTTP {status}")))
}

/// Join a base URL and a path.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// `url` with the query parameters appended.
pub(crate) fn with_query(url: &str, params: &[(&str, &str)]) -> Result<String, ProviderError> {
    let mut url = url::Url::parse(url)
        .map_err(|e| ProviderError::Unavailable(format!("bad provider URL {url}: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Ok(url.into())
}
