//! OpenID Connect providers: Google, Apple, or any issuer by discovery.

use std::time::Instant;

use async_trait::async_trait;
use auth_core::identity::{
    AuthorizationRequest, CodeExchange, ExternalIdentity, IdentityProvider, ProviderCredential,
    ProviderError,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{ClientId, IssuerUrl, JsonWebKey as _, Nonce};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::{NonceHashing, ProviderConfig, ProviderKind, http_client, json_answer, with_query};

/// The parts of a discovery document we use, after configured overrides.
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
}

struct KeyCache {
    set: CoreJsonWebKeySet,
    fetched: Instant,
}

/// An OpenID Connect provider.
pub struct OidcProvider {
    config: ProviderConfig,
    http: reqwest::Client,
    metadata: Mutex<Option<(Metadata, Instant)>>,
    keys: Mutex<Option<KeyCache>>,
}

fn presets(
    kind: ProviderKind,
) -> (
    Option<&'static str>,
    Option<&'static str>,
    [Option<&'static str>; 3],
) {
    // (issuer, discovery URL, [authorization, token, jwks])
    match kind {
        ProviderKind::Google => (
            Some("https://accounts.google.com"),
            Some("https://accounts.google.com/.well-known/openid-configuration"),
            [None, None, None],
        ),
        ProviderKind::Apple => (
            Some("https://appleid.apple.com"),
            None,
            [
                Some("https://appleid.apple.com/auth/authorize"),
                Some("https://appleid.apple.com/auth/token"),
                Some("https://appleid.apple.com/auth/keys"),
            ],
        ),
        _ => (None, None, [None, None, None]),
    }
}

fn invalid(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::InvalidIdToken(e.to_string())
}

/// The `kid` of a compact JWS header, when it has one.
fn header_kid(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Header {
        kid: Option<String>,
    }
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<Header>(&bytes).ok()?.kid
}

impl OidcProvider {
    /// Check the configuration and build the provider (no network call yet).
    pub fn new(mut config: ProviderConfig) -> Result<Self, String> {
        let (issuer, discovery, [authorize, token, jwks]) = presets(config.kind);
        let or = |v: &mut Option<String>, preset: Option<&str>| {
            if v.is_none() {
                *v = preset.map(str::to_owned);
            }
        };
        or(&mut config.issuer, issuer);
        or(&mut config.discovery_url, discovery);
        or(&mut config.authorization_endpoint, authorize);
        or(&mut config.token_endpoint, token);
        or(&mut config.jwks_uri, jwks);
        if config.discovery_url.is_none()
            && let Some(issuer) = &config.issuer
        {
            config.discovery_url = Some(crate::join(issuer, ".well-known/openid-configuration"));
        }
        if config.issuer.is_none() && config.discovery_url.is_none() {
            return Err(format!(
                "providers.{}: an OpenID Connect provider needs `issuer` or `discovery_url`",
                config.id
            ));
        }
        if config.scopes.is_empty() {
            config.scopes = match config.kind {
                ProviderKind::Apple => vec!["openid".into(), "name".into(), "email".into()],
                _ => vec!["openid".into(), "email".into(), "profile".into()],
            };
        }
        if config.nonce_hashing.is_none() {
            config.nonce_hashing = Some(if config.kind == ProviderKind::Apple {
                NonceHashing::Sha256
            } else {
                NonceHashing::Plain
            });
        }
        Ok(Self {
            http: http_client(config.timeout)?,
            config,
            metadata: Mutex::new(None),
            keys: Mutex::new(None),
        })
    }

    /// Endpoints and issuer: configured values, completed by the (cached) discovery document
    /// when something needed is not configured (the flow endpoints only for the redirect flow).
    async fn metadata(&self, for_flow: bool) -> Result<Metadata, ProviderError> {
        let c = &self.config;
        let configured = |discovered: Option<Metadata>| Metadata {
            issuer: c
                .issuer
                .clone()
                .or_else(|| discovered.as_ref().map(|m| m.issuer.clone()))
                .unwrap_or_default(),
            authorization_endpoint: c.authorization_endpoint.clone().or_else(|| {
                discovered
                    .as_ref()
                    .and_then(|m| m.authorization_endpoint.clone())
            }),
            token_endpoint: c
                .token_endpoint
                .clone()
                .or_else(|| discovered.as_ref().and_then(|m| m.token_endpoint.clone())),
            jwks_uri: c
                .jwks_uri
                .clone()
                .or_else(|| discovered.as_ref().and_then(|m| m.jwks_uri.clone())),
        };
        let complete = c.issuer.is_some()
            && c.jwks_uri.is_some()
            && (!for_flow || (c.authorization_endpoint.is_some() && c.token_endpoint.is_some()));
        let Some(url) = c.discovery_url.as_deref().filter(|_| !complete) else {
            return Ok(configured(None));
        };
        let mut cache = self.metadata.lock().await;
        if let Some((m, at)) = cache.as_ref()
            && at.elapsed() < c.cache_ttl
        {
            return Ok(configured(Some(m.clone())));
        }
        let discovered: Metadata =
            json_answer(self.http.get(url).send().await, "discovery document")
                .await
                .map_err(|e| match e {
                    // A discovery document is ours to fetch: any failure is an outage.
                    ProviderError::Rejected(d) => ProviderError::Unavailable(d),
                    e => e,
                })?;
        *cache = Some((discovered.clone(), Instant::now()));
        Ok(configured(Some(discovered)))
    }

    /// The key set, fetched when absent or stale, or refreshed when `kid` is unknown (at most
    /// once per `jwks_refresh_min_interval`, so bogus `kid`s cannot hammer the provider).
    async fn keys(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
    ) -> Result<CoreJsonWebKeySet, ProviderError> {
        let mut cache = self.keys.lock().await;
        let knows = |set: &CoreJsonWebKeySet| match kid {
            None => true,
            Some(kid) => set
                .keys()
                .iter()
                .any(|k| k.key_id().is_some_and(|id| id.as_str() == kid)),
        };
        if let Some(c) = cache.as_ref() {
            let fresh = c.fetched.elapsed() < self.config.cache_ttl;
            let may_refresh = c.fetched.elapsed() >= self.config.jwks_refresh_min_interval;
            if fresh && (knows(&c.set) || !may_refresh) {
                return Ok(c.set.clone());
            }
        }
        let set: CoreJsonWebKeySet = json_answer(self.http.get(jwks_uri).send().await, "JWKS")
            .await
            .map_err(|e| match e {
                ProviderError::Rejected(d) => ProviderError::Unavailable(d),
                e => e,
            })?;
        *cache = Some(KeyCache {
            set: set.clone(),
            fetched: Instant::now(),
        });
        Ok(set)
    }

    /// Verify an ID token: signature against the provider's keys (asymmetric algorithms
    /// only), `iss`, `exp`, every `aud` in the allow-list, and the nonce when one is expected.
    async fn verify_id_token(
        &self,
        raw: &str,
        nonce: Option<(&str, NonceHashing)>,
    ) -> Result<ExternalIdentity, ProviderError> {
        let token: CoreIdToken = raw
            .parse()
            .map_err(|e| invalid(format!("malformed ID token: {e}")))?;
        let meta = self.metadata(false).await?;
        let jwks_uri = meta.jwks_uri.clone().ok_or_else(|| {
            ProviderError::Unavailable("the provider publishes no jwks_uri".into())
        })?;
        let keys = self.keys(&jwks_uri, header_kid(raw).as_deref()).await?;
        let issuer = IssuerUrl::new(meta.issuer.clone())
            .map_err(|e| ProviderError::Unavailable(format!("bad issuer URL: {e}")))?;
        let first = self.config.client_ids.first().cloned().unwrap_or_default();
        let verifier = CoreIdTokenVerifier::new_public_client(ClientId::new(first), issuer, keys)
            // Several client ids (web, iOS, Android) are allowed: checked below.
            .require_audience_match(false)
            .require_issuer_match(false)
            .set_allowed_algs([
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
                CoreJwsSigningAlgorithm::RsaSsaPssSha256,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256,
                CoreJwsSigningAlgorithm::EcdsaP384Sha384,
            ]);
        let nonce_check = |found: Option<&Nonce>| -> Result<(), String> {
            let Some((expected, hashing)) = nonce else {
                return Ok(());
            };
            let expected = match hashing {
                NonceHashing::Plain => expected.to_owned(),
                NonceHashing::Sha256 => hex::encode(Sha256::digest(expected.as_bytes())),
            };
            match found {
                Some(found) if constant_eq(found.secret(), &expected) => Ok(()),
                Some(_) => Err("nonce mismatch".into()),
                None => Err("the ID token carries no nonce".into()),
            }
        };
        let claims = token.claims(&verifier, nonce_check).map_err(invalid)?;
        let iss = claims.issuer().as_str();
        let google_bare = self.config.kind == ProviderKind::Google
            && iss == "accounts.google.com"
            && meta.issuer == "https://accounts.google.com";
        if iss != meta.issuer && !google_bare {
            return Err(invalid(format!("issuer {iss} is not {}", meta.issuer)));
        }
        let audiences = claims.audiences();
        if audiences.is_empty()
            || !audiences
                .iter()
                .all(|a| self.config.client_ids.iter().any(|c| c == a.as_str()))
        {
            return Err(invalid("audience not allowed"));
        }
        Ok(ExternalIdentity {
            provider: self.config.id.clone(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            avatar_url: claims
                .picture()
                .and_then(|p| p.get(None))
                .map(|p| p.as_str().to_owned()),
        })
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    // Compare digests: equal length inputs, no early exit on the secret's bytes.
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

#[async_trait]
impl IdentityProvider for OidcProvider {
    async fn verify(
        &self,
        credential: &ProviderCredential,
    ) -> Result<ExternalIdentity, ProviderError> {
        match credential {
            ProviderCredential::IdToken { id_token, nonce } => {
                // Without the app's nonce nothing binds the token to this sign-in.
                if nonce.as_deref().is_none_or(str::is_empty) && !self.config.allow_missing_nonce {
                    return Err(ProviderError::NonceRequired);
                }
                let hashing = self.config.nonce_hashing.unwrap_or(NonceHashing::Plain);
                self.verify_id_token(
                    id_token.expose_secret(),
                    nonce.as_deref().map(|n| (n, hashing)),
                )
                .await
            }
            ProviderCredential::AccessToken { .. } => {
                Err(ProviderError::Unsupported("sign-in with an access token"))
            }
        }
    }

    async fn authorization_url(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<String, ProviderError> {
        let meta = self.metadata(true).await?;
        let endpoint = meta.authorization_endpoint.ok_or_else(|| {
            ProviderError::Unavailable("the provider publishes no authorization_endpoint".into())
        })?;
        let client_id = self.config.client_ids.first().cloned().unwrap_or_default();
        let scope = self.config.scopes.join(" ");
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", request.redirect_uri.as_str()),
            ("scope", scope.as_str()),
            ("state", request.state.as_str()),
            ("nonce", request.nonce.as_str()),
            ("code_challenge", request.pkce_challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if self.config.kind == ProviderKind::Apple {
            // Apple answers scoped requests by POSTing the callback.
            params.push(("response_mode", "form_post"));
        }
        with_query(&endpoint, &params)
    }

    async fn exchange_code(
        &self,
        exchange: &CodeExchange,
    ) -> Result<ExternalIdentity, ProviderError> {
        let meta = self.metadata(true).await?;
        let endpoint = meta.token_endpoint.ok_or_else(|| {
            ProviderError::Unavailable("the provider publishes no token_endpoint".into())
        })?;
        let client_id = self.config.client_ids.first().cloned().unwrap_or_default();
        let secret = self
            .config
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned());
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", exchange.code.clone()),
            ("redirect_uri", exchange.redirect_uri.clone()),
            (
                "code_verifier",
                exchange.pkce_verifier.expose_secret().to_owned(),
            ),
        ];
        let mut request = self.http.post(&endpoint);
        match (&secret, self.config.kind) {
            (Some(secret), ProviderKind::Apple) => {
                form.push(("client_id", client_id.clone()));
                form.push(("client_secret", secret.clone()));
            }
            (Some(secret), _) => request = request.basic_auth(&client_id, Some(secret)),
            (None, _) => form.push(("client_id", client_id.clone())),
        }
        let answer: TokenAnswer =
            json_answer(request.form(&form).send().await, "token endpoint").await?;
        let id_token = answer.id_token.ok_or_else(|| {
            ProviderError::Rejected("the token endpoint returned no id_token".into())
        })?;
        // The nonce of our own authorization request is sent as is, whatever the kind.
        self.verify_id_token(&id_token, Some((&exchange.nonce, NonceHashing::Plain)))
            .await
    }
}
