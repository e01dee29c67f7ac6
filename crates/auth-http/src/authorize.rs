//! The capability extractor of the admin API: `Admin<UsersRead>` authenticates the bearer
//! token (401 `invalid_token` otherwise) and checks that the caller's current roles grant
//! the capability (403 `forbidden` otherwise).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use auth_core::operators::{Operator, capability};

use crate::extract::{bearer_token, client_info};
use crate::problem::ApiError;
use crate::state::AppState;

/// A capability a route requires.
pub trait Capability {
    /// Its name (`users:read`).
    const NAME: &'static str;
}

macro_rules! capabilities {
    ($($(#[$doc:meta])* $ty:ident = $name:expr;)+) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $ty;

        impl Capability for $ty {
            const NAME: &'static str = $name;
        }
    )+};
}

capabilities! {
    /// `users:read`
    UsersRead = capability::USERS_READ;
    /// `users:write`
    UsersWrite = capability::USERS_WRITE;
    /// `sessions:revoke`
    SessionsRevoke = capability::SESSIONS_REVOKE;
    /// `roles:manage`
    RolesManage = capability::ROLES_MANAGE;
    /// `audit:read`
    AuditRead = capability::AUDIT_READ;
    /// `webhooks:manage`
    WebhooksManage = capability::WEBHOOKS_MANAGE;
}

/// A caller whose current roles grant `C`.
pub struct Admin<C: Capability> {
    /// The checked caller and the request's origin.
    pub operator: Operator,
    _capability: PhantomData<C>,
}

impl<C: Capability + 'static> FromRequest for Admin<C> {
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
            let operator = state.auth.authorize(&token, C::NAME, client).await?;
            Ok(Admin {
                operator,
                _capability: PhantomData,
            })
        })
    }
}
