//! The capability extractor of the admin API: `Admin<UsersRead>` authenticates the bearer
//! token (401 `invalid_token` otherwise) and checks that the caller's current roles grant
//! the capability (403 `forbidden` otherwise).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use auth_core::operators::Operator;

use crate::extract::{bearer_token, client_info};
use crate::problem::ApiError;
use crate::state::AppState;

pub use auth_core::operators::capability::{
    AuditRead, Capability, RolesManage, SessionsRevoke, UsersRead, UsersWrite, WebhooksManage,
};

/// A caller whose current roles grant `C`.
pub struct Admin<C: Capability> {
    /// The checked caller, the proof of `C`, and the request's origin.
    pub operator: Operator<C>,
}

impl<C: Capability> FromRequest for Admin<C> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let client = client_info(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::from(auth_core::AuthError::internal("application state missing"))
            })?;
            let token = token
                .ok_or_else(|| ApiError::unauthenticated("a bearer access token is required"))?;
            let operator = state
                .auth
                .operators()
                .authorize::<C>(&token, client)
                .await?;
            Ok(Admin { operator })
        })
    }
}
