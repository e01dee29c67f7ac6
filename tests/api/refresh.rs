use std::collections::HashSet;

use auth_core::ports::SessionStore;
use auth_e2e::{Backend, TestApp, app, on_both_backends, problem};
use reqwest::StatusCode;
use serde_json::Value;

use crate::password_sessions::decode_claims;

on_both_backends!(
    refresh_accepts_the_token_as_a_bearer_header,
    a_just_rotated_token_gets_the_current_one_back,
    reuse_after_the_grace_window_revokes_the_session,
    fifty_concurrent_refreshes_leave_one_session_family,
    junk_refresh_tokens_are_refused,
);

async fn refresh_accepts_the_token_as_a_bearer_header(backend: Backend) {
    let app = app!(backend);
    let t = app.signup("ada@example.com").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .bearer_auth(t["refresh_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_ne!(body["refresh_token"], t["refresh_token"]);
    let res = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

async fn a_just_rotated_token_gets_the_current_one_back(backend: Backend) {
    let app = app!(backend);
    let t0 = app.signup("ada@example.com").await;
    let t1: Value = app
        .refresh(t0["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let t2: Value = app
        .refresh(t1["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    // Two generations back, within the 10 s window: the session's current token.
    let res = app.refresh(t0["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["refresh_token"], t2["refresh_token"]);
    assert_eq!(
        decode_claims(again["access_token"].as_str().unwrap())["sid"],
        decode_claims(t0["access_token"].as_str().unwrap())["sid"]
    );
    // Nothing was revoked and the current token still rotates.
    assert_eq!(
        app.refresh(t2["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}

async fn reuse_after_the_grace_window_revokes_the_session(backend: Backend) {
    let app = app!(
        TestApp::builder(backend).var("AUTH__TOKENS__REFRESH_REUSE_GRACE_SECS", "0"),
        start
    );
    let t0 = app.signup("ada@example.com").await;
    let t1: Value = app
        .refresh(t0["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    problem(
        app.refresh(t0["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    let sid = decode_claims(t0["access_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        app.db
            .session(sid)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some(),
        "reuse must revoke the session"
    );
    // The thief and the legitimate holder are both out.
    problem(
        app.refresh(t1["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    problem(
        app.get_auth("/api/v1/me", t1["access_token"].as_str().unwrap())
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

async fn fifty_concurrent_refreshes_leave_one_session_family(backend: Backend) {
    let app = std::sync::Arc::new(app!(backend));
    let t0 = app.signup("ada@example.com").await;
    let token = t0["refresh_token"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = app.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let res = app.refresh(&token).await;
            let status = res.status();
            (status, res.json::<Value>().await.ok())
        }));
    }
    let mut sids = HashSet::new();
    let mut ok = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert!(
            !status.is_server_error(),
            "a concurrent refresh failed with {status}: {body:?}"
        );
        if status == StatusCode::OK {
            ok += 1;
            let body = body.unwrap();
            sids.insert(
                decode_claims(body["access_token"].as_str().unwrap())["sid"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    // All fall within the grace window, so all succeed, in the one session.
    assert_eq!(ok, 50);
    assert_eq!(sids.len(), 1);
    let user_id = t0["user"]["id"].as_str().unwrap().parse().unwrap();
    let live = app.db.unrevoked_sessions_of(user_id).await.unwrap();
    assert_eq!(live.len(), 1, "exactly one live session");
    // Exactly one token of the family is current, and it works.
    let sessions: Value = app
        .get_auth("/api/v1/me/sessions", t0["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1);
}

async fn junk_refresh_tokens_are_refused(backend: Backend) {
    let app = app!(backend);
    for junk in ["", "x", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let res = app.refresh(junk).await;
        problem(res, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    }
}
