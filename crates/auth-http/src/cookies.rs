//! Cookie mode for browser sessions (opt-in, `[cookies] enabled`).
//!
//! - Token responses under `/api/v1/auth/` also set `__Host-access` and `__Host-refresh`
//!   (HttpOnly; Secure; SameSite; Path=/) and `__Host-csrf` (readable by the page's
//!   script, for the double submit).
//! - A request without `Authorization` is authenticated by its cookie: the access cookie,
//!   or the refresh cookie on `POST /api/v1/auth/refresh`.
//! - A cookie-authenticated unsafe request (anything but GET, HEAD, OPTIONS) must come from
//!   an allowed origin (`Origin`, else `Referer`) AND echo the `__Host-csrf` cookie in an
//!   `X-CSRF-Token` header, else 403 `csrf_failed`.
//! - A successful logout clears the three cookies.
//!
//! Handlers know nothing of cookies: this layer turns them into the bearer header the
//! handlers already read, and reads the token responses they already write.

use actix_web::HttpMessage as _;
use actix_web::body::{BoxBody, MessageBody as _};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use auth_core::random::{OsRandom, random_bytes};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::LocalBoxFuture;

use crate::problem::ApiError;
use crate::settings::{SameSiteSetting, Settings};

/// Name of the access token cookie.
pub const ACCESS_COOKIE: &str = "__Host-access";
/// Name of the refresh token cookie.
pub const REFRESH_COOKIE: &str = "__Host-refresh";
/// Name of the CSRF cookie (not HttpOnly: the page echoes it in [`CSRF_HEADER`]).
pub const CSRF_COOKIE: &str = "__Host-csrf";
/// Header that must repeat the CSRF cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

const AUTH_PREFIX: &str = "/api/v1/auth/";
const REFRESH_PATH: &str = "/api/v1/auth/refresh";
const LOGOUT_PATH: &str = "/api/v1/auth/logout";
/// Routes under `/api/v1/auth/` that take no caller credential: a stale access cookie is
/// not attached to them (so they need no CSRF token).
const ANONYMOUS: &[&str] = &[
    "signup",
    "login",
    "password/forgot",
    "password/reset",
    "email/verify",
    "magic-link",
    "magic-link/verify",
    "otp/send",
    "otp/verify",
    "introspect",
    "revoke",
];
/// Largest token response read to set cookies.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// Cookie mode settings, resolved at start.
#[derive(Debug, Clone)]
pub struct CookieMode {
    enabled: bool,
    same_site: &'static str,
    refresh_max_age: u64,
    allowed_origins: Vec<String>,
}

impl CookieMode {
    /// From the settings: allowed origins are `cors.allowed_origins` plus the origins of
    /// `server.public_url` and `app.url`.
    pub fn new(settings: &Settings) -> Self {
        let allowed_origins = allowed_origins(settings);
        Self {
            enabled: settings.cookies.enabled,
            same_site: match settings.cookies.same_site {
                SameSiteSetting::Lax => "Lax",
                SameSiteSetting::Strict => "Strict",
            },
            refresh_max_age: settings.tokens.refresh_absolute_ttl_secs,
            allowed_origins,
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: u64, http_only: bool) -> String {
        format!(
            "{name}={value}; Max-Age={max_age}; Path=/; Secure;{} SameSite={}",
            if http_only { " HttpOnly;" } else { "" },
            self.same_site
        )
    }

    fn origin_allowed(&self, req: &ServiceRequest) -> bool {
        let headers = req.headers();
        let origin = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            Some(o) => auth_core::flows::origin_of(o),
            None => headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(auth_core::flows::origin_of),
        };
        origin.is_some_and(|o| {
            self.allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&o))
        })
    }
}

/// Origins a cookie-authenticated request may come from: `cors.allowed_origins` plus the
/// origins of `server.public_url` and `app.url`.
pub fn allowed_origins(settings: &Settings) -> Vec<String> {
    let mut allowed = settings.cors.allowed_origins.clone();
    for url in [
        settings.server.public_url.as_str(),
        settings.app.effective_url(&settings.server),
    ] {
        if let Some(origin) = auth_core::flows::origin_of(url) {
            allowed.push(origin);
        }
    }
    allowed
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value(req: &ServiceRequest, name: &str) -> Option<String> {
    cookie_in(req.headers(), name)
}

/// The value of cookie `name` in `Cookie` headers (empty values count as absent).
pub fn cookie_in(headers: &header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Constant-time comparison of two byte strings (length may leak).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn csrf_failed(detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        "Cross-site request refused",
        detail,
    )
}

/// The middleware body (used with `App::wrap_fn`).
pub fn layer<S>(
    mode: &CookieMode,
    mut req: ServiceRequest,
    srv: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    if !mode.enabled {
        let fut = srv.call(req);
        return Box::pin(fut);
    }
    let path = req.path().to_owned();
    if !req.headers().contains_key(header::AUTHORIZATION) {
        let anonymous = path
            .strip_prefix(AUTH_PREFIX)
            .is_some_and(|rest| ANONYMOUS.contains(&rest));
        let credential = if path == REFRESH_PATH {
            cookie_value(&req, REFRESH_COOKIE)
        } else if anonymous {
            None
        } else {
            cookie_value(&req, ACCESS_COOKIE)
        };
        if let Some(token) = credential {
            if !is_safe(req.method()) {
                let refusal = if !mode.origin_allowed(&req) {
                    Some("a cookie-authenticated request must come from an allowed Origin")
                } else {
                    let expected = cookie_value(&req, CSRF_COOKIE);
                    let given = req
                        .headers()
                        .get(CSRF_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    match (expected, given) {
                        (Some(e), Some(g)) if constant_time_eq(e.as_bytes(), g.as_bytes()) => None,
                        _ => Some(
                            "a cookie-authenticated request must repeat the __Host-csrf cookie in X-CSRF-Token",
                        ),
                    }
                };
                if let Some(detail) = refusal {
                    let res = req.error_response(csrf_failed(detail));
                    return Box::pin(async move { Ok(res) });
                }
            }
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
                req.headers_mut().insert(header::AUTHORIZATION, value);
                req.extensions_mut().insert(CookieAuthenticated);
            }
        }
    }
    let fut = srv.call(req);
    let mode = mode.clone();
    Box::pin(async move {
        let mut res = fut.await?;
        if !res.status().is_success() || !path.starts_with(AUTH_PREFIX) {
            return Ok(res);
        }
        if path == LOGOUT_PATH {
            for name in [ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE] {
                let clear = mode.cookie(name, "", 0, name != CSRF_COOKIE);
                if let Ok(v) = HeaderValue::from_str(&clear) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            return Ok(res);
        }
        let is_json = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !is_json {
            return Ok(res);
        }
        let (req, response) = res.into_parts();
        let (head, body) = response.into_parts();
        let bytes = match actix_web::body::to_bytes_limited(body, MAX_TOKEN_RESPONSE).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return Err(actix_web::error::ErrorInternalServerError(e.to_string())),
            Err(_) => {
                return Err(actix_web::error::ErrorInternalServerError(
                    "token response too large",
                ));
            }
        };
        let mut response = head.set_body(bytes.clone().boxed());
        let json = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default();
        if let (Some(access), Some(refresh)) = (
            json["access_token"].as_str(),
            json["refresh_token"].as_str(),
        ) {
            let access_age = json["expires_in"].as_u64().unwrap_or(300);
            let csrf = URL_SAFE_NO_PAD.encode(random_bytes::<32>(&OsRandom));
            for cookie in [
                mode.cookie(ACCESS_COOKIE, access, access_age, true),
                mode.cookie(REFRESH_COOKIE, refresh, mode.refresh_max_age, true),
                mode.cookie(CSRF_COOKIE, &csrf, mode.refresh_max_age, false),
            ] {
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, v);
                }
            }
        }
        Ok(ServiceResponse::new(req, response))
    })
}

/// Marks a request authenticated by a cookie rather than an `Authorization` header.
#[derive(Debug, Clone, Copy)]
pub struct CookieAuthenticated;
