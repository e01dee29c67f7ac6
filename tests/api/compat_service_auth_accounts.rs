//! The `service-authentication` profile: users, webhooks and the audit log.

use auth_core::audit::{AuditQuery, AuditStore};
use auth_core::model::UserId;
use auth_core::operators::{OperatorStore, UserQuery};
use auth_core::webhooks::WebhookStore;
use auth_e2e::{Backend, PASSWORD, TestApp, app, on_both_backends};
use auth_notify::testing::SmtpSink;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::compat_service_auth::{
    PREFIX, ProfileCookies, cookie_value, link_token, set_cookies, with_profile,
};

on_both_backends!(
    service_auth_admin_routes_check_capabilities_and_self_access,
    service_auth_admin_creates_and_updates_users_seen_by_the_canonical_api,
    service_auth_webhooks_are_the_canonical_endpoints,
    service_auth_admin_writes_are_in_the_audit_trail,
    service_auth_put_user_is_one_change_or_none,
);

/// Who calls: no credential, a bearer token, or the profile's cookie.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

async fn call(
    app: &TestApp,
    method: Method,
    route: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> Response {
    let mut req = app
        .client
        .request(method, app.url(&format!("{PREFIX}{route}")));
    match auth {
        Auth::None => {}
        Auth::Bearer(t) => req = req.bearer_auth(t),
        Auth::Cookie(t) => req = req.profile_cookies(&format!("jwt={t}")),
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// The status and JSON body (`Null` when empty), asserting the status.
async fn expect(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// An error of the profile: the status and `{"error": message}`.
async fn expect_error(res: Response, status: StatusCode, message: &str) {
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(expect(res, status).await, json!({"error": message}));
}

/// Register `email` through the profile; returns (user id, profile JWT).
async fn register(app: &TestApp, email: &str) -> (UserId, String) {
    let res = call(
        app,
        Method::POST,
        "/register",
        Auth::None,
        Some(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    let body = expect(res, StatusCode::CREATED).await;
    (
        body["user"]["id"].as_str().unwrap().parse().unwrap(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

/// The first administrator, as tests/api/operators.rs makes one: registered, then given
/// the `admin` role in the store. Returns (id, profile JWT, canonical access token).
async fn first_admin(app: &TestApp) -> (UserId, String, String) {
    let (id, jwt) = register(app, "root@example.com").await;
    crate::operators::grant(app, id, "admin").await;
    let canonical = app.login("root@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, jwt, canonical)
}

/// Create a canonical role holding only `capability`.
async fn role(app: &TestApp, canonical_admin: &str, name: &str, capability: &str) {
    let res = app
        .post_auth(
            "/api/v1/admin/roles",
            canonical_admin,
            &json!({"name": name, "capabilities": [capability]}),
        )
        .await;
    expect(res, StatusCode::CREATED).await;
}

async fn canonical(app: &TestApp, method: Method, path: &str, token: &str) -> Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn service_auth_admin_routes_check_capabilities_and_self_access(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let (root_id, root, root_canonical) = first_admin(&app).await;
    let (user_id, user) = register(&app, "user@example.com").await;
    let (reader_id, reader) = register(&app, "reader@example.com").await;
    role(&app, &root_canonical, "reader", "users:read").await;
    crate::operators::grant(&app, reader_id, "reader").await;
    let canonical_user_token = app.login("user@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let hook = expect(
        call(
            &app,
            Method::POST,
            "/webhooks",
            Auth::Bearer(&root),
            Some(json!({"url": "https://hooks.example.com/in", "event_types": ["*"]})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();

    // Every admin route: no token and junk are 401, a user without the capability 403,
    // and a canonical access token (signed with another key) is not the profile's JWT.
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/user".into(),
            Some(json!({"email": "new@example.com", "password": PASSWORD})),
        ),
        (Method::GET, format!("/user/{root_id}"), None),
        (
            Method::PUT,
            format!("/user/{root_id}"),
            Some(json!({"name": "Root"})),
        ),
        (Method::GET, "/webhooks".into(), None),
        (
            Method::POST,
            "/webhooks".into(),
            Some(json!({"url": "https://hooks.example.com/x", "event_types": ["*"]})),
        ),
        (
            Method::PUT,
            format!("/webhooks/{hook_id}"),
            Some(json!({"enabled": false})),
        ),
        (Method::DELETE, format!("/webhooks/{hook_id}"), None),
        (Method::GET, "/audit/logs".into(), None),
    ];
    for (method, route, body) in &routes {
        for auth in [
            Auth::None,
            Auth::Bearer("not-a-jwt"),
            Auth::Cookie("not-a-jwt"),
            Auth::Bearer(&canonical_user_token),
        ] {
            let res = call(&app, method.clone(), route, auth, body.clone()).await;
            expect_error(res, StatusCode::UNAUTHORIZED, "Unauthorized").await;
        }
        let res = call(
            &app,
            method.clone(),
            route,
            Auth::Bearer(&user),
            body.clone(),
        )
        .await;
        expect_error(res, StatusCode::FORBIDDEN, "Forbidden").await;
        let res = call(
            &app,
            method.clone(),
            route,
            Auth::Cookie(&user),
            body.clone(),
        )
        .await;
        expect_error(res, StatusCode::FORBIDDEN, "Forbidden").await;
    }
    // `users:read` reads accounts, and nothing else.
    let got = expect(
        call(
            &app,
            Method::GET,
            &format!("/user/{user_id}"),
            Auth::Bearer(&reader),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["email"], "user@example.com");
    for (method, route, body) in routes
        .iter()
        .filter(|(m, r, _)| !(*m == Method::GET && r.starts_with("/user/")))
    {
        let res = call(
            &app,
            method.clone(),
            route,
            Auth::Bearer(&reader),
            body.clone(),
        )
        .await;
        expect_error(res, StatusCode::FORBIDDEN, "Forbidden").await;
    }
    // The admin, through the cookie: every route answers.
    for (method, route, body) in &routes {
        let res = call(
            &app,
            method.clone(),
            route,
            Auth::Cookie(&root),
            body.clone(),
        )
        .await;
        assert!(
            res.status().is_success(),
            "{method} {route}: {}",
            res.status()
        );
    }
    // Nothing changed for the refused callers: one account created, by the admin.
    let created = app
        .db
        .query(&AuditQuery {
            event_type: Some("user_created".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor_id, Some(root_id));

    // Self-access: a user reads and changes their own profile without a capability.
    let me = expect(
        call(
            &app,
            Method::GET,
            &format!("/user/{user_id}"),
            Auth::Cookie(&user),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["id"], user_id.to_string());
    assert_eq!(me["disabled"], false);
    let res = call(
        &app,
        Method::PUT,
        &format!("/user/{user_id}"),
        Auth::Bearer(&user),
        Some(json!({"name": "Ada Lovelace", "avatar_url": "https://img.example.com/ada.png"})),
    )
    .await;
    let me = expect(res, StatusCode::OK).await;
    assert_eq!(me["name"], "Ada Lovelace");
    assert_eq!(me["avatar_url"], "https://img.example.com/ada.png");
    // `GET /user` is the same account as `GET /user/:user_id` of oneself.
    let current = expect(
        call(&app, Method::GET, "/user", Auth::Cookie(&user), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(current, me);
    let stored = app.db.managed_user(user_id).await.unwrap().unwrap().user;
    assert_eq!(stored.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(
        stored.avatar_url.as_deref(),
        Some("https://img.example.com/ada.png")
    );
    // ...but not their address, roles or password, nor anyone else's account.
    for body in [
        json!({"email": "other@example.com"}),
        json!({"roles": ["admin"]}),
        json!({"email_verified": true}),
    ] {
        let res = call(
            &app,
            Method::PUT,
            &format!("/user/{user_id}"),
            Auth::Bearer(&user),
            Some(body),
        )
        .await;
        expect_error(res, StatusCode::FORBIDDEN, "Forbidden").await;
    }
    let res = call(
        &app,
        Method::PUT,
        &format!("/user/{user_id}"),
        Auth::Bearer(&user),
        Some(json!({"password": "another long passphrase"})),
    )
    .await;
    expect_error(
        res,
        StatusCode::BAD_REQUEST,
        "password cannot be changed here: use POST /password/forgot",
    )
    .await;
    for method in [Method::GET, Method::PUT] {
        let res = call(
            &app,
            method,
            &format!("/user/{reader_id}"),
            Auth::Bearer(&user),
            Some(json!({"name": "x"})),
        )
        .await;
        expect_error(res, StatusCode::FORBIDDEN, "Forbidden").await;
    }
    let stored = app.db.managed_user(user_id).await.unwrap().unwrap().user;
    assert_eq!(stored.email, "user@example.com");
    assert!(!stored.email_verified);
    assert!(!stored.roles.iter().any(|r| r == "admin"));
    assert_eq!(
        app.db
            .managed_user(reader_id)
            .await
            .unwrap()
            .unwrap()
            .user
            .name,
        None
    );
    // An unknown or malformed id is 404 for the admin (403 for others, above).
    for id in [uuid::Uuid::now_v7().to_string(), "not-an-id".to_owned()] {
        let res = call(
            &app,
            Method::GET,
            &format!("/user/{id}"),
            Auth::Bearer(&root),
            None,
        )
        .await;
        expect_error(res, StatusCode::NOT_FOUND, "Not found").await;
    }
    let res = call(
        &app,
        Method::GET,
        &format!("/user/{root_id}"),
        Auth::None,
        None,
    )
    .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "Unauthorized").await;
}

async fn service_auth_admin_creates_and_updates_users_seen_by_the_canonical_api(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let (root_id, root, root_canonical) = first_admin(&app).await;
    role(&app, &root_canonical, "support", "users:read").await;

    // Create with a password, a name and a role: 201 with the user.
    let res = call(
        &app,
        Method::POST,
        "/user",
        Auth::Cookie(&root),
        Some(json!({"email": "grace@Example.COM", "password": PASSWORD, "name": "Grace", "roles": ["support"]})),
    )
    .await;
    let created = expect(res, StatusCode::CREATED).await;
    assert_eq!(created["email"], "grace@example.com");
    assert_eq!(created["name"], "Grace");
    assert_eq!(created["roles"], json!(["support"]));
    assert_eq!(created["disabled"], false);
    assert!(created.get("password_reset_email").is_none());
    let id: UserId = created["id"].as_str().unwrap().parse().unwrap();

    // The canonical admin API sees it, and it signs in through both APIs.
    let seen = expect(
        canonical(
            &app,
            Method::GET,
            &format!("/api/v1/admin/users/{id}"),
            &root_canonical,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["email"], "grace@example.com");
    assert_eq!(seen["roles"], json!(["support"]));
    let signed_in = app.login("grace@example.com").await;
    assert_eq!(signed_in["user"]["id"], id.to_string());
    let res = call(
        &app,
        Method::POST,
        "/login",
        Auth::None,
        Some(json!({"email": "grace@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let grace_jwt = cookie_value(&set_cookies(&res), "jwt").expect("jwt cookie");

    // The same address again, a bad one, a weak password, an unknown role.
    for (body, status, message) in [
        (
            json!({"email": "grace@example.com", "password": PASSWORD}),
            StatusCode::CONFLICT,
            "Email already registered",
        ),
        (
            json!({"email": "not an address", "password": PASSWORD}),
            StatusCode::BAD_REQUEST,
            "Invalid email",
        ),
        (
            json!({"password": PASSWORD}),
            StatusCode::BAD_REQUEST,
            "email is required",
        ),
        (
            json!({"email": "x@example.com", "roles": ["nope"]}),
            StatusCode::BAD_REQUEST,
            "roles names a role that does not exist",
        ),
    ] {
        let res = call(&app, Method::POST, "/user", Auth::Bearer(&root), Some(body)).await;
        expect_error(res, status, message).await;
    }
    let res = call(
        &app,
        Method::POST,
        "/user",
        Auth::Bearer(&root),
        Some(json!({"email": "x@example.com", "admin": true})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        expect(res, StatusCode::BAD_REQUEST).await["error"]
            .as_str()
            .unwrap()
            .contains("unknown field")
    );
    // None of the refused requests left an account behind.
    let left = app
        .db
        .list_users(&UserQuery {
            email_contains: Some("x@example.com".into()),
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    // Update: name, verified flag and the full set of roles (support -> admin).
    let res = call(
        &app,
        Method::PUT,
        &format!("/user/{id}"),
        Auth::Bearer(&root),
        Some(json!({"name": "Grace Hopper", "email_verified": true, "roles": ["admin"]})),
    )
    .await;
    let updated = expect(res, StatusCode::OK).await;
    assert_eq!(updated["name"], "Grace Hopper");
    assert_eq!(updated["email_verified"], true);
    assert_eq!(updated["roles"], json!(["admin"]));
    let stored = app.db.managed_user(id).await.unwrap().unwrap().user;
    assert_eq!(stored.name.as_deref(), Some("Grace Hopper"));
    assert!(stored.email_verified);
    assert_eq!(stored.roles, vec!["admin".to_owned()]);
    let seen = expect(
        canonical(
            &app,
            Method::GET,
            &format!("/api/v1/admin/users/{id}"),
            &root_canonical,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["name"], "Grace Hopper");
    assert_eq!(seen["roles"], json!(["admin"]));
    // The new role acts at once on her existing JWT.
    let res = call(
        &app,
        Method::GET,
        "/audit/logs",
        Auth::Cookie(&grace_jwt),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Changing the address makes it unverified (the canonical rule); GET shows it.
    let res = call(
        &app,
        Method::PUT,
        &format!("/user/{id}"),
        Auth::Bearer(&root),
        Some(json!({"email": "hopper@example.com"})),
    )
    .await;
    let updated = expect(res, StatusCode::OK).await;
    assert_eq!(updated["email"], "hopper@example.com");
    assert_eq!(updated["email_verified"], false);
    let got = expect(
        call(
            &app,
            Method::GET,
            &format!("/user/{id}"),
            Auth::Bearer(&root),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, updated);
    // An administrator does not set another user's avatar, nor takes their own admin role.
    let res = call(
        &app,
        Method::PUT,
        &format!("/user/{id}"),
        Auth::Bearer(&root),
        Some(json!({"avatar_url": "https://img.example.com/x.png"})),
    )
    .await;
    expect_error(
        res,
        StatusCode::BAD_REQUEST,
        "avatar_url is changed by the user themselves",
    )
    .await;
    // A refused request changes nothing, not even the fields that came with it.
    let root_before = app.db.managed_user(root_id).await.unwrap().unwrap().user;
    let res = call(
        &app,
        Method::PUT,
        &format!("/user/{root_id}"),
        Auth::Bearer(&root),
        Some(json!({"name": "Root Renamed", "roles": []})),
    )
    .await;
    expect_error(
        res,
        StatusCode::CONFLICT,
        "An administrator cannot do this to their own account",
    )
    .await;
    for (body, status) in [
        // The address belongs to another account.
        (
            json!({"avatar_url": "https://img.example.com/root.png", "email": "hopper@example.com"}),
            StatusCode::CONFLICT,
        ),
        // A bad avatar URL is refused before the address changes.
        (
            json!({"avatar_url": "javascript:alert(1)", "email": "root2@example.com"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let res = call(
            &app,
            Method::PUT,
            &format!("/user/{root_id}"),
            Auth::Bearer(&root),
            Some(body.clone()),
        )
        .await;
        assert_eq!(res.status(), status, "{body}");
    }
    let root_after = app.db.managed_user(root_id).await.unwrap().unwrap().user;
    assert_eq!(root_after, root_before);
    assert!(root_after.roles.contains(&"admin".to_owned()));
    let res = call(
        &app,
        Method::PUT,
        &format!("/user/{}", uuid::Uuid::now_v7()),
        Auth::Bearer(&root),
        Some(json!({"name": "x"})),
    )
    .await;
    expect_error(res, StatusCode::NOT_FOUND, "Not found").await;

    // Without a password: a random one, and the reset mail sets the owner's own.
    let res = call(
        &app,
        Method::POST,
        "/user",
        Auth::Bearer(&root),
        Some(json!({"email": "linus@example.com"})),
    )
    .await;
    let created = expect(res, StatusCode::CREATED).await;
    assert_eq!(created["password_reset_email"], true);
    let linus: UserId = created["id"].as_str().unwrap().parse().unwrap();
    assert!(app.db.managed_user(linus).await.unwrap().is_some());
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "linus@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let token = link_token(&sink, "linus@example.com", "reset", "/reset-password").await;
    let res = call(
        &app,
        Method::POST,
        &format!("/password/reset/{token}"),
        Auth::None,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.login("linus@example.com").await["user"]["id"],
        linus.to_string()
    );
    // options.sendResetEmail false: created, no mail asked for.
    let res = call(
        &app,
        Method::POST,
        "/user",
        Auth::Bearer(&root),
        Some(json!({"email": "quiet@example.com", "options": {"sendResetEmail": false}})),
    )
    .await;
    assert_eq!(
        expect(res, StatusCode::CREATED).await["password_reset_email"],
        false
    );
}

async fn service_auth_webhooks_are_the_canonical_endpoints(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let (_, root, root_canonical) = first_admin(&app).await;

    let res = call(
        &app,
        Method::POST,
        "/webhooks",
        Auth::Bearer(&root),
        Some(json!({"url": "https://hooks.example.com/in", "event_types": ["user_created"], "description": "CRM"})),
    )
    .await;
    let created = expect(res, StatusCode::CREATED).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["enabled"], true);
    let id = created["id"].as_str().unwrap().to_owned();
    // The secret is stored sealed, never in clear.
    let stored = app.db.endpoint(id.parse().unwrap()).await.unwrap().unwrap();
    assert!(!stored.secret_sealed.contains(&secret));
    assert_eq!(stored.url, "https://hooks.example.com/in");

    // Listed here and through the canonical API, without the secret.
    let list = expect(
        call(&app, Method::GET, "/webhooks", Auth::Cookie(&root), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["description"], "CRM");
    assert!(list[0].get("secret").is_none());
    let seen = expect(
        canonical(
            &app,
            Method::GET,
            &format!("/api/v1/admin/webhooks/{id}"),
            &root_canonical,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["url"], "https://hooks.example.com/in");
    assert_eq!(seen["event_types"], json!(["user_created"]));

    // Update: the fields given change.
    let res = call(
        &app,
        Method::PUT,
        &format!("/webhooks/{id}"),
        Auth::Bearer(&root),
        Some(json!({"event_types": ["user_deleted", "user_created"], "enabled": false, "description": null})),
    )
    .await;
    let updated = expect(res, StatusCode::OK).await;
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["url"], "https://hooks.example.com/in");
    assert!(updated.get("secret").is_none());
    let seen = expect(
        canonical(
            &app,
            Method::GET,
            &format!("/api/v1/admin/webhooks/{id}"),
            &root_canonical,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["enabled"], false);
    assert_eq!(seen["event_types"], updated["event_types"]);
    assert!(
        !app.db
            .endpoint(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .enabled
    );

    // The core's URL rules (https only, no private addresses) stay in force.
    for url in [
        "http://hooks.example.com/in",
        "https://127.0.0.1/in",
        "https://10.0.0.1/in",
    ] {
        let res = call(
            &app,
            Method::POST,
            "/webhooks",
            Auth::Bearer(&root),
            Some(json!({"url": url, "event_types": ["*"]})),
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{url}");
        assert!(expect(res, StatusCode::BAD_REQUEST).await["error"].is_string());
    }
    let res = call(
        &app,
        Method::POST,
        "/webhooks",
        Auth::Bearer(&root),
        Some(json!({"event_types": ["*"]})),
    )
    .await;
    expect_error(res, StatusCode::BAD_REQUEST, "url is required").await;
    assert_eq!(
        expect(
            call(&app, Method::GET, "/webhooks", Auth::Bearer(&root), None).await,
            StatusCode::OK
        )
        .await
        .as_array()
        .unwrap()
        .len(),
        1
    );

    // Delete: gone here and through the canonical API; a second delete is 404.
    let res = call(
        &app,
        Method::DELETE,
        &format!("/webhooks/{id}"),
        Auth::Bearer(&root),
        None,
    )
    .await;
    assert_eq!(expect(res, StatusCode::NO_CONTENT).await, Value::Null);
    let res = canonical(
        &app,
        Method::GET,
        &format!("/api/v1/admin/webhooks/{id}"),
        &root_canonical,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        app.db
            .endpoint(id.parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    for route in [format!("/webhooks/{id}"), "/webhooks/not-an-id".to_owned()] {
        let res = call(&app, Method::DELETE, &route, Auth::Bearer(&root), None).await;
        expect_error(res, StatusCode::NOT_FOUND, "Not found").await;
        let res = call(
            &app,
            Method::PUT,
            &route,
            Auth::Bearer(&root),
            Some(json!({"enabled": true})),
        )
        .await;
        expect_error(res, StatusCode::NOT_FOUND, "Not found").await;
    }

    // Created through the canonical API, managed here.
    let res = app
        .post_auth(
            "/api/v1/admin/webhooks",
            &root_canonical,
            &json!({"url": "https://hooks.example.com/two", "event_types": ["*"]}),
        )
        .await;
    let other = expect(res, StatusCode::CREATED).await;
    let list = expect(
        call(&app, Method::GET, "/webhooks", Auth::Bearer(&root), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list[0]["id"], other["id"]);
}

async fn service_auth_admin_writes_are_in_the_audit_trail(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let (root_id, root, root_canonical) = first_admin(&app).await;
    role(&app, &root_canonical, "auditor", "audit:read").await;

    let created = expect(
        call(
            &app,
            Method::POST,
            "/user",
            Auth::Bearer(&root),
            Some(json!({"email": "eve@example.com", "password": PASSWORD})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let eve: UserId = created["id"].as_str().unwrap().parse().unwrap();
    expect(
        call(
            &app,
            Method::PUT,
            &format!("/user/{eve}"),
            Auth::Bearer(&root),
            Some(json!({"name": "Eve", "roles": ["auditor"]})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let hook = expect(
        call(
            &app,
            Method::POST,
            "/webhooks",
            Auth::Bearer(&root),
            Some(json!({"url": "https://hooks.example.com/in", "event_types": ["*"]})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    expect(
        call(
            &app,
            Method::PUT,
            &format!("/webhooks/{hook_id}"),
            Auth::Bearer(&root),
            Some(json!({"enabled": false})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect(
        call(
            &app,
            Method::DELETE,
            &format!("/webhooks/{hook_id}"),
            Auth::Bearer(&root),
            None,
        )
        .await,
        StatusCode::NO_CONTENT,
    )
    .await;

    // Each write is one row with the acting administrator, as through /api/v1/admin.
    let expected = [
        ("user_created", Some(eve)),
        ("user_updated", Some(eve)),
        ("role_assigned", Some(eve)),
        ("webhook_created", None),
        ("webhook_updated", None),
        ("webhook_deleted", None),
    ];
    let rows = app
        .db
        .query(&AuditQuery {
            limit: 10_000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    for (event_type, user_id) in expected {
        let matching: Vec<_> = rows
            .iter()
            .filter(|r| r.event_type == event_type && r.actor_id == Some(root_id))
            .collect();
        assert_eq!(matching.len(), 1, "{event_type}: {matching:?}");
        assert_eq!(matching[0].user_id, user_id, "{event_type}");
    }
    let text = format!("{rows:?}");
    assert!(!text.contains(&secret) && !text.contains(PASSWORD));

    // GET /audit/logs shows them, filtered, newest first, with the canonical cursor.
    let page = expect(
        call(
            &app,
            Method::GET,
            &format!("/audit/logs?user_id={eve}"),
            Auth::Bearer(&root),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let types: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_type"].as_str().unwrap())
        .collect();
    for t in ["user_created", "user_updated", "role_assigned"] {
        assert!(types.contains(&t), "{types:?}");
    }
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["user_id"] == eve.to_string())
    );
    let page = expect(
        call(
            &app,
            Method::GET,
            "/audit/logs?event_type=webhook_created",
            Auth::Cookie(&root),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let row = &page["items"][0];
    assert_eq!(row["actor_id"], root_id.to_string());
    assert_eq!(row["detail"]["endpoint_id"], hook_id);
    assert_eq!(page["next_cursor"], Value::Null);
    // The same row through the canonical audit log.
    let canonical_page = expect(
        canonical(
            &app,
            Method::GET,
            "/api/v1/admin/audit-log?event_type=webhook_created",
            &root_canonical,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(canonical_page["items"][0], *row);

    // Paging: one row a page, each page older than the one before, no row twice.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..3 {
        let route = match &cursor {
            Some(c) => format!("/audit/logs?limit=1&cursor={c}"),
            None => "/audit/logs?limit=1".to_owned(),
        };
        let page = expect(
            call(&app, Method::GET, &route, Auth::Bearer(&root), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        seen.push(page["items"][0]["id"].as_str().unwrap().to_owned());
        cursor = Some(
            page["next_cursor"]
                .as_str()
                .expect("next_cursor")
                .to_owned(),
        );
    }
    let newest: Vec<String> = expect(
        call(
            &app,
            Method::GET,
            "/audit/logs?limit=3",
            Auth::Bearer(&root),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, newest);

    // Bad filters are 400 in the profile's format; `audit:read` alone is enough to read.
    let res = call(
        &app,
        Method::GET,
        "/audit/logs?user_id=nope",
        Auth::Bearer(&root),
        None,
    )
    .await;
    expect_error(res, StatusCode::BAD_REQUEST, "user_id must be a user id").await;
    let res = call(
        &app,
        Method::GET,
        "/audit/logs?cursor=nope",
        Auth::Bearer(&root),
        None,
    )
    .await;
    expect_error(res, StatusCode::BAD_REQUEST, "malformed cursor").await;
    let res = call(
        &app,
        Method::GET,
        "/audit/logs?bogus=1",
        Auth::Bearer(&root),
        None,
    )
    .await;
    assert!(
        expect(res, StatusCode::BAD_REQUEST).await["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid query")
    );
    let res = call(
        &app,
        Method::POST,
        "/login",
        Auth::None,
        Some(json!({"email": "eve@example.com", "password": PASSWORD})),
    )
    .await;
    let eve_jwt = expect(res, StatusCode::OK).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = expect(
        call(
            &app,
            Method::GET,
            "/audit/logs?event_type=user_created",
            Auth::Bearer(&eve_jwt),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"][0]["user_id"], eve.to_string());
    let res = call(&app, Method::GET, "/webhooks", Auth::Bearer(&eve_jwt), None).await;
    expect_error(res, StatusCode::FORBIDDEN, "Forbidden").await;
}

/// `PUT /user/:user_id` is one core use case in one transaction (issue 15, item 6): an
/// address, a name and roles together, with their audit rows and the old address's notice;
/// a request refused for one of them (here a role that does not exist) changes nothing and
/// writes no audit row.
async fn service_auth_put_user_is_one_change_or_none(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let (root_id, root, root_canonical) = first_admin(&app).await;
    role(&app, &root_canonical, "support", "users:read").await;
    let (grace, _) = register(&app, "grace@example.com").await;
    let audit_rows = || async {
        app.db
            .query(&AuditQuery {
                limit: 10_000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.user_id == Some(grace) && r.actor_id == Some(root_id))
            .map(|r| r.event_type)
            .collect::<Vec<_>>()
    };
    let before = app.db.managed_user(grace).await.unwrap().unwrap().user;
    let res = call(
        &app,
        Method::PUT,
        &format!("/user/{grace}"),
        Auth::Bearer(&root),
        Some(json!({"email": "hopper@example.com", "name": "Grace Hopper", "roles": ["support", "no-such-role"]})),
    )
    .await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(
        app.db.managed_user(grace).await.unwrap().unwrap().user,
        before
    );
    assert!(audit_rows().await.is_empty());

    let res = call(
        &app,
        Method::PUT,
        &format!("/user/{grace}"),
        Auth::Bearer(&root),
        Some(json!({"email": "hopper@example.com", "name": "Grace Hopper", "roles": ["support"]})),
    )
    .await;
    let updated = expect(res, StatusCode::OK).await;
    assert_eq!(updated["email"], "hopper@example.com");
    assert_eq!(updated["roles"], json!(["support"]));
    let mut rows = audit_rows().await;
    rows.sort();
    assert_eq!(
        rows,
        vec!["role_assigned".to_owned(), "user_updated".to_owned()]
    );
    // The old address is told.
    crate::email::mail_to(&sink, "grace@example.com", "changed").await;
}
