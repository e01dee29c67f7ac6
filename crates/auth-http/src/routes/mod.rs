//! Route table.

use actix_web::web;

mod account;
mod admin;
pub(crate) mod auth;
pub mod docs;
pub(crate) mod health;
mod me;
pub(crate) mod mfa;
mod oauth;
mod passkeys;
mod webhooks;
mod well_known;

/// Register every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .service(
                web::scope("/auth")
                    .route("/signup", web::post().to(auth::signup))
                    .route("/login", web::post().to(auth::login))
                    .route("/refresh", web::post().to(auth::refresh))
                    .route("/logout", web::post().to(auth::logout))
                    .route("/revoke", web::post().to(auth::revoke))
                    .route("/introspect", web::post().to(auth::introspect))
                    .route("/password/forgot", web::post().to(account::forgot_password))
                    .route("/password/reset", web::post().to(account::reset_password))
                    .route("/password/change", web::post().to(account::change_password))
                    .route(
                        "/email/verify/send",
                        web::post().to(account::send_verification),
                    )
                    .route("/email/verify", web::post().to(account::verify_email))
                    .route("/magic-link", web::post().to(account::request_magic_link))
                    .route(
                        "/magic-link/verify",
                        web::post().to(account::verify_magic_link),
                    )
                    .route("/otp/send", web::post().to(account::send_code))
                    .route("/otp/verify", web::post().to(account::verify_code))
                    .configure(oauth::configure)
                    .configure(mfa::configure)
                    .configure(passkeys::configure),
            )
            .service(
                web::scope("/me")
                    .route("", web::get().to(me::get))
                    .route("", web::patch().to(me::update))
                    .route("/sessions", web::get().to(me::sessions))
                    .route("/sessions/{id}", web::delete().to(me::revoke_session))
                    .route("/audit-log", web::get().to(admin::my_audit_log))
                    .route("/identities/{id}", web::delete().to(oauth::unlink)),
            )
            .configure(webhooks::configure)
            .configure(admin::configure),
    )
    .route("/.well-known/jwks.json", web::get().to(well_known::jwks))
    .route(
        "/.well-known/openid-configuration",
        web::get().to(well_known::openid_configuration),
    )
    .route("/health/live", web::get().to(health::live))
    .route("/health/ready", web::get().to(health::ready));
}
