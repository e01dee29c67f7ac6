//! Operating the server: database outages at start and while running, graceful
//! shutdown, metrics.

use std::sync::Arc;

use auth_e2e::proxy::{Mode, TcpProxy};
use auth_e2e::{Backend, PASSWORD, TestApp, app, on_both_backends, problem};
use reqwest::StatusCode;
use serde_json::json;

/// Ask `path` until it answers `status` (the server recovers in the background).
async fn eventually(app: &TestApp, path: &str, token: Option<&str>, status: StatusCode) {
    for _ in 0..240 {
        let mut req = app.client.get(app.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Ok(res) = req.send().await
            && res.status() == status
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("{path} never answered {status}");
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).send().await.unwrap()
}

/// The database is unreachable at start: the server listens anyway, live 200, ready 503,
/// API 503 + Retry-After; once the database answers it migrates and goes ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_at_start_is_waited_for() {
    let proxy = Arc::new(TcpProxy::start(Mode::Closed).await);
    let app = app!(
        TestApp::builder(Backend::Postgres)
            .through(proxy.clone())
            .var("AUTH__LIFECYCLE__DB_RETRY_MAX_SECS", "1")
            .var("AUTH__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
        start
    );
    assert_eq!(get(&app, "/health/live").await.status(), StatusCode::OK);
    let ready = get(&app, "/health/ready").await;
    assert!(ready.headers().contains_key("retry-after"));
    problem(ready, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let login = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(login.headers().contains_key("retry-after"));
    problem(login, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;

    proxy.set(Mode::Open);
    eventually(&app, "/health/ready", None, StatusCode::OK).await;
    let t = app.signup("ada@example.com").await;
    let me = app
        .get_auth("/api/v1/me", t["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), StatusCode::OK);
}

/// The database goes away while serving: 503 + Retry-After (no hang, no 500), readiness
/// 503; it comes back: service resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_gives_503_then_service_resumes() {
    let proxy = Arc::new(TcpProxy::start(Mode::Open).await);
    let app = app!(
        TestApp::builder(Backend::Postgres)
            .through(proxy.clone())
            .var("AUTH__DATABASE__CONNECT_TIMEOUT_SECS", "2")
            .var("AUTH__DATABASE__ACQUIRE_TIMEOUT_SECS", "2"),
        start
    );
    let t = app.signup("ada@example.com").await;
    let access = t["access_token"].as_str().unwrap();

    proxy.set(Mode::Closed);
    for _ in 0..3 {
        let res = app.get_auth("/api/v1/me", access).await;
        assert!(res.headers().contains_key("retry-after"));
        problem(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    }
    let ready = get(&app, "/health/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&app, "/health/live").await.status(), StatusCode::OK);

    proxy.set(Mode::Open);
    eventually(&app, "/api/v1/me", Some(access), StatusCode::OK).await;
    assert_eq!(get(&app, "/health/ready").await.status(), StatusCode::OK);
    let refreshed = app.refresh(t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
}

/// A graceful stop: readiness turns 503 first, the request in flight (held at the
/// database) completes, then the server stops with success and refuses connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_drains_the_request_in_flight() {
    let proxy = Arc::new(TcpProxy::start(Mode::Open).await);
    let app = app!(
        TestApp::builder(Backend::Postgres)
            .through(proxy.clone())
            .var("AUTH__LIFECYCLE__SHUTDOWN_DELAY_SECS", "2"),
        start
    );
    let t = app.signup("ada@example.com").await;
    let access = t["access_token"].as_str().unwrap().to_owned();

    proxy.set(Mode::Paused);
    let in_flight = {
        let (client, url) = (app.client.clone(), app.url("/api/v1/me"));
        tokio::spawn(async move { client.get(url).bearer_auth(access).send().await })
    };
    // The request has reached the database (its query is held by the proxy).
    while proxy.held() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let handle = app.handle();
    let stopping = tokio::spawn(async move { handle.stop(true).await });
    while !app.handle().is_stopping() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let ready = get(&app, "/health/ready").await;
    problem(ready, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;

    proxy.set(Mode::Open);
    let res = in_flight
        .await
        .unwrap()
        .expect("the request in flight completes");
    assert_eq!(res.status(), StatusCode::OK);
    stopping.await.unwrap();
    let server = app.server.lock().unwrap().take().unwrap();
    server
        .await
        .unwrap()
        .expect("the server stops with success");
    assert!(
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .is_err(),
        "the listener is closed"
    );
}

on_both_backends!(metrics_count_requests_sign_ins_and_resources);

async fn metrics_count_requests_sign_ins_and_resources(backend: Backend) {
    let app = app!(backend);
    let t = app.signup("ada@example.com").await;
    app.login("ada@example.com").await;
    let wrong = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "not the password at all"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let refreshed = app.refresh(t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let session = uuid::Uuid::new_v4();
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/me/sessions/{session}")))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/no/such/path-123").await.status(),
        StatusCode::NOT_FOUND
    );

    let res = get(&app, "/metrics").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    for line in [
        r#"http_requests_total{method="POST",route="/api/v1/auth/login",status="200"} 1"#,
        r#"http_requests_total{method="POST",route="/api/v1/auth/login",status="401"} 1"#,
        r#"http_requests_total{method="POST",route="/api/v1/auth/signup",status="201"} 1"#,
        r#"http_requests_total{method="DELETE",route="/api/v1/me/sessions/{id}",status="404"} 1"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"auth_logins_total{outcome="success"} 1"#,
        r#"auth_logins_total{outcome="failure"} 1"#,
        r#"auth_refreshes_total{outcome="success"} 1"#,
        r#"auth_security_events_total{kind="signed_up"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    for name in [
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/auth/login\"",
        "auth_password_hash_queue_depth ",
        "auth_password_hash_total ",
        "auth_password_hash_seconds_total ",
        "db_pool_max_connections ",
        "db_pool_connections ",
        "db_pool_idle_connections ",
        "db_pool_waiting ",
        "auth_outbox_backlog ",
    ] {
        assert!(text.contains(name), "missing {name:?} in\n{text}");
    }
    assert!(
        !text.contains("path-123"),
        "raw paths must not become labels"
    );
}

/// On the main port, a bearer token and an address allow-list can guard `/metrics`; on
/// an admin port it is served alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token_or_move_to_an_admin_port() {
    let app = app!(
        TestApp::builder(Backend::Sqlite)
            .var("AUTH__METRICS__BEARER_TOKEN", "scrape-token-0123456789"),
        start
    );
    problem(
        get(&app, "/metrics").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let res = app.get_auth("/metrics", "scrape-token-0123456789").await;
    assert_eq!(res.status(), StatusCode::OK);

    let app = app!(
        TestApp::builder(Backend::Sqlite).var("AUTH__METRICS__ALLOW_FROM", "10.0.0.0/8"),
        start
    );
    problem(
        get(&app, "/metrics").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = app!(
        TestApp::builder(Backend::Sqlite).var("AUTH__METRICS__PORT", &port.to_string()),
        start
    );
    problem(
        get(&app, "/metrics").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let text = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("db_pool_max_connections"), "{text}");
}

on_both_backends!(metrics_behind_a_proxy_admit_the_forwarded_client_not_the_proxy);

/// A reverse proxy on the same host: its requests come from 127.0.0.1, inside the default
/// `allow_from`. The client it forwards for is what counts; a forwarded request from a proxy
/// nobody declared is refused.
async fn metrics_behind_a_proxy_admit_the_forwarded_client_not_the_proxy(backend: Backend) {
    let scrape = |app: &TestApp, forwarded_for: Option<&'static str>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(ip) = forwarded_for {
            req = req.header("x-forwarded-for", ip);
        }
        async move { req.send().await.unwrap().status() }
    };
    // The proxy is declared: the forwarded address is judged.
    let app = app!(
        TestApp::builder(backend).var("AUTH__SERVER__TRUSTED_PROXIES", "127.0.0.1/32"),
        start
    );
    assert_eq!(
        scrape(&app, Some("203.0.113.9")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(scrape(&app, Some("127.0.0.1")).await, StatusCode::OK);
    assert_eq!(scrape(&app, None).await, StatusCode::OK, "a local scraper");
    app.stop().await;

    // Not declared: a forwarded request says nothing about its client and is refused.
    let app = app!(backend);
    assert_eq!(
        scrape(&app, Some("203.0.113.9")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(scrape(&app, Some("127.0.0.1")).await, StatusCode::NOT_FOUND);
    assert_eq!(scrape(&app, None).await, StatusCode::OK);
    app.stop().await;

    // Scraping from anywhere through the declared proxy: the bearer token decides.
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__SERVER__TRUSTED_PROXIES", "127.0.0.1/32")
            .var("AUTH__METRICS__ALLOW_FROM", "0.0.0.0/0,::/0")
            .var("AUTH__METRICS__BEARER_TOKEN", "scrape-token-0123456789"),
        start
    );
    assert_eq!(
        scrape(&app, Some("203.0.113.9")).await,
        StatusCode::NOT_FOUND
    );
    let res = app
        .client
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.9")
        .bearer_auth("scrape-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

on_both_backends!(a_rotated_key_is_picked_up_without_restart_and_old_tokens_stay_valid);

/// `keys rotate` on a running deployment: the new key is published, then signs, on every
/// node, without a restart; tokens signed by the old key still verify.
async fn a_rotated_key_is_picked_up_without_restart_and_old_tokens_stay_valid(backend: Backend) {
    let node = |b: auth_e2e::TestAppBuilder| {
        b.var("AUTH__KEYS__RELOAD_INTERVAL_SECS", "1")
            .var("AUTH__KEYS__ACTIVATION_DELAY_SECS", "0")
    };
    let a = app!(node(TestApp::builder(backend)), start);
    let old_token = a.signup("ada@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let kid_of = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let old_kid = kid_of(&old_token);

    let home = match backend {
        Backend::Sqlite => auth_http::keys::GeneratedKeyHome::DataDir,
        Backend::Postgres => auth_http::keys::GeneratedKeyHome::Database(&a.db),
    };
    let rotation = auth_http::keys::rotate(&a.settings, &home).await.unwrap();
    assert_ne!(rotation.kid, old_kid);

    // Published, then signing, after a reload.
    let mut new_token = String::new();
    for _ in 0..80 {
        let t = a.login("ada@example.com").await;
        new_token = t["access_token"].as_str().unwrap().to_owned();
        if kid_of(&new_token) == rotation.kid {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(
        kid_of(&new_token),
        rotation.kid,
        "the rotated key never signed"
    );
    let jwks: serde_json::Value = get(&a, "/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&rotation.kid.as_str()),
        "{kids:?}"
    );
    for token in [&old_token, &new_token] {
        assert_eq!(
            a.get_auth("/api/v1/me", token).await.status(),
            StatusCode::OK
        );
    }
    // A node started after the rotation signs with the new key and accepts the old one.
    let b = app!(node(TestApp::builder(backend).sharing_with(&a)), start);
    let t = b.login("ada@example.com").await;
    assert_eq!(kid_of(t["access_token"].as_str().unwrap()), rotation.kid);
    assert_eq!(
        b.get_auth("/api/v1/me", &old_token).await.status(),
        StatusCode::OK
    );
}

/// A database that stalls (connections open, no answers) gives 503 after
/// `database.query_timeout_secs` instead of hanging; answers resume when it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_gives_503_instead_of_hanging() {
    let proxy = Arc::new(TcpProxy::start(Mode::Open).await);
    let app = app!(
        TestApp::builder(Backend::Postgres)
            .through(proxy.clone())
            .var("AUTH__DATABASE__QUERY_TIMEOUT_SECS", "1"),
        start
    );
    let t = app.signup("ada@example.com").await;
    let access = t["access_token"].as_str().unwrap();

    proxy.set(Mode::Paused);
    let res = app.get_auth("/api/v1/me", access).await;
    assert!(res.headers().contains_key("retry-after"));
    problem(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let ready = get(&app, "/health/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.set(Mode::Open);
    eventually(&app, "/api/v1/me", Some(access), StatusCode::OK).await;
}
