//! Access tokens: JWT (RFC 9068 `at+jwt`) signing and verification with an algorithm
//! allow-list, key ids and a public JWK Set.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ConfigError;
use crate::error::{AuthError, AuthResult};
use crate::random::{RandomSource, random_bytes};

/// The JOSE `typ` of our access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Signing algorithms an operator may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// Ed25519 (the default).
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// HMAC-SHA-256 with a shared secret (no public keys).
    HS256,
}

impl SigningAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
            Self::HS256 => Algorithm::HS256,
        }
    }

    /// The name used in configuration and in JOSE headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::HS256 => "HS256",
        }
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EdDSA" => Ok(Self::EdDSA),
            "ES256" => Ok(Self::ES256),
            "RS256" => Ok(Self::RS256),
            "HS256" => Ok(Self::HS256),
            other => Err(format!(
                "unsupported algorithm {other:?}: use EdDSA, ES256, RS256 or HS256"
            )),
        }
    }
}

struct VerificationKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The signing key and every key accepted for verification, indexed by `kid`.
pub struct KeySet {
    signing_kid: String,
    signing_algorithm: Algorithm,
    signing_key: EncodingKey,
    verification: HashMap<String, VerificationKey>,
    public: JwkSet,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("signing_kid", &self.signing_kid)
            .field("signing_algorithm", &self.signing_algorithm)
            .field(
                "verification_kids",
                &self.verification.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn key_error(what: &str, e: impl fmt::Display) -> ConfigError {
    format!("{what}: {e}").into()
}

fn published(mut jwk: Jwk, algorithm: Algorithm) -> Result<(String, Jwk), ConfigError> {
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| key_error("cannot compute key id", e))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(
        jsonwebtoken::jwk::KeyAlgorithm::from_str(&format!("{algorithm:?}"))
            .map_err(|e| key_error("algorithm", e))?,
    );
    Ok((kid, jwk))
}

fn decoding_key_from_pem(
    algorithm: SigningAlgorithm,
    pem: &[u8],
) -> Result<DecodingKey, ConfigError> {
    match algorithm {
        SigningAlgorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        SigningAlgorithm::ES256 => DecodingKey::from_ec_pem(pem),
        SigningAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem),
        SigningAlgorithm::HS256 => return Err("HS256 has no public key".into()),
    }
    .map_err(|e| key_error("public key PEM does not parse", e))
}

fn encoding_key_from_pem(
    algorithm: SigningAlgorithm,
    pem: &[u8],
) -> Result<EncodingKey, ConfigError> {
    match algorithm {
        SigningAlgorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        SigningAlgorithm::ES256 => EncodingKey::from_ec_pem(pem),
        SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(pem),
        SigningAlgorithm::HS256 => return Err("HS256 takes a secret, not a PEM key".into()),
    }
    .map_err(|e| {
        key_error(
            &format!(
                "private key PEM does not parse as an {} key",
                algorithm.as_str()
            ),
            e,
        )
    })
}

fn is_private_pem(pem: &[u8]) -> bool {
    String::from_utf8_lossy(pem).contains("PRIVATE KEY-----")
}

impl KeySet {
    /// A key set that signs with the private key in `private_pem`. When `public_pem` is
    /// given it must be the matching public key; otherwise it is derived.
    pub fn from_private_pem(
        algorithm: SigningAlgorithm,
        private_pem: &[u8],
        public_pem: Option<&[u8]>,
    ) -> Result<Self, ConfigError> {
        let signing_key = encoding_key_from_pem(algorithm, private_pem)?;
        let alg = algorithm.jwt();
        let derived = Jwk::from_encoding_key(&signing_key, alg)
            .map_err(|e| key_error("cannot derive the public key", e))?;
        let (kid, jwk) = published(derived, alg)?;
        if let Some(public_pem) = public_pem {
            let given =
                Jwk::from_decoding_key(&decoding_key_from_pem(algorithm, public_pem)?, Some(alg))
                    .map_err(|e| key_error("public key", e))?;
            if published(given, alg)?.0 != kid {
                return Err("the public key does not match the private key".into());
            }
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| key_error("public key", e))?;
        let mut verification = HashMap::new();
        verification.insert(
            kid.clone(),
            VerificationKey {
                algorithm: alg,
                key,
            },
        );
        Ok(Self {
            signing_kid: kid,
            signing_algorithm: alg,
            signing_key,
            verification,
            public: JwkSet { keys: vec![jwk] },
        })
    }

    /// A key set that signs and verifies with an HMAC secret of at least 32 bytes.
    pub fn from_hs256_secret(secret: &[u8]) -> Result<Self, ConfigError> {
        if secret.len() < 32 {
            return Err("the HS256 secret must be at least 32 bytes".into());
        }
        // The kid names the secret without revealing anything usable about it.
        let kid = format!(
            "hs256-{}",
            &hex::encode(Sha256::digest(
                [b"auth-core/kid\0".as_slice(), secret].concat()
            ))[..16]
        );
        let mut verification = HashMap::new();
        verification.insert(
            kid.clone(),
            VerificationKey {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            },
        );
        Ok(Self {
            signing_kid: kid,
            signing_algorithm: Algorithm::HS256,
            signing_key: EncodingKey::from_secret(secret),
            verification,
            public: JwkSet { keys: vec![] },
        })
    }

    /// Also accept tokens signed by another key (key rotation). `pem` may hold the public
    /// key or the private key; only the public part is kept and published.
    pub fn add_verification_key(
        &mut self,
        algorithm: SigningAlgorithm,
        pem: &[u8],
    ) -> Result<(), ConfigError> {
        let alg = algorithm.jwt();
        let jwk = if is_private_pem(pem) {
            Jwk::from_encoding_key(&encoding_key_from_pem(algorithm, pem)?, alg)
        } else {
            Jwk::from_decoding_key(&decoding_key_from_pem(algorithm, pem)?, Some(alg))
        }
        .map_err(|e| key_error("verification key", e))?;
        let (kid, jwk) = published(jwk, alg)?;
        if self.verification.contains_key(&kid) {
            return Ok(());
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| key_error("verification key", e))?;
        self.verification.insert(
            kid,
            VerificationKey {
                algorithm: alg,
                key,
            },
        );
        self.public.keys.push(jwk);
        Ok(())
    }

    /// Also accept tokens signed with another HMAC secret (HS256 rotation).
    pub fn add_hs256_verification_secret(&mut self, secret: &[u8]) -> Result<(), ConfigError> {
        let other = Self::from_hs256_secret(secret)?;
        self.verification.extend(other.verification);
        Ok(())
    }

    /// The `kid` of the signing key.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The public keys, for `/.well-known/jwks.json` (empty for HS256).
    pub fn jwks(&self) -> &JwkSet {
        &self.public
    }
}

/// A fresh Ed25519 private key as PKCS#8 (v1, RFC 8410) PEM, the form OpenSSL writes.
pub fn generate_ed25519_pem(rng: &dyn RandomSource) -> Result<SecretString, ConfigError> {
    use base64::Engine as _;
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(&random_bytes::<32>(rng));
    let body = base64::engine::general_purpose::STANDARD.encode(&der);
    Ok(SecretString::from(format!(
        "-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"
    )))
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the server's public URL.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// The user's email address.
    pub email: String,
    /// Whether the email address is verified.
    pub email_verified: bool,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Authentication methods references (RFC 8176).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Authenticator assurance level.
    pub aal: String,
}

/// Port: signs and verifies access tokens.
pub trait TokenIssuer: Send + Sync {
    /// The `iss` this issuer signs with and accepts.
    fn issuer(&self) -> &str;
    /// The `aud` this issuer signs with and accepts.
    fn audience(&self) -> &str;
    /// Sign claims into a compact JWT.
    fn sign(&self, claims: &AccessClaims) -> AuthResult<String>;
    /// Verify a compact JWT: type, key, algorithm, signature, issuer, audience, times.
    fn verify(&self, token: &str, now: DateTime<Utc>) -> AuthResult<AccessClaims>;
    /// The public JWK Set (a copy: the keys can be replaced while serving).
    fn jwks(&self) -> JwkSet;
}

/// [`TokenIssuer`] over a [`KeySet`].
pub struct JwtIssuer {
    // Replaced whole when keys rotate (see `JwtIssuer::replace_keys`).
    keys: std::sync::RwLock<std::sync::Arc<KeySet>>,
    issuer: String,
    audience: String,
    leeway_secs: i64,
}

impl fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtIssuer {
    /// An issuer for `issuer`/`audience`, tolerating `leeway_secs` of clock skew between nodes.
    pub fn new(
        keys: KeySet,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        leeway_secs: i64,
    ) -> Self {
        Self {
            keys: std::sync::RwLock::new(std::sync::Arc::new(keys)),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs,
        }
    }

    fn current(&self) -> std::sync::Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sign with, and accept, another key set from now on (a rotated key picked up while
    /// running). Tokens being verified keep the set they started with.
    pub fn replace_keys(&self, keys: KeySet) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(keys);
    }

    /// The `kid` of the current signing key.
    pub fn signing_kid(&self) -> String {
        self.current().signing_kid.clone()
    }
}

impl TokenIssuer for JwtIssuer {
    fn issuer(&self) -> &str {
        &self.issuer
    }

    fn audience(&self) -> &str {
        &self.audience
    }

    fn sign(&self, claims: &AccessClaims) -> AuthResult<String> {
        let keys = self.current();
        let mut header = Header::new(keys.signing_algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(keys.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &keys.signing_key).map_err(AuthError::internal)
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> AuthResult<AccessClaims> {
        let keys = self.current();
        verify_with(
            token,
            now,
            self.leeway_secs,
            &self.issuer,
            &self.audience,
            |kid| keys.verification.get(kid).map(|k| (k.algorithm, &k.key)),
        )
    }

    fn jwks(&self) -> JwkSet {
        self.current().public.clone()
    }
}

/// Verification shared by the issuer and by resource-server verifiers.
fn verify_with<'k>(
    token: &str,
    now: DateTime<Utc>,
    leeway_secs: i64,
    issuer: &str,
    audience: &str,
    key_for: impl Fn(&str) -> Option<(Algorithm, &'k DecodingKey)>,
) -> AuthResult<AccessClaims> {
    use jsonwebtoken::errors::ErrorKind;

    // `alg: none` and unknown algorithms fail here: they are not in the Algorithm enum.
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| AuthError::InvalidToken("malformed token"))?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(AuthError::InvalidToken("not an access token"));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or(AuthError::InvalidToken("no key id"))?;
    let (algorithm, key) = key_for(kid).ok_or(AuthError::InvalidToken("unknown key id"))?;
    // The key decides the algorithm, never the token: this is what stops HS/RS confusion.
    if header.alg != algorithm {
        return Err(AuthError::InvalidToken(
            "algorithm not allowed for this key",
        ));
    }
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    // Times are checked below against the injected clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| {
        AuthError::InvalidToken(match e.kind() {
            ErrorKind::InvalidSignature => "bad signature",
            ErrorKind::InvalidIssuer => "wrong issuer",
            ErrorKind::InvalidAudience => "wrong audience",
            ErrorKind::InvalidAlgorithm => "algorithm not allowed for this key",
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                "missing or malformed claim"
            }
            _ => "malformed token",
        })
    })?;
    let claims = data.claims;
    let now = now.timestamp();
    if now >= claims.exp + leeway_secs {
        return Err(AuthError::InvalidToken("token expired"));
    }
    if now + leeway_secs < claims.nbf {
        return Err(AuthError::InvalidToken("token not yet valid"));
    }
    Ok(claims)
}

/// Verifies our access tokens from a published JWK Set, for resource servers that hold no
/// private key (HS256 deployments use [`JwtIssuer`] with the shared secret instead).
pub struct JwksVerifier {
    keys: HashMap<String, VerificationKey>,
    issuer: String,
    audience: String,
    leeway_secs: i64,
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl JwksVerifier {
    /// Build from a JWK Set; keys without a `kid` or with an algorithm outside the
    /// allow-list (EdDSA, ES256, RS256) are ignored.
    pub fn new(
        jwks: &JwkSet,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        leeway_secs: i64,
    ) -> Self {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let (Some(kid), Some(alg)) = (jwk.common.key_id.clone(), jwk.common.key_algorithm)
            else {
                continue;
            };
            let algorithm = match Algorithm::from_str(&alg.to_string()) {
                Ok(a @ (Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256)) => a,
                _ => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, VerificationKey { algorithm, key });
            }
        }
        Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs,
        }
    }

    /// Verify an access token.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> AuthResult<AccessClaims> {
        verify_with(
            token,
            now,
            self.leeway_secs,
            &self.issuer,
            &self.audience,
            |kid| self.keys.get(kid).map(|k| (k.algorithm, &k.key)),
        )
    }
}
