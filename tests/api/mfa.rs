//! Multi-factor authentication over HTTP on SQLite and PostgreSQL: TOTP enrolment, sign-in
//! with a second factor, recovery codes, mfa_token lockout, step-up and factor removal.
//!
//! The server runs on the real clock: codes are computed for the current time step, and a
//! second code in one test uses the next step (accepted as one step of skew).

use auth_core::mfa::{MfaStore, base32_decode, time_step, totp_code};
use auth_core::ports::SessionStore;
use auth_e2e::{Backend, PASSWORD, TestApp, app, on_both_backends, problem};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::password_sessions::decode_claims;

on_both_backends!(
    totp_enrolment_then_sign_in_with_a_second_factor,
    recovery_codes_are_single_use,
    an_mfa_token_dies_after_five_wrong_codes,
    a_session_steps_up_from_aal1_to_aal2,
    removing_a_factor_needs_a_current_code,
);

const EMAIL: &str = "ada@example.com";

fn step() -> i64 {
    time_step(chrono::Utc::now())
}

fn bearer(t: &Value) -> &str {
    t["access_token"].as_str().unwrap()
}

/// Sign up, enrol and activate TOTP; returns (signup tokens, secret, recovery codes).
async fn enrolled(app: &TestApp) -> (Value, Vec<u8>, Vec<String>) {
    let t = app.signup(EMAIL).await;
    let (secret, codes) = enrol_totp(app, bearer(&t)).await;
    (t, secret, codes)
}

/// Enrol and activate TOTP for the holder of a canonical access token through the
/// canonical API; returns (secret, recovery codes).
pub(crate) async fn enrol_totp(app: &TestApp, access_token: &str) -> (Vec<u8>, Vec<String>) {
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/totp/enroll",
            access_token,
            &json!({"label": "phone"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let e: Value = res.json().await.unwrap();
    let secret = base32_decode(e["secret"].as_str().unwrap()).unwrap();
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/totp/activate",
            access_token,
            &json!({"factor_id": e["factor_id"], "code": totp_code(&secret, step())}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

async fn login_mfa(app: &TestApp) -> String {
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": EMAIL, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, mfa_token: &str, factor: &str, code: &str) -> reqwest::Response {
    app.post(
        "/api/v1/auth/mfa/verify",
        &json!({"mfa_token": mfa_token, "factor": factor, "code": code}),
    )
    .await
}

async fn totp_enrolment_then_sign_in_with_a_second_factor(backend: Backend) {
    let app = app!(backend);
    let t = app.signup(EMAIL).await;
    let user_id: auth_core::model::UserId = t["user"]["id"].as_str().unwrap().parse().unwrap();

    let res = app
        .post_auth("/api/v1/auth/mfa/totp/enroll", bearer(&t), &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let e: Value = res.json().await.unwrap();
    let secret_b32 = e["secret"].as_str().unwrap();
    let secret = base32_decode(secret_b32).unwrap();
    assert_eq!(secret.len(), 20);
    let uri = e["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Auth:ada%40example.com?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret_b32}")) && uri.contains("period=30"));
    let qr = e["qr_code"].as_str().unwrap();
    let svg = base64::engine::general_purpose::STANDARD
        .decode(qr.strip_prefix("data:image/svg+xml;base64,").unwrap())
        .unwrap();
    assert!(String::from_utf8(svg).unwrap().contains("<svg"));

    // Not active until a valid code proves the app has the secret.
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/totp/activate",
            bearer(&t),
            &json!({"factor_id": e["factor_id"], "code": "12345"}),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_code").await;
    let signed_in = app.login(EMAIL).await;
    assert!(signed_in["access_token"].is_string());

    let code = totp_code(&secret, step());
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/totp/activate",
            bearer(&t),
            &json!({"factor_id": e["factor_id"], "code": code}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let codes: Value = res.json().await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);

    // State left behind: one active factor whose secret is sealed, ten hashed codes.
    let factors = app.db.factors_of(user_id).await.unwrap();
    assert_eq!(factors.len(), 1);
    assert!(factors[0].activated_at.is_some());
    assert!(!factors[0].sealed_secret.windows(20).any(|w| w == secret));
    assert_eq!(app.db.remaining_recovery_codes(user_id).await.unwrap(), 10);
    let res = app.get_auth("/api/v1/auth/mfa/factors", bearer(&t)).await;
    let status: Value = res.json().await.unwrap();
    assert_eq!(status["enabled"], true);
    assert_eq!(status["factors"][0]["kind"], "totp");
    assert_eq!(status["recovery_codes_remaining"], 10);

    let mfa_token = login_mfa(&app).await;
    // The activation code was spent: replaying it is refused.
    problem(
        verify(&app, &mfa_token, "totp", &code).await,
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;
    let res = verify(&app, &mfa_token, "totp", &totp_code(&secret, step() + 1)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    let claims = decode_claims(bearer(&tokens));
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    assert_eq!(claims["aal"], "aal2");
    assert_eq!(tokens["user"]["email"], EMAIL);
    let sid = claims["sid"].as_str().unwrap().parse().unwrap();
    let session = app.db.session(sid).await.unwrap().unwrap();
    assert_eq!(session.aal, "aal2");
    // Single use.
    problem(
        verify(&app, &mfa_token, "totp", &totp_code(&secret, step() + 1)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    // The refresh token keeps the level.
    let res = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    let refreshed: Value = res.json().await.unwrap();
    assert_eq!(decode_claims(bearer(&refreshed))["aal"], "aal2");
}

async fn recovery_codes_are_single_use(backend: Backend) {
    let app = app!(backend);
    let (t, _, codes) = enrolled(&app).await;
    let mfa_token = login_mfa(&app).await;
    let res = verify(&app, &mfa_token, "recovery_code", &codes[0]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    let claims = decode_claims(bearer(&tokens));
    assert_eq!(claims["amr"], json!(["pwd", "recovery_code"]));
    assert_eq!(claims["aal"], "aal2");

    let mfa_token = login_mfa(&app).await;
    problem(
        verify(&app, &mfa_token, "recovery_code", &codes[0]).await,
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;
    let res = verify(&app, &mfa_token, "recovery_code", &codes[1]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let status: Value = app
        .get_auth("/api/v1/auth/mfa/factors", bearer(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["recovery_codes_remaining"], 8);

    // Regenerating needs a current second factor and replaces every code.
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/recovery-codes/regenerate",
            bearer(&t),
            &json!({"factor": "recovery_code", "code": codes[0]}),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_code").await;
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/recovery-codes/regenerate",
            bearer(&t),
            &json!({"factor": "recovery_code", "code": codes[2]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let fresh: Value = res.json().await.unwrap();
    let fresh = fresh["recovery_codes"].as_array().unwrap();
    assert_eq!(fresh.len(), 10);
    let mfa_token = login_mfa(&app).await;
    problem(
        verify(&app, &mfa_token, "recovery_code", &codes[3]).await,
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;
    let res = verify(
        &app,
        &mfa_token,
        "recovery_code",
        fresh[0].as_str().unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn an_mfa_token_dies_after_five_wrong_codes(backend: Backend) {
    let app = app!(backend);
    let (_, secret, _) = enrolled(&app).await;
    let mfa_token = login_mfa(&app).await;
    for _ in 0..5 {
        problem(
            verify(&app, &mfa_token, "totp", "000000").await,
            StatusCode::BAD_REQUEST,
            "invalid_code",
        )
        .await;
    }
    let right = totp_code(&secret, step() + 1);
    problem(
        verify(&app, &mfa_token, "totp", &right).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    problem(
        verify(&app, "garbage", "totp", &right).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    // A fresh sign-in still works with the (unspent) right code.
    let mfa_token = login_mfa(&app).await;
    assert_eq!(
        verify(&app, &mfa_token, "totp", &right).await.status(),
        StatusCode::OK
    );
}

async fn a_session_steps_up_from_aal1_to_aal2(backend: Backend) {
    let app = app!(backend);
    let (t, secret, _) = enrolled(&app).await;
    let before = decode_claims(bearer(&t));
    assert_eq!(before["aal"], "aal1");

    // Neither an mfa_token nor a bearer token: nothing to verify against.
    let res = app
        .post("/api/v1/auth/mfa/verify", &json!({"code": "123456"}))
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/verify",
            bearer(&t),
            &json!({"code": "000000"}),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_code").await;

    let res = app
        .post_auth(
            "/api/v1/auth/mfa/verify",
            bearer(&t),
            &json!({"factor": "totp", "code": totp_code(&secret, step() + 1)}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let stepped: Value = res.json().await.unwrap();
    assert!(stepped.get("refresh_token").is_none());
    let after = decode_claims(bearer(&stepped));
    assert_eq!(after["aal"], "aal2");
    assert_eq!(after["amr"], json!(["pwd", "otp"]));
    assert_eq!(after["sid"], before["sid"]);
    let me = app.get_auth("/api/v1/me", bearer(&stepped)).await;
    assert_eq!(me.status(), StatusCode::OK);
    // The session's refresh token now yields aal2 tokens.
    let refreshed: Value = app
        .refresh(t["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(decode_claims(bearer(&refreshed))["aal"], "aal2");
}

async fn removing_a_factor_needs_a_current_code(backend: Backend) {
    let app = app!(backend);
    let (t, _, codes) = enrolled(&app).await;
    let status: Value = app
        .get_auth("/api/v1/auth/mfa/factors", bearer(&t))
        .await
        .json()
        .await
        .unwrap();
    let id = status["factors"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/auth/mfa/factors/{id}");
    let delete = |body: Value| {
        app.client
            .delete(app.url(&path))
            .bearer_auth(bearer(&t))
            .json(&body)
            .send()
    };
    problem(
        delete(json!({})).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;
    problem(
        delete(json!({"code": "000000"})).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;
    let res = delete(json!({"factor": "recovery_code", "code": codes[5]}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let user_id = t["user"]["id"].as_str().unwrap().parse().unwrap();
    assert!(app.db.factors_of(user_id).await.unwrap().is_empty());
    assert_eq!(app.db.remaining_recovery_codes(user_id).await.unwrap(), 0);
    // MFA is off: the password alone signs in again.
    assert!(app.login(EMAIL).await["access_token"].is_string());
    let res = app
        .client
        .delete(app.url("/api/v1/auth/mfa/factors/not-a-uuid"))
        .bearer_auth(bearer(&t))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND, "not_found").await;
}

/// How many live sessions the holder of a canonical access token has.
pub(crate) async fn session_count(app: &TestApp, access_token: &str) -> usize {
    let res = app.get_auth("/api/v1/me/sessions", access_token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let sessions: Value = res.json().await.unwrap();
    sessions.as_array().unwrap().len()
}
