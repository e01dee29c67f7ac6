//! `sails-jwt` (the Sails.js JWT authorization example): `/user/*` routes, `{token}`
//! answers, `{message}` errors, 201 on create, 403 for a locked account, its lock after
//! 5 failures in 2 minutes and its password rule (6 to 24 letters and digits).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::AuthCore;
use auth_core::AuthError;
use auth_core::flows::SignupOutcome;
use auth_core::guard::LockoutSettings;
use auth_core::jwt::KeySet;
use auth_core::mfa::SignInOutcome;
use auth_core::password::PasswordPolicy;
use auth_core::service::{Authenticated, IssuedTokens, SignupRequest};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::{SailsSettings, fail, own_format, path, profile_service};
use crate::extract::{bearer_token, client_info};
use crate::problem::ApiError;
use crate::settings::Settings;

/// The profile's state.
pub struct Sails {
    auth: Arc<AuthCore>,
    prefix: String,
}

fn secs(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 2))
}

impl Sails {
    pub(super) fn build(
        settings: &Settings,
        base: &AuthCore,
        s: &SailsSettings,
    ) -> Result<Self, String> {
        let secret = s
            .jwt_secret
            .as_ref()
            .ok_or("compat.sails_jwt.jwt_secret is required")?;
        let keys = KeySet::from_hs256_secret(secret.expose_secret().as_bytes())
            .map_err(|e| format!("compat.sails_jwt.jwt_secret: {e}"))?;
        // 6 to 24 characters; that they are letters and digits is checked on the way in.
        let policy = PasswordPolicy {
            min_length: 6,
            max_length: 24,
            reject_common: settings.password_policy.reject_common,
            require_lowercase: false,
            require_uppercase: false,
            require_digit: false,
            require_symbol: false,
        };
        // Its own counters: its stricter lock does not lock the canonical API.
        let lockout = LockoutSettings {
            enabled: true,
            scope: "sails_jwt",
            threshold: s.lockout_threshold,
            window: secs(s.lockout_window_secs),
            freeze: secs(s.lockout_freeze_secs),
            code_failures_per_day: base.settings().guard.lockout.code_failures_per_day,
        };
        Ok(Self {
            auth: profile_service(
                base,
                settings,
                keys,
                &s.audience,
                s.access_ttl_secs,
                policy,
                Some(lockout),
            ),
            prefix: s.prefix.clone(),
        })
    }
}

type Reply = std::result::Result<HttpResponse, actix_web::Error>;

pub(super) fn configure(cfg: &mut web::ServiceConfig, data: &web::Data<Sails>) {
    let at = |route: &str| web::resource(path(&data.prefix, route)).app_data(data.clone());
    cfg.service(at("/user/create").route(web::post().to(create)))
        .service(at("/user/login").route(web::post().to(login)))
        .service(at("/user").route(web::get().to(account)))
        .service(at("/user/change_password").route(web::post().to(change_password)))
        .service(at("/user/forgot").route(web::post().to(forgot)))
        .service(at("/user/reset_password").route(web::post().to(reset_password)));
}

fn message(status: StatusCode, text: &str) -> actix_web::Error {
    fail(HttpResponse::build(status).json(json!({ "message": text })))
}

fn bad_request(text: &str) -> actix_web::Error {
    message(StatusCode::BAD_REQUEST, text)
}

fn sails_error(e: AuthError) -> actix_web::Error {
    match e {
        AuthError::InvalidEmail(_) => bad_request("Invalid email"),
        AuthError::WeakPassword(_) => bad_request("Password must be 6 to 24 letters and digits"),
        AuthError::InvalidField { .. } => bad_request("Invalid parameters"),
        AuthError::EmailTaken => bad_request("Email is already registered"),
        AuthError::InvalidCredentials => bad_request("Invalid email or password"),
        AuthError::AccountLocked { .. } => message(StatusCode::FORBIDDEN, "Account is locked"),
        AuthError::InvalidOneTimeToken => bad_request("Invalid reset token"),
        AuthError::InvalidToken(_) => message(StatusCode::UNAUTHORIZED, "Invalid token"),
        other => ApiError::from(other).into(),
    }
}

fn body(
    bytes: &[u8],
    required: &[&str],
) -> std::result::Result<Map<String, Value>, actix_web::Error> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(bad_request("The body must be a JSON object"));
    };
    for field in required {
        if map
            .get(*field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(bad_request(&format!("Parameter {field} is required")));
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

/// The new password and its confirmation: equal, 6 to 24 letters and digits.
fn new_password(
    map: &Map<String, Value>,
    field: &str,
    confirm: &str,
) -> std::result::Result<SecretString, actix_web::Error> {
    let password = text(map, field);
    if password != text(map, confirm) {
        return Err(bad_request("Password doesn't match confirmation"));
    }
    let len = password.chars().count();
    if !(6..=24).contains(&len) || !password.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad_request("Password must be 6 to 24 letters and digits"));
    }
    Ok(SecretString::from(password))
}

fn token(status: StatusCode, t: &IssuedTokens) -> HttpResponse {
    own_format(
        HttpResponse::build(status)
            .insert_header(crate::routes::auth::no_store())
            .json(json!({ "token": t.access_token })),
    )
}

async fn caller(
    state: &Sails,
    req: &HttpRequest,
) -> std::result::Result<Authenticated, actix_web::Error> {
    let token = bearer_token(req).ok_or_else(|| {
        message(
            StatusCode::UNAUTHORIZED,
            "No authorization header was found",
        )
    })?;
    state
        .auth
        .sessions()
        .authenticate(token)
        .await
        .map_err(sails_error)
}

async fn create(state: web::Data<Sails>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["email", "password", "password_confirm"])?;
    let password = new_password(&map, "password", "password_confirm")?;
    let request = SignupRequest {
        email: text(&map, "email"),
        password,
        name: None,
        captcha_token: None,
    };
    match state
        .auth
        .mailbox()
        .signup(request, client_info(&req))
        .await
        .map_err(sails_error)?
    {
        SignupOutcome::SignedIn(t) => Ok(token(StatusCode::CREATED, &t)),
        SignupOutcome::VerificationSent => Err(message(
            StatusCode::FORBIDDEN,
            "Check your email to confirm the account",
        )),
    }
}

async fn login(state: web::Data<Sails>, req: HttpRequest, bytes: web::Bytes) -> Reply {
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
        .map_err(sails_error)?;
    match outcome {
        SignInOutcome::SignedIn(t) => Ok(token(StatusCode::OK, &t)),
        SignInOutcome::MfaRequired(_) => Err(message(
            StatusCode::FORBIDDEN,
            "This account signs in with a second factor",
        )),
    }
}

async fn account(state: web::Data<Sails>, req: HttpRequest) -> Reply {
    let caller = caller(&state, &req).await?;
    let user = state
        .auth
        .sessions()
        .me(&caller)
        .await
        .map_err(sails_error)?;
    Ok(own_format(HttpResponse::Ok().json(
        json!({"id": user.id.to_string(), "email": user.email}),
    )))
}

async fn change_password(state: web::Data<Sails>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let caller = caller(&state, &req).await?;
    let map = body(
        &bytes,
        &["email", "password", "new_password", "new_password_confirm"],
    )?;
    let new = new_password(&map, "new_password", "new_password_confirm")?;
    let me = state
        .auth
        .sessions()
        .me(&caller)
        .await
        .map_err(sails_error)?;
    if !text(&map, "email").trim().eq_ignore_ascii_case(&me.email) {
        return Err(bad_request("Invalid email or password"));
    }
    let issued = state
        .auth
        .mailbox()
        .change_password(
            &caller,
            &SecretString::from(text(&map, "password")),
            &new,
            client_info(&req),
        )
        .await
        .map_err(sails_error)?;
    Ok(token(StatusCode::OK, &issued))
}

async fn forgot(state: web::Data<Sails>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["email"])?;
    state
        .auth
        .mailbox()
        .forgot_password(&text(&map, "email"), &client_info(&req), None)
        .await
        .map_err(sails_error)?;
    Ok(own_format(
        HttpResponse::Ok().json(json!({"message": "Check your email"})),
    ))
}

async fn reset_password(state: web::Data<Sails>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(
        &bytes,
        &[
            "email",
            "reset_token",
            "new_password",
            "new_password_confirm",
        ],
    )?;
    let new = new_password(&map, "new_password", "new_password_confirm")?;
    state
        .auth
        .mailbox()
        .reset_password(
            &SecretString::from(text(&map, "reset_token")),
            &new,
            &client_info(&req),
        )
        .await
        .map_err(sails_error)?;
    Ok(own_format(
        HttpResponse::Ok().json(json!({"message": "Done"})),
    ))
}
