use auth_e2e::{Backend, TestApp, app, on_both_backends};
use reqwest::StatusCode;
use serde_json::Value;

on_both_backends!(health_probes_answer);

async fn health_probes_answer(backend: Backend) {
    let app = app!(backend);
    assert_eq!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok");
}

/// Readiness goes 503 with Retry-After when the database disappears, and requests that
/// need it get 503 rather than hanging or failing with a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_a_lost_database() {
    let app = app!(
        TestApp::builder(Backend::Postgres)
            .var("AUTH__DATABASE__CONNECT_TIMEOUT_SECS", "2")
            .var("AUTH__DATABASE__ACQUIRE_TIMEOUT_SECS", "2"),
        start
    );
    let t = app.signup("ada@example.com").await;
    app.drop_database().await;
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.headers().contains_key("retry-after"));
    let res = app
        .get_auth("/api/v1/me", t["access_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
