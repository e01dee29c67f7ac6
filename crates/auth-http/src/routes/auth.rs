//! Password sessions: sign-up, sign-in, refresh, sign-out, revocation, introspection.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::flows::SignupOutcome;
use auth_core::service::{Introspection, LogoutScope, SignupRequest};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::extract::{
    Caller, bearer_token, client_info, parse_json, parse_json_or_form, require_json,
};
use crate::problem::ApiError;
use crate::state::AppState;
use crate::views::TokenResponse;

pub(crate) fn no_store() -> CacheControl {
    CacheControl(vec![CacheDirective::NoStore])
}

pub(crate) fn tokens(status: actix_web::http::StatusCode, body: TokenResponse) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(no_store())
        .json(body)
}

#[derive(Deserialize)]
pub struct SignupBody {
    email: String,
    password: SecretString,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    captcha_token: Option<String>,
}

pub async fn signup(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<SignupBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = SignupRequest {
        email: body.email,
        password: body.password,
        name: body.name,
        captcha_token: body.captcha_token,
    };
    Ok(match state.auth.signup(request, client_info(&req)).await? {
        SignupOutcome::SignedIn(issued) => {
            tokens(actix_web::http::StatusCode::CREATED, (*issued).into())
        }
        SignupOutcome::VerificationSent => HttpResponse::Accepted()
            .insert_header(no_store())
            .json(json!({"status": "verification_sent"})),
    })
}

#[derive(Deserialize)]
pub struct LoginBody {
    email: String,
    password: SecretString,
    #[serde(default)]
    captcha_token: Option<String>,
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let outcome = state
        .auth
        .login(
            &body.email,
            &body.password,
            client_info(&req),
            body.captcha_token.as_deref(),
        )
        .await?;
    super::mfa::sign_in_response(outcome, None)
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: SecretString,
}

/// The refresh token comes in the JSON body or as `Authorization: Bearer`.
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let token = if body.iter().all(u8::is_ascii_whitespace) {
        let token = bearer_token(&req)
            .ok_or_else(|| ApiError::invalid_request("refresh_token is required"))?;
        SecretString::from(token)
    } else {
        require_json(&req, &body)?;
        parse_json::<RefreshBody>(&body, false)?.refresh_token
    };
    let issued = state.auth.refresh(&token, &client_info(&req)).await?;
    Ok(tokens(actix_web::http::StatusCode::OK, issued.into()))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum ScopeParam {
    #[default]
    Session,
    Others,
    All,
}

#[derive(Deserialize, Default)]
struct LogoutBody {
    #[serde(default)]
    scope: ScopeParam,
}

pub async fn logout(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req, &body)?;
    let body: LogoutBody = parse_json(&body, true)?;
    let scope = match body.scope {
        ScopeParam::Session => LogoutScope::Session,
        ScopeParam::Others => LogoutScope::Others,
        ScopeParam::All => LogoutScope::All,
    };
    state.auth.logout(&caller.0, scope).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct RevokeBody {
    token: SecretString,
    // RFC 7009: a hint only; the token's own shape decides.
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: RevokeBody = parse_json_or_form(&req, &body)?;
    state.auth.revoke(&body.token).await?;
    Ok(HttpResponse::Ok().insert_header(no_store()).json(json!({})))
}

#[derive(Deserialize)]
struct IntrospectBody {
    token: SecretString,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<SecretString>,
}

/// HTTP Basic client credentials (RFC 6749 section 2.3.1), form-urlencoded parts.
fn basic_credentials(req: &HttpRequest) -> Option<(String, SecretString)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()?
            .pop()
            .map(|(_, v)| v)
    };
    Some((unescape(id)?, SecretString::from(unescape(secret)?)))
}

pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: IntrospectBody = parse_json_or_form(&req, &body)?;
    let (id, secret) = match (basic_credentials(&req), body.client_id, body.client_secret) {
        (Some(creds), _, _) => creds,
        (None, Some(id), Some(secret)) => (id, secret),
        _ => return Err(auth_core::AuthError::InvalidClient.into()),
    };
    state.auth.authenticate_introspection_client(&id, &secret)?;
    let answer = match state
        .auth
        .introspect(&body.token, &client_info(&req))
        .await?
    {
        Introspection::Inactive => json!({"active": false}),
        Introspection::AccessToken(c) => json!({
            "active": true, "token_type": "access_token", "sub": c.sub, "sid": c.sid, "exp": c.exp,
            "iat": c.iat, "nbf": c.nbf, "iss": c.iss, "aud": c.aud, "jti": c.jti, "email": c.email,
            "email_verified": c.email_verified, "roles": c.roles, "amr": c.amr, "aal": c.aal,
        }),
        Introspection::RefreshToken { sub, sid, exp, iat } => json!({
            "active": true, "token_type": "refresh_token", "sub": sub.to_string(), "sid": sid.to_string(),
            "exp": exp.timestamp(), "iat": iat.timestamp(), "iss": state.auth.tokens().issuer(),
        }),
    };
    Ok(HttpResponse::Ok().insert_header(no_store()).json(answer))
}
