//! service-authentication: `POST /user`, `GET`/`PUT /user/:user_id`, `/webhooks`, `/audit/logs`.

use actix_web::web;

use super::ServiceAuth;

pub(super) fn configure(_cfg: &mut web::ServiceConfig, _data: &web::Data<ServiceAuth>) {}
