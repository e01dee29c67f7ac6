use auth_core::ports::{SessionStore, UserStore};
use auth_e2e::{Backend, PASSWORD, app, on_both_backends, problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    signup_login_me_refresh_logout,
    signup_refuses_taken_emails_case_insensitively,
    signup_validates_input_with_specific_codes,
    login_failures_look_the_same_for_unknown_and_known_emails,
    logout_all_ends_every_session,
    logout_others_keeps_the_caller,
    profile_update_and_session_management,
);

fn sid(tokens: &Value) -> auth_core::model::SessionId {
    let claims = decode_claims(tokens["access_token"].as_str().unwrap());
    claims["sid"].as_str().unwrap().parse().unwrap()
}

pub fn decode_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn signup_login_me_refresh_logout(backend: Backend) {
    let app = app!(backend);
    let res = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let signup: Value = res.json().await.unwrap();
    assert_eq!(signup["token_type"], "Bearer");
    assert_eq!(signup["expires_in"], 900);
    assert!(signup["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp());
    assert_eq!(signup["user"]["email"], "Ada@example.com");
    assert_eq!(signup["user"]["email_verified"], false);
    assert_eq!(signup["user"]["name"], "Ada");
    assert_eq!(signup["user"]["roles"], json!([]));
    assert!(
        signup["user"]["avatar_url"]
            .as_str()
            .unwrap()
            .starts_with("https://gravatar.com/avatar/")
    );

    // The password is stored as an Argon2id hash with the OWASP parameters.
    let creds = app
        .db
        .credentials_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(
        creds
            .password_hash
            .unwrap()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );

    let login = app.login("ada@example.com").await;
    let access = login["access_token"].as_str().unwrap();
    let me: Value = app
        .get_auth("/api/v1/me", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], signup["user"]["id"]);

    let res = app.refresh(login["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let refreshed: Value = res.json().await.unwrap();
    assert_ne!(refreshed["refresh_token"], login["refresh_token"]);
    assert_eq!(sid(&refreshed), sid(&login));

    let res = app
        .post_auth(
            "/api/v1/auth/logout",
            refreshed["access_token"].as_str().unwrap(),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The session is revoked in the database, and both of its tokens die at once.
    assert!(
        app.db
            .session(sid(&login))
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    problem(
        app.get_auth("/api/v1/me", refreshed["access_token"].as_str().unwrap())
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    problem(
        app.refresh(refreshed["refresh_token"].as_str().unwrap())
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    // The signup session is untouched.
    assert_eq!(
        app.get_auth("/api/v1/me", signup["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}

async fn signup_refuses_taken_emails_case_insensitively(backend: Backend) {
    let app = app!(backend);
    app.signup("ada@example.com").await;
    let res = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "ADA@example.COM", "password": "another good passphrase"}),
        )
        .await;
    problem(res, StatusCode::CONFLICT, "email_taken").await;
    // The first account keeps its password.
    app.login("ada@example.com").await;
}

async fn signup_validates_input_with_specific_codes(backend: Backend) {
    let app = app!(backend);
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (
            json!({"email": "a@example.com", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({"email": "a@example.com", "password": "password123"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({"email": "a@example.com", "password": "x".repeat(129)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "n".repeat(201)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"email": "a@example.com"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"email": 42, "password": PASSWORD}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        problem(app.post("/api/v1/auth/signup", &body).await, status, code).await;
    }
    assert!(
        app.db
            .credentials_by_email("a@example.com")
            .await
            .unwrap()
            .is_none(),
        "a refused signup left a user behind"
    );
}

async fn login_failures_look_the_same_for_unknown_and_known_emails(backend: Backend) {
    let app = app!(backend);
    app.signup("ada@example.com").await;
    let wrong = problem(
        app.post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "wrong password!"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown = problem(
        app.post(
            "/api/v1/auth/login",
            &json!({"email": "nobody@example.com", "password": "wrong password!"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown);
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "nobody@example.com", "password": "x"}),
        )
        .await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
}

async fn logout_all_ends_every_session(backend: Backend) {
    let app = app!(backend);
    let first = app.signup("ada@example.com").await;
    let second = app.login("ada@example.com").await;
    let third = app.login("ada@example.com").await;
    let other = app.signup("bob@example.com").await;

    let res = app
        .post_auth(
            "/api/v1/auth/logout",
            third["access_token"].as_str().unwrap(),
            &json!({"scope": "all"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for t in [&first, &second, &third] {
        assert_eq!(
            app.get_auth("/api/v1/me", t["access_token"].as_str().unwrap())
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(t["refresh_token"].as_str().unwrap())
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let user_id = first["user"]["id"].as_str().unwrap().parse().unwrap();
    assert!(
        app.db
            .unrevoked_sessions_of(user_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.get_auth("/api/v1/me", other["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}

async fn logout_others_keeps_the_caller(backend: Backend) {
    let app = app!(backend);
    let first = app.signup("ada@example.com").await;
    let second = app.login("ada@example.com").await;
    let res = app
        .post_auth(
            "/api/v1/auth/logout",
            second["access_token"].as_str().unwrap(),
            &json!({"scope": "others"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_auth("/api/v1/me", first["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_auth("/api/v1/me", second["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    let res = app
        .post_auth(
            "/api/v1/auth/logout",
            second["access_token"].as_str().unwrap(),
            &json!({"scope": "everything"}),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn profile_update_and_session_management(backend: Backend) {
    let app = app!(backend);
    let first = app.signup("ada@example.com").await;
    let access = first["access_token"].as_str().unwrap();
    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(access)
        .json(&json!({"name": "Countess", "avatar_url": "https://img.example.com/ada.png"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["name"], "Countess");
    assert_eq!(me["avatar_url"], "https://img.example.com/ada.png");
    let stored = app
        .db
        .user_by_id(me["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name.as_deref(), Some("Countess"));

    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(access)
        .json(&json!({"avatar_url": "ftp://x"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(access)
        .json(&json!({"name": null}))
        .send()
        .await
        .unwrap();
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["name"], Value::Null);
    assert_eq!(
        me["avatar_url"], "https://img.example.com/ada.png",
        "an absent field is left alone"
    );

    let second = app.login("ada@example.com").await;
    let list: Value = app
        .get_auth("/api/v1/me/sessions", access)
        .await
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], sid(&first).to_string());
    assert_eq!(current[0]["ip"], "127.0.0.1");
    let other_id = sid(&second).to_string();

    let res = app
        .client
        .delete(app.url(&format!("/api/v1/me/sessions/{other_id}")))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_auth("/api/v1/me", second["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Someone else's session, an unknown id and garbage are all simply not found.
    let bob = app.signup("bob@example.com").await;
    for id in [
        sid(&bob).to_string(),
        uuid::Uuid::new_v4().to_string(),
        "garbage".into(),
    ] {
        let res = app
            .client
            .delete(app.url(&format!("/api/v1/me/sessions/{id}")))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(
        app.get_auth("/api/v1/me", bob["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}
