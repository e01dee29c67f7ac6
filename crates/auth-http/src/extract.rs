//! Extractors: parse and authenticate, nothing more.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use auth_core::model::ClientInfo;
use auth_core::service::Authenticated;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;
use crate::state::AppState;

const MAX_USER_AGENT_CHARS: usize = 512;

/// The `Bearer` credential of the `Authorization` header, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Where the request came from. Proxies are not trusted here: the socket peer is the client.
pub fn client_info(req: &HttpRequest) -> ClientInfo {
    ClientInfo {
        ip: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
    }
}

/// A caller with a valid access token whose session is live.
pub struct Caller(pub Authenticated);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::from(auth_core::AuthError::internal("application state missing"))
            })?;
            let token = token
                .ok_or_else(|| ApiError::unauthenticated("a bearer access token is required"))?;
            Ok(Caller(state.auth.authenticate(&token).await?))
        })
    }
}

/// Parse a JSON body into `T`; an empty body parses as `{}` when `empty_ok`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], empty_ok: bool) -> Result<T, ApiError> {
    let body: &[u8] = if empty_ok && body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
}

/// Whether the request declares a JSON body.
pub fn is_json(req: &HttpRequest) -> bool {
    content_type(req).is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"))
}

fn content_type(req: &HttpRequest) -> Option<String> {
    let ct = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Parse a body that may be JSON or `application/x-www-form-urlencoded` (RFC 7009/7662).
pub fn parse_json_or_form<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    match content_type(req).as_deref() {
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::invalid_request(format!("invalid form body: {e}"))),
        _ if is_json(req) => parse_json(body, false),
        _ => Err(ApiError::invalid_request(
            "the body must be application/json or application/x-www-form-urlencoded",
        )),
    }
}

/// Reject a body whose declared type is not JSON.
pub fn require_json(req: &HttpRequest, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() || is_json(req) {
        Ok(())
    } else {
        Err(ApiError::invalid_request(
            "the body must be application/json",
        ))
    }
}
