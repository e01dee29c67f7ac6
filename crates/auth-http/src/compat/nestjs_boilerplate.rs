//! `nestjs-boilerplate` (brocoders): `/api/v1/auth/email/*`, `/api/v1/auth/me`,
//! refresh with the refresh token as bearer, `{token, refreshToken, tokenExpires, user}`,
//! validation errors `422 {status, errors: {field: message}}`, HS256 access tokens, and
//! sign-in with a provider credential (`/api/v1/auth/{google,apple,facebook,twitter}/login`)
//! through the canonical providers of the same ids.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::AuthCore;
use auth_core::AuthError;
use auth_core::flows::SignupOutcome;
use auth_core::identity::{Identity, ProviderCredential};
use auth_core::jwt::KeySet;
use auth_core::mfa::SignInOutcome;
use auth_core::model::{ProfileUpdate, User};
use auth_core::password::PasswordPolicy;
use auth_core::service::{Authenticated, IssuedTokens, LogoutScope, SignupRequest};
use auth_core::social::{SignInIntent, SocialService};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use std::sync::Arc;

use super::{NestjsSettings, fail, own_format, path, profile_service};
use crate::extract::{bearer_token, client_info};
use crate::problem::ApiError;
use crate::settings::Settings;

/// The profile's state.
pub struct Nestjs {
    auth: Arc<AuthCore>,
    social: SocialService,
    prefix: String,
}

impl Nestjs {
    pub(super) fn build(
        settings: &Settings,
        base: &AuthCore,
        social: &SocialService,
        s: &NestjsSettings,
    ) -> Result<Self, String> {
        let secret = s
            .jwt_secret
            .as_ref()
            .ok_or("compat.nestjs_boilerplate.jwt_secret is required")?;
        let keys = KeySet::from_hs256_secret(secret.expose_secret().as_bytes())
            .map_err(|e| format!("compat.nestjs_boilerplate.jwt_secret: {e}"))?;
        let policy = PasswordPolicy {
            min_length: s.password_min_length,
            max_length: settings
                .password_policy
                .max_length
                .max(s.password_min_length),
            reject_common: settings.password_policy.reject_common,
            require_lowercase: false,
            require_uppercase: false,
            require_digit: false,
            require_symbol: false,
        };
        let auth = profile_service(
            base,
            settings,
            keys,
            &s.audience,
            s.access_ttl_secs,
            policy,
            None,
        );
        Ok(Self {
            social: social.for_profile(auth.clone()),
            auth,
            prefix: s.prefix.clone(),
        })
    }
}

type Reply = std::result::Result<HttpResponse, actix_web::Error>;
type Fail = actix_web::Error;

pub(super) fn configure(cfg: &mut web::ServiceConfig, data: &web::Data<Nestjs>) {
    let at = |route: &str| web::resource(path(&data.prefix, route)).app_data(data.clone());
    cfg.service(at("/api/v1/auth/email/login").route(web::post().to(login)))
        .service(at("/api/v1/auth/email/register").route(web::post().to(register)))
        .service(at("/api/v1/auth/email/confirm").route(web::post().to(confirm)))
        .service(at("/api/v1/auth/forgot/password").route(web::post().to(forgot)))
        .service(at("/api/v1/auth/reset/password").route(web::post().to(reset)))
        .service(
            at("/api/v1/auth/me")
                .route(web::get().to(me))
                .route(web::patch().to(update_me))
                .route(web::delete().to(delete_me)),
        )
        .service(at("/api/v1/auth/refresh").route(web::post().to(refresh)))
        .service(at("/api/v1/auth/logout").route(web::post().to(logout)))
        .service(at("/api/v1/auth/google/login").route(web::post().to(google_login)))
        .service(at("/api/v1/auth/apple/login").route(web::post().to(apple_login)))
        .service(at("/api/v1/auth/facebook/login").route(web::post().to(facebook_login)))
        .service(at("/api/v1/auth/twitter/login").route(web::post().to(twitter_login)));
}

fn unprocessable(errors: Map<String, Value>) -> Fail {
    fail(HttpResponse::UnprocessableEntity().json(json!({"status": 422, "errors": errors})))
}

fn field_error(field: &str, message: impl Into<String>) -> Fail {
    let mut errors = Map::new();
    errors.insert(field.to_owned(), Value::String(message.into()));
    unprocessable(errors)
}

fn nest_status(status: StatusCode, message: &str) -> Fail {
    fail(HttpResponse::build(status).json(json!({
        "statusCode": status.as_u16(),
        "message": message,
    })))
}

/// The boilerplate has no second step: an account with a second factor is refused (no
/// session is opened) and signs in through the canonical API.
fn mfa_required() -> Fail {
    field_error("password", "mfaRequired")
}

fn unauthorized() -> Fail {
    nest_status(StatusCode::UNAUTHORIZED, "Unauthorized")
}

/// Core errors in the boilerplate's shapes; what it has no shape for stays problem+json.
fn nest_error(e: AuthError) -> Fail {
    match e {
        AuthError::InvalidCredentials => field_error("password", "incorrectPassword"),
        AuthError::EmailTaken => field_error("email", "emailAlreadyExists"),
        AuthError::InvalidEmail(reason) => field_error("email", reason),
        AuthError::WeakPassword(r) => field_error("password", r.to_string()),
        AuthError::InvalidField { field, reason } => field_error(field, reason),
        AuthError::InvalidOneTimeToken => field_error("hash", "invalidHash"),
        AuthError::EmailNotVerified => field_error("email", "emailNotConfirmed"),
        AuthError::InvalidToken(_) | AuthError::InvalidRefreshToken => unauthorized(),
        other => ApiError::from(other).into(),
    }
}

/// The JSON body as an object; the named fields must be non-empty strings.
fn body(bytes: &[u8], required: &[&str]) -> std::result::Result<Map<String, Value>, Fail> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(nest_status(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    };
    let mut errors = Map::new();
    for field in required {
        match map.get(*field) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                errors.insert(
                    (*field).to_owned(),
                    Value::String(format!("{field} should not be empty")),
                );
            }
            Some(_) => {
                errors.insert(
                    (*field).to_owned(),
                    Value::String(format!("{field} must be a string")),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(unprocessable(errors))
    }
}

fn text(map: &Map<String, Value>, field: &str) -> String {
    map.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn optional_text(map: &Map<String, Value>, field: &str) -> Option<String> {
    map.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn split_name(name: Option<&str>) -> (Value, Value) {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => (Value::Null, Value::Null),
        Some(n) => match n.split_once(' ') {
            Some((first, last)) => (json!(first), json!(last.trim())),
            None => (json!(n), Value::Null),
        },
    }
}

fn join_name(first: Option<String>, last: Option<String>) -> Option<String> {
    let parts: Vec<String> = [first, last]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The boilerplate's `User` entity.
fn user_json(user: &User) -> Value {
    let (first, last) = split_name(user.name.as_deref());
    let (status_id, status_name) = if user.email_verified {
        (1, "Active")
    } else {
        (2, "Inactive")
    };
    let admin = user.roles.iter().any(|r| r == "admin");
    json!({
        "id": user.id.to_string(),
        "email": user.email,
        "provider": "email",
        "socialId": null,
        "firstName": first,
        "lastName": last,
        "photo": user.avatar_url.as_ref().map(|u| json!({"id": u, "path": u})),
        "role": if admin { json!({"id": 1, "name": "Admin"}) } else { json!({"id": 2, "name": "User"}) },
        "status": {"id": status_id, "name": status_name},
        "createdAt": user.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "updatedAt": user.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "deletedAt": null,
    })
}

/// `{token, refreshToken, tokenExpires}` and, on sign-in, the `user`.
fn tokens_json(t: &IssuedTokens, user: Option<Value>) -> HttpResponse {
    let mut body = json!({
        "token": t.access_token,
        "refreshToken": t.refresh_token.expose_secret(),
        "tokenExpires": t.expires_at * 1000,
    });
    if let Some(user) = user {
        body["user"] = user;
    }
    own_format(
        HttpResponse::Ok()
            .insert_header(crate::routes::auth::no_store())
            .json(body),
    )
}

async fn caller(state: &Nestjs, req: &HttpRequest) -> std::result::Result<Authenticated, Fail> {
    let token = bearer_token(req).ok_or_else(unauthorized)?;
    state
        .auth
        .sessions()
        .authenticate(token)
        .await
        .map_err(|_| unauthorized())
}

async fn login(state: web::Data<Nestjs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["email", "password"])?;
    let password = SecretString::from(text(&map, "password"));
    let outcome = state
        .auth
        .sessions()
        .login(&text(&map, "email"), &password, client_info(&req), None)
        .await
        .map_err(nest_error)?;
    match outcome {
        SignInOutcome::SignedIn(t) => Ok(tokens_json(&t, Some(user_json(&t.user)))),
        SignInOutcome::MfaRequired(_) => Err(mfa_required()),
    }
}

async fn register(state: web::Data<Nestjs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["email", "password", "firstName", "lastName"])?;
    let request = SignupRequest {
        email: text(&map, "email"),
        password: SecretString::from(text(&map, "password")),
        name: join_name(
            optional_text(&map, "firstName"),
            optional_text(&map, "lastName"),
        ),
        captcha_token: None,
    };
    match state
        .auth
        .mailbox()
        .signup(request, client_info(&req))
        .await
        .map_err(nest_error)?
    {
        // The boilerplate answers 204 and lets the client sign in: end the session the
        // core opened.
        SignupOutcome::SignedIn(t) => {
            state
                .auth
                .sessions()
                .revoke(&t.refresh_token)
                .await
                .map_err(nest_error)?;
        }
        SignupOutcome::VerificationSent => {}
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn confirm(state: web::Data<Nestjs>, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["hash"])?;
    state
        .auth
        .mailbox()
        .verify_email(&SecretString::from(text(&map, "hash")))
        .await
        .map_err(nest_error)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn forgot(state: web::Data<Nestjs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["email"])?;
    state
        .auth
        .mailbox()
        .forgot_password(&text(&map, "email"), &client_info(&req), None)
        .await
        .map_err(nest_error)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn reset(state: web::Data<Nestjs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["password", "hash"])?;
    state
        .auth
        .mailbox()
        .reset_password(
            &SecretString::from(text(&map, "hash")),
            &SecretString::from(text(&map, "password")),
            &client_info(&req),
        )
        .await
        .map_err(nest_error)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn me(state: web::Data<Nestjs>, req: HttpRequest) -> Reply {
    let caller = caller(&state, &req).await?;
    let user = state
        .auth
        .sessions()
        .me(&caller)
        .await
        .map_err(nest_error)?;
    Ok(own_format(HttpResponse::Ok().json(user_json(&user))))
}

async fn update_me(state: web::Data<Nestjs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let caller = caller(&state, &req).await?;
    let map = body(&bytes, &[])?;
    let mut caller = caller;
    if map.contains_key("password") {
        let new = body(&bytes, &["password", "oldPassword"])?;
        let issued = state
            .auth
            .mailbox()
            .change_password(
                &caller,
                &SecretString::from(text(&new, "oldPassword")),
                &SecretString::from(text(&new, "password")),
                client_info(&req),
            )
            .await
            .map_err(|e| match e {
                AuthError::InvalidCredentials => field_error("oldPassword", "incorrectOldPassword"),
                other => nest_error(other),
            })?;
        caller = state
            .auth
            .sessions()
            .authenticate(&issued.access_token)
            .await
            .map_err(nest_error)?;
    }
    let current = state
        .auth
        .sessions()
        .me(&caller)
        .await
        .map_err(nest_error)?;
    let (first, last) = split_name(current.name.as_deref());
    let first = map.get("firstName").map_or_else(
        || first.as_str().map(str::to_owned),
        |v| v.as_str().map(str::to_owned),
    );
    let last = map.get("lastName").map_or_else(
        || last.as_str().map(str::to_owned),
        |v| v.as_str().map(str::to_owned),
    );
    let avatar = match map.get("photo") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(photo) => Some(
            photo
                .get("path")
                .or_else(|| photo.get("id"))
                .and_then(Value::as_str)
                .or_else(|| photo.as_str())
                .map(str::to_owned),
        ),
    };
    let update = ProfileUpdate {
        name: (map.contains_key("firstName") || map.contains_key("lastName"))
            .then(|| join_name(first, last)),
        avatar_url: avatar,
    };
    let user = state
        .auth
        .sessions()
        .update_me(&caller, update)
        .await
        .map_err(nest_error)?;
    Ok(own_format(HttpResponse::Ok().json(user_json(&user))))
}

async fn refresh(state: web::Data<Nestjs>, req: HttpRequest) -> Reply {
    let token = bearer_token(&req).ok_or_else(unauthorized)?;
    let issued = state
        .auth
        .sessions()
        .refresh(&SecretString::from(token.to_owned()), &client_info(&req))
        .await
        .map_err(nest_error)?;
    Ok(tokens_json(&issued, None))
}

async fn logout(state: web::Data<Nestjs>, req: HttpRequest) -> Reply {
    let caller = caller(&state, &req).await?;
    state
        .auth
        .sessions()
        .logout(&caller, LogoutScope::Session)
        .await
        .map_err(nest_error)?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_me(state: web::Data<Nestjs>, req: HttpRequest) -> Reply {
    let caller = caller(&state, &req).await?;
    state
        .auth
        .sessions()
        .delete_own_account(&caller)
        .await
        .map_err(nest_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Provider sign-in errors in the boilerplate's shapes (it answers a token it cannot verify
/// with `422 {errors: {user: "wrongToken"}}`). A provider that is not configured, or not
/// for this kind of credential (`twitter` without its OAuth 1.0a consumer key), is a 404.
fn social_error(e: AuthError) -> Fail {
    match e {
        AuthError::UnknownProvider | AuthError::InvalidRequest(_) => {
            nest_status(StatusCode::NOT_FOUND, "Not Found")
        }
        AuthError::InvalidIdToken(_) | AuthError::ProviderRejected(_) => {
            field_error("user", "wrongToken")
        }
        AuthError::ProviderEmailMissing => field_error("email", "emailMissing"),
        AuthError::ProviderEmailUnverified => field_error("email", "emailNotVerified"),
        AuthError::LinkRequired => field_error("email", "emailAlreadyExists"),
        AuthError::SignupRequired | AuthError::SignupDisabled => field_error("user", "notFound"),
        other => nest_error(other),
    }
}

/// Sign in with a credential of the canonical provider `provider` (signing up a new
/// account, the canonical default): the email login's answer, with the user's `provider`
/// and `socialId` those of this provider's identity.
async fn social_login(
    state: &Nestjs,
    req: &HttpRequest,
    provider: &str,
    credential: ProviderCredential,
    name: Option<String>,
) -> Reply {
    let outcome = state
        .social
        .sign_in(
            provider,
            &credential,
            SignInIntent::Signin,
            name,
            client_info(req),
        )
        .await
        .map_err(social_error)?;
    let tokens = match outcome {
        SignInOutcome::SignedIn(t) => t,
        SignInOutcome::MfaRequired(_) => return Err(mfa_required()),
    };
    let identities: Vec<Identity> = state
        .social
        .identities_of(tokens.user.id)
        .await
        .map_err(nest_error)?;
    let mut user = user_json(&tokens.user);
    user["provider"] = json!(provider);
    user["socialId"] = json!(
        identities
            .iter()
            .find(|i| i.provider == provider)
            .map(|i| i.subject.clone())
    );
    Ok(tokens_json(&tokens, Some(user)))
}

fn id_token(map: &Map<String, Value>) -> ProviderCredential {
    ProviderCredential::IdToken {
        id_token: SecretString::from(text(map, "idToken")),
        nonce: None,
    }
}

/// `POST /api/v1/auth/google/login` `{idToken}`.
async fn google_login(state: web::Data<Nestjs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["idToken"])?;
    social_login(&state, &req, "google", id_token(&map), None).await
}

/// `POST /api/v1/auth/apple/login` `{idToken, firstName?, lastName?}`: Apple gives the name
/// to the app on the first sign-in only; it becomes the display name of a new account.
async fn apple_login(state: web::Data<Nestjs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["idToken"])?;
    let name = join_name(
        optional_text(&map, "firstName"),
        optional_text(&map, "lastName"),
    );
    social_login(&state, &req, "apple", id_token(&map), name).await
}

/// `POST /api/v1/auth/facebook/login` `{accessToken}`.
async fn facebook_login(state: web::Data<Nestjs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["accessToken"])?;
    let credential = ProviderCredential::AccessToken {
        access_token: SecretString::from(text(&map, "accessToken")),
        access_token_secret: None,
    };
    social_login(&state, &req, "facebook", credential, None).await
}

/// `POST /api/v1/auth/twitter/login` `{accessTokenKey, accessTokenSecret}` (OAuth 1.0a).
async fn twitter_login(state: web::Data<Nestjs>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["accessTokenKey", "accessTokenSecret"])?;
    let credential = ProviderCredential::AccessToken {
        access_token: SecretString::from(text(&map, "accessTokenKey")),
        access_token_secret: Some(SecretString::from(text(&map, "accessTokenSecret"))),
    };
    social_login(&state, &req, "twitter", credential, None).await
}
