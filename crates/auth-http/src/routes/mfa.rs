//! Multi-factor authentication: TOTP enrolment, the second step of a sign-in, step-up,
//! factor removal and recovery codes. The rules live in `auth_core::mfa`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::mfa::{MfaStatus, RecoveryCodes, SecondFactor, SignInOutcome};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extract::{Caller, JsonBody, bearer_token, client_info, parse_json, require_json};
use crate::openapi::{
    ProblemDoc, RecoveryCodesDoc, SentDoc, SmsEnrollmentDoc, StepUpDoc, TotpEnrollmentDoc,
};
use crate::problem::ApiError;
use crate::routes::auth::{no_store, tokens};
use crate::state::AppState;
use crate::views::TokenResponse;
use crate::views::UserView;

/// Register the `/mfa/...` routes (inside the `/api/v1/auth` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/mfa/factors", web::get().to(factors))
        .route("/mfa/factors/{id}", web::delete().to(remove_factor))
        .route("/mfa/totp/enroll", web::post().to(enroll_totp))
        .route("/mfa/totp/activate", web::post().to(activate_totp))
        .route(
            "/mfa/recovery-codes/regenerate",
            web::post().to(regenerate_recovery_codes),
        )
        .route("/mfa/verify", web::post().to(verify))
        .route("/mfa/sms/enroll", web::post().to(enroll_sms))
        .route("/mfa/sms/activate", web::post().to(activate_sms))
        .route("/mfa/sms/send", web::post().to(send_sms));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsEnrollBody {
    phone: String,
}

/// Enroll a phone number as an SMS factor: a code goes to it.
#[utoipa::path(
    post, path = "/api/v1/auth/mfa/sms/enroll", tag = "mfa", request_body = SmsEnrollBody, security(("bearer" = [])),
    responses(
        (status = 202, description = "Pending; activate with the code received", body = SmsEnrollmentDoc),
        (status = 400, description = "`not_enabled` (SMS not configured), `invalid_request`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_already_enrolled`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_field`: not a phone number", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn enroll_sms(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    body: JsonBody<SmsEnrollBody>,
) -> Result<HttpResponse, ApiError> {
    let enrollment = state
        .auth
        .mfa()
        .enroll_sms(&caller, &body.phone, &client_info(&req))
        .await?;
    Ok(HttpResponse::Accepted()
        .insert_header(no_store())
        .json(json!({
            "factor_id": enrollment.factor_id.to_string(),
            "kind": "sms",
            "phone": enrollment.phone,
        })))
}

/// Activate the pending SMS factor with the code received.
#[utoipa::path(
    post, path = "/api/v1/auth/mfa/sms/activate", tag = "mfa", request_body = ActivateBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "Active; the recovery codes (shown once)", body = RecoveryCodesDoc),
        (status = 400, description = "`invalid_code`, `invalid_request`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such pending factor", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn activate_sms(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    body: JsonBody<ActivateBody>,
) -> Result<HttpResponse, ApiError> {
    let codes = state
        .auth
        .mfa()
        .activate_sms(&caller, body.factor_id, &body.code, &client_info(&req))
        .await?;
    Ok(recovery_codes_body(codes))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsSendBody {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    mfa_token: Option<SecretString>,
}

/// Send a code to the SMS factor, during a sign-in (`mfa_token`) or for a step-up (bearer access token).
#[utoipa::path(
    post, path = "/api/v1/auth/mfa/sms/send", tag = "mfa", request_body(content = Option<SmsSendBody>, content_type = "application/json", description = "`mfa_token` during a sign-in; empty with a bearer token"),
    responses(
        (status = 202, description = "`{\"status\": \"sent\"}`", body = SentDoc),
        (status = 400, description = "`invalid_request`, `not_enabled`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_mfa_token`, `invalid_token`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_not_enrolled`: no SMS factor", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn send_sms(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req, &body)?;
    let body: SmsSendBody = parse_json(&body, true)?;
    let caller = match (&body.mfa_token, bearer_token(&req)) {
        (None, Some(token)) => Some(state.auth.sessions().authenticate(token).await?),
        _ => None,
    };
    state
        .auth
        .mfa()
        .send_mfa_sms(body.mfa_token.as_ref(), caller.as_ref(), &client_info(&req))
        .await?;
    Ok(HttpResponse::Accepted()
        .insert_header(no_store())
        .json(json!({"status": "sent"})))
}

/// The answer of every first factor: a TokenResponse, or
/// `{"mfa_required": true, "mfa_token", "factors", "expires_at"}`; `redirect_to` is added
/// when a magic link carried one.
pub(crate) fn sign_in_response(
    outcome: SignInOutcome,
    redirect_to: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let mut body = match outcome {
        SignInOutcome::SignedIn(issued) => {
            let body = crate::views::TokenResponse::from(*issued);
            if redirect_to.is_none() {
                return Ok(tokens(StatusCode::OK, body));
            }
            serde_json::to_value(body).map_err(auth_core::AuthError::internal)?
        }
        SignInOutcome::MfaRequired(m) => json!({
            "mfa_required": true,
            "mfa_token": m.mfa_token.expose_secret(),
            "factors": m.factors,
            "expires_at": m.expires_at.timestamp(),
        }),
    };
    if let (Some(url), Some(map)) = (redirect_to, body.as_object_mut()) {
        map.insert("redirect_to".into(), url.into());
    }
    Ok(HttpResponse::Ok().insert_header(no_store()).json(body))
}

/// An active second factor.
#[derive(Serialize, ToSchema)]
#[schema(as = MfaFactor)]
struct FactorItem {
    id: String,
    /// `totp` or `sms`.
    #[schema(value_type = String)]
    kind: &'static str,
    label: Option<String>,
    activated_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

/// The caller's multi-factor state.
#[derive(Serialize, ToSchema)]
#[schema(as = MfaStatus)]
struct StatusView {
    enabled: bool,
    factors: Vec<FactorItem>,
    recovery_codes_remaining: u64,
}

impl From<MfaStatus> for StatusView {
    fn from(s: MfaStatus) -> Self {
        Self {
            enabled: s.enabled,
            factors: s
                .factors
                .into_iter()
                .map(|f| FactorItem {
                    id: f.id.to_string(),
                    kind: f.kind.as_str(),
                    label: f.label,
                    activated_at: f.activated_at,
                    last_used_at: f.last_used_at,
                })
                .collect(),
            recovery_codes_remaining: s.recovery_codes_remaining,
        }
    }
}

fn recovery_codes_body(codes: RecoveryCodes) -> HttpResponse {
    let codes: Vec<&str> = codes.0.iter().map(|c| c.expose_secret()).collect();
    HttpResponse::Ok()
        .insert_header(no_store())
        .json(json!({ "recovery_codes": codes }))
}

/// The caller's second factors and remaining recovery codes.
#[utoipa::path(
    get, path = "/api/v1/auth/mfa/factors", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, description = "MFA state", body = StatusView),
    )
)]
pub async fn factors(
    state: web::Data<AppState>,
    Caller(caller): Caller,
) -> Result<HttpResponse, ApiError> {
    let status = state.auth.mfa().mfa_status(&caller).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(StatusView::from(status)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    #[serde(default)]
    label: Option<String>,
}

/// An SVG QR code of `text` as a data URI.
pub(crate) fn qr_data_uri(text: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(auth_core::AuthError::internal)?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        STANDARD.encode(svg.as_bytes())
    ))
}

/// Start enrolling an authenticator app (TOTP).
#[utoipa::path(
    post, path = "/api/v1/auth/mfa/totp/enroll", tag = "mfa", request_body(content = Option<EnrollBody>, content_type = "application/json", description = "Optional `label`"), security(("bearer" = [])),
    responses(
        (status = 200, description = "Pending factor, secret, URI and QR code (shown once)", body = TotpEnrollmentDoc),
        (status = 409, description = "`mfa_already_enrolled`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn enroll_totp(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req, &body)?;
    let body: EnrollBody = parse_json(&body, true)?;
    let enrollment = state.auth.mfa().enroll_totp(&caller, body.label).await?;
    let uri = enrollment.otpauth_uri.expose_secret();
    Ok(HttpResponse::Ok().insert_header(no_store()).json(json!({
        "factor_id": enrollment.factor_id.to_string(),
        "kind": "totp",
        "secret": enrollment.secret.expose_secret(),
        "otpauth_uri": uri,
        "qr_code": qr_data_uri(uri)?,
        "expires_at": enrollment.expires_at.timestamp(),
    })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateBody {
    #[schema(value_type = String)]
    factor_id: Uuid,
    code: String,
}

/// Activate the pending TOTP factor with its first valid code.
#[utoipa::path(
    post, path = "/api/v1/auth/mfa/totp/activate", tag = "mfa", request_body = ActivateBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "Active; the recovery codes (shown once)", body = RecoveryCodesDoc),
        (status = 400, description = "`invalid_code`, `invalid_request`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such pending factor", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn activate_totp(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    body: JsonBody<ActivateBody>,
) -> Result<HttpResponse, ApiError> {
    let codes = state
        .auth
        .mfa()
        .activate_totp(&caller, body.factor_id, &body.code, &client_info(&req))
        .await?;
    Ok(recovery_codes_body(codes))
}

/// A fresh second factor given with a request that needs one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofBody {
    /// `totp` (default), `sms` or `recovery_code`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "totp")]
    factor: Option<SecondFactor>,
    #[serde(default)]
    code: Option<String>,
}

impl ProofBody {
    fn proof(&self) -> Option<(SecondFactor, &str)> {
        let code = self.code.as_deref()?;
        Some((self.factor.unwrap_or(SecondFactor::Totp), code))
    }
}

/// Remove a factor; an active one needs a current code (`{factor?, code}`).
#[utoipa::path(
    delete, path = "/api/v1/auth/mfa/factors/{id}", tag = "mfa", request_body(content = Option<ProofBody>, content_type = "application/json", description = "The proof for an active factor"), params(("id" = String, Path, description = "The factor id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`invalid_code`, `invalid_request`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn remove_factor(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found())?;
    require_json(&req, &body)?;
    let body: ProofBody = parse_json(&body, true)?;
    state
        .auth
        .mfa()
        .remove_mfa_factor(&caller, id, body.proof(), &client_info(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace the recovery codes (needs a current code).
#[utoipa::path(
    post, path = "/api/v1/auth/mfa/recovery-codes/regenerate", tag = "mfa", request_body = ProofBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "New recovery codes (shown once)", body = RecoveryCodesDoc),
        (status = 400, description = "`invalid_code`, `invalid_request`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`mfa_not_enrolled`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn regenerate_recovery_codes(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(caller): Caller,
    body: JsonBody<ProofBody>,
) -> Result<HttpResponse, ApiError> {
    let proof = body
        .proof()
        .ok_or_else(|| ApiError::invalid_request("code is required"))?;
    let codes = state
        .auth
        .mfa()
        .regenerate_recovery_codes(&caller, proof, &client_info(&req))
        .await?;
    Ok(recovery_codes_body(codes))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The `mfa_token` of a sign-in; absent for a step-up with a bearer access token.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    mfa_token: Option<SecretString>,
    /// `totp` (default), `sms` or `recovery_code`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "totp")]
    factor: Option<SecondFactor>,
    code: String,
}

/// Second step of a sign-in (with `mfa_token`: tokens of a new `aal2` session), or a step-up of the bearer's session (a new `aal2` access token).
#[utoipa::path(
    post, path = "/api/v1/auth/mfa/verify", tag = "mfa", request_body = VerifyBody,
    responses(
        (status = 200, description = "A TokenResponse (sign-in), or a StepUpResponse (step-up)", content((TokenResponse = "application/json"), (StepUpDoc = "application/json"))),
        (status = 400, description = "`invalid_code`, `invalid_request`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_mfa_token`, `invalid_token`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`account_locked`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<VerifyBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let factor = body.factor.unwrap_or(SecondFactor::Totp);
    let client = client_info(&req);
    if let Some(mfa_token) = &body.mfa_token {
        let issued = state
            .auth
            .mfa()
            .verify_mfa(mfa_token, factor, &body.code, client)
            .await?;
        return Ok(tokens(StatusCode::OK, issued.into()));
    }
    let Some(access_token) = bearer_token(&req) else {
        return Err(ApiError::invalid_request(
            "mfa_token is required, or a bearer access token to step up the session",
        ));
    };
    let caller = state.auth.sessions().authenticate(access_token).await?;
    let stepped = state
        .auth
        .mfa()
        .step_up(&caller, factor, &body.code, &client)
        .await?;
    Ok(HttpResponse::Ok().insert_header(no_store()).json(json!({
        "access_token": stepped.access_token,
        "token_type": "Bearer",
        "expires_in": stepped.expires_in,
        "expires_at": stepped.expires_at,
        "user": UserView::from(stepped.user),
    })))
}
