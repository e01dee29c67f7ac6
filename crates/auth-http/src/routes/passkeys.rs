//! Passkeys (WebAuthn): registration while signed in, passwordless sign-in, list, delete.
//! The rules live in `auth_core::passkeys`; the ceremonies in `auth-passkeys`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::passkeys::{CeremonyStart, StoredPasskey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::extract::{Caller, client_info};
use crate::problem::ApiError;
use crate::routes::auth::{no_store, tokens};
use crate::state::AppState;

/// Register the `/passkeys/...` routes (inside the `/api/v1/auth` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/passkeys/register/start",
        web::post().to(registration_start),
    )
    .route(
        "/passkeys/register/finish",
        web::post().to(registration_finish),
    )
    .route("/passkeys/login/start", web::post().to(login_start))
    .route("/passkeys/login/finish", web::post().to(login_finish))
    .route("/passkeys", web::get().to(list))
    .route("/passkeys/{id}", web::delete().to(delete));
}

#[derive(Serialize)]
struct PasskeyItem {
    id: String,
    name: Option<String>,
    credential_id: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<StoredPasskey> for PasskeyItem {
    fn from(p: StoredPasskey) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            credential_id: URL_SAFE_NO_PAD.encode(&p.credential_id),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

fn ceremony(start: CeremonyStart) -> HttpResponse {
    HttpResponse::Ok().insert_header(no_store()).json(json!({
        "ceremony_id": start.ceremony_id.expose_secret(),
        "options": start.options,
    }))
}

/// `POST /api/v1/auth/passkeys/register/start`: options for `navigator.credentials.create()`.
pub async fn registration_start(
    state: web::Data<AppState>,
    Caller(caller): Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(ceremony(
        state.auth.passkey_registration_start(&caller).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFinishBody {
    ceremony_id: SecretString,
    credential: Value,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/v1/auth/passkeys/register/finish` with the authenticator's response.
pub async fn registration_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    body: web::Json<RegistrationFinishBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let passkey = state
        .auth
        .passkey_registration_finish(
            &caller,
            &body.ceremony_id,
            &body.credential,
            body.name,
            &client_info(&req),
        )
        .await?;
    Ok(HttpResponse::Created().json(PasskeyItem::from(passkey)))
}

/// `POST /api/v1/auth/passkeys/login/start`: options for a discoverable
/// `navigator.credentials.get()`.
pub async fn login_start(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Ok(ceremony(
        state.auth.passkey_login_start(&client_info(&req)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginFinishBody {
    ceremony_id: SecretString,
    credential: Value,
}

/// `POST /api/v1/auth/passkeys/login/finish` with the assertion: a TokenResponse.
pub async fn login_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginFinishBody>,
) -> Result<HttpResponse, ApiError> {
    let issued = state
        .auth
        .passkey_login_finish(&body.ceremony_id, &body.credential, client_info(&req))
        .await?;
    Ok(tokens(StatusCode::OK, issued.into()))
}

/// `GET /api/v1/auth/passkeys`: the caller's passkeys.
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
) -> Result<HttpResponse, ApiError> {
    let items: Vec<PasskeyItem> = state
        .auth
        .passkeys(&caller)
        .await?
        .into_iter()
        .map(PasskeyItem::from)
        .collect();
    Ok(HttpResponse::Ok().insert_header(no_store()).json(items))
}

/// `DELETE /api/v1/auth/passkeys/{id}`: needs an `aal2` access token.
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found())?;
    state
        .auth
        .delete_passkey(&caller, id, &client_info(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
