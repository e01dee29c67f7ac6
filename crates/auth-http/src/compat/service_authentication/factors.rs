//! service-authentication: `/mfa/*`, `/otp/*`, `/authenticator/*`.

use actix_web::web;

use super::ServiceAuth;

pub(super) fn configure(_cfg: &mut web::ServiceConfig, _data: &web::Data<ServiceAuth>) {}
