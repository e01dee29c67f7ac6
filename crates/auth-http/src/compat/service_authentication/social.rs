//! service-authentication: `/oauth/:provider`, `/oauth/:provider/callback`, `/oauth/link`, `/login/magic`,
//! `/login/magic/:token`.

use actix_web::web;

use super::ServiceAuth;

pub(super) fn configure(_cfg: &mut web::ServiceConfig, _data: &web::Data<ServiceAuth>) {}
