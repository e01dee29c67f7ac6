use auth_e2e::{Backend, TestApp, app, on_both_backends, problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    revocation_takes_refresh_or_access_tokens_as_form_or_json,
    introspection_needs_client_credentials
);

async fn revocation_takes_refresh_or_access_tokens_as_form_or_json(backend: Backend) {
    let app = app!(backend);
    let t = app.signup("ada@example.com").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/revoke"))
        .form(&[
            ("token", t["refresh_token"].as_str().unwrap()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(t["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_auth("/api/v1/me", t["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let t = app.login("ada@example.com").await;
    let res = app
        .post("/api/v1/auth/revoke", &json!({"token": t["access_token"]}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(t["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Unknown and malformed tokens: 200 all the same (RFC 7009 section 2.2).
    for junk in ["junk", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        assert_eq!(
            app.post("/api/v1/auth/revoke", &json!({"token": junk}))
                .await
                .status(),
            StatusCode::OK
        );
    }
    problem(
        app.post("/api/v1/auth/revoke", &json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

async fn introspection_needs_client_credentials(backend: Backend) {
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__INTROSPECTION__CLIENT_ID", "billing-api")
            .var(
                "AUTH__INTROSPECTION__CLIENT_SECRET",
                "billing-api-secret-0123"
            ),
        start
    );
    let t = app.signup("ada@example.com").await;
    let introspect = |token: &str, user: &str, pass: &str| {
        app.client
            .post(app.url("/api/v1/auth/introspect"))
            .basic_auth(user, Some(pass))
            .form(&[("token", token)])
            .send()
    };

    let res = introspect(t["access_token"].as_str().unwrap(), "billing-api", "wrong")
        .await
        .unwrap();
    let www: Vec<&str> = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(www.contains(&"Bearer"), "{www:?}");
    problem(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let res = app
        .post(
            "/api/v1/auth/introspect",
            &json!({"token": t["access_token"]}),
        )
        .await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let body: Value = introspect(
        t["access_token"].as_str().unwrap(),
        "billing-api",
        "billing-api-secret-0123",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], t["user"]["id"]);
    assert_eq!(body["token_type"], "access_token");
    assert!(body["sid"].is_string() && body["exp"].is_i64());

    // client_secret_post with JSON works too, for the refresh token.
    let res = app
        .post("/api/v1/auth/introspect", &json!({"token": t["refresh_token"], "client_id": "billing-api", "client_secret": "billing-api-secret-0123"}))
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "refresh_token");

    app.post_auth(
        "/api/v1/auth/logout",
        t["access_token"].as_str().unwrap(),
        &json!({}),
    )
    .await;
    for token in [
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
        "junk",
    ] {
        let body: Value = introspect(token, "billing-api", "billing-api-secret-0123")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body, json!({"active": false}));
    }
}
