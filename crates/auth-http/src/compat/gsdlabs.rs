//! `gsdlabs` (the GSDLabs authentication challenge): form-encoded bodies, the access token
//! in `x-access-token`, `{jwt, refresh_token}`, Boom errors `{statusCode, error, message}`.
//! Its refresh hands back no new refresh token, so its sessions do not rotate.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::AuthCore;
use auth_core::AuthError;
use auth_core::flows::SignupOutcome;
use auth_core::jwt::KeySet;
use auth_core::mfa::SignInOutcome;
use auth_core::password::PasswordPolicy;
use auth_core::service::{Authenticated, IssuedTokens, LogoutScope, SignupRequest};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::collections::HashMap;

use super::{GsdlabsSettings, fail, own_format, path, profile_service};
use crate::extract::client_info;
use crate::problem::ApiError;
use crate::settings::Settings;

/// The profile's state.
pub struct Gsdlabs {
    auth: Arc<AuthCore>,
    prefix: String,
}

impl Gsdlabs {
    pub(super) fn build(
        settings: &Settings,
        base: &AuthCore,
        s: &GsdlabsSettings,
    ) -> Result<Self, String> {
        let secret = s
            .jwt_secret
            .as_ref()
            .ok_or("compat.gsdlabs.jwt_secret is required")?;
        let keys = KeySet::from_hs256_secret(secret.expose_secret().as_bytes())
            .map_err(|e| format!("compat.gsdlabs.jwt_secret: {e}"))?;
        // Its password schema: at least 8, a lowercase, an uppercase letter and a digit.
        let policy = PasswordPolicy {
            min_length: 8,
            max_length: settings.password_policy.max_length,
            reject_common: settings.password_policy.reject_common,
            require_lowercase: true,
            require_uppercase: true,
            require_digit: true,
            require_symbol: false,
        };
        Ok(Self {
            auth: profile_service(
                base,
                settings,
                keys,
                &s.audience,
                s.access_ttl_secs,
                policy,
                None,
            ),
            prefix: s.prefix.clone(),
        })
    }
}

type Reply = std::result::Result<HttpResponse, actix_web::Error>;

pub(super) fn configure(cfg: &mut web::ServiceConfig, data: &web::Data<Gsdlabs>) {
    let at = |route: &str| web::resource(path(&data.prefix, route)).app_data(data.clone());
    cfg.service(at("/users").route(web::post().to(create_user)))
        .service(
            at("/access-tokens")
                .route(web::post().to(login))
                .route(web::delete().to(logout)),
        )
        .service(at("/access-tokens/refresh").route(web::post().to(refresh)))
        .service(at("/me").route(web::get().to(me)));
}

/// A Boom error.
fn boom(status: StatusCode, message: &str) -> actix_web::Error {
    fail(HttpResponse::build(status).json(json!({
        "statusCode": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    })))
}

fn invalid_payload() -> actix_web::Error {
    boom(StatusCode::BAD_REQUEST, "Invalid request payload input")
}

fn boom_error(e: AuthError) -> actix_web::Error {
    match e {
        AuthError::InvalidEmail(_)
        | AuthError::WeakPassword(_)
        | AuthError::InvalidField { .. } => invalid_payload(),
        AuthError::InvalidCredentials => {
            boom(StatusCode::UNAUTHORIZED, "Invalid email or password")
        }
        AuthError::EmailTaken => boom(StatusCode::CONFLICT, "Email is already registered"),
        AuthError::InvalidRefreshToken => boom(StatusCode::UNAUTHORIZED, "Invalid refresh token"),
        AuthError::InvalidToken(_) => boom(StatusCode::UNAUTHORIZED, "Invalid token"),
        other => ApiError::from(other).into(),
    }
}

/// The form (or JSON) payload; every key of `required` must be there and not empty.
fn payload(
    req: &HttpRequest,
    bytes: &[u8],
    required: &[&str],
) -> std::result::Result<HashMap<String, String>, actix_web::Error> {
    let json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let map: HashMap<String, String> = if json {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|_| invalid_payload())?;
        value
            .as_object()
            .ok_or_else(invalid_payload)?
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect()
    } else {
        serde_urlencoded::from_bytes(bytes).map_err(|_| invalid_payload())?
    };
    if required
        .iter()
        .any(|k| map.get(*k).is_none_or(|v| v.is_empty()))
    {
        return Err(invalid_payload());
    }
    Ok(map)
}

fn get(map: &HashMap<String, String>, key: &str) -> String {
    map.get(key).cloned().unwrap_or_default()
}

fn access_token(req: &HttpRequest) -> std::result::Result<String, actix_web::Error> {
    req.headers()
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| boom(StatusCode::UNAUTHORIZED, "Missing authentication"))
}

async fn caller(
    state: &Gsdlabs,
    req: &HttpRequest,
) -> std::result::Result<Authenticated, actix_web::Error> {
    let token = access_token(req)?;
    state
        .auth
        .sessions()
        .authenticate(&token)
        .await
        .map_err(boom_error)
}

fn pair(t: &IssuedTokens) -> HttpResponse {
    own_format(
        HttpResponse::Ok()
            .insert_header(crate::routes::auth::no_store())
            .json(json!({"jwt": t.access_token, "refresh_token": t.refresh_token.expose_secret()})),
    )
}

async fn create_user(state: web::Data<Gsdlabs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let form = payload(&req, &bytes, &["email", "name", "password"])?;
    let request = SignupRequest {
        email: get(&form, "email"),
        password: SecretString::from(get(&form, "password")),
        name: Some(get(&form, "name")),
        captcha_token: None,
    };
    match state
        .auth
        .mailbox()
        .signup(request, client_info(&req))
        .await
        .map_err(boom_error)?
    {
        SignupOutcome::SignedIn(t) => Ok(pair(&t)),
        // With confirmation required the account exists but cannot sign in yet.
        SignupOutcome::VerificationSent => Err(boom(
            StatusCode::FORBIDDEN,
            "Confirm your email address to sign in",
        )),
    }
}

async fn login(state: web::Data<Gsdlabs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let form = payload(&req, &bytes, &["email", "password"])?;
    let outcome = state
        .auth
        .sessions()
        .login(
            &get(&form, "email"),
            &SecretString::from(get(&form, "password")),
            client_info(&req),
            None,
        )
        .await
        .map_err(boom_error)?;
    match outcome {
        SignInOutcome::SignedIn(t) => Ok(pair(&t)),
        SignInOutcome::MfaRequired(_) => Err(boom(
            StatusCode::FORBIDDEN,
            "This account signs in with a second factor",
        )),
    }
}

/// The claims of an access token whose signature, issuer and audience are good, expired
/// or not (the refresh route accepts expired tokens).
fn verify_allowing_expiry(
    state: &Gsdlabs,
    token: &str,
) -> std::result::Result<auth_core::jwt::AccessClaims, actix_web::Error> {
    let bad = || boom(StatusCode::UNAUTHORIZED, "Invalid token");
    let payload = token.split('.').nth(1).ok_or_else(bad)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| bad())?;
    let iat = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["iat"].as_i64())
        .ok_or_else(bad)?;
    let at = chrono::DateTime::from_timestamp(iat, 0).ok_or_else(bad)?;
    state.auth.tokens().verify(token, at).map_err(|_| bad())
}

async fn refresh(state: web::Data<Gsdlabs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let token = access_token(&req)?;
    let claims = verify_allowing_expiry(&state, &token)?;
    let form = payload(&req, &bytes, &["refresh_token"])?;
    let issued = state
        .auth
        .sessions()
        .reissue_access_token(
            &SecretString::from(get(&form, "refresh_token")),
            &client_info(&req),
        )
        .await
        .map_err(boom_error)?;
    if issued.session_id.to_string() != claims.sid {
        return Err(boom(StatusCode::UNAUTHORIZED, "Invalid refresh token"));
    }
    Ok(own_format(
        HttpResponse::Ok()
            .insert_header(crate::routes::auth::no_store())
            .json(json!({"jwt": issued.access_token})),
    ))
}

async fn logout(state: web::Data<Gsdlabs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let caller = caller(&state, &req).await?;
    payload(&req, &bytes, &["refresh_token"])?;
    state
        .auth
        .sessions()
        .logout(&caller, LogoutScope::Session)
        .await
        .map_err(boom_error)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn me(state: web::Data<Gsdlabs>, req: HttpRequest) -> Reply {
    let caller = caller(&state, &req).await?;
    let user = state
        .auth
        .sessions()
        .me(&caller)
        .await
        .map_err(boom_error)?;
    Ok(own_format(HttpResponse::Ok().json(json!({
        "name": user.name.clone().unwrap_or_default(),
        "email": user.email,
        "avatar_url": user.avatar_url_or_gravatar(),
    }))))
}
