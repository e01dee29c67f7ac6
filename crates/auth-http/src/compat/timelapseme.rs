//! `timelapseme` (the TimeLapseMe authentication server): credential sign-up and sign-in,
//! strict provider sign-up and sign-in with a Google or Apple ID token (`{jwt}`),
//! `{acessToken, refreshToken}` (spelled so: its clients read that key), rotating refresh
//! tokens, RS256 tokens from PEM files carrying `nickname` and `userId`, and errors as
//! plain text.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::AuthCore;
use auth_core::AuthError;
use auth_core::flows::SignupOutcome;
use auth_core::identity::ProviderCredential;
use auth_core::jwt::{
    ACCESS_TOKEN_TYPE, AccessClaims, JwtIssuer, KeySet, SigningAlgorithm, TokenIssuer,
};
use auth_core::mfa::SignInOutcome;
use auth_core::service::{IssuedTokens, SignupRequest};
use auth_core::social::{SignInIntent, SocialService};
use chrono::{DateTime, Utc};
use jsonwebtoken::{EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::{TimelapsemeSettings, fail, own_format, path};
use crate::extract::client_info;
use crate::problem::ApiError;
use crate::settings::Settings;

/// Signs the canonical claims plus `nickname` (the display name, else the local part of the
/// email address) and `userId` (the `sub`), with the profile's RS256 key; verifies like any
/// issuer of ours.
struct ClaimsIssuer {
    inner: JwtIssuer,
    key: EncodingKey,
    kid: String,
}

impl TokenIssuer for ClaimsIssuer {
    fn issuer(&self) -> &str {
        self.inner.issuer()
    }

    fn audience(&self) -> &str {
        self.inner.audience()
    }

    fn sign(&self, claims: &AccessClaims) -> auth_core::AuthResult<String> {
        let mut value = serde_json::to_value(claims).map_err(AuthError::internal)?;
        value["nickname"] = json!(nickname(claims));
        value["userId"] = json!(claims.sub);
        let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &value, &self.key).map_err(AuthError::internal)
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> auth_core::AuthResult<AccessClaims> {
        self.inner.verify(token, now)
    }

    fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.inner.jwks()
    }
}

/// The display name; an account without one (a provider gave no name) goes by the local
/// part of its address.
fn nickname(claims: &AccessClaims) -> String {
    match claims.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => claims
            .email
            .split_once('@')
            .map_or(claims.email.as_str(), |(local, _)| local)
            .to_owned(),
    }
}

/// The profile's state.
pub struct Timelapseme {
    auth: Arc<AuthCore>,
    social: SocialService,
    prefix: String,
}

impl Timelapseme {
    pub(super) fn build(
        settings: &Settings,
        base: &AuthCore,
        social: &SocialService,
        s: &TimelapsemeSettings,
    ) -> Result<Self, String> {
        let read = |p: &Option<std::path::PathBuf>, key: &str| -> Result<Vec<u8>, String> {
            let p = p.as_ref().ok_or(format!("{key} is required"))?;
            std::fs::read(p).map_err(|e| format!("{key}: cannot read {}: {e}", p.display()))
        };
        let private = read(&s.private_key_path, "compat.timelapseme.private_key_path")?;
        let public = read(&s.public_key_path, "compat.timelapseme.public_key_path")?;
        let keys = KeySet::from_private_pem(SigningAlgorithm::RS256, &private, Some(&public))
            .map_err(|e| format!("compat.timelapseme.private_key_path: {e}"))?;
        let kid = keys.signing_kid().to_owned();
        let key = EncodingKey::from_rsa_pem(&private)
            .map_err(|e| format!("compat.timelapseme.private_key_path: {e}"))?;
        let issuer = if s.issuer.is_empty() {
            settings.server.public_url.clone()
        } else {
            s.issuer.clone()
        };
        let inner = JwtIssuer::new(
            keys,
            issuer,
            s.audience.clone(),
            i64::try_from(settings.tokens.leeway_secs).unwrap_or(0),
        );
        // Where its document is silent (the password rule), the canonical rule applies.
        // A rotated refresh token is invalid at once: no grace window.
        let mut rules = base.settings().clone();
        rules.sessions.access_ttl =
            chrono::Duration::seconds(i64::try_from(s.access_ttl_secs).unwrap_or(i64::MAX / 2));
        rules.sessions.reuse_grace = chrono::Duration::zero();
        // Its clients send no CAPTCHA token; rate limits and lockout still apply.
        rules.guard.captcha = auth_core::guard::CaptchaSettings::default();
        let auth = Arc::new(base.with_profile(Arc::new(ClaimsIssuer { inner, key, kid }), rules));
        Ok(Self {
            social: social.for_profile(auth.clone()),
            auth,
            prefix: s.prefix.clone(),
        })
    }
}

type Reply = std::result::Result<HttpResponse, actix_web::Error>;

pub(super) fn configure(cfg: &mut web::ServiceConfig, data: &web::Data<Timelapseme>) {
    let at = |route: &str| web::resource(path(&data.prefix, route)).app_data(data.clone());
    cfg.service(at("/api/v1/signup/credentials").route(web::post().to(signup)))
        .service(at("/api/v1/auth/credentials").route(web::post().to(login)))
        .service(at("/api/v1/refresh").route(web::post().to(refresh)))
        .service(at("/api/v1/signup/google").route(web::post().to(google_signup)))
        .service(at("/api/v1/signup/apple").route(web::post().to(apple_signup)))
        .service(at("/api/v1/auth/google").route(web::post().to(google_login)))
        .service(at("/api/v1/auth/apple").route(web::post().to(apple_login)));
}

/// Its errors: plain text.
fn plain(status: StatusCode, text: &str) -> actix_web::Error {
    fail(
        HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(text.to_owned()),
    )
}

/// It has no second step: an account with a second factor is refused (no session is
/// opened) and signs in through the canonical API.
fn mfa_required() -> actix_web::Error {
    plain(
        StatusCode::FORBIDDEN,
        "This account signs in with a second factor",
    )
}

fn plain_error(e: AuthError) -> actix_web::Error {
    match e {
        AuthError::InvalidEmail(_) => plain(StatusCode::BAD_REQUEST, "Invalid email"),
        AuthError::WeakPassword(r) => plain(StatusCode::BAD_REQUEST, &r.to_string()),
        AuthError::InvalidField { field, reason } => {
            plain(StatusCode::BAD_REQUEST, &format!("{field} {reason}"))
        }
        AuthError::EmailTaken => plain(StatusCode::CONFLICT, "User already exists"),
        AuthError::InvalidCredentials => plain(StatusCode::UNAUTHORIZED, "Invalid credentials"),
        AuthError::InvalidRefreshToken | AuthError::InvalidToken(_) => {
            plain(StatusCode::UNAUTHORIZED, "Invalid refresh token")
        }
        AuthError::AccountLocked { .. } => plain(StatusCode::FORBIDDEN, "Account locked"),
        AuthError::RateLimited { .. } => plain(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        other => {
            let status = actix_web::ResponseError::status_code(&ApiError::from(other));
            plain(status, status.canonical_reason().unwrap_or("Error"))
        }
    }
}

fn body(
    bytes: &[u8],
    required: &[&str],
) -> std::result::Result<Map<String, Value>, actix_web::Error> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "The body must be a JSON object",
        ));
    };
    for field in required {
        if map
            .get(*field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(plain(StatusCode::BAD_REQUEST, &format!("Missing {field}")));
        }
    }
    Ok(map)
}

fn text(map: &Map<String, Value>, field: &str) -> String {
    map.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn pair(t: &IssuedTokens) -> HttpResponse {
    own_format(
        HttpResponse::Ok()
            .insert_header(crate::routes::auth::no_store())
            .json(json!({"acessToken": t.access_token, "refreshToken": t.refresh_token.expose_secret()})),
    )
}

async fn signup(state: web::Data<Timelapseme>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(
        &bytes,
        &["email", "password", "passwordConfirm", "nickname"],
    )?;
    if text(&map, "password") != text(&map, "passwordConfirm") {
        return Err(plain(StatusCode::BAD_REQUEST, "Passwords do not match"));
    }
    let request = SignupRequest {
        email: text(&map, "email"),
        password: SecretString::from(text(&map, "password")),
        name: Some(text(&map, "nickname")),
        captcha_token: None,
    };
    match state
        .auth
        .mailbox()
        .signup(request, client_info(&req))
        .await
        .map_err(plain_error)?
    {
        SignupOutcome::SignedIn(t) => Ok(pair(&t)),
        SignupOutcome::VerificationSent => Err(plain(
            StatusCode::FORBIDDEN,
            "Confirm your email address to sign in",
        )),
    }
}

async fn login(state: web::Data<Timelapseme>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["email", "password"])?;
    let outcome = state
        .auth
        .sessions()
        .login(
            &text(&map, "email"),
            &SecretString::from(text(&map, "password")),
            client_info(&req),
            None,
        )
        .await
        .map_err(plain_error)?;
    match outcome {
        SignInOutcome::SignedIn(t) => Ok(pair(&t)),
        SignInOutcome::MfaRequired(_) => Err(mfa_required()),
    }
}

async fn refresh(state: web::Data<Timelapseme>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["refreshToken"])?;
    let issued = state
        .auth
        .sessions()
        .refresh(
            &SecretString::from(text(&map, "refreshToken")),
            &client_info(&req),
        )
        .await
        .map_err(plain_error)?;
    Ok(pair(&issued))
}

/// Provider sign-up and sign-in errors as plain text.
fn provider_error(e: AuthError) -> actix_web::Error {
    match e {
        AuthError::UnknownProvider => plain(StatusCode::NOT_FOUND, "Provider not configured"),
        AuthError::InvalidIdToken(_) | AuthError::ProviderRejected(_) => {
            plain(StatusCode::UNAUTHORIZED, "Invalid token")
        }
        AuthError::ProviderEmailMissing => {
            plain(StatusCode::BAD_REQUEST, "The token carries no email")
        }
        AuthError::ProviderEmailUnverified => plain(
            StatusCode::FORBIDDEN,
            "The provider has not verified the email",
        ),
        AuthError::IdentityExists | AuthError::EmailTaken => {
            plain(StatusCode::CONFLICT, "User already exists")
        }
        AuthError::LinkRequired => plain(
            StatusCode::CONFLICT,
            "Sign in with your password and verify your email to use this provider",
        ),
        AuthError::SignupRequired => plain(StatusCode::NOT_FOUND, "User does not exist"),
        AuthError::SignupDisabled => plain(StatusCode::FORBIDDEN, "Sign-up is disabled"),
        other => plain_error(other),
    }
}

/// Strict provider sign-up or sign-in with the provider's ID token: sign-up fails for an
/// existing user, sign-in for an unknown one.
async fn with_provider(
    state: &Timelapseme,
    req: &HttpRequest,
    bytes: &[u8],
    provider: &str,
    intent: SignInIntent,
) -> Reply {
    let map = body(bytes, &["jwt"])?;
    let credential = ProviderCredential::IdToken {
        id_token: SecretString::from(text(&map, "jwt")),
        nonce: None,
    };
    let outcome = state
        .social
        .sign_in_strict(provider, &credential, intent, None, client_info(req))
        .await
        .map_err(provider_error)?;
    match outcome {
        SignInOutcome::SignedIn(t) => Ok(pair(&t)),
        SignInOutcome::MfaRequired(_) => Err(mfa_required()),
    }
}

/// `POST /api/v1/signup/google` `{jwt}`.
async fn google_signup(
    state: web::Data<Timelapseme>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Reply {
    with_provider(&state, &req, &bytes, "google", SignInIntent::Signup).await
}

/// `POST /api/v1/signup/apple` `{jwt}`.
async fn apple_signup(state: web::Data<Timelapseme>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    with_provider(&state, &req, &bytes, "apple", SignInIntent::Signup).await
}

/// `POST /api/v1/auth/google` `{jwt}`.
async fn google_login(state: web::Data<Timelapseme>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    with_provider(&state, &req, &bytes, "google", SignInIntent::Signin).await
}

/// `POST /api/v1/auth/apple` `{jwt}`.
async fn apple_login(state: web::Data<Timelapseme>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    with_provider(&state, &req, &bytes, "apple", SignInIntent::Signin).await
}
