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
use utoipa::ToSchema;

use crate::extract::{
    Caller, JsonBody, bearer_token, client_info, parse_json, parse_json_or_form, require_json,
};
use crate::openapi::{Accepted, IntrospectionDoc, ProblemDoc, SignInResultDoc};
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

#[derive(Deserialize, ToSchema)]
pub struct SignupBody {
    email: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    #[serde(default)]
    name: Option<String>,
    /// Required when `captcha.on_signup` is set.
    #[serde(default)]
    captcha_token: Option<String>,
}

/// Create an account with an email and a password.
#[utoipa::path(
    post, path = "/api/v1/auth/signup", tag = "auth", request_body = SignupBody,
    responses(
        (status = 201, description = "Signed up and signed in", body = TokenResponse),
        (status = 202, description = "`{\"status\": \"verification_sent\"}`: the account waits for email confirmation (`auth.email_confirmation = required`)", body = Accepted),
        (status = 400, description = "`invalid_request`; `captcha_required`, `captcha_failed`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken` (only when confirmation is not required)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_email`, `weak_password`, `invalid_field`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn signup(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<SignupBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = SignupRequest {
        email: body.email,
        password: body.password,
        name: body.name,
        captcha_token: body.captcha_token,
    };
    Ok(
        match state
            .auth
            .mailbox()
            .signup(request, client_info(&req))
            .await?
        {
            SignupOutcome::SignedIn(issued) => {
                tokens(actix_web::http::StatusCode::CREATED, (*issued).into())
            }
            SignupOutcome::VerificationSent => HttpResponse::Accepted()
                .insert_header(no_store())
                .json(json!({"status": "verification_sent"})),
        },
    )
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    email: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// Required when `captcha.on_login` is set.
    #[serde(default)]
    captcha_token: Option<String>,
}

/// Sign in with an email and a password.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in, or `mfa_required` with an `mfa_token` for `POST /api/v1/auth/mfa/verify`", body = SignInResultDoc),
        (status = 400, description = "`invalid_request`; `captcha_required`, `captcha_failed`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`account_locked` (`Retry-After`), `email_not_verified`, `account_disabled`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_email`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let outcome = state
        .auth
        .sessions()
        .login(
            &body.email,
            &body.password,
            client_info(&req),
            body.captcha_token.as_deref(),
        )
        .await?;
    super::mfa::sign_in_response(outcome, None)
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct RefreshBody {
    #[schema(value_type = String)]
    refresh_token: SecretString,
}

/// Exchange a refresh token for a new token pair (the refresh token rotates).
///
/// The refresh token comes in the JSON body, or, with an empty body, as
/// `Authorization: Bearer <refresh_token>`.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshBody>, content_type = "application/json",
        description = "Optional when the refresh token is sent as `Authorization: Bearer`"),
    responses(
        (status = 200, description = "A new token pair in the same session", body = TokenResponse),
        (status = 401, description = "`invalid_refresh_token`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
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
    let issued = state
        .auth
        .sessions()
        .refresh(&token, &client_info(&req))
        .await?;
    Ok(tokens(actix_web::http::StatusCode::OK, issued.into()))
}

/// Which sessions to end: this one (default), the others, or all.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScopeParam {
    #[default]
    Session,
    Others,
    All,
}

#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct LogoutBody {
    #[serde(default)]
    scope: ScopeParam,
}

/// Sign out: end this session, the others, or all of them.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    request_body(content = Option<LogoutBody>, content_type = "application/json", description = "Optional; `scope` defaults to `session`"),
    security(("bearer" = [])),
    responses((status = 204, description = "Signed out"))
)]
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
    state.auth.sessions().logout(&caller.0, scope).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct RevokeBody {
    /// A refresh token (revokes its session) or an access token (revokes its session).
    #[schema(value_type = String)]
    token: SecretString,
    // RFC 7009: a hint only; the token's own shape decides.
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// RFC 7009 token revocation. Answers 200 whatever the token.
#[utoipa::path(
    post, path = "/api/v1/auth/revoke", tag = "auth",
    request_body(content(
        (RevokeBody = "application/x-www-form-urlencoded"),
        (RevokeBody = "application/json"),
    )),
    responses((status = 200, description = "`{}`, whether or not the token was valid", body = Object))
)]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: RevokeBody = parse_json_or_form(&req, &body)?;
    state.auth.sessions().revoke(&body.token).await?;
    Ok(HttpResponse::Ok().insert_header(no_store()).json(json!({})))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct IntrospectBody {
    #[schema(value_type = String)]
    token: SecretString,
    /// `client_secret_post`: the client id, when not sent with HTTP Basic.
    #[serde(default)]
    client_id: Option<String>,
    /// `client_secret_post`: the client secret, when not sent with HTTP Basic.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
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

/// RFC 7662 token introspection, for resource servers; the caller authenticates with
/// introspection client credentials (HTTP Basic or `client_id`/`client_secret` in the body).
#[utoipa::path(
    post, path = "/api/v1/auth/introspect", tag = "auth",
    request_body(content(
        (IntrospectBody = "application/x-www-form-urlencoded"),
        (IntrospectBody = "application/json"),
    )),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "The token's state", body = IntrospectionDoc),
        (status = 401, description = "`invalid_client` (`WWW-Authenticate: Basic`)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
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
    state
        .auth
        .sessions()
        .authenticate_introspection_client(&id, &secret)?;
    let answer = match state
        .auth
        .sessions()
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
