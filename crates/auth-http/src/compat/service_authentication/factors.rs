//! service-authentication: second factors, `/mfa/*` (the SMS factor and the second step of
//! a sign-in), `/otp/*` (one-time codes by mail or SMS) and `/authenticator/*` (TOTP).
//!
//! Every route maps onto the canonical MFA use cases of `auth_core` (`enroll_totp`,
//! `activate_totp`, `enroll_sms`, `activate_sms`, `verify_mfa`, `send_mfa_sms`,
//! `remove_mfa_factor`, `send_email_code`, `verify_email_code`, `send_sms_sign_in_code`,
//! `verify_sms_sign_in`); no rule is decided here.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::AuthError;
use auth_core::mfa::{FactorKind, RecoveryCodes, SecondFactor, SignInOutcome};
use auth_core::service::Authenticated;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Reply, ServiceAuth, body, caller, error, option, service_error, sign_in_reply, text};
use crate::compat::own_format;
use crate::extract::{bearer_token, client_info};
use crate::routes::auth::no_store;

pub(super) fn configure(cfg: &mut web::ServiceConfig, data: &web::Data<ServiceAuth>) {
    let at = |route: &str| csrf_resource!(data, route);
    cfg.service(at("/authenticator/setup").route(web::post().to(authenticator_setup)))
        .service(at("/authenticator/verify").route(web::post().to(authenticator_verify)))
        .service(at("/mfa/setup").route(web::post().to(mfa_setup)))
        .service(at("/mfa/verify").route(web::post().to(mfa_verify)))
        .service(at("/mfa/remove").route(web::post().to(mfa_remove)))
        .service(at("/otp/send").route(web::post().to(otp_send)))
        .service(at("/otp/verify").route(web::post().to(otp_verify)))
        .service(at("/otp/remove").route(web::post().to(otp_remove)));
}

/// The profile's `{"error": message}` for the MFA errors; the others as the rest of the
/// profile answers them (a rate limit stays problem+json).
fn factor_error(e: AuthError) -> actix_web::Error {
    match e {
        AuthError::InvalidCode => error(StatusCode::BAD_REQUEST, "Invalid or expired code"),
        AuthError::InvalidMfaToken => {
            error(StatusCode::UNAUTHORIZED, "Invalid or expired mfa_token")
        }
        AuthError::MfaAlreadyEnrolled => {
            error(StatusCode::CONFLICT, "Second factor already enrolled")
        }
        AuthError::MfaNotEnrolled => error(StatusCode::CONFLICT, "No second factor enrolled"),
        AuthError::NotFound => error(StatusCode::NOT_FOUND, "No such factor or enrolment"),
        AuthError::NotEnabled(what) => {
            error(StatusCode::BAD_REQUEST, &format!("{what} not enabled"))
        }
        AuthError::InvalidRequest(message) => error(StatusCode::BAD_REQUEST, &message),
        other => service_error(other),
    }
}

fn no_store_json(status: StatusCode, value: &Value) -> HttpResponse {
    own_format(
        HttpResponse::build(status)
            .insert_header(no_store())
            .json(value),
    )
}

fn recovery_codes_reply(message: &str, codes: &RecoveryCodes) -> HttpResponse {
    let codes: Vec<&str> = codes.0.iter().map(|c| c.expose_secret()).collect();
    no_store_json(
        StatusCode::OK,
        &json!({"message": message, "recovery_codes": codes}),
    )
}

/// `factor_id` of the body, else the caller's pending enrolment of `kind`.
async fn pending(
    state: &ServiceAuth,
    caller: &Authenticated,
    map: &Map<String, Value>,
    kind: FactorKind,
) -> std::result::Result<Uuid, actix_web::Error> {
    if let Some(id) = text(map, "factor_id") {
        return id
            .parse()
            .map_err(|_| error(StatusCode::BAD_REQUEST, "factor_id is not a valid id"));
    }
    state
        .auth
        .mfa()
        .pending_factor(caller, kind)
        .await
        .map_err(factor_error)?
        .ok_or_else(|| factor_error(AuthError::NotFound))
}

fn second_factor(
    map: &Map<String, Value>,
    field: &str,
    default: SecondFactor,
) -> std::result::Result<SecondFactor, actix_web::Error> {
    match text(map, field) {
        None => Ok(default),
        Some(name) => SecondFactor::parse(&name).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("{field} must be totp, sms or recovery_code"),
            )
        }),
    }
}

/// `POST /authenticator/setup` (signed in; optional `{label}`): a pending TOTP factor, its
/// secret, `otpauth://` URL and QR code, shown once.
async fn authenticator_setup(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Reply {
    let caller = caller(&state, &req).await?;
    let map = body(&bytes, &[])?;
    let enrollment = state
        .auth
        .mfa()
        .enroll_totp(&caller, text(&map, "label"))
        .await
        .map_err(factor_error)?;
    let url = enrollment.otpauth_uri.expose_secret();
    let qr_code = crate::routes::mfa::qr_data_uri(url)?;
    Ok(no_store_json(
        StatusCode::OK,
        &json!({
            "factor_id": enrollment.factor_id.to_string(),
            "secret": enrollment.secret.expose_secret(),
            "otpauth_url": url,
            "qr_code": qr_code,
            "expires_at": enrollment.expires_at.timestamp(),
        }),
    ))
}

/// `POST /authenticator/verify` (signed in; `{code, factor_id?}`): the first code of the
/// app activates it; the answer holds the recovery codes, once.
async fn authenticator_verify(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Reply {
    let caller = caller(&state, &req).await?;
    let map = body(&bytes, &["code"])?;
    let factor_id = pending(&state, &caller, &map, FactorKind::Totp).await?;
    let codes = state
        .auth
        .mfa()
        .activate_totp(
            &caller,
            factor_id,
            &text(&map, "code").unwrap_or_default(),
            &client_info(&req),
        )
        .await
        .map_err(factor_error)?;
    Ok(recovery_codes_reply("Authenticator app enabled", &codes))
}

/// `POST /mfa/setup` (signed in; `{phone}`): a pending SMS factor; a code goes to the
/// number.
async fn mfa_setup(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let caller = caller(&state, &req).await?;
    let map = body(&bytes, &["phone"])?;
    let enrollment = state
        .auth
        .mfa()
        .enroll_sms(
            &caller,
            &text(&map, "phone").unwrap_or_default(),
            &client_info(&req),
        )
        .await
        .map_err(factor_error)?;
    Ok(no_store_json(
        StatusCode::ACCEPTED,
        &json!({
            "message": "A code was sent to the phone number",
            "factor_id": enrollment.factor_id.to_string(),
            "phone": enrollment.phone,
        }),
    ))
}

/// The second step of a sign-in: `{mfa_token, code, factor?}`; answers like `/login`.
async fn finish_sign_in(
    state: &ServiceAuth,
    req: &HttpRequest,
    map: &Map<String, Value>,
    default: SecondFactor,
) -> Reply {
    let factor = second_factor(map, "factor", default)?;
    let code =
        text(map, "code").ok_or_else(|| error(StatusCode::BAD_REQUEST, "code is required"))?;
    let mfa_token = SecretString::from(text(map, "mfa_token").unwrap_or_default());
    let issued = state
        .auth
        .mfa()
        .verify_mfa(&mfa_token, factor, &code, client_info(req))
        .await
        .map_err(factor_error)?;
    Ok(sign_in_reply(
        state,
        SignInOutcome::SignedIn(Box::new(issued)),
        option(map, "setCookie", true),
    ))
}

/// `POST /mfa/verify`: with `{mfa_token, code, factor?}` (no JWT needed) the second step of
/// a sign-in (`factor` defaults to `totp`); signed in with `{code, factor_id?}`, the
/// activation of the pending SMS factor (answers the recovery codes once).
async fn mfa_verify(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["code"])?;
    if text(&map, "mfa_token").is_some() {
        return finish_sign_in(&state, &req, &map, SecondFactor::Totp).await;
    }
    let caller = caller(&state, &req).await?;
    let factor_id = pending(&state, &caller, &map, FactorKind::Sms).await?;
    let codes = state
        .auth
        .mfa()
        .activate_sms(
            &caller,
            factor_id,
            &text(&map, "code").unwrap_or_default(),
            &client_info(&req),
        )
        .await
        .map_err(factor_error)?;
    Ok(recovery_codes_reply("SMS factor enabled", &codes))
}

/// Remove the caller's active factor of `kind`, proven by a current code (`code`, of the
/// kind `code_factor`, by default the factor removed).
async fn remove(
    state: &ServiceAuth,
    req: &HttpRequest,
    map: &Map<String, Value>,
    kind: FactorKind,
) -> Reply {
    let caller = caller(state, req).await?;
    let code =
        text(map, "code").ok_or_else(|| error(StatusCode::BAD_REQUEST, "code is required"))?;
    let default = match kind {
        FactorKind::Totp => SecondFactor::Totp,
        FactorKind::Sms => SecondFactor::Sms,
    };
    let proof = second_factor(map, "code_factor", default)?;
    let status = state
        .auth
        .mfa()
        .mfa_status(&caller)
        .await
        .map_err(factor_error)?;
    let factor = status
        .factors
        .iter()
        .find(|f| f.kind == kind)
        .ok_or_else(|| factor_error(AuthError::NotFound))?;
    state
        .auth
        .mfa()
        .remove_mfa_factor(&caller, factor.id, Some((proof, &code)), &client_info(req))
        .await
        .map_err(factor_error)?;
    let message = match kind {
        FactorKind::Totp => "Authenticator app removed",
        FactorKind::Sms => "SMS factor removed",
    };
    Ok(no_store_json(StatusCode::OK, &json!({"message": message})))
}

/// `POST /mfa/remove` (signed in; `{factor?: "sms" | "totp", code, code_factor?}`).
async fn mfa_remove(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &[])?;
    let kind = match text(&map, "factor") {
        None => FactorKind::Sms,
        Some(name) => FactorKind::parse(&name)
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, "factor must be sms or totp"))?,
    };
    remove(&state, &req, &map, kind).await
}

/// `POST /otp/remove` (signed in; `{code, code_factor?}`): `/mfa/remove` with
/// `factor: "sms"`; the number no longer receives codes.
async fn otp_remove(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &[])?;
    remove(&state, &req, &map, FactorKind::Sms).await
}

/// `POST /otp/send`: `{email}` or `{phone}`, a sign-in code (the same answer for every
/// address and number); `{mfa_token}`, the SMS code of a pending sign-in; signed in with
/// neither, an SMS code to the caller's own factor (to prove it, e.g. for `/otp/remove`).
async fn otp_send(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &[])?;
    let client = client_info(&req);
    let sent = match (
        text(&map, "email"),
        text(&map, "phone"),
        text(&map, "mfa_token"),
    ) {
        (Some(email), None, None) => {
            state
                .auth
                .mailbox()
                .send_email_code(&email, &client, None)
                .await
        }
        (None, Some(phone), None) => {
            state
                .auth
                .mfa()
                .send_sms_sign_in_code(&phone, &client, None)
                .await
        }
        (None, None, Some(token)) => {
            state
                .auth
                .mfa()
                .send_mfa_sms(Some(&SecretString::from(token)), None, &client)
                .await
        }
        (None, None, None) if bearer_token(&req).is_some() || has_jwt_cookie(&state, &req) => {
            let caller = caller(&state, &req).await?;
            state
                .auth
                .mfa()
                .send_mfa_sms(None, Some(&caller), &client)
                .await
        }
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Give one of email, phone or mfa_token",
            ));
        }
    };
    sent.map_err(factor_error)?;
    Ok(no_store_json(
        StatusCode::ACCEPTED,
        &json!({"message": "If the address or number can receive one, a code is on its way"}),
    ))
}

fn has_jwt_cookie(state: &ServiceAuth, req: &HttpRequest) -> bool {
    super::cookie(req, &state.cookie).is_some()
}

/// `POST /otp/verify`: `{email | phone, code}` signs in (a second factor still applies, as
/// for `/login`); `{mfa_token, code, factor?}` is `/mfa/verify` with `factor` defaulting
/// to `sms`.
async fn otp_verify(state: web::Data<ServiceAuth>, req: HttpRequest, bytes: web::Bytes) -> Reply {
    let map = body(&bytes, &["code"])?;
    let code = text(&map, "code").unwrap_or_default();
    let client = client_info(&req);
    let outcome = match (
        text(&map, "email"),
        text(&map, "phone"),
        text(&map, "mfa_token"),
    ) {
        (None, None, Some(_)) => {
            return finish_sign_in(&state, &req, &map, SecondFactor::Sms).await;
        }
        (Some(email), None, None) => {
            state
                .auth
                .mailbox()
                .verify_email_code(&email, &code, client)
                .await
        }
        (None, Some(phone), None) => {
            state
                .auth
                .mfa()
                .verify_sms_sign_in(&phone, &code, client)
                .await
        }
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Give one of email, phone or mfa_token",
            ));
        }
    }
    .map_err(factor_error)?;
    Ok(sign_in_reply(
        &state,
        outcome,
        option(&map, "setCookie", true),
    ))
}
