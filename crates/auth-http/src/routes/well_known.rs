//! Discovery: the JWK Set and the OpenID-style configuration document.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::openapi::JwkSet;
use crate::state::AppState;

/// The public keys that verify access tokens (current and still-valid previous keys).
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "well-known",
    responses((status = 200, description = "JWK Set", body = JwkSet))
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(300),
        ]))
        .json(state.auth.tokens().jwks())
}

/// OpenID-style discovery document: issuer, `jwks_uri`, endpoints, algorithms.
#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "well-known",
    responses((status = 200, description = "Discovery document", body = Object))
)]
pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let base = &state.settings.server.public_url;
    let alg = &state.settings.tokens.algorithm;
    HttpResponse::Ok().insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(300)])).json(json!({
        "issuer": state.auth.tokens().issuer(),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{base}/api/v1/auth/revoke"),
        "introspection_endpoint": format!("{base}/api/v1/auth/introspect"),
        "userinfo_endpoint": format!("{base}/api/v1/me"),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "access_token_signing_alg_values_supported": [alg],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "claims_supported": ["iss", "aud", "sub", "sid", "iat", "exp", "jti", "email", "email_verified", "name", "roles", "amr", "aal"],
    }))
}
