//! Pre-account hijacking (issue 14 hole 5): someone signs up with an address they do not
//! own, sets a password, a second factor and sessions, and waits. When the mailbox's owner
//! first proves it (magic link, email code, password reset), they adopt the account: what
//! its creator set up is gone, in the same transaction that verifies the address.

use auth_core::identity::{Identity, IdentityId, IdentityStore as _};
use auth_core::model::UserId;
use auth_e2e::{Backend, PASSWORD, TestApp, app, on_both_backends, problem};
use auth_notify::testing::SmtpSink;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::email::{code_in, mail_to, token_in, with_smtp};
use crate::mfa::enrol_totp;

on_both_backends!(
    the_mailbox_owner_adopts_an_account_someone_else_created,
    the_sign_up_link_keeps_what_its_creator_set_up,
);

/// What the attacker leaves on an account with `victim`'s address: a password (the
/// sign-up), an active TOTP factor, a live session and a linked identity (stored directly:
/// linking one to an unverified account is refused now, see `oauth.rs`). Returns the
/// attacker's tokens.
async fn pre_hijack(app: &TestApp, victim: &str) -> Value {
    let t = app.signup(victim).await;
    let access = t["access_token"].as_str().unwrap();
    enrol_totp(app, access).await;
    let id: UserId = t["user"]["id"].as_str().unwrap().parse().unwrap();
    app.db
        .link_identity(&Identity {
            id: IdentityId::new(),
            user_id: id,
            provider: "google".into(),
            subject: format!("attacker-{victim}"),
            email: Some("attacker@example.net".into()),
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    // The attacker's password still opens the account (behind the second factor).
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": victim, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["mfa_required"], true);
    t
}

/// Nothing of the attacker's survives: the session and refresh token are dead, the password
/// no longer signs in, the identity is unlinked and the victim's sign-in needed no second
/// factor (the attacker's TOTP is gone).
async fn assert_adopted(app: &TestApp, victim: &str, attacker: &Value, victims: &Value) {
    assert_eq!(victims["user"]["email_verified"], true, "{victims}");
    assert!(victims.get("mfa_required").is_none(), "{victims}");
    let access = attacker["access_token"].as_str().unwrap();
    assert_eq!(
        app.get_auth("/api/v1/me", access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refresh = attacker["refresh_token"].as_str().unwrap();
    assert_eq!(
        app.refresh(refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    problem(
        app.post(
            "/api/v1/auth/login",
            &json!({"email": victim, "password": PASSWORD}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let subject = format!("attacker-{victim}");
    assert!(
        app.db
            .identity_by_subject("google", &subject)
            .await
            .unwrap()
            .is_none()
    );
    let mine = victims["access_token"].as_str().unwrap();
    let factors: Value = app
        .get_auth("/api/v1/auth/mfa/factors", mine)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(factors["enabled"], false, "{factors}");
    assert_eq!(factors["factors"], json!([]), "{factors}");
    let me: Value = app.get_auth("/api/v1/me", mine).await.json().await.unwrap();
    assert_eq!(me["identities"], json!([]), "{me}");
}

async fn the_mailbox_owner_adopts_an_account_someone_else_created(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_smtp(backend, &sink), start);

    // Magic link.
    let victim = "ada@example.com";
    let attacker = pre_hijack(&app, victim).await;
    let res = app
        .post("/api/v1/auth/magic-link", &json!({"email": victim}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let token = token_in(&mail_to(&sink, victim, "sign-in link").await, "/magic-link");
    let res = app
        .post("/api/v1/auth/magic-link/verify", &json!({"token": token}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_adopted(&app, victim, &attacker, &res.json().await.unwrap()).await;

    // Email code.
    let victim = "grace@example.com";
    let attacker = pre_hijack(&app, victim).await;
    let res = app
        .post("/api/v1/auth/otp/send", &json!({"email": victim}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let code = code_in(&mail_to(&sink, victim, "code").await);
    let res = app
        .post(
            "/api/v1/auth/otp/verify",
            &json!({"email": victim, "code": code}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_adopted(&app, victim, &attacker, &res.json().await.unwrap()).await;

    // Password reset: the new password is the owner's, the rest is gone as well.
    let victim = "edsger@example.com";
    let attacker = pre_hijack(&app, victim).await;
    let res = app
        .post("/api/v1/auth/password/forgot", &json!({"email": victim}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let token = token_in(&mail_to(&sink, victim, "reset").await, "/reset-password");
    let res = app
        .post(
            "/api/v1/auth/password/reset",
            &json!({"token": token, "password": "the owner's own passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": victim, "password": "the owner's own passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mine: Value = res.json().await.unwrap();
    assert_adopted(&app, victim, &attacker, &mine).await;

    // A second proof of a verified account changes nothing: the owner's factor stays.
    enrol_totp(&app, mine["access_token"].as_str().unwrap()).await;
    let res = app
        .post("/api/v1/auth/magic-link", &json!({"email": victim}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let token = token_in(&mail_to(&sink, victim, "sign-in link").await, "/magic-link");
    let res = app
        .post("/api/v1/auth/magic-link/verify", &json!({"token": token}))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["mfa_required"], true);
}

async fn the_sign_up_link_keeps_what_its_creator_set_up(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_smtp(backend, &sink), start);
    let t = app.signup("ada@example.com").await;
    let access = t["access_token"].as_str().unwrap();
    let token = token_in(
        &mail_to(&sink, "ada@example.com", "confirm").await,
        "/verify-email",
    );
    let res = app
        .post("/api/v1/auth/email/verify", &json!({"token": token}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The creator's own sign-up ends: session and password stay.
    assert_eq!(
        app.get_auth("/api/v1/me", access).await.status(),
        StatusCode::OK
    );
    app.login("ada@example.com").await;
}
