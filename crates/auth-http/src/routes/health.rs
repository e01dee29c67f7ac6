//! Liveness and readiness probes.

use actix_web::{HttpResponse, web};
use utoipa::ToSchema;

use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::state::AppState;

/// A probe's answer.
#[derive(serde::Serialize, ToSchema)]
pub struct Status {
    /// `ok`.
    status: String,
    /// `ok` when the database answers (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(
    get, path = "/health/live", tag = "health",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Status))
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Status {
        status: "ok".into(),
        database: None,
    })
}

/// Readiness: 200 when the database answers, else 503.
#[utoipa::path(
    get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "`{\"status\": \"ok\", \"database\": \"ok\"}`", body = Status),
        (status = 503, description = "`unavailable`: the database does not answer (`Retry-After`)", body = ProblemDoc, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
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
    Ok(HttpResponse::Ok().json(Status {
        status: "ok".into(),
        database: Some("ok".into()),
    }))
}
