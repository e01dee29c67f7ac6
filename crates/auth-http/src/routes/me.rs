//! The signed-in user: profile and sessions.

use actix_web::{HttpResponse, web};
use auth_core::model::{ProfileUpdate, SessionId};
use serde::{Deserialize, Deserializer};

use crate::extract::Caller;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::views::{SessionItem, UserView};

pub async fn get(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = state.auth.me(&caller.0).await?;
    let identities = state.social.identities_of(user.id).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user).with_identities(identities)))
}

/// Absent means "leave as is", `null` means "clear".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    avatar_url: Option<Option<String>>,
}

pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let user = state
        .auth
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

pub async fn sessions(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let list: Vec<SessionItem> = state
        .auth
        .sessions(&caller.0)
        .await?
        .into_iter()
        .map(SessionItem::from)
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

pub async fn revoke_session(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: SessionId = id.parse().map_err(|_| ApiError::not_found())?;
    state.auth.revoke_own_session(&caller.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
