//! Passkeys (WebAuthn): registration while signed in, passwordless sign-in, list, delete.
//! The rules live in `auth_core::passkeys`; the ceremonies in `auth-passkeys`.

use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::passkeys::{CeremonyStart, StoredPasskey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extract::{Caller, JsonBody, client_info};
use crate::openapi::{CeremonyDoc, ProblemDoc};
use crate::problem::ApiError;
use crate::routes::auth::no_store;
use crate::state::AppState;
use crate::views::TokenResponse;

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

/// A registered passkey.
#[derive(Serialize, ToSchema)]
#[schema(as = Passkey)]
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

/// Start registering a passkey: options for `navigator.credentials.create()`.
#[utoipa::path(
    post, path = "/api/v1/auth/passkeys/register/start", tag = "passkeys", security(("bearer" = [])),
    responses(
        (status = 200, description = "The ceremony", body = CeremonyDoc),
        (status = 400, description = "`not_enabled`: passkeys not configured", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required`: the user has a second factor and the session is not `aal2`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn registration_start(
    state: web::Data<AppState>,
    Caller(caller): Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(ceremony(
        state
            .auth
            .passkeys()
            .passkey_registration_start(&caller)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFinishBody {
    #[schema(value_type = String)]
    ceremony_id: SecretString,
    /// The `PublicKeyCredential` from `navigator.credentials.create()`, as JSON.
    #[schema(value_type = Object)]
    credential: Value,
    #[serde(default)]
    name: Option<String>,
}

/// Finish registering a passkey with the authenticator's response.
#[utoipa::path(
    post, path = "/api/v1/auth/passkeys/register/finish", tag = "passkeys", request_body = RegistrationFinishBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered", body = PasskeyItem),
        (status = 400, description = "`invalid_request`, `not_enabled`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`, `invalid_passkey`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required`: the user has a second factor and the session is not `aal2`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`passkey_taken`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn registration_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    body: JsonBody<RegistrationFinishBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let passkey = state
        .auth
        .passkeys()
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

/// Start a passkey sign-in: options for a discoverable `navigator.credentials.get()`.
#[utoipa::path(
    post, path = "/api/v1/auth/passkeys/login/start", tag = "passkeys",
    responses(
        (status = 200, description = "The ceremony", body = CeremonyDoc),
        (status = 400, description = "`not_enabled`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login_start(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Ok(ceremony(
        state
            .auth
            .passkeys()
            .passkey_login_start(&client_info(&req))
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginFinishBody {
    #[schema(value_type = String)]
    ceremony_id: SecretString,
    /// The `PublicKeyCredential` from `navigator.credentials.get()`, as JSON.
    #[schema(value_type = Object)]
    credential: Value,
}

/// Sign in with a passkey assertion.
#[utoipa::path(
    post, path = "/api/v1/auth/passkeys/login/finish", tag = "passkeys", request_body = LoginFinishBody,
    responses(
        (status = 200, description = "Signed in (`aal2` when the authenticator verified the user), or `{\"mfa_required\": true, \"mfa_token\", \"factors\", \"expires_at\"}` when it did not and the user has a second factor", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `not_enabled`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_passkey`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<LoginFinishBody>,
) -> Result<HttpResponse, ApiError> {
    let outcome = state
        .auth
        .passkeys()
        .passkey_login_finish(&body.ceremony_id, &body.credential, client_info(&req))
        .await?;
    super::mfa::sign_in_response(outcome, None)
}

/// The caller's passkeys.
#[utoipa::path(
    get, path = "/api/v1/auth/passkeys", tag = "passkeys", security(("bearer" = [])),
    responses(
        (status = 200, description = "Passkeys", body = Vec<PasskeyItem>),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
) -> Result<HttpResponse, ApiError> {
    let items: Vec<PasskeyItem> = state
        .auth
        .passkeys()
        .passkeys(&caller)
        .await?
        .into_iter()
        .map(PasskeyItem::from)
        .collect();
    Ok(HttpResponse::Ok().insert_header(no_store()).json(items))
}

/// Delete a passkey (needs an `aal2` access token).
#[utoipa::path(
    delete, path = "/api/v1/auth/passkeys/{id}", tag = "passkeys", params(("id" = String, Path, description = "The passkey id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`step_up_required`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found())?;
    state
        .auth
        .passkeys()
        .delete_passkey(&caller, id, &client_info(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
