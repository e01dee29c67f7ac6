//! The admin API under `/api/v1/admin`: users, their sessions, roles and the audit log.
//! Every route names the capability it requires in its extractor.

use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::audit::{AuditQuery, AuditRecord};
use auth_core::model::{Session, SessionId, UserId};
use auth_core::operators::{ManagedUser, NewAccount, Page, Role, RoleInput};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::authorize::{Admin, AuditRead, RolesManage, SessionsRevoke, UsersRead, UsersWrite};
use crate::extract::{Caller, JsonBody, parse_json, require_json};
use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::views::UserView;

/// An account as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminUser)]
pub struct AdminUserView {
    #[serde(flatten)]
    user: UserView,
    disabled: bool,
    disabled_at: Option<DateTime<Utc>>,
}

impl From<ManagedUser> for AdminUserView {
    fn from(m: ManagedUser) -> Self {
        Self {
            user: m.user.into(),
            disabled: m.disabled_at.is_some(),
            disabled_at: m.disabled_at,
        }
    }
}

/// A role: a named set of capabilities.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Role)]
struct RoleView {
    name: String,
    capabilities: Vec<String>,
    description: Option<String>,
    built_in: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        Self {
            name: r.name,
            capabilities: r.capabilities,
            description: r.description,
            built_in: r.built_in,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A session as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminSession)]
struct AdminSessionView {
    id: String,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
    amr: Vec<String>,
    aal: String,
}

impl From<Session> for AdminSessionView {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.to_string(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            ip: s.client.ip,
            user_agent: s.client.user_agent,
            amr: s.amr,
            aal: s.aal,
        }
    }
}

/// An entry of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub struct AuditView {
    id: String,
    at: DateTime<Utc>,
    event_type: String,
    actor_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    #[schema(value_type = Option<Object>)]
    detail: Option<serde_json::Value>,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id.to_string(),
            at: r.at,
            event_type: r.event_type,
            actor_id: r.actor_id.map(|u| u.to_string()),
            user_id: r.user_id.map(|u| u.to_string()),
            session_id: r.session_id.map(|s| s.to_string()),
            ip: r.ip,
            user_agent: r.user_agent,
            detail: r.detail,
        }
    }
}

/// A page of a list; `next_cursor` asks for the next one (`cursor=`), absent at the end.
#[derive(Serialize, ToSchema)]
struct PageView<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

fn page<A, T: From<A>>(p: Page<A>) -> PageView<T> {
    PageView {
        items: p.items.into_iter().map(T::from).collect(),
        next_cursor: p.next_cursor,
    }
}

fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::invalid_request(format!("invalid query: {e}")))
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// Absent means "leave as is", `null` means "clear".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

// ---- users ------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListUsersQuery {
    /// Substring of the email or name.
    search: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size.
    limit: Option<usize>,
}

/// List users (capability `users:read`).
#[utoipa::path(
    get, path = "/api/v1/admin/users", tag = "admin", params(ListUsersQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = PageView<AdminUserView>),
        (status = 400, description = "`invalid_request`: a bad query parameter", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn list_users(
    state: web::Data<AppState>,
    admin: Admin<UsersRead>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListUsersQuery = query(&req)?;
    let p = state
        .auth
        .operators()
        .admin_list_users(&admin.operator, q.search, q.cursor, q.limit)
        .await?;
    Ok(HttpResponse::Ok().json(page::<_, AdminUserView>(p)))
}

/// One user (capability `users:read`).
#[utoipa::path(
    get, path = "/api/v1/admin/users/{id}", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    state: web::Data<AppState>,
    admin: Admin<UsersRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .operators()
        .admin_get_user(&admin.operator, user_id(&id)?)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    email: String,
    /// Optional: without one the user signs in by link, code or provider.
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    name: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    roles: Vec<String>,
}

/// Create a user (capability `users:write`).
#[utoipa::path(
    post, path = "/api/v1/admin/users", tag = "admin", request_body = CreateUserBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = AdminUserView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_email`, `weak_password`, `invalid_field` (unknown role ...)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn create_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    body: JsonBody<CreateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let user = state
        .auth
        .operators()
        .admin_create_user(
            &admin.operator,
            NewAccount {
                email: b.email,
                password: b.password,
                name: b.name,
                email_verified: b.email_verified,
                roles: b.roles,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(AdminUserView::from(user)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    email: Option<String>,
    /// `null` clears.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    email_verified: Option<bool>,
}

/// Change a user's email, name or verification state (capability `users:write`).
#[utoipa::path(
    patch, path = "/api/v1/admin/users/{id}", tag = "admin", request_body = UpdateUserBody, params(("id" = String, Path, description = "The user id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user", body = AdminUserView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_email`, `invalid_field`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn update_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
    body: JsonBody<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let user = state
        .auth
        .operators()
        .admin_update_user(
            &admin.operator,
            user_id(&id)?,
            auth_core::operators::AccountEdit {
                email: b.email,
                name: b.name,
                email_verified: b.email_verified,
                ..Default::default()
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

/// Delete a user and everything of theirs (capability `users:write`).
#[utoipa::path(
    delete, path = "/api/v1/admin/users/{id}", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_target_self`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn delete_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .operators()
        .admin_delete_user(&admin.operator, user_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Disable a user: every session ends, sign-in is refused with `account_disabled` (capability `users:write`).
#[utoipa::path(
    post, path = "/api/v1/admin/users/{id}/disable", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_target_self`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn disable_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .operators()
        .admin_set_disabled(&admin.operator, user_id(&id)?, true)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

/// Enable a disabled user (capability `users:write`).
#[utoipa::path(
    post, path = "/api/v1/admin/users/{id}/enable", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn enable_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .operators()
        .admin_set_disabled(&admin.operator, user_id(&id)?, false)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LockBody {
    /// How long; the configured lockout freeze when absent.
    duration_secs: Option<u64>,
}

/// Lock a user out for a while (capability `users:write`).
#[utoipa::path(
    post, path = "/api/v1/admin/users/{id}/lock", tag = "admin", request_body(content = Option<LockBody>, content_type = "application/json", description = "Optional"), params(("id" = String, Path, description = "The user id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Locked", body = LockedUntil),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_target_self`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn lock_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_json(&req, &body)?;
    let b: LockBody = parse_json(&body, true)?;
    let duration = b
        .duration_secs
        .map(|s| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000)));
    let until = state
        .auth
        .operators()
        .admin_lock_user(&admin.operator, user_id(&id)?, duration)
        .await?;
    Ok(HttpResponse::Ok().json(LockedUntil {
        locked_until: until,
    }))
}

/// Lift a lockout (capability `users:write`).
#[utoipa::path(
    post, path = "/api/v1/admin/users/{id}/unlock", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Unlocked"),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn unlock_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .operators()
        .admin_unlock_user(&admin.operator, user_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- sessions ---------------------------------------------------------------------------

/// A user's active sessions (capability `users:read`).
#[utoipa::path(
    get, path = "/api/v1/admin/users/{id}/sessions", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Sessions", body = Vec<AdminSessionView>),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn user_sessions(
    state: web::Data<AppState>,
    admin: Admin<UsersRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<AdminSessionView> = state
        .auth
        .operators()
        .admin_user_sessions(&admin.operator, user_id(&id)?)
        .await?
        .into_iter()
        .map(AdminSessionView::from)
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// End one session of a user (capability `sessions:revoke`).
#[utoipa::path(
    delete, path = "/api/v1/admin/users/{id}/sessions/{sid}", tag = "admin", params(("id" = String, Path, description = "The user id"), ("sid" = String, Path, description = "The session id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user or session", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_user_session(
    state: web::Data<AppState>,
    admin: Admin<SessionsRevoke>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, sid) = path.into_inner();
    let sid: SessionId = sid.parse().map_err(|_| ApiError::not_found())?;
    state
        .auth
        .operators()
        .admin_revoke_sessions(&admin.operator, user_id(&id)?, Some(sid))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// End every session of a user (capability `sessions:revoke`).
#[utoipa::path(
    delete, path = "/api/v1/admin/users/{id}/sessions", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "How many ended", body = Revoked),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_user_sessions(
    state: web::Data<AppState>,
    admin: Admin<SessionsRevoke>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let revoked = state
        .auth
        .operators()
        .admin_revoke_sessions(&admin.operator, user_id(&id)?, None)
        .await?;
    Ok(HttpResponse::Ok().json(Revoked { revoked }))
}

// ---- roles ------------------------------------------------------------------------------

/// List roles (capability `roles:manage`).
#[utoipa::path(
    get, path = "/api/v1/admin/roles", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Roles", body = Vec<RoleView>),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn list_roles(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
) -> Result<HttpResponse, ApiError> {
    let roles: Vec<RoleView> = state
        .auth
        .operators()
        .list_roles(&admin.operator)
        .await?
        .into_iter()
        .map(RoleView::from)
        .collect();
    Ok(HttpResponse::Ok().json(roles))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBody {
    name: String,
    #[serde(default)]
    capabilities: Vec<String>,
    description: Option<String>,
}

/// Create a role (capability `roles:manage`).
#[utoipa::path(
    post, path = "/api/v1/admin/roles", tag = "admin", request_body = CreateRoleBody, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = RoleView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`role_exists`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_field`: a bad name or an unknown capability", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn create_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    body: JsonBody<CreateRoleBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let role = state
        .auth
        .operators()
        .create_role(
            &admin.operator,
            b.name,
            RoleInput {
                capabilities: b.capabilities,
                description: b.description,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(RoleView::from(role)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleBody {
    capabilities: Option<Vec<String>>,
    /// `null` clears.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
}

/// Change a role's capabilities or description (capability `roles:manage`).
#[utoipa::path(
    patch, path = "/api/v1/admin/roles/{name}", tag = "admin", request_body = UpdateRoleBody, params(("name" = String, Path, description = "The role name")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The role", body = RoleView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such role", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`built_in_role`", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_field`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn update_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    name: web::Path<String>,
    body: JsonBody<UpdateRoleBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let role = state
        .auth
        .operators()
        .update_role(&admin.operator, &name, b.capabilities, b.description)
        .await?;
    Ok(HttpResponse::Ok().json(RoleView::from(role)))
}

/// Delete a role no user holds (capability `roles:manage`).
#[utoipa::path(
    delete, path = "/api/v1/admin/roles/{name}", tag = "admin", params(("name" = String, Path, description = "The role name")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such role", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`role_in_use`, `built_in_role`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn delete_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .operators()
        .delete_role(&admin.operator, &name)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Give a user a role (capability `roles:manage`).
#[utoipa::path(
    put, path = "/api/v1/admin/users/{id}/roles/{role}", tag = "admin", params(("id" = String, Path, description = "The user id"), ("role" = String, Path, description = "The role name")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user or role", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_target_self`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn assign_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, role) = path.into_inner();
    let user = state
        .auth
        .operators()
        .change_user_role(&admin.operator, user_id(&id)?, &role, true)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

/// Take a role from a user (capability `roles:manage`).
#[utoipa::path(
    delete, path = "/api/v1/admin/users/{id}/roles/{role}", tag = "admin", params(("id" = String, Path, description = "The user id"), ("role" = String, Path, description = "The role name")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserView),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user or role", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "`cannot_target_self`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn remove_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, role) = path.into_inner();
    let user = state
        .auth
        .operators()
        .change_user_role(&admin.operator, user_id(&id)?, &role, false)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

// ---- audit log --------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditLogQuery {
    user_id: Option<String>,
    event_type: Option<String>,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<usize>,
}

impl AuditLogQuery {
    fn filters(&self) -> Result<AuditQuery, ApiError> {
        Ok(AuditQuery {
            user_id: self
                .user_id
                .as_deref()
                .map(|u| {
                    u.parse()
                        .map_err(|_| ApiError::invalid_request("user_id must be a user id"))
                })
                .transpose()?,
            event_type: self.event_type.clone().filter(|t| !t.is_empty()),
            from: self.from,
            until: self.until,
            before: None,
            limit: 0,
        })
    }
}

/// The audit log, newest first (capability `audit:read`).
#[utoipa::path(
    get, path = "/api/v1/admin/audit-log", tag = "admin", params(AuditLogQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of entries", body = PageView<AuditView>),
        (status = 400, description = "`invalid_request`: a bad query parameter", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller's roles do not grant the capability", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn audit_log(
    state: web::Data<AppState>,
    admin: Admin<AuditRead>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: AuditLogQuery = query(&req)?;
    let p = state
        .auth
        .operators()
        .audit_log(&admin.operator, q.filters()?, q.cursor, q.limit)
        .await?;
    Ok(HttpResponse::Ok().json(page::<_, AuditView>(p)))
}

/// The caller's own security events, newest first.
#[utoipa::path(
    get, path = "/api/v1/me/audit-log", tag = "me", params(AuditLogQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of entries", body = PageView<AuditView>),
        (status = 400, description = "`invalid_request`: a bad query parameter (`user_id` is not one here)", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn my_audit_log(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: AuditLogQuery = query(&req)?;
    if q.user_id.is_some() {
        return Err(ApiError::invalid_request(
            "user_id is not a filter of the caller's own audit log",
        ));
    }
    let p = state
        .auth
        .operators()
        .my_audit_log(&caller.0, q.filters()?, q.cursor, q.limit)
        .await?;
    Ok(HttpResponse::Ok().json(page::<_, AuditView>(p)))
}

/// Register the admin routes under the `/api/v1` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .route("/users", web::get().to(list_users))
            .route("/users", web::post().to(create_user))
            .route("/users/{id}", web::get().to(get_user))
            .route("/users/{id}", web::patch().to(update_user))
            .route("/users/{id}", web::delete().to(delete_user))
            .route("/users/{id}/disable", web::post().to(disable_user))
            .route("/users/{id}/enable", web::post().to(enable_user))
            .route("/users/{id}/lock", web::post().to(lock_user))
            .route("/users/{id}/unlock", web::post().to(unlock_user))
            .route("/users/{id}/sessions", web::get().to(user_sessions))
            .route(
                "/users/{id}/sessions",
                web::delete().to(revoke_user_sessions),
            )
            .route(
                "/users/{id}/sessions/{sid}",
                web::delete().to(revoke_user_session),
            )
            .route("/users/{id}/roles/{role}", web::put().to(assign_role))
            .route("/users/{id}/roles/{role}", web::delete().to(remove_role))
            .route("/roles", web::get().to(list_roles))
            .route("/roles", web::post().to(create_role))
            .route("/roles/{name}", web::patch().to(update_role))
            .route("/roles/{name}", web::delete().to(delete_role))
            .route("/audit-log", web::get().to(audit_log)),
    );
}

/// `{"locked_until": ...}`
#[derive(Serialize, ToSchema)]
struct LockedUntil {
    locked_until: DateTime<Utc>,
}

/// `{"revoked": n}`
#[derive(Serialize, ToSchema)]
struct Revoked {
    /// How many sessions ended.
    revoked: u64,
}
