//! The `timelapseme` profile: credential sign-up and sign-in, rotating refresh tokens,
//! RS256 tokens with `nickname` and `userId`, plain-text errors.

use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    timelapseme_client_story,
    timelapseme_users_are_shared_with_the_canonical_api,
);

const PREFIX: &str = "/compat/timelapseme";

fn fixture(name: &str) -> String {
    format!("{}/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn with_profile(backend: Backend) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__COMPAT__TIMELAPSEME__ENABLED", "true")
        .var(
            "AUTH__COMPAT__TIMELAPSEME__PRIVATE_KEY_PATH",
            &fixture("rs256-private.pem"),
        )
        .var(
            "AUTH__COMPAT__TIMELAPSEME__PUBLIC_KEY_PATH",
            &fixture("rs256-public.pem"),
        )
        .var(
            "AUTH__COMPAT__TIMELAPSEME__ISSUER",
            "https://auth.timelapse.me",
        )
        .var(
            "AUTH__COMPAT__TIMELAPSEME__AUDIENCE",
            "https://api.timelapse.me",
        )
}

async fn post(app: &TestApp, route: &str, body: &Value) -> Response {
    app.post(&format!("{PREFIX}{route}"), body).await
}

async fn pair(res: Response) -> (String, String) {
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["acessToken", "refreshToken"]);
    (
        body["acessToken"].as_str().unwrap().to_owned(),
        body["refreshToken"].as_str().unwrap().to_owned(),
    )
}

async fn plain(res: Response, status: StatusCode) -> String {
    assert_eq!(res.status(), status);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    res.text().await.unwrap()
}

fn claims(token: &str) -> Value {
    let public = std::fs::read(fixture("rs256-public.pem")).unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&["https://auth.timelapse.me"]);
    validation.set_audience(&["https://api.timelapse.me"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

async fn timelapseme_client_story(backend: Backend) {
    let app = app!(with_profile(backend), start);
    let signup = json!({
        "email": "melvin@example.com",
        "password": "Moo00!_*&-long-enough",
        "passwordConfirm": "Moo00!_*&-long-enough",
        "nickname": "Melvin Friedman",
    });
    let mut mismatch = signup.clone();
    mismatch["passwordConfirm"] = json!("something else");
    assert!(
        !plain(
            post(&app, "/api/v1/signup/credentials", &mismatch).await,
            StatusCode::BAD_REQUEST
        )
        .await
        .is_empty()
    );
    let (access, _) = pair(post(&app, "/api/v1/signup/credentials", &signup).await).await;
    let c = claims(&access);
    assert_eq!(c["nickname"], "Melvin Friedman");
    assert_eq!(c["userId"], c["sub"]);
    plain(
        post(&app, "/api/v1/signup/credentials", &signup).await,
        StatusCode::CONFLICT,
    )
    .await;

    // Sign in.
    let body = plain(
        post(
            &app,
            "/api/v1/auth/credentials",
            &json!({"email": "melvin@example.com", "password": "wrong password"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(body, "Invalid credentials");
    let (access, refresh) = pair(
        post(
            &app,
            "/api/v1/auth/credentials",
            &json!({"email": "melvin@example.com", "password": "Moo00!_*&-long-enough"}),
        )
        .await,
    )
    .await;
    assert_eq!(claims(&access)["nickname"], "Melvin Friedman");

    // Rotating refresh tokens: the prior one is invalid at once (and its reuse ends the
    // session).
    let (_, rotated) =
        pair(post(&app, "/api/v1/refresh", &json!({"refreshToken": refresh})).await).await;
    assert_ne!(rotated, refresh);
    plain(
        post(&app, "/api/v1/refresh", &json!({"refreshToken": refresh})).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    plain(
        post(&app, "/api/v1/refresh", &json!({"refreshToken": rotated})).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    plain(
        post(&app, "/api/v1/refresh", &json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

async fn timelapseme_users_are_shared_with_the_canonical_api(backend: Backend) {
    let app = app!(with_profile(backend), start);
    pair(
        post(
            &app,
            "/api/v1/signup/credentials",
            &json!({"email": "ada@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD, "nickname": "Ada"}),
        )
        .await,
    )
    .await;
    let canonical = app.login("ada@example.com").await;
    assert!(canonical["access_token"].is_string());

    app.signup("grace@example.com").await;
    let (access, _) = pair(
        post(
            &app,
            "/api/v1/auth/credentials",
            &json!({"email": "grace@example.com", "password": PASSWORD}),
        )
        .await,
    )
    .await;
    assert_eq!(
        app.get_auth("/api/v1/me", &access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
