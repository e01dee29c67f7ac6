//! Through the mailbox: email verification, password reset and change, magic links and
//! one-time codes. Requests that could reveal whether an account exists answer 202 with the
//! same body whatever the address.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::extract::{Caller, JsonBody, client_info};
use crate::openapi::{Accepted, ProblemDoc, SignInResultDoc};
use crate::problem::ApiError;
use crate::routes::auth::{no_store, tokens};
use crate::state::AppState;
use crate::views::TokenResponse;

fn accepted() -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header(no_store())
        .json(json!({"status": "accepted"}))
}

#[derive(Deserialize, ToSchema)]
pub struct EmailBody {
    email: String,
    #[serde(default)]
    captcha_token: Option<String>,
}

/// Ask for a password reset link. Answers the same whether or not the account exists.
#[utoipa::path(
    post, path = "/api/v1/auth/password/forgot", tag = "account", request_body = EmailBody,
    responses(
        (status = 202, description = "`{\"status\": \"accepted\"}`", body = Accepted),
        (status = 400, description = "`invalid_request`; `captcha_required`, `captcha_failed`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_email`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<EmailBody>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .mailbox()
        .forgot_password(
            &body.email,
            &client_info(&req),
            body.captcha_token.as_deref(),
        )
        .await?;
    Ok(accepted())
}

#[derive(Deserialize, ToSchema)]
pub struct ResetBody {
    /// The token of the reset link.
    #[schema(value_type = String)]
    token: SecretString,
    /// The new password.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// Set a new password with the token of a reset link; every session of the user ends.
#[utoipa::path(
    post, path = "/api/v1/auth/password/reset", tag = "account", request_body = ResetBody,
    responses(
        (status = 204, description = "Password changed"),
        (status = 400, description = "`invalid_request`, `invalid_or_expired_token`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`weak_password`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn reset_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<ResetBody>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .mailbox()
        .reset_password(&body.token, &body.password, &client_info(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub struct ChangeBody {
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    new_password: SecretString,
}

/// Change the password; the caller gets a new session and every other session ends.
#[utoipa::path(
    post, path = "/api/v1/auth/password/change", tag = "account", request_body = ChangeBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed; tokens of a new session", body = TokenResponse),
        (status = 401, description = "`invalid_token`; `invalid_credentials` (wrong current password)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`weak_password`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<ChangeBody>,
) -> Result<HttpResponse, ApiError> {
    let issued = state
        .auth
        .mailbox()
        .change_password(
            &caller.0,
            &body.current_password,
            &body.new_password,
            client_info(&req),
        )
        .await?;
    Ok(tokens(StatusCode::OK, issued.into()))
}

/// Send (again) the email verification link to the caller's address.
#[utoipa::path(
    post, path = "/api/v1/auth/email/verify/send", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "`{\"status\": \"accepted\"}`", body = Accepted),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn send_verification(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    state.auth.mailbox().send_verification(&caller.0).await?;
    Ok(accepted())
}

#[derive(Deserialize, ToSchema)]
pub struct TokenBody {
    /// The token of the link sent by mail.
    #[schema(value_type = String)]
    token: SecretString,
}

/// Confirm an email address with the token of a verification link.
#[utoipa::path(
    post, path = "/api/v1/auth/email/verify", tag = "account", request_body = TokenBody,
    responses(
        (status = 204, description = "Verified"),
        (status = 400, description = "`invalid_request`, `invalid_or_expired_token`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn verify_email(
    state: web::Data<AppState>,
    body: JsonBody<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    state.auth.mailbox().verify_email(&body.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub struct MagicLinkBody {
    email: String,
    #[serde(default)]
    redirect_to: Option<String>,
    #[serde(default)]
    captcha_token: Option<String>,
}

/// Ask for a sign-in link by mail. Answers the same whether or not the account exists.
#[utoipa::path(
    post, path = "/api/v1/auth/magic-link", tag = "account", request_body = MagicLinkBody,
    responses(
        (status = 202, description = "`{\"status\": \"accepted\"}`", body = Accepted),
        (status = 400, description = "`invalid_request` (also a `redirect_to` outside `app.redirect_allow_list`); `captcha_required`, `captcha_failed`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_email`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn request_magic_link(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<MagicLinkBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    state
        .auth
        .mailbox()
        .request_magic_link(
            &body.email,
            body.redirect_to,
            &client_info(&req),
            body.captcha_token.as_deref(),
        )
        .await?;
    Ok(accepted())
}

/// Sign in with the token of a magic link.
#[utoipa::path(
    post, path = "/api/v1/auth/magic-link/verify", tag = "account", request_body = TokenBody,
    responses(
        (status = 200, description = "Signed in, or `mfa_required` with an `mfa_token`; `redirect_to` added when the link was asked with one", body = SignInResultDoc),
        (status = 400, description = "`invalid_request`, `invalid_or_expired_token`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`account_locked`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn verify_magic_link(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let signed = state
        .auth
        .mailbox()
        .verify_magic_link(&body.token, client_info(&req))
        .await?;
    super::mfa::sign_in_response(signed.outcome, signed.redirect_to)
}

/// Exactly one of `email` or `phone`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpSendBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    captcha_token: Option<String>,
}

/// Send a one-time sign-in code. Answers the same whether or not the account exists.
#[utoipa::path(
    post, path = "/api/v1/auth/otp/send", tag = "account", request_body = OtpSendBody,
    responses(
        (status = 202, description = "`{\"status\": \"accepted\"}`", body = Accepted),
        (status = 400, description = "`invalid_request`; `not_enabled` (SMS); `captcha_required`, `captcha_failed`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_email`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn send_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<OtpSendBody>,
) -> Result<HttpResponse, ApiError> {
    match (&body.email, &body.phone) {
        (Some(email), None) => {
            state
                .auth
                .mailbox()
                .send_email_code(email, &client_info(&req), body.captcha_token.as_deref())
                .await?
        }
        (None, Some(phone)) => {
            state
                .auth
                .mfa()
                .send_sms_sign_in_code(phone, &client_info(&req), body.captcha_token.as_deref())
                .await?
        }
        _ => {
            return Err(ApiError::invalid_request(
                "give exactly one of email or phone",
            ));
        }
    }
    Ok(accepted())
}

/// Exactly one of `email` or `phone`, and the code.
#[derive(Deserialize, ToSchema)]
pub struct OtpVerifyBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    code: String,
}

/// Sign in with a one-time code.
#[utoipa::path(
    post, path = "/api/v1/auth/otp/verify", tag = "account", request_body = OtpVerifyBody,
    responses(
        (status = 200, description = "Signed in, or `mfa_required` with an `mfa_token`", body = SignInResultDoc),
        (status = 400, description = "`invalid_request`, `invalid_code`, `not_enabled` (SMS)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`account_locked`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn verify_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<OtpVerifyBody>,
) -> Result<HttpResponse, ApiError> {
    let outcome = match (&body.email, &body.phone) {
        (Some(email), None) => {
            state
                .auth
                .mailbox()
                .verify_email_code(email, &body.code, client_info(&req))
                .await?
        }
        (None, Some(phone)) => {
            state
                .auth
                .mfa()
                .verify_sms_sign_in(phone, &body.code, client_info(&req))
                .await?
        }
        _ => {
            return Err(ApiError::invalid_request(
                "give exactly one of email or phone",
            ));
        }
    };
    super::mfa::sign_in_response(outcome, None)
}
