//! Through the mailbox: email verification, password reset and change, magic links and
//! one-time codes. Requests that could reveal whether an account exists answer 202 with the
//! same body whatever the address.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::extract::{Caller, client_info};
use crate::problem::ApiError;
use crate::routes::auth::{no_store, tokens};
use crate::state::AppState;

fn accepted() -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header(no_store())
        .json(json!({"status": "accepted"}))
}

#[derive(Deserialize)]
pub struct EmailBody {
    email: String,
    #[serde(default)]
    captcha_token: Option<String>,
}

pub async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<EmailBody>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .forgot_password(
            &body.email,
            &client_info(&req),
            body.captcha_token.as_deref(),
        )
        .await?;
    Ok(accepted())
}

#[derive(Deserialize)]
pub struct ResetBody {
    token: SecretString,
    password: SecretString,
}

pub async fn reset_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ResetBody>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .reset_password(&body.token, &body.password, &client_info(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct ChangeBody {
    current_password: SecretString,
    new_password: SecretString,
}

pub async fn change_password(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<ChangeBody>,
) -> Result<HttpResponse, ApiError> {
    let issued = state
        .auth
        .change_password(
            &caller.0,
            &body.current_password,
            &body.new_password,
            client_info(&req),
        )
        .await?;
    Ok(tokens(StatusCode::OK, issued.into()))
}

pub async fn send_verification(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    state.auth.send_verification(&caller.0).await?;
    Ok(accepted())
}

#[derive(Deserialize)]
pub struct TokenBody {
    token: SecretString,
}

pub async fn verify_email(
    state: web::Data<AppState>,
    body: web::Json<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    state.auth.verify_email(&body.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct MagicLinkBody {
    email: String,
    #[serde(default)]
    redirect_to: Option<String>,
    #[serde(default)]
    captcha_token: Option<String>,
}

pub async fn request_magic_link(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<MagicLinkBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    state
        .auth
        .request_magic_link(
            &body.email,
            body.redirect_to,
            &client_info(&req),
            body.captcha_token.as_deref(),
        )
        .await?;
    Ok(accepted())
}

pub async fn verify_magic_link(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let signed = state
        .auth
        .verify_magic_link(&body.token, client_info(&req))
        .await?;
    super::mfa::sign_in_response(signed.outcome, signed.redirect_to)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpSendBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    captcha_token: Option<String>,
}

pub async fn send_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<OtpSendBody>,
) -> Result<HttpResponse, ApiError> {
    match (&body.email, &body.phone) {
        (Some(email), None) => {
            state
                .auth
                .send_email_code(email, &client_info(&req), body.captcha_token.as_deref())
                .await?
        }
        (None, Some(phone)) => {
            state
                .auth
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

#[derive(Deserialize)]
pub struct OtpVerifyBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    code: String,
}

pub async fn verify_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<OtpVerifyBody>,
) -> Result<HttpResponse, ApiError> {
    let outcome = match (&body.email, &body.phone) {
        (Some(email), None) => {
            state
                .auth
                .verify_email_code(email, &body.code, client_info(&req))
                .await?
        }
        (None, Some(phone)) => {
            state
                .auth
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
