//! Schemathesis against the running server: generated requests for every operation of the
//! OpenAPI document (positive and negative data, coverage, fuzzing and stateful phases,
//! bounded), and every check but `positive_data_acceptance`: no 5xx, no undocumented
//! status code, content type or header, no response that breaks its schema, 405 for
//! undeclared methods, invalid data refused.
//!
//! `positive_data_acceptance` is left out on purpose: on an auth API, most schema-valid
//! requests must be refused (a well-formed but unknown reset token, a password the policy
//! rejects, an address the rate limiter or the redirect allow-list refuses).

use std::process::Command;

use auth_e2e::{Backend, app};

use crate::peers::peers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_or_schema_violation() {
    let Some(peers) = peers("schemathesis_finds_no_server_error_or_schema_violation") else {
        return;
    };
    let app = app!(Backend::Sqlite);
    let work = std::env::temp_dir().join(format!(
        "auth-e2e-schemathesis-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&work).unwrap();
    let schema = app.url("/api/v1/openapi.json");
    let exe = peers.schemathesis.clone();
    let dir = work.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(exe)
            .args([
                "run",
                &schema,
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "25",
                "--seed",
                "20261122",
                "--no-shrink",
                "--workers",
                "1",
                "--request-timeout",
                "20",
                "--output-truncate",
                "false",
            ])
            // Its own state (.hypothesis, reports) stays out of the repository.
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .expect("schemathesis runs");
    let _ = std::fs::remove_dir_all(&work);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Found by schemathesis: a JSON array filled a request struct by position
/// (`PATCH /api/v1/me` with `[null, null]` cleared the profile and answered 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_is_not_a_request_body() {
    let app = app!(Backend::Sqlite);
    let t = app.signup("ada@example.com").await;
    let token = t["access_token"].as_str().unwrap();
    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(token)
        .json(&serde_json::json!([null, null]))
        .send()
        .await
        .unwrap();
    auth_e2e::problem(res, reqwest::StatusCode::BAD_REQUEST, "invalid_request").await;
    let me: serde_json::Value = app
        .get_auth("/api/v1/me", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], t["user"]["name"], "the profile is unchanged");
    let res = app
        .post(
            "/api/v1/auth/login",
            &serde_json::json!(["ada@example.com", auth_e2e::PASSWORD]),
        )
        .await;
    auth_e2e::problem(res, reqwest::StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = app
        .post(
            "/api/v1/auth/refresh",
            &serde_json::json!([t["refresh_token"]]),
        )
        .await;
    auth_e2e::problem(res, reqwest::StatusCode::BAD_REQUEST, "invalid_request").await;
}

/// Found by schemathesis: a known path under another method answered 404; it is 405 with
/// `Allow` (taken from the OpenAPI document), and an unknown path stays 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_path_under_another_method_is_405_with_allow() {
    let app = app!(Backend::Sqlite);
    let res = app
        .client
        .delete(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, PATCH");
    auth_e2e::problem(
        res,
        reqwest::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let res = app
        .client
        .get(app.url("/api/v1/me/sessions/0190a0a0-0000-7000-8000-000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "DELETE");
    assert_eq!(res.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    let res = app
        .client
        .get(app.url("/api/v1/no-such-route"))
        .send()
        .await
        .unwrap();
    auth_e2e::problem(res, reqwest::StatusCode::NOT_FOUND, "not_found").await;
}
