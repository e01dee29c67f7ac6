//! Abuse protection over HTTP: rate limits, trusted proxies, lockout, CAPTCHA, breached passwords.

use auth_e2e::{Backend, FakeApi, PASSWORD, TestApp, app, on_both_backends, problem};
use auth_notify::testing::SmtpSink;
use reqwest::StatusCode;
use serde_json::json;

on_both_backends!(
    login_rate_limit_gives_429_with_retry_after,
    spoofed_forwarded_for_is_ignored_unless_the_peer_is_trusted,
    ipv6_clients_are_limited_by_their_64_network,
    lockout_story_over_http,
    captcha_is_required_and_checked_against_siteverify,
    breached_passwords_are_refused_when_the_check_is_on,
    a_full_hashing_queue_answers_503_and_clients_that_left_cost_no_hash,
    failures_lock_an_account_for_the_failing_client_only,
);

async fn login(app: &TestApp, email: &str, password: &str, xff: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap()
}

async fn login_rate_limit_gives_429_with_retry_after(backend: Backend) {
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__RATE_LIMITS__LOGIN__PER_IP", "3")
            .var("AUTH__RATE_LIMITS__LOGIN__WINDOW_SECS", "3600")
            .var("AUTH__LOCKOUT__ENABLED", "false"),
        start
    );
    app.signup("ada@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            login(&app, "ada@example.com", PASSWORD, None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let res = login(&app, "ada@example.com", PASSWORD, None).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn spoofed_forwarded_for_is_ignored_unless_the_peer_is_trusted(backend: Backend) {
    let untrusted = app!(
        TestApp::builder(backend)
            .var("AUTH__RATE_LIMITS__LOGIN__PER_IP", "2")
            .var("AUTH__RATE_LIMITS__LOGIN__WINDOW_SECS", "3600")
            .var("AUTH__LOCKOUT__ENABLED", "false"),
        start
    );
    for i in 0..2 {
        login(
            &untrusted,
            "x@example.com",
            "wrong password!",
            Some(&format!("198.51.100.{i}")),
        )
        .await;
    }
    let res = login(
        &untrusted,
        "x@example.com",
        "wrong password!",
        Some("198.51.100.99"),
    )
    .await;
    problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    let behind_proxy = app!(
        TestApp::builder(backend)
            .var("AUTH__RATE_LIMITS__LOGIN__PER_IP", "2")
            .var("AUTH__RATE_LIMITS__LOGIN__WINDOW_SECS", "3600")
            .var("AUTH__LOCKOUT__ENABLED", "false")
            .var("AUTH__SERVER__TRUSTED_PROXIES", "127.0.0.1,::1"),
        start
    );
    behind_proxy.signup("ada@example.com").await;
    for i in 0..5 {
        let res = login(
            &behind_proxy,
            "ada@example.com",
            PASSWORD,
            Some(&format!("198.51.100.{i}")),
        )
        .await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "each forwarded client has its own count"
        );
    }
    let sessions: serde_json::Value = {
        let t: serde_json::Value = login(
            &behind_proxy,
            "ada@example.com",
            PASSWORD,
            Some("203.0.113.5"),
        )
        .await
        .json()
        .await
        .unwrap();
        behind_proxy
            .get_auth("/api/v1/me/sessions", t["access_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap()
    };
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["ip"] == "203.0.113.5"),
        "the forwarded address is recorded"
    );
}

async fn lockout_story_over_http(backend: Backend) {
    let app = app!(
        TestApp::builder(backend).var("AUTH__LOCKOUT__THRESHOLD", "3"),
        start
    );
    app.signup("ada@example.com").await;
    for _ in 0..3 {
        problem(
            login(&app, "ada@example.com", "wrong password!", None).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    let res = login(&app, "ada@example.com", PASSWORD, None).await;
    assert_eq!(res.headers()["retry-after"], "900");
    let locked = problem(res, StatusCode::FORBIDDEN, "account_locked").await;
    // An unknown address locks the same way, with the same answer.
    for _ in 0..3 {
        login(&app, "ghost@example.com", "wrong password!", None).await;
    }
    let ghost = problem(
        login(&app, "ghost@example.com", "whatever pass", None).await,
        StatusCode::FORBIDDEN,
        "account_locked",
    )
    .await;
    assert_eq!(locked, ghost);
    // Other accounts are unaffected.
    app.signup("bob@example.com").await;
    app.login("bob@example.com").await;
}

async fn captcha_is_required_and_checked_against_siteverify(backend: Backend) {
    let api = FakeApi::siteverify().await;
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__CAPTCHA__ENABLED", "true")
            .var(
                "AUTH__CAPTCHA__VERIFY_URL",
                &format!("{}/siteverify", api.url)
            )
            .var("AUTH__CAPTCHA__SECRET", "captcha-secret"),
        start
    );
    let body = |token: Option<&str>| json!({"email": "ada@example.com", "password": PASSWORD, "captcha_token": token});
    problem(
        app.post("/api/v1/auth/signup", &body(None)).await,
        StatusCode::BAD_REQUEST,
        "captcha_required",
    )
    .await;
    problem(
        app.post("/api/v1/auth/signup", &body(Some("bad-token")))
            .await,
        StatusCode::BAD_REQUEST,
        "captcha_failed",
    )
    .await;
    assert_eq!(
        app.post("/api/v1/auth/signup", &body(Some("good-token")))
            .await
            .status(),
        StatusCode::CREATED
    );
    problem(
        app.post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "captcha_required",
    )
    .await;
    assert_eq!(
        app.post("/api/v1/auth/login", &body(Some("good-token")))
            .await
            .status(),
        StatusCode::OK
    );
    let forgot = app
        .post(
            "/api/v1/auth/password/forgot",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    problem(forgot, StatusCode::BAD_REQUEST, "captcha_required").await;
    let forgot = app
        .post(
            "/api/v1/auth/password/forgot",
            &json!({"email": "ada@example.com", "captcha_token": "good-token"}),
        )
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
}

async fn breached_passwords_are_refused_when_the_check_is_on(backend: Backend) {
    let api = FakeApi::pwned_range().await;
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__PASSWORD_CHECKS__BREACHED_CHECK", "true")
            .var("AUTH__PASSWORD_CHECKS__BREACHED_API_URL", &api.url),
        start
    );
    let res = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "ada@example.com", "password": "password-of-ada-1"}),
        )
        .await;
    let body = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    assert!(
        body["detail"].as_str().unwrap().contains("breach"),
        "{body}"
    );
    app.signup("ada@example.com").await;
    // The service being down lets passwords through rather than blocking sign-ups.
    drop(api);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.signup("bob@example.com").await;
}

/// Two server processes on one PostgreSQL share the counters: the limit is not doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_rate_limits() {
    let a = app!(
        TestApp::builder(Backend::Postgres)
            .var("AUTH__RATE_LIMITS__LOGIN__PER_IP", "4")
            .var("AUTH__RATE_LIMITS__LOGIN__WINDOW_SECS", "3600")
            .var("AUTH__LOCKOUT__ENABLED", "false"),
        start
    );
    let b = app!(
        TestApp::builder(Backend::Postgres)
            .var("AUTH__RATE_LIMITS__LOGIN__PER_IP", "4")
            .var("AUTH__RATE_LIMITS__LOGIN__WINDOW_SECS", "3600")
            .var("AUTH__LOCKOUT__ENABLED", "false")
            .sharing_with(&a),
        start
    );
    a.signup("ada@example.com").await;
    for node in [&a, &b, &a, &b] {
        assert_eq!(
            login(node, "ada@example.com", PASSWORD, None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    for node in [&a, &b] {
        problem(
            login(node, "ada@example.com", PASSWORD, None).await,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        )
        .await;
    }
}

/// With `rate_limits.backend = "redis"`, nodes share counters through Redis even on
/// separate SQLite files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_shares_counters_between_nodes() {
    let prefix = format!("auth-test-{}", uuid::Uuid::new_v4().simple());
    let node = |prefix: &str| {
        TestApp::builder(Backend::Sqlite)
            .var("AUTH__RATE_LIMITS__BACKEND", "redis")
            .var("AUTH__RATE_LIMITS__REDIS_KEY_PREFIX", prefix)
            .var("AUTH__RATE_LIMITS__LOGIN__PER_IP", "4")
            .var("AUTH__RATE_LIMITS__LOGIN__WINDOW_SECS", "3600")
            .var("AUTH__LOCKOUT__ENABLED", "false")
    };
    let a = app!(node(&prefix), start);
    let b = app!(node(&prefix), start);
    for node in [&a, &b, &a, &b] {
        problem(
            login(node, "ada@example.com", "wrong password!", None).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    problem(
        login(&b, "ada@example.com", "wrong password!", None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    // Another prefix is another deployment.
    let c = app!(node(&format!("{prefix}-other")), start);
    problem(
        login(&c, "ada@example.com", "wrong password!", None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

/// An IPv6 client holds a whole /64 and could rotate addresses inside it to reset its
/// per-IP counter: the counter is the network's. Another network has its own.
async fn ipv6_clients_are_limited_by_their_64_network(backend: Backend) {
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__SERVER__TRUSTED_PROXIES", "127.0.0.1/32")
            .var("AUTH__RATE_LIMITS__LOGIN__PER_IP", "3")
            .var("AUTH__RATE_LIMITS__LOGIN__WINDOW_SECS", "3600")
            .var("AUTH__RATE_LIMITS__LOGIN__PER_IDENTIFIER", "0")
            .var("AUTH__LOCKOUT__ENABLED", "false"),
        start
    );
    app.signup("ada@example.com").await;
    for host in 1..=3 {
        let res = login(
            &app,
            "ada@example.com",
            PASSWORD,
            Some(&format!("2001:db8:1:2::{host:x}")),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = login(
        &app,
        "ada@example.com",
        PASSWORD,
        Some("2001:db8:1:2:ffff::9"),
    )
    .await;
    problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let res = login(&app, "ada@example.com", PASSWORD, Some("2001:db8:1:3::1")).await;
    assert_eq!(res.status(), StatusCode::OK, "another /64 counts apart");
}

/// A figure of `/metrics` (the test server allows loopback scrapers).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// Waits (bounded) until `metric` reaches `value`.
async fn wait_for_metric(app: &TestApp, name: &str, value: f64) {
    for _ in 0..600 {
        if metric(app, name).await == value {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{name} never reached {value}: {}", metric(app, name).await);
}

/// Hole 9: one hashing thread and room for two waiting; slow hashes. A sign-in beyond the
/// queue is answered 503 with Retry-After at once; queued sign-ins whose clients closed
/// their connection are dropped without hashing.
async fn a_full_hashing_queue_answers_503_and_clients_that_left_cost_no_hash(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__PASSWORD_HASHING__MAX_CONCURRENT", "1")
            .var("AUTH__PASSWORD_HASHING__MAX_WAITING", "2")
            .var("AUTH__PASSWORD_HASHING__MEMORY_KIB", "65536")
            .var("AUTH__PASSWORD_HASHING__ITERATIONS", "64")
            .var("AUTH__RATE_LIMITS__ENABLED", "false")
            .var("AUTH__LOCKOUT__ENABLED", "false"),
        start
    );
    let body = json!({"email": "nobody@example.com", "password": "some password 1"}).to_string();
    let request = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let host = app.address.trim_start_matches("http://").to_owned();
    // Three sign-ins: as the thread takes a job whenever it is idle, two waiting means
    // one is being hashed. The queue is full.
    let mut leaving = Vec::new();
    for _ in 0..3 {
        let mut tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        leaving.push(tcp);
    }
    wait_for_metric(&app, "auth_password_hash_queue_depth", 2.0).await;
    let res = login(&app, "nobody@example.com", "some password 1", None).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    problem(res, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
    assert_eq!(metric(&app, "auth_password_hash_refused_total").await, 1.0);
    // The three clients give up and close their connections normally.
    for tcp in leaving {
        drop(tcp);
    }
    wait_for_metric(&app, "auth_password_hash_queue_depth", 0.0).await;
    wait_for_metric(&app, "auth_password_hash_abandoned_total", 2.0).await;
    // The one already hashing finished; the two waiting ones were never hashed.
    let completed = metric(&app, "auth_password_hash_total").await;
    // The queue is free again: a sign-in is answered.
    problem(
        login(&app, "nobody@example.com", "some password 1", None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        metric(&app, "auth_password_hash_total").await,
        completed + 1.0
    );
    assert!(completed <= 1.0, "{completed} hashes for clients that left");
}

/// Hole 9: an attacker failing from one address locks the account for that address only;
/// the owner signs in from theirs. An administrator's lock holds for every address, and
/// the administrator's unlock lifts the attacker's lock too.
async fn failures_lock_an_account_for_the_failing_client_only(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(
        crate::email::with_smtp(backend, &sink)
            .var("AUTH__LOCKOUT__THRESHOLD", "3")
            .var("AUTH__RATE_LIMITS__LOGIN__PER_IDENTIFIER", "50")
            .var("AUTH__SERVER__TRUSTED_PROXIES", "127.0.0.1,::1"),
        start
    );
    let (_, admin) = crate::operators::admin(&app, "root@example.com").await;
    let ada = app.signup("ada@example.com").await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let attacker = Some("203.0.113.66");
    for _ in 0..3 {
        problem(
            login(&app, "ada@example.com", "wrong password!", attacker).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    problem(
        login(&app, "ada@example.com", PASSWORD, attacker).await,
        StatusCode::FORBIDDEN,
        "account_locked",
    )
    .await;
    let owner = Some("198.51.100.7");
    let res = login(&app, "ada@example.com", PASSWORD, owner).await;
    assert_eq!(res.status(), StatusCode::OK, "the owner is not locked out");
    // The owner's success does not lift the attacker's lock.
    problem(
        login(&app, "ada@example.com", PASSWORD, attacker).await,
        StatusCode::FORBIDDEN,
        "account_locked",
    )
    .await;
    // One lock notice, however many clients lock themselves out.
    let other = Some("192.0.2.9");
    for _ in 0..3 {
        login(&app, "ada@example.com", "wrong password!", other).await;
    }
    // Mail goes out oldest first: once the reset mail asked for now has arrived, every
    // lock notice has too.
    let forgot = app
        .post(
            "/api/v1/auth/password/forgot",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    crate::email::mail_to(&sink, "ada@example.com", "reset").await;
    let notices = sink
        .messages()
        .iter()
        .filter(|m| m.subject.contains("was locked"))
        .count();
    assert_eq!(notices, 1);

    let lock = app
        .post_auth(
            &format!("/api/v1/admin/users/{ada}/lock"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(lock.status(), StatusCode::OK);
    problem(
        login(&app, "ada@example.com", PASSWORD, owner).await,
        StatusCode::FORBIDDEN,
        "account_locked",
    )
    .await;
    let unlock = app
        .post_auth(
            &format!("/api/v1/admin/users/{ada}/unlock"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(unlock.status(), StatusCode::NO_CONTENT);
    for client in [owner, attacker, other] {
        let res = login(&app, "ada@example.com", PASSWORD, client).await;
        assert_eq!(res.status(), StatusCode::OK, "{client:?}");
    }
}
