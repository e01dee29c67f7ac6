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
