//! Liveness and readiness probes.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::problem::ApiError;
use crate::state::AppState;

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.lifecycle.is_stopping() {
        return Err(ApiError::from(auth_core::AuthError::Unavailable(
            "the server is shutting down".into(),
        )));
    }
    state
        .health
        .ping()
        .await
        .map_err(|e| ApiError::from(auth_core::AuthError::Unavailable(e.to_string())))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"})))
}
