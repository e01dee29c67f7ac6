//! The admin API under `/api/v1/admin`: users, their sessions, roles and the audit log.
//! Every route names the capability it requires in its extractor.

use actix_web::{HttpRequest, HttpResponse, web};
use auth_core::audit::{AuditQuery, AuditRecord};
use auth_core::model::{Session, SessionId, UserId};
use auth_core::operators::{ManagedUser, NewAccount, Page, Role, RoleInput};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use crate::authorize::{Admin, AuditRead, RolesManage, SessionsRevoke, UsersRead, UsersWrite};
use crate::extract::{Caller, parse_json, require_json};
use crate::problem::ApiError;
use crate::state::AppState;
use crate::views::UserView;

/// An account as the admin API shows it.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
pub struct AuditView {
    id: String,
    at: DateTime<Utc>,
    event_type: String,
    actor_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
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

#[derive(Serialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListUsersQuery {
    search: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn list_users(
    state: web::Data<AppState>,
    admin: Admin<UsersRead>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListUsersQuery = query(&req)?;
    let p = state
        .auth
        .admin_list_users(&admin.operator, q.search, q.cursor, q.limit)
        .await?;
    Ok(HttpResponse::Ok().json(page::<_, AdminUserView>(p)))
}

pub async fn get_user(
    state: web::Data<AppState>,
    admin: Admin<UsersRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .admin_get_user(&admin.operator, user_id(&id)?)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    email: String,
    password: Option<SecretString>,
    name: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    roles: Vec<String>,
}

pub async fn create_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    body: web::Json<CreateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let user = state
        .auth
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    email: Option<String>,
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    email_verified: Option<bool>,
}

pub async fn update_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
    body: web::Json<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let user = state
        .auth
        .admin_update_user(
            &admin.operator,
            user_id(&id)?,
            b.email,
            b.name,
            b.email_verified,
        )
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

pub async fn delete_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .admin_delete_user(&admin.operator, user_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn disable_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .admin_set_disabled(&admin.operator, user_id(&id)?, true)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

pub async fn enable_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .admin_set_disabled(&admin.operator, user_id(&id)?, false)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockBody {
    duration_secs: Option<u64>,
}

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
        .admin_lock_user(&admin.operator, user_id(&id)?, duration)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "locked_until": until })))
}

pub async fn unlock_user(
    state: web::Data<AppState>,
    admin: Admin<UsersWrite>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .admin_unlock_user(&admin.operator, user_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- sessions ---------------------------------------------------------------------------

pub async fn user_sessions(
    state: web::Data<AppState>,
    admin: Admin<UsersRead>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<AdminSessionView> = state
        .auth
        .admin_user_sessions(&admin.operator, user_id(&id)?)
        .await?
        .into_iter()
        .map(AdminSessionView::from)
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

pub async fn revoke_user_session(
    state: web::Data<AppState>,
    admin: Admin<SessionsRevoke>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, sid) = path.into_inner();
    let sid: SessionId = sid.parse().map_err(|_| ApiError::not_found())?;
    state
        .auth
        .admin_revoke_sessions(&admin.operator, user_id(&id)?, Some(sid))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn revoke_user_sessions(
    state: web::Data<AppState>,
    admin: Admin<SessionsRevoke>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let revoked = state
        .auth
        .admin_revoke_sessions(&admin.operator, user_id(&id)?, None)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked": revoked })))
}

// ---- roles ------------------------------------------------------------------------------

pub async fn list_roles(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
) -> Result<HttpResponse, ApiError> {
    let roles: Vec<RoleView> = state
        .auth
        .list_roles(&admin.operator)
        .await?
        .into_iter()
        .map(RoleView::from)
        .collect();
    Ok(HttpResponse::Ok().json(roles))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBody {
    name: String,
    #[serde(default)]
    capabilities: Vec<String>,
    description: Option<String>,
}

pub async fn create_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    body: web::Json<CreateRoleBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let role = state
        .auth
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleBody {
    capabilities: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
}

pub async fn update_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    name: web::Path<String>,
    body: web::Json<UpdateRoleBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let role = state
        .auth
        .update_role(&admin.operator, &name, b.capabilities, b.description)
        .await?;
    Ok(HttpResponse::Ok().json(RoleView::from(role)))
}

pub async fn delete_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.auth.delete_role(&admin.operator, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn assign_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, role) = path.into_inner();
    let user = state
        .auth
        .change_user_role(&admin.operator, user_id(&id)?, &role, true)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

pub async fn remove_role(
    state: web::Data<AppState>,
    admin: Admin<RolesManage>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, role) = path.into_inner();
    let user = state
        .auth
        .change_user_role(&admin.operator, user_id(&id)?, &role, false)
        .await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(user)))
}

// ---- audit log --------------------------------------------------------------------------

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

pub async fn audit_log(
    state: web::Data<AppState>,
    admin: Admin<AuditRead>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: AuditLogQuery = query(&req)?;
    let p = state
        .auth
        .audit_log(&admin.operator, q.filters()?, q.cursor, q.limit)
        .await?;
    Ok(HttpResponse::Ok().json(page::<_, AuditView>(p)))
}

/// `GET /api/v1/me/audit-log`: the caller's own events.
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
