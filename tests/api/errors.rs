use auth_e2e::{Backend, TestApp, app, on_both_backends, problem};
use reqwest::StatusCode;

on_both_backends!(malformed_requests_get_problem_json_never_500);

async fn malformed_requests_get_problem_json_never_500(backend: Backend) {
    let app = app!(
        TestApp::builder(backend).var("AUTH__SERVER__MAX_BODY_BYTES", "4096"),
        start
    );
    let post = |path: &str, content_type: &str, body: String| {
        app.client
            .post(app.url(path))
            .header("content-type", content_type.to_owned())
            .body(body)
            .send()
    };
    for path in [
        "/api/v1/auth/signup",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
    ] {
        problem(
            post(path, "application/json", "{not json".into())
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        problem(
            post(path, "text/plain", r#"{"email":"a@example.com"}"#.into())
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        problem(
            post(path, "application/json", "[]".into()).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        let huge = format!(
            r#"{{"email":"a@example.com","password":"{}"}}"#,
            "x".repeat(10_000)
        );
        problem(
            post(path, "application/json", huge).await.unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .await;
    }
    for path in ["/api/v1/auth/revoke", "/api/v1/auth/introspect"] {
        problem(
            post(path, "application/json", "{".into()).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        problem(
            post(path, "text/plain", "token=x".into()).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        problem(
            post(path, "application/json", "x".repeat(5000))
                .await
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .await;
    }
    // A missing Content-Type on a JSON route is a bad request too.
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .body(r#"{"email":"a@example.com","password":"x"}"#)
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;

    problem(
        app.client.get(app.url("/nowhere")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        app.client
            .get(app.url("/api/v1/auth/login"))
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert!(res.headers().contains_key("x-request-id"));
    problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
}
