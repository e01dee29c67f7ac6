//! A resource server's side: verify the access tokens of an auth-http server with
//! `auth-core`'s [`JwksVerifier`], given only the server's published JWK Set.
//!
//! ```text
//! cargo run -p auth-core --example verify_tokens -- <JWKS_URL> <ISSUER> [AUDIENCE] < tokens.txt
//! ```
//!
//! `JWKS_URL` is the server's `jwks_uri` (`<public_url>/.well-known/jwks.json`, also named
//! by `/.well-known/openid-configuration`), `ISSUER` its `server.public_url`, `AUDIENCE` its
//! `tokens.audience` (default `authenticated`). Reads one token per line on standard input
//! and prints one JSON line per token: `{"valid": true, "sub": .., "sid": .., "roles": ..}`
//! or `{"valid": false, "error": ".."}`. Exits 0 when every token was valid, 1 otherwise,
//! 2 on a usage or network error.
//!
//! What a real service does the same way: keep one [`KeyCache`], call
//! [`KeyCache::verify`] on each request's `Authorization: Bearer` token. Keys rotate: a
//! token signed by a key the cache has not seen yet makes it fetch the JWK Set again (at
//! most once a minute).
//!
//! Signature and claims are checked here, not whether the session was revoked since the
//! token was issued: access tokens are short-lived (`tokens.access_ttl_secs`); a service that
//! must honour revocation at once asks `POST /api/v1/auth/introspect` instead.

use std::io::BufRead as _;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use auth_core::AuthError;
use auth_core::jwt::{AccessClaims, JwksVerifier};
use chrono::Utc;
use jsonwebtoken::jwk::JwkSet;
use serde_json::json;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How often at most an unknown `kid` may trigger a new download of the JWK Set.
const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// A verifier built from the JWK Set at `jwks_url`, refreshed when a new key shows up.
pub struct KeyCache {
    http: reqwest::Client,
    jwks_url: String,
    issuer: String,
    audience: String,
    verifier: RwLock<(JwksVerifier, Instant)>,
}

impl KeyCache {
    /// Download the JWK Set once and build the verifier.
    pub async fn new(jwks_url: &str, issuer: &str, audience: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let verifier = Self::fetch(&http, jwks_url, issuer, audience).await?;
        Ok(Self {
            http,
            jwks_url: jwks_url.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            verifier: RwLock::new((verifier, Instant::now())),
        })
    }

    async fn fetch(
        http: &reqwest::Client,
        jwks_url: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<JwksVerifier, Error> {
        let jwks: JwkSet = http
            .get(jwks_url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        // Leeway of 30 s for clock skew between this service and the auth server.
        Ok(JwksVerifier::new(&jwks, issuer, audience, 30))
    }

    /// Verify a bearer token: signature (algorithm fixed by the key, never by the token),
    /// `typ: at+jwt`, issuer, audience, expiry.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let first = self.read().0.verify(token, Utc::now());
        match first {
            Err(AuthError::InvalidToken("unknown key id")) if self.may_refetch() => {
                let fresh = Self::fetch(&self.http, &self.jwks_url, &self.issuer, &self.audience)
                    .await
                    .map_err(|e| AuthError::Unavailable(e.to_string()))?;
                let result = fresh.verify(token, Utc::now());
                if let Ok(mut guard) = self.verifier.write() {
                    *guard = (fresh, Instant::now());
                }
                result
            }
            other => other,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (JwksVerifier, Instant)> {
        self.verifier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn may_refetch(&self) -> bool {
        self.read().1.elapsed() >= REFETCH_AFTER
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(jwks_url), Some(issuer)) = (args.first(), args.get(1)) else {
        eprintln!("usage: verify_tokens <JWKS_URL> <ISSUER> [AUDIENCE] < tokens (one per line)");
        return std::process::ExitCode::from(2);
    };
    let audience = args.get(2).map_or("authenticated", String::as_str);
    let cache = match KeyCache::new(jwks_url, issuer, audience).await {
        Ok(cache) => cache,
        Err(e) => {
            eprintln!("cannot load the JWK Set from {jwks_url}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut all_valid = true;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let token = line.trim();
        if token.is_empty() {
            continue;
        }
        let answer = match cache.verify(token).await {
            Ok(claims) => json!({
                "valid": true, "sub": claims.sub, "sid": claims.sid, "email": claims.email,
                "roles": claims.roles, "aal": claims.aal, "exp": claims.exp,
            }),
            Err(e) => {
                all_valid = false;
                json!({"valid": false, "error": e.to_string()})
            }
        };
        if std::io::Write::write_all(&mut out, format!("{answer}\n").as_bytes()).is_err() {
            return std::process::ExitCode::from(2);
        }
    }
    if all_valid {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
