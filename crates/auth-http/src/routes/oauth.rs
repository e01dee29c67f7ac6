//! Social and OpenID Connect sign-in: native sign-in with a provider credential, the
//! browser redirect flow, linking and unlinking identities.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use auth_core::identity::{IdentityId, ProviderCredential};
use auth_core::social::SignInIntent;
use secrecy::SecretString;
use serde::Deserialize;

use crate::extract::{Caller, client_info};
use crate::problem::ApiError;
use crate::routes::auth::{no_store, tokens};
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialBody {
    #[serde(default)]
    id_token: Option<SecretString>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    access_token: Option<SecretString>,
    #[serde(default)]
    access_token_secret: Option<SecretString>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
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

async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: web::Path<String>,
    body: web::Json<CredentialBody>,
) -> Result<HttpResponse, ApiError> {
    let mut body = body.into_inner();
    let credential = body.credential()?;
    let issued = state
        .social
        .sign_in(
            &provider,
            &credential,
            body.intent.unwrap_or_default(),
            body.name.take(),
            client_info(&req),
        )
        .await?;
    let identities = state.social.identities_of(issued.user.id).await?;
    let response = TokenResponse::from(issued).with_identities(identities);
    Ok(tokens(StatusCode::OK, response))
}

async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    provider: web::Path<String>,
    body: web::Json<CredentialBody>,
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

pub async fn unlink(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: IdentityId = id.parse().map_err(|_| ApiError::not_found())?;
    state.social.unlink(&caller.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeQuery {
    redirect_to: String,
    code_challenge: String,
    code_challenge_method: String,
    #[serde(default)]
    intent: Option<SignInIntent>,
}

async fn authorize(
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
#[derive(Deserialize)]
struct CallbackParams {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

async fn callback_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    provider: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let params: CallbackParams = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::invalid_request(format!("invalid query: {e}")))?;
    callback(state, req, provider.into_inner(), params).await
}

async fn callback_post(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeBody {
    code: SecretString,
    code_verifier: SecretString,
}

async fn exchange(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ExchangeBody>,
) -> Result<HttpResponse, ApiError> {
    let issued = state
        .social
        .exchange(&body.code, &body.code_verifier, client_info(&req))
        .await?;
    let identities = state.social.identities_of(issued.user.id).await?;
    let response = TokenResponse::from(issued).with_identities(identities);
    Ok(tokens(StatusCode::OK, response))
}
