//! `service-authentication`: `/register`, `/login` with its `options` object and
//! cookie-carried JWTs, `/token/refresh`, `/token/revoke`, `/password/forgot`,
//! `/password/reset/:token`, `/email/verify`, `/email/verify/:token`, `GET /user` here;
//! OAuth and magic links in `social.rs`, second factors in `factors.rs`, users, webhooks
//! and the audit log in `accounts.rs`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::SET_COOKIE;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use auth_core::AuthCore;
use auth_core::AuthError;
use auth_core::flows::SignupOutcome;
use auth_core::jwt::KeySet;
use auth_core::mfa::SignInOutcome;
use auth_core::model::User;
use auth_core::service::{Authenticated, IssuedTokens, SignupRequest};
use auth_core::social::SocialService;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::{ServiceAuthSettings, fail, own_format, path, profile_service};

#[macro_use]
mod csrf;
mod accounts;
mod factors;
mod social;
use crate::extract::{bearer_token, client_info};
use crate::problem::ApiError;
use crate::settings::Settings;

/// The profile's state.
pub struct ServiceAuth {
    auth: Arc<AuthCore>,
    /// Social sign-in over `auth`, the provider sending the browser back to this
    /// profile's `/oauth/:provider/callback`.
    social: SocialService,
    /// Where the browser returns after a provider sign-in asked without `redirect_to`.
    app_url: String,
    prefix: String,
    cookie: String,
    refresh_cookie: String,
    secure: bool,
    /// The cross-site defences every resource of the profile is wrapped in.
    guard: csrf::Guard,
}

impl ServiceAuth {
    pub(super) fn build(
        settings: &Settings,
        base: &AuthCore,
        social: &SocialService,
        s: &ServiceAuthSettings,
    ) -> Result<Self, String> {
        let secret = s
            .jwt_secret
            .as_ref()
            .ok_or("compat.service_authentication.jwt_secret is required")?;
        let keys = KeySet::from_hs256_secret(secret.expose_secret().as_bytes())
            .map_err(|e| format!("compat.service_authentication.jwt_secret: {e}"))?;
        let auth = profile_service(
            base,
            settings,
            keys,
            &s.audience,
            s.access_ttl_secs,
            settings.password_policy.clone(),
            None,
        );
        Ok(Self {
            social: social
                .for_profile(auth.clone())
                .with_callback_path(path(&s.prefix, "/oauth/{provider}/callback")),
            app_url: settings.app.effective_url(&settings.server).to_owned(),
            auth,
            prefix: s.prefix.clone(),
            cookie: s.cookie_name.clone(),
            refresh_cookie: s.refresh_cookie_name.clone(),
            secure: s.cookie_secure,
            guard: csrf::Guard::new(
                crate::cookies::allowed_origins(settings),
                &s.cookie_name,
                &s.refresh_cookie_name,
            ),
        })
    }

    fn cookie_path(&self) -> String {
        if self.prefix == "/" {
            "/".into()
        } else {
            self.prefix.clone()
        }
    }

    fn set_cookie(
        &self,
        res: &mut HttpResponseBuilder,
        name: &str,
        value: &str,
        max_age: Option<i64>,
    ) {
        // The double-submit cookie is read by the page's script; the tokens never are.
        let http_only = if name == csrf::CSRF_COOKIE {
            ""
        } else {
            " HttpOnly;"
        };
        let mut cookie = format!(
            "{name}={value}; Path={};{http_only} SameSite=Lax",
            self.cookie_path()
        );
        if self.secure {
            cookie.push_str("; Secure");
        }
        if let Some(age) = max_age {
            cookie.push_str(&format!("; Max-Age={age}"));
        }
        res.append_header((SET_COOKIE, cookie));
    }

    fn set_cookies(&self, res: &mut HttpResponseBuilder, t: &IssuedTokens) {
        self.set_cookie(res, &self.cookie, &t.access_token, None);
        self.set_cookie(
            res,
            &self.refresh_cookie,
            t.refresh_token.expose_secret(),
            None,
        );
        let csrf = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            auth_core::random::random_bytes::<32>(&auth_core::random::OsRandom),
        );
        self.set_cookie(res, csrf::CSRF_COOKIE, &csrf, None);
    }

    fn clear_cookies(&self, res: &mut HttpResponseBuilder) {
        for name in [&self.cookie, &self.refresh_cookie, csrf::CSRF_COOKIE] {
            self.set_cookie(res, name, "", Some(0));
        }
    }
}

/// The value of the request cookie `name`.
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    crate::cookies::cookie_in(req.headers(), name)
}

type Reply = std::result::Result<HttpResponse, actix_web::Error>;

pub(super) fn configure(cfg: &mut web::ServiceConfig, data: &web::Data<ServiceAuth>) {
    let at = |route: &str| csrf_resource!(data, route);
    cfg.service(at("/register").route(web::post().to(register)))
        .service(at("/login").route(web::post().to(login)))
        .service(at("/token/refresh").route(web::get().to(refresh)))
        .service(at("/token/revoke").route(web::get().to(revoke)))
        .service(at("/password/forgot").route(web::post().to(forgot)))
        .service(
            at("/password/reset/{token}")
                .route(web::get().to(reset_form))
                .route(web::post().to(reset)),
        )
        .service(at("/email/verify").route(web::post().to(send_verification)))
        .service(at("/email/verify/{token}").route(web::get().to(verify)))
        .service(
            at("/user")
                .route(web::get().to(user))
                .route(web::post().to(accounts::create_user)),
        );
    social::configure(cfg, data);
    accounts::configure(cfg, data);
    factors::configure(cfg, data);
}

fn error(status: StatusCode, message: &str) -> actix_web::Error {
    fail(HttpResponse::build(status).json(json!({"error": message})))
}

fn service_error(e: AuthError) -> actix_web::Error {
    match e {
        AuthError::InvalidEmail(_) => error(StatusCode::BAD_REQUEST, "Invalid email"),
        AuthError::WeakPassword(r) => error(StatusCode::BAD_REQUEST, &r.to_string()),
        AuthError::InvalidField { field, reason } => {
            error(StatusCode::BAD_REQUEST, &format!("{field} {reason}"))
        }
        AuthError::EmailTaken => error(StatusCode::CONFLICT, "Email already registered"),
        AuthError::InvalidCredentials => {
            error(StatusCode::UNAUTHORIZED, "Invalid email or password")
        }
        AuthError::InvalidRefreshToken | AuthError::InvalidToken(_) => {
            error(StatusCode::UNAUTHORIZED, "Unauthorized")
        }
        AuthError::InvalidOneTimeToken => {
            error(StatusCode::BAD_REQUEST, "Invalid or expired token")
        }
        AuthError::EmailNotVerified => error(StatusCode::FORBIDDEN, "Email not verified"),
        AuthError::AccountLocked { .. } => error(StatusCode::FORBIDDEN, "Account locked"),
        other => ApiError::from(other).into(),
    }
}

fn body(
    bytes: &[u8],
    required: &[&str],
) -> std::result::Result<Map<String, Value>, actix_web::Error> {
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(bytes)
            .map_err(|_| error(StatusCode::BAD_REQUEST, "The body must be a JSON object"))?
    };
    let Value::Object(map) = value else {
        return Err(error(
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
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("{field} is required"),
            ));
        }
    }
    Ok(map)
}

fn text(map: &Map<String, Value>, field: &str) -> Option<String> {
    map.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn option(map: &Map<String, Value>, name: &str, default: bool) -> bool {
    map.get("options")
        .and_then(|o| o.get(name))
        .and_then(Value::as_bool)
        .unwrap_or(default)
}

fn user_json(user: &User) -> Value {
    json!({
        "id": user.id.to_string(),
        "email": user.email,
        "name": user.name,
        "email_verified": user.email_verified,
        "roles": user.roles,
    })
}

fn tokens_body(t: &IssuedTokens) -> Value {
    json!({
        "user": user_json(&t.user),
        "token": t.access_token,
        "refresh_token": t.refresh_token.expose_secret(),
        "expires_in": t.expires_in,
    })
}

async fn caller(
    state: &ServiceAuth,
    req: &HttpRequest,
) -> std::result::Result<Authenticated, actix_web::Error> {
    let token = bearer_token(req)
        .map(str::to_owned)
        .or_else(|| cookie(req, &state.cookie))
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "Unauthorized"))?;
    state
        .auth
        .sessions()
        .authenticate(&token)
        .await
        .map_err(service_error)
}

/// A random password for an account registered without one (its owner sets theirs with
/// the reset mail).
fn random_password() -> SecretString {
    SecretString::from(format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ))
}

async fn register(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["email"])?;
    let email = text(&map, "email").unwrap_or_default();
    let given = text(&map, "password");
    let generated = given.is_none();
    let request = SignupRequest {
        email: email.clone(),
        password: given.map_or_else(random_password, SecretString::from),
        name: text(&map, "name"),
        captcha_token: None,
    };
    let client = client_info(&req);
    let outcome = state
        .auth
        .mailbox()
        .signup(request, client.clone())
        .await
        .map_err(service_error)?;
    if generated && option(&map, "sendResetEmail", false) {
        state
            .auth
            .mailbox()
            .forgot_password(&email, &client, None)
            .await
            .map_err(service_error)?;
    }
    match outcome {
        SignupOutcome::SignedIn(t) => {
            let mut res = HttpResponse::Created();
            res.insert_header(crate::routes::auth::no_store());
            if option(&map, "setCookie", false) {
                state.set_cookies(&mut res, &t);
            }
            Ok(own_format(res.json(tokens_body(&t))))
        }
        SignupOutcome::VerificationSent => Ok(own_format(
            HttpResponse::Accepted()
                .json(json!({"message": "Check your email to verify the address"})),
        )),
    }
}

async fn login(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["email", "password"])?;
    let outcome = state
        .auth
        .sessions()
        .login(
            &text(&map, "email").unwrap_or_default(),
            &SecretString::from(text(&map, "password").unwrap_or_default()),
            client_info(&req),
            None,
        )
        .await
        .map_err(service_error)?;
    Ok(sign_in_reply(
        &state,
        outcome,
        option(&map, "setCookie", true),
    ))
}

/// The answer to a finished first factor: the tokens (and the cookies when `set_cookie`),
/// or, for an account with a second factor, `{mfa_required, mfa_token, factors,
/// expires_at}` as the canonical API gives it (no cookie until the second factor).
fn sign_in_reply(state: &ServiceAuth, outcome: SignInOutcome, set_cookie: bool) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.insert_header(crate::routes::auth::no_store());
    match outcome {
        SignInOutcome::SignedIn(t) => {
            if set_cookie {
                state.set_cookies(&mut res, &t);
            }
            own_format(res.json(tokens_body(&t)))
        }
        SignInOutcome::MfaRequired(m) => own_format(res.json(json!({
            "mfa_required": true,
            "mfa_token": m.mfa_token.expose_secret(),
            "factors": m.factors,
            "expires_at": m.expires_at.timestamp(),
        }))),
    }
}

fn presented_refresh(state: &ServiceAuth, req: &HttpRequest) -> Option<String> {
    cookie(req, &state.refresh_cookie).or_else(|| bearer_token(req).map(str::to_owned))
}

async fn refresh(state: web::Data<ServiceAuth>, req: HttpRequest) -> Reply {
    let token = presented_refresh(&state, &req)
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "Unauthorized"))?;
    let t = state
        .auth
        .sessions()
        .refresh(&SecretString::from(token), &client_info(&req))
        .await
        .map_err(service_error)?;
    let mut res = HttpResponse::Ok();
    res.insert_header(crate::routes::auth::no_store());
    if cookie(&req, &state.refresh_cookie).is_some() {
        state.set_cookies(&mut res, &t);
    }
    Ok(own_format(res.json(tokens_body(&t))))
}

async fn revoke(state: web::Data<ServiceAuth>, req: HttpRequest) -> Reply {
    if let Some(token) = presented_refresh(&state, &req) {
        state
            .auth
            .sessions()
            .revoke(&SecretString::from(token))
            .await
            .map_err(service_error)?;
    }
    if let Some(c) = cookie(&req, &state.cookie) {
        state
            .auth
            .sessions()
            .revoke(&SecretString::from(c))
            .await
            .map_err(service_error)?;
    }
    let mut res = HttpResponse::Ok();
    state.clear_cookies(&mut res);
    Ok(own_format(res.json(json!({"message": "Logged out"}))))
}

async fn forgot(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["email"])?;
    state
        .auth
        .mailbox()
        .forgot_password(
            &text(&map, "email").unwrap_or_default(),
            &client_info(&req),
            None,
        )
        .await
        .map_err(service_error)?;
    Ok(own_format(HttpResponse::Ok().json(
        json!({"message": "If the address has an account, a reset link is on its way"}),
    )))
}

async fn reset_form(token: web::Path<String>) -> Reply {
    // The link of the mail: the front end shows its form and posts here.
    let valid = auth_core::opaque::is_well_formed(&token);
    if !valid {
        return Err(error(StatusCode::BAD_REQUEST, "Invalid or expired token"));
    }
    Ok(own_format(
        HttpResponse::Ok().json(json!({"token": token.into_inner()})),
    ))
}

async fn reset(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    token: web::Path<String>,
    bytes: web::Bytes,
) -> Reply {
    let map = body(&bytes, &["password"])?;
    state
        .auth
        .mailbox()
        .reset_password(
            &SecretString::from(token.into_inner()),
            &SecretString::from(text(&map, "password").unwrap_or_default()),
            &client_info(&req),
        )
        .await
        .map_err(service_error)?;
    Ok(own_format(
        HttpResponse::Ok().json(json!({"message": "Password updated"})),
    ))
}

async fn send_verification(state: web::Data<ServiceAuth>, req: HttpRequest) -> Reply {
    let caller = caller(&state, &req).await?;
    state
        .auth
        .mailbox()
        .send_verification(&caller)
        .await
        .map_err(service_error)?;
    Ok(own_format(
        HttpResponse::Ok().json(json!({"message": "Verification email sent"})),
    ))
}

async fn verify(state: web::Data<ServiceAuth>, token: web::Path<String>) -> Reply {
    let user = state
        .auth
        .mailbox()
        .verify_email(&SecretString::from(token.into_inner()))
        .await
        .map_err(service_error)?;
    Ok(own_format(HttpResponse::Ok().json(
        json!({"message": "Email verified", "user": user_json(&user)}),
    )))
}

async fn user(state: web::Data<ServiceAuth>, req: HttpRequest) -> Reply {
    let caller = caller(&state, &req).await?;
    let user = state
        .auth
        .sessions()
        .me(&caller)
        .await
        .map_err(service_error)?;
    // The account as `GET /user/:user_id` shows it.
    Ok(own_format(
        HttpResponse::Ok().json(accounts::account_json(user, None)),
    ))
}
