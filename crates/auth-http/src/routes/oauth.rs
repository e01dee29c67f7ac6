//! Social and OpenID Connect sign-in: native sign-in with a provider credential, the
//! browser redirect flow, linking and unlinking identities.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use auth_core::identity::{IdentityId, ProviderCredential};
use auth_core::mfa::SignInOutcome;
use auth_core::social::SignInIntent;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{Caller, JsonBody, client_info};
use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::routes::auth::{no_store, tokens};
use crate::routes::mfa::sign_in_response;
use crate::state::AppState;
use crate::views::{TokenResponse, UserView};

/// Routes under `/api/v1/auth`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/exchange", web::post().to(exchange))
        .route("/oauth/{provider}/token", web::post().to(token))
        .route("/oauth/{provider}/authorize", web::get().to(authorize))
        .route("/oauth/{provider}/callback", web::get().to(callback_get))
        .route("/oauth/{provider}/callback", web::post().to(callback_post))
        .route("/oauth/{provider}/link", web::post().to(link));
}

/// `{id_token, nonce?}` or `{access_token, access_token_secret?}`; optional `name` and
/// `intent` (`signin`, the default, or `signup`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialBody {
    /// An OpenID Connect ID token from the provider's SDK.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    id_token: Option<SecretString>,
    /// The nonce the ID token was asked with.
    #[serde(default)]
    nonce: Option<String>,
    /// An OAuth access token (providers without ID tokens).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    access_token: Option<SecretString>,
    /// OAuth 1.0a token secret (X/Twitter).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    access_token_secret: Option<SecretString>,
    #[serde(default)]
    name: Option<String>,
    /// `signin` (default) or `signup`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "signin")]
    intent: Option<SignInIntent>,
}

impl CredentialBody {
    fn credential(&mut self) -> Result<ProviderCredential, ApiError> {
        match (self.id_token.take(), self.access_token.take()) {
            (Some(id_token), None) => {
                if self.access_token_secret.is_some() {
                    return Err(ApiError::invalid_request(
                        "access_token_secret goes with access_token",
                    ));
                }
                Ok(ProviderCredential::IdToken {
                    id_token,
                    nonce: self.nonce.take().filter(|n| !n.is_empty()),
                })
            }
            (None, Some(access_token)) => {
                if self.nonce.is_some() {
                    return Err(ApiError::invalid_request("nonce goes with id_token"));
                }
                Ok(ProviderCredential::AccessToken {
                    access_token,
                    access_token_secret: self.access_token_secret.take(),
                })
            }
            _ => Err(ApiError::invalid_request(
                "exactly one of id_token and access_token is required",
            )),
        }
    }
}

/// Sign in (or up) with a provider credential from a native SDK.
#[utoipa::path(
    post, path = "/api/v1/auth/oauth/{provider}/token", tag = "social", request_body = CredentialBody, params(("provider" = String, Path, description = "A configured provider id (google, apple, facebook, twitter, github, or an OIDC issuer's id)")),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "`invalid_request`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_id_token`, `provider_rejected`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`signup_required`, `signup_disabled`, `account_disabled`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_provider`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`link_required`, `identity_exists`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`provider_email_missing`, `provider_email_unverified`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 502, description = "`provider_unavailable`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: web::Path<String>,
    body: JsonBody<CredentialBody>,
) -> Result<HttpResponse, ApiError> {
    let mut body = body.into_inner();
    let credential = body.credential()?;
    let outcome = state
        .social
        .sign_in(
            &provider,
            &credential,
            body.intent.unwrap_or_default(),
            body.name.take(),
            client_info(&req),
        )
        .await?;
    social_response(&state, outcome).await
}

/// Link a provider identity to the signed-in account.
#[utoipa::path(
    post, path = "/api/v1/auth/oauth/{provider}/link", tag = "social", request_body = CredentialBody, params(("provider" = String, Path, description = "A configured provider id (google, apple, facebook, twitter, github, or an OIDC issuer's id)")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The user with its identities", body = UserView),
        (status = 401, description = "`invalid_token`; `invalid_id_token`, `provider_rejected`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_provider`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`identity_exists`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 502, description = "`provider_unavailable`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    provider: web::Path<String>,
    body: JsonBody<CredentialBody>,
) -> Result<HttpResponse, ApiError> {
    let mut body = body.into_inner();
    if body.intent.is_some() || body.name.is_some() {
        return Err(ApiError::invalid_request(
            "linking takes only the provider credential",
        ));
    }
    let credential = body.credential()?;
    let user = state
        .social
        .link(&caller.0, &provider, &credential, client_info(&req))
        .await?;
    let identities = state.social.identities_of(user.id).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user).with_identities(identities)))
}

/// Unlink an external identity (refused when it is the last way to sign in).
#[utoipa::path(
    delete, path = "/api/v1/me/identities/{id}", tag = "me", params(("id" = String, Path, description = "The identity id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 404, description = "`not_found`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`last_sign_in_method`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn unlink(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: IdentityId = id.parse().map_err(|_| ApiError::not_found())?;
    state.social.unlink(&caller.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuthorizeQuery {
    /// Where to send the browser back (must be in `app.redirect_allow_list`).
    redirect_to: String,
    /// PKCE challenge of the app's `code_verifier`.
    code_challenge: String,
    /// `S256`.
    code_challenge_method: String,
    /// `signin` (default) or `signup`.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    intent: Option<SignInIntent>,
}

/// Start the browser sign-in: redirects to the provider.
#[utoipa::path(
    get, path = "/api/v1/auth/oauth/{provider}/authorize", tag = "social", params(("provider" = String, Path, description = "A configured provider id (google, apple, facebook, twitter, github, or an OIDC issuer's id)"), AuthorizeQuery),
    responses(
        (status = 302, description = "To the provider (`Location`)"),
        (status = 400, description = "`invalid_request` (also a `redirect_to` outside the allow-list, or a method other than S256)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_provider`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query: AuthorizeQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::invalid_request(format!("invalid query: {e}")))?;
    let url = state
        .social
        .authorize(
            &provider,
            &query.redirect_to,
            &query.code_challenge,
            &query.code_challenge_method,
            query.intent.unwrap_or_default(),
            &client_info(&req),
        )
        .await?;
    Ok(HttpResponse::Found()
        .insert_header(no_store())
        .insert_header((header::LOCATION, url))
        .finish())
}

/// What a provider sends back (query, or form for Apple's `form_post`).
#[derive(Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
struct CallbackParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// The provider's redirect back: redirects to `redirect_to` with a one-time `code` (or `error=<code>`).
#[utoipa::path(
    get, path = "/api/v1/auth/oauth/{provider}/callback", tag = "social", params(("provider" = String, Path, description = "A configured provider id (google, apple, facebook, twitter, github, or an OIDC issuer's id)"), CallbackParams),
    responses(
        (status = 302, description = "To `redirect_to` (`Location`)"),
        (status = 400, description = "`invalid_state`, `invalid_request` (when there is nowhere to redirect)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_provider`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn callback_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let params: CallbackParams = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::invalid_request(format!("invalid query: {e}")))?;
    callback(state, req, provider.into_inner(), params).await
}

/// The provider's `form_post` back (Apple): as the GET callback.
#[utoipa::path(
    post, path = "/api/v1/auth/oauth/{provider}/callback", tag = "social", request_body(content = CallbackParams, content_type = "application/x-www-form-urlencoded"), params(("provider" = String, Path, description = "A configured provider id (google, apple, facebook, twitter, github, or an OIDC issuer's id)")),
    responses(
        (status = 302, description = "To `redirect_to` (`Location`)"),
        (status = 400, description = "`invalid_state`, `invalid_request` (when there is nowhere to redirect)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_provider`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn callback_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let params: CallbackParams = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::invalid_request(format!("invalid form body: {e}")))?;
    callback(state, req, provider.into_inner(), params).await
}

async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: String,
    params: CallbackParams,
) -> Result<HttpResponse, ApiError> {
    let outcome = state
        .social
        .callback(
            &provider,
            params.state.as_deref(),
            params.code.as_deref(),
            params.error.as_deref(),
            client_info(&req),
        )
        .await;
    let location = match outcome {
        Ok(location) => location,
        Err(failure) => {
            let error = ApiError::from(failure.error);
            let Some(redirect_to) = failure.redirect_to else {
                return Ok(error.error_response());
            };
            let separator = if redirect_to.contains('?') { '&' } else { '?' };
            format!("{redirect_to}{separator}error={}", error.code())
        }
    };
    Ok(HttpResponse::Found()
        .insert_header(no_store())
        .insert_header((header::LOCATION, location))
        .finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeBody {
    /// The one-time `code` of the redirect to `redirect_to`.
    #[schema(value_type = String)]
    code: SecretString,
    /// The PKCE verifier of the `code_challenge` given to `authorize`.
    #[schema(value_type = String)]
    code_verifier: SecretString,
}

/// Exchange the one-time `code` of the browser flow (with its PKCE verifier) for tokens.
#[utoipa::path(
    post, path = "/api/v1/auth/oauth/exchange", tag = "social", request_body = ExchangeBody,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `invalid_state` (unknown, used or expired code, or a wrong verifier)", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn exchange(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<ExchangeBody>,
) -> Result<HttpResponse, ApiError> {
    let outcome = state
        .social
        .exchange(&body.code, &body.code_verifier, client_info(&req))
        .await?;
    social_response(&state, outcome).await
}

/// Tokens with the user's identities, or the second-factor challenge (a provider sign-in
/// is one factor, like a password).
async fn social_response(
    state: &AppState,
    outcome: SignInOutcome,
) -> Result<HttpResponse, ApiError> {
    match outcome {
        SignInOutcome::SignedIn(issued) => {
            let identities = state.social.identities_of(issued.user.id).await?;
            let response = TokenResponse::from(*issued).with_identities(identities);
            Ok(tokens(StatusCode::OK, response))
        }
        challenge @ SignInOutcome::MfaRequired(_) => sign_in_response(challenge, None),
    }
}
