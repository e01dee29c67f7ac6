//! The `sails-jwt` profile: the example's client story over HTTP, with mail read from a
//! real SMTP server on loopback.

use std::time::Duration;

use auth_e2e::{
    Backend, FakeApi, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends, problem,
};
use auth_notify::testing::{ReceivedMail, SmtpSink};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    sails_jwt_client_story,
    sails_jwt_locks_after_five_failures,
    sails_jwt_users_are_shared_with_the_canonical_api,
    sails_jwt_refuses_an_account_with_a_second_factor,
    sails_jwt_clients_send_no_captcha_and_the_canonical_api_still_asks_for_one,
);

const SECRET: &str = "sails-jwt-example-secret-0123456789abcdefghij";
const PREFIX: &str = "/compat/sails-jwt";

fn with_profile(backend: Backend, sink: &SmtpSink) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__COMPAT__SAILS_JWT__ENABLED", "true")
        .var("AUTH__COMPAT__SAILS_JWT__JWT_SECRET", SECRET)
        .var("AUTH__MAIL__TRANSPORT", "smtp")
        .var("AUTH__MAIL__FROM", "Auth <auth@example.com>")
        .var("AUTH__MAIL__SMTP__HOST", "127.0.0.1")
        .var("AUTH__MAIL__SMTP__PORT", &sink.port().to_string())
        .var("AUTH__MAIL__SMTP__TLS", "none")
        .var("AUTH__OUTBOX__POLL_INTERVAL_MS", "50")
        .var("AUTH__APP__URL", "https://app.example.com")
}

async fn post(app: &TestApp, route: &str, token: Option<&str>, body: &Value) -> Response {
    let mut req = app
        .client
        .post(app.url(&format!("{PREFIX}{route}")))
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn account(app: &TestApp, token: &str) -> Response {
    app.client
        .get(app.url(&format!("{PREFIX}/user")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn token(res: Response, status: StatusCode) -> String {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["token"], "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn message(res: Response, status: StatusCode) -> String {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.unwrap();
    body["message"].as_str().unwrap().to_owned()
}

async fn reset_token(sink: &SmtpSink, to: &str) -> String {
    let want = to.to_owned();
    let mail: ReceivedMail = sink
        .wait_for(
            move |m| m.to.iter().any(|t| t == &want) && m.subject.to_lowercase().contains("reset"),
            Duration::from_secs(15),
        )
        .await
        .expect("a reset mail");
    let at = mail.text_body.find("/reset-password?token=").unwrap();
    let rest = &mail.text_body[at + "/reset-password?token=".len()..];
    rest.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn sails_jwt_client_story(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);

    // Create: its password rule, the confirmation, 201 {token}.
    for (password, confirm) in [
        ("abc12", "abc12"),
        ("abc12!x", "abc12!x"),
        ("kq7w2z9", "kq7w2z8"),
    ] {
        message(
            post(
                &app,
                "/user/create",
                None,
                &json!({"email": "ada@example.com", "password": password, "password_confirm": confirm}),
            )
            .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let first = token(
        post(
            &app,
            "/user/create",
            None,
            &json!({"email": "ada@example.com", "password": "kq7w2z9", "password_confirm": "kq7w2z9"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;

    // Log in: {token}; GET /user with it.
    let t = token(
        post(
            &app,
            "/user/login",
            None,
            &json!({"email": "ada@example.com", "password": "kq7w2z9"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let res = account(&app, &t).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
    assert!(me["id"].is_string());
    assert_eq!(
        account(&app, "nonsense").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Change the password: a new token, and every older one is dead.
    let new = token(
        post(
            &app,
            "/user/change_password",
            Some(&t),
            &json!({"email": "ada@example.com", "password": "kq7w2z9",
                    "new_password": "xyz321abc", "new_password_confirm": "xyz321abc"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(account(&app, &new).await.status(), StatusCode::OK);
    for old in [&first, &t] {
        assert_eq!(account(&app, old).await.status(), StatusCode::UNAUTHORIZED);
    }

    // Forgot and reset.
    let res = post(
        &app,
        "/user/forgot",
        None,
        &json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Check your email"})
    );
    let reset = reset_token(&sink, "ada@example.com").await;
    message(
        post(
            &app,
            "/user/reset_password",
            None,
            &json!({"email": "ada@example.com", "reset_token": "bogus",
                    "new_password": "n3wpass1", "new_password_confirm": "n3wpass1"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let res = post(
        &app,
        "/user/reset_password",
        None,
        &json!({"email": "ada@example.com", "reset_token": reset,
                "new_password": "n3wpass1", "new_password_confirm": "n3wpass1"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Done"})
    );
    assert_eq!(account(&app, &new).await.status(), StatusCode::UNAUTHORIZED);
    token(
        post(
            &app,
            "/user/login",
            None,
            &json!({"email": "ada@example.com", "password": "n3wpass1"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

async fn sails_jwt_locks_after_five_failures(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    token(
        post(
            &app,
            "/user/create",
            None,
            &json!({"email": "ada@example.com", "password": "kq7w2z9", "password_confirm": "kq7w2z9"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    for _ in 0..5 {
        message(
            post(
                &app,
                "/user/login",
                None,
                &json!({"email": "ada@example.com", "password": "wrong12"}),
            )
            .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    // Locked: even the right password gets 403.
    message(
        post(
            &app,
            "/user/login",
            None,
            &json!({"email": "ada@example.com", "password": "kq7w2z9"}),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // The profile's own (stricter, hour-long) lock does not lock the canonical API: its
    // failures are counted apart (issue 14, hole 9).
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "kq7w2z9"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn sails_jwt_users_are_shared_with_the_canonical_api(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    // Its rule allows letters and digits only, so this user's password is canonical too.
    token(
        post(
            &app,
            "/user/create",
            None,
            &json!({"email": "ada@example.com", "password": "Kq7w2z9Xy4", "password_confirm": "Kq7w2z9Xy4"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "Kq7w2z9Xy4"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    app.signup("grace@example.com").await;
    // The canonical password has spaces: the profile only checks that on new passwords.
    let t = token(
        post(
            &app,
            "/user/login",
            None,
            &json!({"email": "grace@example.com", "password": PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(account(&app, &t).await.status(), StatusCode::OK);
    assert_eq!(
        app.get_auth("/api/v1/me", &t).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn sails_jwt_refuses_an_account_with_a_second_factor(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let t = app.signup("ada@example.com").await;
    let token = t["access_token"].as_str().unwrap();
    crate::mfa::enrol_totp(&app, token).await;
    let res = post(
        &app,
        "/user/login",
        None,
        &json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"message": "This account signs in with a second factor"})
    );
    // No session was opened: only the sign-up's.
    assert_eq!(crate::mfa::session_count(&app, token).await, 1);
}

async fn sails_jwt_clients_send_no_captcha_and_the_canonical_api_still_asks_for_one(
    backend: Backend,
) {
    let sink = SmtpSink::start();
    let api = FakeApi::siteverify().await;
    let app = app!(
        with_profile(backend, &sink)
            .var("AUTH__CAPTCHA__ENABLED", "true")
            .var(
                "AUTH__CAPTCHA__VERIFY_URL",
                &format!("{}/siteverify", api.url)
            )
            .var("AUTH__CAPTCHA__SECRET", "captcha-secret"),
        start
    );
    let res = post(
        &app,
        "/user/create",
        None,
        &json!({"email": "ada@example.com", "password": "kq7w2z9", "password_confirm": "kq7w2z9"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let credentials = json!({"email": "ada@example.com", "password": "kq7w2z9"});
    let res = post(&app, "/user/login", None, &credentials).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The canonical routes keep their CAPTCHA.
    problem(
        app.post("/api/v1/auth/login", &credentials).await,
        StatusCode::BAD_REQUEST,
        "captcha_required",
    )
    .await;
}
