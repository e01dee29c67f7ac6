//! Webhook endpoints under `/api/v1/admin/webhooks` (capability `webhooks:manage`).

use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::webhooks::{DeliveryAttempt, EndpointInput, EndpointWithSecret, WebhookEndpoint};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::authorize::{Admin, WebhooksManage};
use crate::problem::ApiError;
use crate::state::AppState;

#[derive(Serialize)]
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

#[derive(Serialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
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

pub async fn list(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<EndpointView> = state
        .auth
        .list_webhooks(&admin.operator)
        .await?
        .into_iter()
        .map(EndpointView::from)
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

pub async fn create(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    body: web::Json<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let created = state
        .auth
        .create_webhook(&admin.operator, body.into_inner().into())
        .await?;
    Ok(HttpResponse::Created().json(EndpointView::from(created)))
}

pub async fn get(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .auth
        .get_webhook(&admin.operator, endpoint_id(&id)?)
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(e)))
}

pub async fn update(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    id: web::Path<String>,
    body: web::Json<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .auth
        .update_webhook(&admin.operator, endpoint_id(&id)?, body.into_inner().into())
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(e)))
}

pub async fn delete(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .delete_webhook(&admin.operator, endpoint_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn rotate_secret(
    state: web::Data<AppState>,
    admin: Admin<WebhooksManage>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e = state
        .auth
        .rotate_webhook_secret(&admin.operator, endpoint_id(&id)?)
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(e)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    limit: Option<usize>,
}

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
