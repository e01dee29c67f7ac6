//! Webhook endpoints under `/api/v1/admin/webhooks` (capability `webhooks:manage`).

use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::webhooks::{DeliveryAttempt, EndpointInput, EndpointWithSecret, WebhookEndpoint};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::authorize::{Admin, WebhooksManage};
use crate::extract::JsonBody;
use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::state::AppState;

/// A webhook endpoint.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpoint)]
struct EndpointView {
    id: String,
    url: String,
    description: Option<String>,
    event_types: Vec<String>,
    enabled: bool,
    failing_since: Option<DateTime<Utc>>,
    disabled_reason: Option<String>,
    /// Until when the previous secret still signs, during a rotation.
    previous_secret_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Only in the answers of creation and rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl From<WebhookEndpoint> for EndpointView {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            enabled: e.enabled,
            failing_since: e.failing_since,
            disabled_reason: e.disabled_reason,
            previous_secret_expires_at: e.previous_secret_expires_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
            secret: None,
        }
    }
}

impl From<EndpointWithSecret> for EndpointView {
    fn from(e: EndpointWithSecret) -> Self {
        let mut view = Self::from(e.endpoint);
        view.secret = Some(e.secret.expose_secret().to_owned());
        view
    }
}

/// One delivery attempt to an endpoint.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDeliveryAttempt)]
struct AttemptView {
    id: String,
    message_id: String,
    event_type: String,
    attempt: i32,
    attempted_at: DateTime<Utc>,
    status_code: Option<i32>,
    error: Option<String>,
    succeeded: bool,
}

impl From<DeliveryAttempt> for AttemptView {
    fn from(a: DeliveryAttempt) -> Self {
        Self {
            id: a.id.to_string(),
            message_id: a.message_id.to_string(),
            event_type: a.event_type,
            attempt: a.attempt,
            attempted_at: a.attempted_at,
            status_code: a.status_code,
            error: a.error,
            succeeded: a.succeeded,
        }
    }
}

fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found())
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Creation needs `url` and `event_types`; an update changes the fields given.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// An `https` URL (`http` to loopback only when allowed by configuration).
    url: Option<String>,
    /// Event types to deliver (`*` for all).
    event_types: Option<Vec<String>>,
    /// `null` clears.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    enabled: Option<bool>,
}

impl From<EndpointBody> for EndpointInput {
    fn from(b: EndpointBody) -> Self {
        Self {
            url: b.url,
            event_types: b.event_types,
            description: b.description,
            enabled: b.enabled,
        }
    }
}

/// List webhook endpoints (capability `webhooks:manage`).
#[utoipa::path(
    get, path = "/api/v1/admin/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses(
        (status = 200, description = "Endpoints", body = Vec<EndpointView>),
        (status = 403, description = "`forbidden`: the caller's roles do not grant `webhooks:manage`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<EndpointView> = state
        .auth
        .webhooks()
        .list_webhooks(&admin.operator)
        .await?
        .into_iter()
        .map(EndpointView::from)
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// Create a webhook endpoint; the answer carries its signing `secret`, shown only here and on rotation.
#[utoipa::path(
    post, path = "/api/v1/admin/webhooks", tag = "webhooks", request_body = EndpointBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created, with `secret`", body = EndpointView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant `webhooks:manage`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_field`: a bad URL or event type", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    body: JsonBody<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let created = state
        .auth
        .webhooks()
        .create_webhook(&admin.operator, body.into_inner().into())
        .await?;
    Ok(HttpResponse::Created().json(EndpointView::from(created)))
}

/// One webhook endpoint.
#[utoipa::path(
    get, path = "/api/v1/admin/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "The endpoint id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant `webhooks:manage`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such endpoint", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .auth
        .webhooks()
        .get_webhook(&admin.operator, endpoint_id(&id)?)
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(e)))
}

/// Change a webhook endpoint (re-enabling clears its failure state).
#[utoipa::path(
    patch, path = "/api/v1/admin/webhooks/{id}", tag = "webhooks", request_body = EndpointBody, params(("id" = String, Path, description = "The endpoint id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant `webhooks:manage`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such endpoint", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_field`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    id: web::Path<String>,
    body: JsonBody<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .auth
        .webhooks()
        .update_webhook(&admin.operator, endpoint_id(&id)?, body.into_inner().into())
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(e)))
}

/// Delete a webhook endpoint.
#[utoipa::path(
    delete, path = "/api/v1/admin/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "The endpoint id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: the caller's roles do not grant `webhooks:manage`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such endpoint", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .webhooks()
        .delete_webhook(&admin.operator, endpoint_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate the signing secret; the previous one keeps signing for a while.
#[utoipa::path(
    post, path = "/api/v1/admin/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path, description = "The endpoint id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoint with its new `secret`", body = EndpointView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant `webhooks:manage`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such endpoint", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .auth
        .webhooks()
        .rotate_webhook_secret(&admin.operator, endpoint_id(&id)?)
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(e)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    /// How many attempts, newest first.
    limit: Option<usize>,
}

/// Recent delivery attempts to an endpoint.
#[utoipa::path(
    get, path = "/api/v1/admin/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path, description = "The endpoint id"), DeliveriesQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Attempts, newest first", body = Vec<AttemptView>),
        (status = 400, description = "`invalid_request`: a bad query parameter", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller's roles do not grant `webhooks:manage`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such endpoint", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn deliveries(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: DeliveriesQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::invalid_request(format!("invalid query: {e}")))?;
    let list: Vec<AttemptView> = state
        .auth
        .webhooks()
        .webhook_deliveries(&admin.operator, endpoint_id(&id)?, q.limit)
        .await?
        .into_iter()
        .map(AttemptView::from)
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// Register the webhook routes under the `/api/v1` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/webhooks")
            .route("", web::get().to(list))
            .route("", web::post().to(create))
            .route("/{id}", web::get().to(get))
            .route("/{id}", web::patch().to(update))
            .route("/{id}", web::delete().to(delete))
            .route("/{id}/rotate-secret", web::post().to(rotate_secret))
            .route("/{id}/deliveries", web::get().to(deliveries)),
    );
}
