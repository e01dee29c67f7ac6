//! Cross-site request defences of the profile, one layer every resource of the profile is
//! wrapped in (`csrf_resource!`), so a new route cannot forget them:
//!
//! - A body must be JSON (`Content-Type: application/json`): a cross-site form or a
//!   `text/plain` fetch cannot send one without a CORS preflight (this stops login CSRF).
//! - A request that changes state (any unsafe method, and the seed's `GET /token/refresh`
//!   and `GET /token/revoke`) from a foreign `Origin` (else `Referer`), or that a browser
//!   marks `Sec-Fetch-Site: cross-site`, is refused.
//! - A cookie-authenticated unsafe request (no `Authorization`, the profile's access or
//!   refresh cookie) must repeat the readable `csrf_token` cookie in `X-CSRF-Token`
//!   (double submit, compared in constant time), as the canonical cookie mode asks.
//!
//! The provider callback (`/oauth/:provider/callback`) is exempt: see [`check`].

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;

use crate::cookies::{constant_time_eq, cookie_in as cookie};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;

use super::error;

/// Name of the readable cookie a page's script repeats in [`CSRF_HEADER`].
pub(super) const CSRF_COOKIE: &str = "csrf_token";
/// The header carrying the double-submitted value.
const CSRF_HEADER: &str = "x-csrf-token";

/// What the layer needs to know of the profile.
#[derive(Clone)]
pub(super) struct Guard {
    origins: Arc<Vec<String>>,
    cookies: [String; 2],
}

impl Guard {
    pub(super) fn new(origins: Vec<String>, cookie: &str, refresh_cookie: &str) -> Self {
        Self {
            origins: Arc::new(origins),
            cookies: [cookie.to_owned(), refresh_cookie.to_owned()],
        }
    }
}

/// A resource of the profile at `route`, with its state and this layer:
/// `csrf_resource!(data, "/login")`.
macro_rules! csrf_resource {
    ($data:expr, $route:expr) => {{
        let guard = $data.guard.clone();
        actix_web::web::resource($crate::compat::path(&$data.prefix, $route))
            .app_data($data.clone())
            .wrap(actix_web::middleware::from_fn(move |req, next| {
                $crate::compat::service_authentication::csrf::run(guard.clone(), req, next)
            }))
    }};
}

/// The layer: refuse what [`check`] refuses, else go on.
pub(super) async fn run<B: MessageBody>(
    guard: Guard,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    match check(&guard, &req) {
        Some(refusal) => Err(refusal),
        None => next.call(req).await,
    }
}

fn check(guard: &Guard, req: &ServiceRequest) -> Option<actix_web::Error> {
    let path = req.path();
    // The one exception: a provider's callback (Apple's `form_post` is a cross-site form
    // POST by design). It is defended by its single-use `state`, bound to the flow cookie
    // set when the browser left, and opens no session the browser did not start.
    if path.contains("/oauth/") && path.ends_with("/callback") {
        return None;
    }
    let headers = req.headers();
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if unsafe_method && has_body {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Some(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "The body must be application/json",
            ));
        }
    }
    let changes_state =
        unsafe_method || path.ends_with("/token/refresh") || path.ends_with("/token/revoke");
    if !changes_state {
        return None;
    }
    let claimed = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    if let Some(claimed) = claimed {
        let allowed = auth_core::flows::origin_of(claimed)
            .is_some_and(|o| guard.origins.iter().any(|a| a.eq_ignore_ascii_case(&o)));
        if !allowed {
            return Some(error(
                StatusCode::FORBIDDEN,
                "Cross-site request refused: the Origin is not allowed",
            ));
        }
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    let cookie_authenticated = !headers.contains_key(header::AUTHORIZATION)
        && guard.cookies.iter().any(|c| cookie(headers, c).is_some());
    if cross_site && cookie_authenticated {
        return Some(error(
            StatusCode::FORBIDDEN,
            "Cross-site request refused: sent from another site",
        ));
    }
    if unsafe_method && cookie_authenticated {
        let expected = cookie(headers, CSRF_COOKIE);
        let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let ok = matches!((&expected, given), (Some(e), Some(g)) if constant_time_eq(e.as_bytes(), g.as_bytes()));
        if !ok {
            return Some(error(
                StatusCode::FORBIDDEN,
                "Cross-site request refused: repeat the csrf_token cookie in X-CSRF-Token",
            ));
        }
    }
    None
}
