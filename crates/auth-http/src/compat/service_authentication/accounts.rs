//! service-authentication: `POST /user`, `GET`/`PUT /user/:user_id`, `/webhooks`,
//! `/audit/logs`.
//!
//! The administration routes of that API over the canonical operator services: the caller
//! is the profile's JWT (cookie or bearer), checked by [`AuthCore::authorize`] against
//! the caller's current roles with the capability the canonical admin route requires.
//! Every write is the canonical core operation, so it lands in the audit trail (and the
//! webhooks) exactly as through `/api/v1/admin`. A user reads and changes their own
//! profile (`name`, `avatar_url`) at `/user/:user_id` without a capability.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::AuthCore;
use auth_core::AuthError;
use auth_core::audit::{AuditQuery, AuditRecord};
use auth_core::model::{ProfileUpdate, User, UserId};
use auth_core::operators::capability::{
    AuditRead, Capability, RolesManage, UsersRead, UsersWrite, WebhooksManage,
};
use auth_core::operators::{AccountEdit, ManagedUser, NewAccount, Operator};
use auth_core::service::Authenticated;
use auth_core::webhooks::{EndpointInput, WebhookEndpoint};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Reply, ServiceAuth, cookie, error, random_password, service_error};
use crate::compat::own_format;
use crate::extract::{bearer_token, client_info};
use crate::views::UserView;

pub(super) fn configure(cfg: &mut web::ServiceConfig, data: &web::Data<ServiceAuth>) {
    let at = |route: &str| csrf_resource!(data, route);
    // `POST /user` shares its resource with `GET /user` (mod.rs): it calls `create_user`.
    cfg.service(
        at("/user/{user_id}")
            .route(web::get().to(get_user))
            .route(web::put().to(update_user)),
    )
    .service(
        at("/webhooks")
            .route(web::get().to(list_webhooks))
            .route(web::post().to(create_webhook)),
    )
    .service(
        at("/webhooks/{webhook_id}")
            .route(web::put().to(update_webhook))
            .route(web::delete().to(delete_webhook)),
    )
    .service(at("/audit/logs").route(web::get().to(audit_logs)));
}

// ---- authorization ----------------------------------------------------------------------

/// The JWT the request presents: `Authorization: Bearer`, else the profile's cookie.
fn presented_jwt(state: &ServiceAuth, req: &HttpRequest) -> Result<String, actix_web::Error> {
    bearer_token(req)
        .map(str::to_owned)
        .or_else(|| cookie(req, &state.cookie))
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "Unauthorized"))
}

/// The caller, whose current roles grant `capability` (the canonical admin check).
async fn operator<C: Capability>(
    state: &ServiceAuth,
    req: &HttpRequest,
) -> Result<Operator<C>, actix_web::Error> {
    let token = presented_jwt(state, req)?;
    state
        .auth
        .operators()
        .authorize::<C>(&token, client_info(req))
        .await
        .map_err(admin_error)
}

/// The signed-in caller, whatever their roles.
async fn signed_in(
    state: &ServiceAuth,
    req: &HttpRequest,
) -> Result<Authenticated, actix_web::Error> {
    let token = presented_jwt(state, req)?;
    state
        .auth
        .sessions()
        .authenticate(&token)
        .await
        .map_err(admin_error)
}

fn admin_error(e: AuthError) -> actix_web::Error {
    match e {
        AuthError::Forbidden => error(StatusCode::FORBIDDEN, "Forbidden"),
        AuthError::InsufficientCapability => error(
            StatusCode::FORBIDDEN,
            "The account or role holds a capability the caller does not hold",
        ),
        AuthError::NotFound => error(StatusCode::NOT_FOUND, "Not found"),
        AuthError::InvalidRequest(detail) => error(StatusCode::BAD_REQUEST, &detail),
        AuthError::Conflict("cannot_target_self") => error(
            StatusCode::CONFLICT,
            "An administrator cannot do this to their own account",
        ),
        AuthError::Conflict(code) => error(StatusCode::CONFLICT, code),
        other => service_error(other),
    }
}

fn not_found() -> actix_web::Error {
    error(StatusCode::NOT_FOUND, "Not found")
}

/// A JSON body (an empty one reads as `{}`) into `T`; 400 `{"error"}` otherwise.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, actix_web::Error> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("Invalid body: {e}")))
}

/// Absent means "leave as is", `null` means "clear".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn ok(value: Value) -> HttpResponse {
    own_format(HttpResponse::Ok().json(value))
}

// ---- users ------------------------------------------------------------------------------

/// A user as these routes show them: the canonical `User` plus the admin API's
/// `disabled` and `disabled_at`.
pub(super) fn account_json(user: User, disabled_at: Option<DateTime<Utc>>) -> Value {
    let mut value = serde_json::to_value(UserView::from(user)).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert("disabled".into(), Value::Bool(disabled_at.is_some()));
        map.insert("disabled_at".into(), json!(disabled_at));
    }
    value
}

fn managed_json(m: ManagedUser) -> Value {
    account_json(m.user, m.disabled_at)
}

fn target_id(raw: &str) -> Option<UserId> {
    raw.parse().ok()
}

/// `POST /user` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    email: Option<String>,
    password: Option<SecretString>,
    name: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    options: CreateOptions,
}

/// The `options` object of `POST /user`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateOptions {
    /// Mail a password reset link when no password is given (default on).
    #[serde(default = "yes")]
    send_reset_email: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            send_reset_email: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// `POST /user` (capability `users:write`): create an account, 201 with the user. Without
/// a password the account gets a random one and, unless `options.sendResetEmail` is
/// `false`, a password reset mail (the core's `forgot_password`, as `/register` does).
pub(super) async fn create_user(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Reply {
    let op = operator::<UsersWrite>(&state, &req).await?;
    let b: CreateUserBody = parse(&bytes)?;
    let email = b
        .email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "email is required"))?;
    let given = b.password.filter(|p| !p.expose_secret().is_empty());
    let generated = given.is_none();
    let password = given.unwrap_or_else(random_password);
    let created = state
        .auth
        .operators()
        .admin_create_user(
            &op,
            NewAccount {
                email: email.clone(),
                password: Some(password),
                name: b.name,
                email_verified: b.email_verified,
                roles: b.roles,
            },
        )
        .await
        .map_err(admin_error)?;
    let mut body = managed_json(created);
    if generated {
        let sent = b.options.send_reset_email && reset_mail(&state.auth, &email, &op).await;
        if let Value::Object(map) = &mut body {
            map.insert("password_reset_email".into(), Value::Bool(sent));
        }
    }
    Ok(own_format(HttpResponse::Created().json(body)))
}

/// Queue the reset mail of a freshly created account. The account exists already: a
/// refusal (the password-reset rate limit) is reported in the answer, not as an error.
async fn reset_mail(auth: &AuthCore, email: &str, op: &Operator<UsersWrite>) -> bool {
    match auth
        .mailbox()
        .forgot_password(email, op.client(), None)
        .await
    {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "password reset mail of a created account not queued");
            false
        }
    }
}

/// `GET /user/:user_id`: the caller themselves, or anyone with `users:read`.
async fn get_user(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    raw: web::Path<String>,
) -> Reply {
    let caller = signed_in(&state, &req).await?;
    let id = target_id(&raw);
    if id == Some(caller.user_id) {
        let user = state
            .auth
            .sessions()
            .me(&caller)
            .await
            .map_err(admin_error)?;
        return Ok(ok(account_json(user, None)));
    }
    let op = operator::<UsersRead>(&state, &req).await?;
    let user = state
        .auth
        .operators()
        .admin_get_user(&op, id.ok_or_else(not_found)?)
        .await
        .map_err(admin_error)?;
    Ok(ok(managed_json(user)))
}

/// `PUT /user/:user_id` body: the fields given change, the others stay.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUserBody {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    avatar_url: Option<Option<String>>,
    email: Option<String>,
    email_verified: Option<bool>,
    roles: Option<Vec<String>>,
    /// Refused: passwords change through the reset mail or the canonical
    /// `/api/v1/auth/password/change` (which asks for the current one).
    password: Option<IgnoredAny>,
}

impl UpdateUserBody {
    /// Fields only an administrator changes.
    fn admin_fields(&self, is_self: bool) -> bool {
        self.email.is_some()
            || self.email_verified.is_some()
            || self.roles.is_some()
            || (!is_self && self.name.is_some())
    }
}

/// `PUT /user/:user_id`. The caller changes their own `name` and `avatar_url` without a
/// capability; `email`, `email_verified` and anyone else's account need `users:write`,
/// `roles` (the full new set) also `roles:manage`.
async fn update_user(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    raw: web::Path<String>,
    bytes: web::Bytes,
) -> Reply {
    let caller = signed_in(&state, &req).await?;
    let id = target_id(&raw);
    let is_self = id == Some(caller.user_id);
    let b: UpdateUserBody = parse(&bytes)?;
    if b.password.is_some() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "password cannot be changed here: use POST /password/forgot",
        ));
    }
    if !b.admin_fields(is_self) {
        if !is_self {
            // Nothing to change, but reading another account still needs the capability.
            let op = operator::<UsersWrite>(&state, &req).await?;
            let user = state
                .auth
                .operators()
                .admin_get_user(&op, id.ok_or_else(not_found)?)
                .await
                .map_err(admin_error)?;
            if b.avatar_url.is_some() {
                return Err(avatar_refused());
            }
            return Ok(ok(managed_json(user)));
        }
        let user = state
            .auth
            .sessions()
            .update_me(
                &caller,
                ProfileUpdate {
                    name: b.name,
                    avatar_url: b.avatar_url,
                },
            )
            .await
            .map_err(admin_error)?;
        return Ok(ok(account_json(user, None)));
    }

    let op = operator::<UsersWrite>(&state, &req).await?;
    let roles_op = match &b.roles {
        Some(_) => Some(operator::<RolesManage>(&state, &req).await?),
        None => None,
    };
    let id = id.ok_or_else(not_found)?;
    if b.avatar_url.is_some() && !is_self {
        return Err(avatar_refused());
    }
    // One use case, one transaction: every rule is checked before anything changes.
    let roles = match (b.roles, &roles_op) {
        (Some(wanted), Some(rop)) => Some((rop, wanted)),
        _ => None,
    };
    let user = state
        .auth
        .operators()
        .admin_update_user(
            &op,
            id,
            AccountEdit {
                email: b.email,
                name: b.name,
                email_verified: b.email_verified,
                avatar_url: b.avatar_url,
                roles,
            },
        )
        .await
        .map_err(admin_error)?;
    Ok(ok(managed_json(user)))
}

fn avatar_refused() -> actix_web::Error {
    error(
        StatusCode::BAD_REQUEST,
        "avatar_url is changed by the user themselves",
    )
}

// ---- webhooks ---------------------------------------------------------------------------

fn endpoint_json(e: WebhookEndpoint) -> Value {
    json!({
        "id": e.id.to_string(),
        "url": e.url,
        "description": e.description,
        "event_types": e.event_types,
        "enabled": e.enabled,
        "failing_since": e.failing_since,
        "disabled_reason": e.disabled_reason,
        "previous_secret_expires_at": e.previous_secret_expires_at,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    })
}

fn webhook_id(raw: &str) -> Result<Uuid, actix_web::Error> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}

/// `POST /webhooks` and `PUT /webhooks/:webhook_id` body (the canonical one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
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

/// `GET /webhooks` (capability `webhooks:manage`).
async fn list_webhooks(state: web::Data<ServiceAuth>, req: HttpRequest) -> Reply {
    let op = operator::<WebhooksManage>(&state, &req).await?;
    let list: Vec<Value> = state
        .auth
        .webhooks()
        .list_webhooks(&op)
        .await
        .map_err(admin_error)?
        .into_iter()
        .map(endpoint_json)
        .collect();
    Ok(ok(Value::Array(list)))
}

/// `POST /webhooks`: 201 with the signing `secret`, shown only here.
async fn create_webhook(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    bytes: web::Bytes,
) -> Reply {
    let op = operator::<WebhooksManage>(&state, &req).await?;
    let b: EndpointBody = parse(&bytes)?;
    let created = state
        .auth
        .webhooks()
        .create_webhook(&op, b.into())
        .await
        .map_err(admin_error)?;
    let mut body = endpoint_json(created.endpoint);
    if let Value::Object(map) = &mut body {
        map.insert(
            "secret".into(),
            Value::String(created.secret.expose_secret().to_owned()),
        );
    }
    Ok(own_format(HttpResponse::Created().json(body)))
}

/// `PUT /webhooks/:webhook_id`: the fields given change (re-enabling clears the failure
/// state).
async fn update_webhook(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    raw: web::Path<String>,
    bytes: web::Bytes,
) -> Reply {
    let op = operator::<WebhooksManage>(&state, &req).await?;
    let id = webhook_id(&raw)?;
    let b: EndpointBody = parse(&bytes)?;
    let e = state
        .auth
        .webhooks()
        .update_webhook(&op, id, b.into())
        .await
        .map_err(admin_error)?;
    Ok(ok(endpoint_json(e)))
}

/// `DELETE /webhooks/:webhook_id`: 204.
async fn delete_webhook(
    state: web::Data<ServiceAuth>,
    req: HttpRequest,
    raw: web::Path<String>,
) -> Reply {
    let op = operator::<WebhooksManage>(&state, &req).await?;
    let id = webhook_id(&raw)?;
    state
        .auth
        .webhooks()
        .delete_webhook(&op, id)
        .await
        .map_err(admin_error)?;
    Ok(own_format(HttpResponse::NoContent().finish()))
}

// ---- audit log --------------------------------------------------------------------------

/// The canonical filters of the audit log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditLogQuery {
    user_id: Option<String>,
    event_type: Option<String>,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn audit_json(r: AuditRecord) -> Value {
    json!({
        "id": r.id.to_string(),
        "at": r.at,
        "event_type": r.event_type,
        "actor_id": r.actor_id.map(|u| u.to_string()),
        "user_id": r.user_id.map(|u| u.to_string()),
        "session_id": r.session_id.map(|s| s.to_string()),
        "ip": r.ip,
        "user_agent": r.user_agent,
        "detail": r.detail,
    })
}

/// `GET /audit/logs` (capability `audit:read`): `{items, next_cursor}`, newest first.
async fn audit_logs(state: web::Data<ServiceAuth>, req: HttpRequest) -> Reply {
    let op = operator::<AuditRead>(&state, &req).await?;
    let q: AuditLogQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("Invalid query: {e}")))?;
    let user_id = q
        .user_id
        .as_deref()
        .map(|u| {
            u.parse::<UserId>()
                .map_err(|_| error(StatusCode::BAD_REQUEST, "user_id must be a user id"))
        })
        .transpose()?;
    let filters = AuditQuery {
        user_id,
        event_type: q.event_type.filter(|t| !t.is_empty()),
        from: q.from,
        until: q.until,
        before: None,
        limit: 0,
    };
    let page = state
        .auth
        .operators()
        .audit_log(&op, filters, q.cursor, q.limit)
        .await
        .map_err(admin_error)?;
    Ok(ok(json!({
        "items": page.items.into_iter().map(audit_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}
