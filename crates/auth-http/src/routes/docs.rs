//! The API's self-description: the OpenAPI document at `/api/v1/openapi.json` and an
//! interactive reference page at `/docs` (Redoc, embedded in the binary: no CDN).

use std::collections::HashMap;
use std::sync::LazyLock;

use actix_web::http::header::{self, CacheControl, CacheDirective, ContentType, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use utoipa::OpenApi;

use crate::problem::ApiError;

use super::{account, admin, auth, health, me, mfa, oauth, passkeys, webhooks, well_known};

/// Every route of the API. `tests/api/openapi.rs` checks this list against the live route
/// table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-http",
        description = "A self-hostable authentication server: password sessions, account recovery, passwordless sign-in, multi-factor authentication and passkeys, social and OpenID Connect sign-in, administration, webhooks, token verification for resource servers. Errors are RFC 9457 problem+json documents with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        auth::signup,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::revoke,
        auth::introspect,
        account::forgot_password,
        account::reset_password,
        account::change_password,
        account::send_verification,
        account::verify_email,
        account::request_magic_link,
        account::verify_magic_link,
        account::send_code,
        account::verify_code,
        me::get,
        me::update,
        me::sessions,
        me::revoke_session,
        mfa::factors,
        mfa::remove_factor,
        mfa::enroll_totp,
        mfa::activate_totp,
        mfa::regenerate_recovery_codes,
        mfa::verify,
        mfa::enroll_sms,
        mfa::activate_sms,
        mfa::send_sms,
        passkeys::registration_start,
        passkeys::registration_finish,
        passkeys::login_start,
        passkeys::login_finish,
        passkeys::list,
        passkeys::delete,
        admin::my_audit_log,
        oauth::unlink,
        oauth::token,
        oauth::authorize,
        oauth::callback_get,
        oauth::callback_post,
        oauth::exchange,
        oauth::link,
        admin::list_users,
        admin::create_user,
        admin::get_user,
        admin::update_user,
        admin::delete_user,
        admin::disable_user,
        admin::enable_user,
        admin::lock_user,
        admin::unlock_user,
        admin::user_sessions,
        admin::revoke_user_sessions,
        admin::revoke_user_session,
        admin::assign_role,
        admin::remove_role,
        admin::list_roles,
        admin::create_role,
        admin::update_role,
        admin::delete_role,
        admin::audit_log,
        webhooks::list,
        webhooks::create,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::rotate_secret,
        webhooks::deliveries,
        well_known::jwks,
        well_known::openid_configuration,
        health::live,
        health::ready,
        crate::metrics::scrape,
        openapi_json,
        page,
        asset,
    ),
    tags(
        (name = "auth", description = "Password sessions: sign-up, sign-in, refresh, sign-out, revocation, introspection"),
        (name = "account", description = "Through the mailbox: verification, password reset and change, magic links, one-time codes"),
        (name = "me", description = "The signed-in user: profile, sessions, linked identities, own audit log"),
        (name = "mfa", description = "Multi-factor authentication: TOTP, SMS, recovery codes, the second step of a sign-in, step-up"),
        (name = "passkeys", description = "Passkeys (WebAuthn): registration and sign-in"),
        (name = "social", description = "Social and OpenID Connect sign-in: native provider credentials, the browser redirect flow with PKCE, linking"),
        (name = "admin", description = "Administration (capability-checked): users, their sessions and roles, roles, the audit log"),
        (name = "webhooks", description = "Webhook endpoints (capability `webhooks:manage`): signed deliveries of security events"),
        (name = "well-known", description = "Discovery: JWK Set and configuration, for resource servers"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "docs", description = "This document and its reference page"),
    )
)]
pub struct ApiDoc;

const PAGE: &[u8] = include_bytes!("../../assets/docs.html");
const REDOC: &[u8] = include_bytes!("../../assets/redoc/redoc.standalone.js");

fn cached(max_age: u32) -> CacheControl {
    CacheControl(vec![
        CacheDirective::Public,
        CacheDirective::MaxAge(max_age),
    ])
}

/// The OpenAPI 3.1 document of every route.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "docs",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header(cached(300))
        .body(crate::openapi::document_json())
}

/// The interactive API reference (HTML).
#[utoipa::path(
    get, path = "/docs", tag = "docs",
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String))
)]
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(cached(300))
        .body(PAGE)
}

/// The page's script (Redoc, vendored under `crates/auth-http/assets/redoc`).
#[utoipa::path(
    get, path = "/docs/assets/redoc.standalone.js", tag = "docs",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String))
)]
pub async fn asset() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(cached(86_400))
        .body(REDOC)
}

/// Register `/api/v1/openapi.json`, `/docs` and the page's asset. Registered before the
/// `/api/v1` scope, which would otherwise answer 404 for the document's path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/openapi.json", web::get().to(openapi_json))
        .route("/docs", web::get().to(page))
        .route("/docs/assets/redoc.standalone.js", web::get().to(asset));
}

/// The methods of each documented path (the document covers every route: a test checks it).
static METHODS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    crate::openapi::build()
        .paths
        .paths
        .into_iter()
        .map(|(path, item)| {
            let methods: Vec<&str> = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ]
            .into_iter()
            .filter_map(|(m, present)| present.then_some(m))
            .collect();
            (path, methods.join(", "))
        })
        .collect()
});

/// What answers when no route matched: 405 with `Allow` when the path exists under other
/// methods, else 404.
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    let map = req.resource_map();
    let allow = map
        .has_resource(req.path())
        .then(|| map.match_pattern(req.path()))
        .flatten()
        .and_then(|pattern| METHODS.get(&pattern))
        .and_then(|methods| HeaderValue::from_str(methods).ok());
    match allow {
        Some(allow) => {
            let mut res = ApiError::method_not_allowed().error_response();
            res.headers_mut().insert(header::ALLOW, allow);
            res
        }
        None => ApiError::not_found().error_response(),
    }
}
