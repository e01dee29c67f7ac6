//! The signed-in user: profile and sessions.

use actix_web::{HttpResponse, web};
use auth_core::model::{ProfileUpdate, SessionId};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::extract::{Caller, JsonBody};
use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::views::{SessionItem, UserView};

/// The signed-in user.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "The user", body = UserView))
)]
pub async fn get(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = state.auth.sessions().me(&caller.0).await?;
    let identities = state.social.identities_of(user.id).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user).with_identities(identities)))
}

/// Absent means "leave as is", `null` means "clear".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Absent fields are left as they are; `null` clears.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    /// An `http(s)` URL; `null` falls back to Gravatar.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
}

/// Update the profile.
#[utoipa::path(
    patch, path = "/api/v1/me", tag = "me", request_body = UpdateBody, security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 422, description = "`invalid_field`", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let user = state
        .auth
        .sessions()
        .update_me(
            &caller.0,
            ProfileUpdate {
                name: body.name,
                avatar_url: body.avatar_url,
            },
        )
        .await?;
    let identities = state.social.identities_of(user.id).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user).with_identities(identities)))
}

/// The user's active sessions.
#[utoipa::path(
    get, path = "/api/v1/me/sessions", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "Active sessions, the current one marked", body = Vec<SessionItem>))
)]
pub async fn sessions(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<SessionItem> = state
        .auth
        .sessions()
        .sessions(&caller.0)
        .await?
        .into_iter()
        .map(SessionItem::from)
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// End one of the user's sessions.
#[utoipa::path(
    delete, path = "/api/v1/me/sessions/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path, description = "The session id (a UUID)")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 404, description = "`not_found`: no such session of this user", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_session(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: SessionId = id.parse().map_err(|_| ApiError::not_found())?;
    state
        .auth
        .sessions()
        .revoke_own_session(&caller.0, id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
