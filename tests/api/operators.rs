//! Operators: the capability matrix of the admin API, account administration (disable,
//! delete, lock), roles, sessions, and the audit trail with no secret in it.

use std::collections::HashSet;

use auth_core::audit::{AuditQuery, AuditRecord, AuditStore, Recorded};
use auth_core::events::{EventKind, SecurityEvent};
use auth_core::mfa::{time_step, totp_code};
use auth_core::model::UserId;
use auth_core::operators::{OperatorStore, RoleChange};
use auth_core::ports::{SessionStore, UserStore};
use auth_e2e::{Backend, PASSWORD, TestApp, app, on_both_backends, problem};
use auth_notify::testing::SmtpSink;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    every_admin_route_checks_its_capability,
    a_disabled_user_is_signed_out_and_cannot_sign_in,
    a_disabled_user_with_a_second_factor_gets_no_mfa_token_and_no_session,
    deleting_a_user_removes_personal_data_and_keeps_the_id_in_the_audit_trail,
    roles_are_managed_and_taking_one_away_acts_at_once,
    users_are_searched_and_paged_by_cursor,
    lock_and_unlock_an_account,
    admins_list_and_revoke_a_users_sessions,
    the_audit_trail_records_each_flow_without_secrets,
    admin_actions_are_audited_with_the_acting_admin,
    bad_admin_input_gets_stable_errors,
    mail_flows_reuse_and_lockout_are_audited_without_their_secrets,
    created_users_get_the_default_roles_unless_roles_are_named,
    a_users_write_operator_cannot_create_or_change_an_administrator,
    nobody_grants_a_capability_they_do_not_hold,
    an_address_change_tells_the_old_address_and_signs_the_account_out,
);

/// Give `role` to `id` straight in the store (the test's setup, not the API under test).
pub(crate) async fn grant(app: &TestApp, id: UserId, role: &str) {
    let row = Recorded::unpublished(SecurityEvent {
        kind: EventKind::RoleAssigned,
        at: chrono::Utc::now(),
        user_id: Some(id),
        session_id: None,
        client: None,
        detail: Some("test_setup".into()),
        actor: None,
    });
    let change = app
        .db
        .change_user_role(id, role, true, chrono::Utc::now(), &row)
        .await
        .unwrap();
    assert!(matches!(change, RoleChange::Changed(_)), "{change:?}");
}

/// Sign up `email` and make them an administrator; returns (user id, access token).
pub(crate) async fn admin(app: &TestApp, email: &str) -> (UserId, String) {
    let t = app.signup(email).await;
    let id: UserId = t["user"]["id"].as_str().unwrap().parse().unwrap();
    grant(app, id, "admin").await;
    (id, t["access_token"].as_str().unwrap().to_owned())
}

fn token(t: &Value) -> &str {
    t["access_token"].as_str().unwrap()
}

fn uid(t: &Value) -> String {
    t["user"]["id"].as_str().unwrap().to_owned()
}

/// Every session of `user_id` has ended: none is live in the store, and the access and
/// refresh tokens of each of `issued` are refused.
async fn signed_out(app: &TestApp, user_id: UserId, issued: &[&Value]) {
    assert!(
        app.db
            .unrevoked_sessions_of(user_id)
            .await
            .unwrap()
            .is_empty()
    );
    for t in issued {
        let res = app.get_auth("/api/v1/me", token(t)).await;
        problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
        let res = app.refresh(t["refresh_token"].as_str().unwrap()).await;
        problem(res, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    }
}

/// Disable or enable account `id` as the operator holding `token`; the 200 answer's body.
async fn set_disabled(
    app: &TestApp,
    token: &str,
    id: impl std::fmt::Display,
    disabled: bool,
) -> Value {
    let action = if disabled { "disable" } else { "enable" };
    let res = app
        .post_auth(
            &format!("/api/v1/admin/users/{id}/{action}"),
            token,
            &json!({}),
        )
        .await;
    json_of(res, StatusCode::OK).await
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

async fn json_of(res: reqwest::Response, status: StatusCode) -> Value {
    let got = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap()
    }
}

/// Every audit row in the database, as text, for scanning.
async fn all_audit_rows(app: &TestApp) -> Vec<AuditRecord> {
    app.db
        .query(&AuditQuery {
            limit: 10_000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

async fn every_admin_route_checks_its_capability(backend: Backend) {
    let app = app!(backend);
    let (_, root) = admin(&app, "root@example.com").await;
    let target = app.signup("target@example.com").await;
    let t = uid(&target);
    let ghost = uuid::Uuid::now_v7().to_string();
    // One principal per capability, holding a role with that capability only, and one
    // holding an application-defined capability the server never checks.
    let caps = [
        "users:read",
        "users:write",
        "sessions:revoke",
        "roles:manage",
        "audit:read",
        "webhooks:manage",
        "app:reports",
    ];
    let mut principals = Vec::new();
    for (i, cap) in caps.iter().enumerate() {
        let role = format!("only-{i}");
        let res = app
            .post_auth(
                "/api/v1/admin/roles",
                &root,
                &json!({"name": role, "capabilities": [cap]}),
            )
            .await;
        json_of(res, StatusCode::CREATED).await;
        let who = app.signup(&format!("p{i}@example.com")).await;
        let res = send(
            &app,
            Method::PUT,
            &format!("/api/v1/admin/users/{}/roles/{role}", uid(&who)),
            Some(&root),
            None,
        )
        .await;
        json_of(res, StatusCode::OK).await;
        principals.push((*cap, token(&who).to_owned()));
    }
    json_of(
        app.post_auth(
            "/api/v1/admin/roles",
            &root,
            &json!({"name": "viewer", "capabilities": []}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;

    // (method, path, body, capability, status when allowed). Order matters only for the
    // allowed call, made once per route.
    let routes: Vec<(Method, String, Option<Value>, &str, StatusCode)> = vec![
        (
            Method::GET,
            "/api/v1/admin/users".into(),
            None,
            "users:read",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/admin/users".into(),
            Some(json!({"email": "made@example.com", "password": PASSWORD})),
            "users:write",
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/users/{t}"),
            None,
            "users:read",
            StatusCode::OK,
        ),
        (
            Method::PATCH,
            format!("/api/v1/admin/users/{t}"),
            Some(json!({"name": "Tee"})),
            "users:write",
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/users/{ghost}"),
            None,
            "users:write",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{t}/disable"),
            None,
            "users:write",
            StatusCode::OK,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{t}/enable"),
            None,
            "users:write",
            StatusCode::OK,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{t}/lock"),
            Some(json!({})),
            "users:write",
            StatusCode::OK,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{t}/unlock"),
            None,
            "users:write",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/users/{t}/sessions"),
            None,
            "users:read",
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/users/{t}/sessions/{ghost}"),
            None,
            "sessions:revoke",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/users/{t}/sessions"),
            None,
            "sessions:revoke",
            StatusCode::OK,
        ),
        (
            Method::PUT,
            format!("/api/v1/admin/users/{t}/roles/viewer"),
            None,
            "roles:manage",
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/users/{t}/roles/viewer"),
            None,
            "roles:manage",
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/admin/roles".into(),
            None,
            "roles:manage",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/admin/roles".into(),
            // Only what the roles:manage principal holds: nobody grants more.
            Some(json!({"name": "probe", "capabilities": ["roles:manage"]})),
            "roles:manage",
            StatusCode::CREATED,
        ),
        (
            Method::PATCH,
            "/api/v1/admin/roles/probe".into(),
            Some(json!({"description": "a probe"})),
            "roles:manage",
            StatusCode::OK,
        ),
        (
            Method::DELETE,
            "/api/v1/admin/roles/probe".into(),
            None,
            "roles:manage",
            StatusCode::NO_CONTENT,
        ),
        (
            Method::GET,
            "/api/v1/admin/audit-log".into(),
            None,
            "audit:read",
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/admin/webhooks".into(),
            None,
            "webhooks:manage",
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/api/v1/admin/webhooks".into(),
            Some(json!({"url": "https://hooks.example.com/in", "event_types": ["user_deleted"]})),
            "webhooks:manage",
            StatusCode::CREATED,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/webhooks/{ghost}"),
            None,
            "webhooks:manage",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PATCH,
            format!("/api/v1/admin/webhooks/{ghost}"),
            Some(json!({"enabled": false})),
            "webhooks:manage",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/webhooks/{ghost}"),
            None,
            "webhooks:manage",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/webhooks/{ghost}/rotate-secret"),
            None,
            "webhooks:manage",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/webhooks/{ghost}/deliveries"),
            None,
            "webhooks:manage",
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, path, body, needed, allowed) in &routes {
        let res = send(&app, method.clone(), path, None, body.as_ref()).await;
        problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
        let res = send(&app, method.clone(), path, Some("not-a-jwt"), body.as_ref()).await;
        problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
        for (cap, tok) in &principals {
            if cap == needed {
                continue;
            }
            let res = send(&app, method.clone(), path, Some(tok), body.as_ref()).await;
            let p = problem(res, StatusCode::FORBIDDEN, "forbidden").await;
            assert!(p["detail"].is_string(), "{method} {path} as {cap}");
        }
        let (_, tok) = principals.iter().find(|(c, _)| c == needed).unwrap();
        let res = send(&app, method.clone(), path, Some(tok), body.as_ref()).await;
        assert_eq!(res.status(), *allowed, "{method} {path} as {needed}");
    }
    // The built-in admin holds every capability, including ones no role lists.
    let res = send(
        &app,
        Method::GET,
        "/api/v1/admin/audit-log",
        Some(&root),
        None,
    )
    .await;
    json_of(res, StatusCode::OK).await;
}

async fn a_disabled_user_is_signed_out_and_cannot_sign_in(backend: Backend) {
    let app = app!(backend);
    let (_, root) = admin(&app, "root@example.com").await;
    let u = app.signup("ada@example.com").await;
    let second = app.login("ada@example.com").await;
    let id = uid(&u);
    let body = set_disabled(&app, &root, &id, true).await;
    assert_eq!(body["disabled"], true);
    assert!(body["disabled_at"].is_string());
    // Every session ended at once: access tokens and refresh tokens are refused.
    let user_id: UserId = id.parse().unwrap();
    signed_out(&app, user_id, &[&u, &second]).await;
    // No new sign-in, and a wrong password still says only "invalid credentials".
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN, "account_disabled").await;
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "not the password at all"}),
        )
        .await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert!(
        app.db
            .unrevoked_sessions_of(user_id)
            .await
            .unwrap()
            .is_empty()
    );
    // An administrator cannot disable themselves.
    let me: Value = app
        .get_auth("/api/v1/me", &root)
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .post_auth(
            &format!("/api/v1/admin/users/{}/disable", me["id"].as_str().unwrap()),
            &root,
            &json!({}),
        )
        .await;
    problem(res, StatusCode::CONFLICT, "cannot_target_self").await;
    // Enabled again: sign-in works.
    let body = set_disabled(&app, &root, &id, false).await;
    assert_eq!(body["disabled"], false);
    let back = app.login("ada@example.com").await;
    // The user sees what was done to the account, not who did it or from where.
    let mine = json_of(
        app.get_auth(
            "/api/v1/me/audit-log?event_type=user_disabled",
            token(&back),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let row = &mine["items"][0];
    assert_eq!(row["event_type"], "user_disabled");
    assert_eq!(row["actor_id"], Value::Null);
    assert_eq!(row["ip"], Value::Null);
    let all = json_of(
        app.get_auth(
            &format!("/api/v1/admin/audit-log?event_type=user_disabled&user_id={id}"),
            &root,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(all["items"][0]["actor_id"].is_string());
    assert_eq!(all["items"][0]["ip"], "127.0.0.1");
}

/// Issue 14 hole 1: the second-factor path opened sessions without the disabled check.
/// A sign-in already waiting for its second factor, a new password sign-in and a magic
/// link sent before the account was disabled all end without a session.
async fn a_disabled_user_with_a_second_factor_gets_no_mfa_token_and_no_session(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(crate::email::with_smtp(backend, &sink), start);
    let (_, root) = admin(&app, "root@example.com").await;
    let u = app.signup("ada@example.com").await;
    // Verified by its own sign-up link: the mailbox sign-in below is not an adoption.
    app.verify_email("ada@example.com").await;
    let user_id: UserId = uid(&u).parse().unwrap();
    let (secret, _) = crate::mfa::enrol_totp(&app, token(&u)).await;
    let credentials = json!({"email": "ada@example.com", "password": PASSWORD});
    let login = || app.post("/api/v1/auth/login", &credentials);
    let pending = json_of(login().await, StatusCode::OK).await;
    let mfa_token = pending["mfa_token"].as_str().unwrap().to_owned();
    let res = app
        .post(
            "/api/v1/auth/magic-link",
            &json!({"email": "ada@example.com"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let mail = crate::email::mail_to(&sink, "ada@example.com", "sign-in link").await;
    let link = crate::email::token_in(&mail, "/magic-link");

    set_disabled(&app, &root, user_id, true).await;

    // The pending sign-in: a right code, and still no session.
    let code = totp_code(&secret, time_step(chrono::Utc::now()) + 1);
    let res = app
        .post(
            "/api/v1/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "factor": "totp", "code": code}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN, "account_disabled").await;
    // A new password sign-in gets no mfa_token.
    let body = problem(login().await, StatusCode::FORBIDDEN, "account_disabled").await;
    assert!(body.get("mfa_token").is_none(), "{body}");
    // Nor does the magic link sent before.
    let res = app
        .post("/api/v1/auth/magic-link/verify", &json!({"token": link}))
        .await;
    problem(res, StatusCode::FORBIDDEN, "account_disabled").await;
    assert!(
        app.db
            .unrevoked_sessions_of(user_id)
            .await
            .unwrap()
            .is_empty()
    );

    // Enabled again, the password sign-in asks for the second factor as before.
    set_disabled(&app, &root, user_id, false).await;
    let pending = json_of(login().await, StatusCode::OK).await;
    assert_eq!(pending["mfa_required"], true, "{pending}");
}

async fn deleting_a_user_removes_personal_data_and_keeps_the_id_in_the_audit_trail(
    backend: Backend,
) {
    let app = app!(backend);
    let (_, root) = admin(&app, "root@example.com").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/signup"))
        .header("user-agent", "ada-phone/1.0")
        .json(&json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}))
        .send()
        .await
        .unwrap();
    let u = json_of(res, StatusCode::CREATED).await;
    let id = uid(&u);
    let user_id: UserId = id.parse().unwrap();
    let before: Vec<AuditRecord> = all_audit_rows(&app)
        .await
        .into_iter()
        .filter(|r| r.user_id == Some(user_id))
        .collect();
    assert!(
        before
            .iter()
            .any(|r| r.user_agent.as_deref() == Some("ada-phone/1.0"))
    );

    let res = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/users/{id}"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(app.db.user_by_id(user_id).await.unwrap().is_none());
    assert!(
        app.db
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let res = app
        .get_auth(&format!("/api/v1/admin/users/{id}"), &root)
        .await;
    problem(res, StatusCode::NOT_FOUND, "not_found").await;
    let res = app.get_auth("/api/v1/me", token(&u)).await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let rows: Vec<AuditRecord> = all_audit_rows(&app)
        .await
        .into_iter()
        .filter(|r| r.user_id == Some(user_id))
        .collect();
    assert!(rows.len() > before.len(), "the deletion is recorded");
    let text = serde_json::to_string(&rows).unwrap();
    assert!(!text.contains("ada-phone"), "{text}");
    assert!(!text.contains("ada@example.com"), "{text}");
    // The rows of what the user did keep no address; the deletion itself records the
    // acting administrator's.
    let (deletion, theirs): (Vec<_>, Vec<_>) =
        rows.iter().partition(|r| r.event_type == "user_deleted");
    assert_eq!(deletion.len(), 1);
    assert!(deletion[0].actor_id.is_some());
    assert!(
        theirs
            .iter()
            .all(|r| r.ip.is_none() && r.user_agent.is_none())
    );
    // The address is free again.
    app.signup("ada@example.com").await;
}

async fn roles_are_managed_and_taking_one_away_acts_at_once(backend: Backend) {
    let app = app!(backend);
    let (root_id, root) = admin(&app, "root@example.com").await;
    let res = app
        .post_auth(
            "/api/v1/admin/roles",
            &root,
            &json!({"name": "support", "capabilities": ["users:read", "users:read", "app:tickets"], "description": "Helpdesk"}),
        )
        .await;
    let role = json_of(res, StatusCode::CREATED).await;
    assert_eq!(role["capabilities"], json!(["users:read", "app:tickets"]));
    assert_eq!(role["built_in"], false);
    let res = app
        .post_auth(
            "/api/v1/admin/roles",
            &root,
            &json!({"name": "support", "capabilities": []}),
        )
        .await;
    problem(res, StatusCode::CONFLICT, "role_exists").await;

    let u = app.signup("ada@example.com").await;
    let id = uid(&u);
    let res = app.get_auth("/api/v1/admin/users", token(&u)).await;
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = send(
        &app,
        Method::PUT,
        &format!("/api/v1/admin/users/{id}/roles/support"),
        Some(&root),
        None,
    )
    .await;
    let body = json_of(res, StatusCode::OK).await;
    assert_eq!(body["roles"], json!(["support"]));
    // Capabilities come from the current user record: the old token now works ...
    let res = app.get_auth("/api/v1/admin/users", token(&u)).await;
    json_of(res, StatusCode::OK).await;
    let res = app.get_auth("/api/v1/admin/roles", token(&u)).await;
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    // ... and new tokens carry the role.
    let fresh = app.login("ada@example.com").await;
    let claims = crate::password_sessions::decode_claims(token(&fresh));
    assert_eq!(claims["roles"], json!(["support"]));
    // A role that users hold cannot be deleted.
    let res = send(
        &app,
        Method::DELETE,
        "/api/v1/admin/roles/support",
        Some(&root),
        None,
    )
    .await;
    problem(res, StatusCode::CONFLICT, "role_in_use").await;
    // Changing the role's capabilities acts at once.
    let res = send(
        &app,
        Method::PATCH,
        "/api/v1/admin/roles/support",
        Some(&root),
        Some(&json!({"capabilities": ["audit:read"]})),
    )
    .await;
    let body = json_of(res, StatusCode::OK).await;
    assert_eq!(body["description"], "Helpdesk");
    let res = app.get_auth("/api/v1/admin/users", token(&u)).await;
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app.get_auth("/api/v1/admin/audit-log", token(&u)).await;
    json_of(res, StatusCode::OK).await;
    // Taking the role away acts at once, on the same token.
    let res = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/users/{id}/roles/support"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(json_of(res, StatusCode::OK).await["roles"], json!([]));
    let res = app.get_auth("/api/v1/admin/audit-log", token(&fresh)).await;
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = send(
        &app,
        Method::DELETE,
        "/api/v1/admin/roles/support",
        Some(&root),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The built-in role cannot be changed, deleted, or taken from oneself.
    let res = send(
        &app,
        Method::PATCH,
        "/api/v1/admin/roles/admin",
        Some(&root),
        Some(&json!({"capabilities": []})),
    )
    .await;
    problem(res, StatusCode::CONFLICT, "built_in_role").await;
    let res = send(
        &app,
        Method::DELETE,
        "/api/v1/admin/roles/admin",
        Some(&root),
        None,
    )
    .await;
    problem(res, StatusCode::CONFLICT, "built_in_role").await;
    let res = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/users/{root_id}/roles/admin"),
        Some(&root),
        None,
    )
    .await;
    problem(res, StatusCode::CONFLICT, "cannot_target_self").await;
    let roles = json_of(
        app.get_auth("/api/v1/admin/roles", &root).await,
        StatusCode::OK,
    )
    .await;
    let names: Vec<&str> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin"]);
    assert_eq!(roles[0]["built_in"], true);
    // Unknown roles and users.
    let res = send(
        &app,
        Method::PUT,
        &format!("/api/v1/admin/users/{id}/roles/nope"),
        Some(&root),
        None,
    )
    .await;
    problem(res, StatusCode::NOT_FOUND, "not_found").await;
    let res = send(
        &app,
        Method::DELETE,
        "/api/v1/admin/roles/nope",
        Some(&root),
        None,
    )
    .await;
    problem(res, StatusCode::NOT_FOUND, "not_found").await;
}

async fn users_are_searched_and_paged_by_cursor(backend: Backend) {
    let app = app!(backend);
    let (_, root) = admin(&app, "root@example.com").await;
    let mut expected = HashSet::new();
    for i in 0..5 {
        let t = app.signup(&format!("user{i}@pager.test")).await;
        expected.insert(uid(&t));
    }
    app.signup("other@example.com").await;
    // `_` is no wildcard: it matches nothing here.
    let res = app
        .get_auth("/api/v1/admin/users?search=user_", &root)
        .await;
    assert_eq!(json_of(res, StatusCode::OK).await["items"], json!([]));
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/api/v1/admin/users?search=PAGER.test&limit=2".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = json_of(app.get_auth(&path, &root).await, StatusCode::OK).await;
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            assert!(item["email"].as_str().unwrap().ends_with("@pager.test"));
            assert_eq!(item["disabled"], false);
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5, "no duplicates across pages");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    let all = json_of(
        app.get_auth("/api/v1/admin/users", &root).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 7);
    let res = app
        .get_auth("/api/v1/admin/users?cursor=not-a-cursor", &root)
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = app.get_auth("/api/v1/admin/users?limit=lots", &root).await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

async fn lock_and_unlock_an_account(backend: Backend) {
    let app = app!(backend);
    let (_, root) = admin(&app, "root@example.com").await;
    let u = app.signup("ada@example.com").await;
    let id = uid(&u);
    let res = app
        .post_auth(
            &format!("/api/v1/admin/users/{id}/lock"),
            &root,
            &json!({"duration_secs": 3600}),
        )
        .await;
    let body = json_of(res, StatusCode::OK).await;
    assert!(body["locked_until"].is_string());
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN, "account_locked").await;
    let res = app
        .post_auth(
            &format!("/api/v1/admin/users/{id}/unlock"),
            &root,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    app.login("ada@example.com").await;
    let res = app
        .post_auth(
            &format!("/api/v1/admin/users/{id}/lock"),
            &root,
            &json!({"duration_secs": 0}),
        )
        .await;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
}

async fn admins_list_and_revoke_a_users_sessions(backend: Backend) {
    let app = app!(backend);
    let (_, root) = admin(&app, "root@example.com").await;
    let a = app.signup("ada@example.com").await;
    let b = app.login("ada@example.com").await;
    let id = uid(&a);
    let list = json_of(
        app.get_auth(&format!("/api/v1/admin/users/{id}/sessions"), &root)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let a_claims = crate::password_sessions::decode_claims(token(&a));
    let sid = a_claims["sid"].as_str().unwrap();
    let res = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/users/{id}/sessions/{sid}"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.refresh(a["refresh_token"].as_str().unwrap()).await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    json_of(app.get_auth("/api/v1/me", token(&b)).await, StatusCode::OK).await;
    // A session of another user is not found through this user.
    let other = app.signup("bob@example.com").await;
    let other_sid = crate::password_sessions::decode_claims(token(&other))["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/users/{id}/sessions/{other_sid}"),
        Some(&root),
        None,
    )
    .await;
    problem(res, StatusCode::NOT_FOUND, "not_found").await;
    json_of(
        app.get_auth("/api/v1/me", token(&other)).await,
        StatusCode::OK,
    )
    .await;
    let res = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/users/{id}/sessions"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(json_of(res, StatusCode::OK).await["revoked"], 1);
    let res = app.get_auth("/api/v1/me", token(&b)).await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn the_audit_trail_records_each_flow_without_secrets(backend: Backend) {
    let app = app!(backend);
    let (_, root) = admin(&app, "root@example.com").await;
    let wrong = "Wrong-Passphrase-for-the-scan";
    let new_password = "Another correct horse battery";
    let signup = app.signup("ada@example.com").await;
    let id = uid(&signup);
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": wrong}),
        )
        .await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let login = app.login("ada@example.com").await;
    let refreshed: Value = app
        .refresh(login["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .post_auth("/api/v1/auth/logout", token(&refreshed), &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .post_auth(
            "/api/v1/auth/password/change",
            token(&signup),
            &json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    let changed = json_of(res, StatusCode::OK).await;
    // Another user's events stay out of Ada's own view.
    app.signup("bob@example.com").await;

    let page = json_of(
        app.get_auth(
            &format!("/api/v1/admin/audit-log?user_id={id}&limit=100"),
            &root,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let items = page["items"].as_array().unwrap();
    let types: Vec<&str> = items
        .iter()
        .map(|r| r["event_type"].as_str().unwrap())
        .collect();
    for expected in [
        "signed_up",
        "login_failed",
        "login_succeeded",
        "logged_out",
        "password_changed",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
    let failed = items
        .iter()
        .find(|r| r["event_type"] == "login_failed")
        .unwrap();
    assert_eq!(failed["detail"]["reason"], "wrong_password");
    assert_eq!(failed["ip"], "127.0.0.1");
    assert!(items.iter().all(|r| r["user_id"] == id.as_str()));
    // Newest first.
    let times: Vec<&str> = items.iter().map(|r| r["at"].as_str().unwrap()).collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Filter by type, by time range; page through with the cursor.
    let only = json_of(
        app.get_auth("/api/v1/admin/audit-log?event_type=login_failed", &root)
            .await,
        StatusCode::OK,
    )
    .await;
    let only = only["items"].as_array().unwrap();
    assert!(!only.is_empty() && only.iter().all(|r| r["event_type"] == "login_failed"));
    let res = app
        .get_auth("/api/v1/admin/audit-log?until=2000-01-01T00:00:00Z", &root)
        .await;
    assert_eq!(json_of(res, StatusCode::OK).await["items"], json!([]));
    let res = app
        .get_auth("/api/v1/admin/audit-log?from=2999-01-01T00:00:00Z", &root)
        .await;
    assert_eq!(json_of(res, StatusCode::OK).await["items"], json!([]));
    let total = all_audit_rows(&app).await.len();
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/admin/audit-log?limit=3".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = json_of(app.get_auth(&path, &root).await, StatusCode::OK).await;
        for r in page["items"].as_array().unwrap() {
            walked.push(r["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked.len(), total);
    assert_eq!(walked.iter().collect::<HashSet<_>>().len(), total);

    // The user's own view: their events only.
    let mine = json_of(
        app.get_auth("/api/v1/me/audit-log?limit=200", token(&changed))
            .await,
        StatusCode::OK,
    )
    .await;
    let mine = mine["items"].as_array().unwrap();
    assert_eq!(mine.len(), items.len());
    assert!(mine.iter().all(|r| r["user_id"] == id.as_str()));
    let res = app
        .get_auth(
            &format!("/api/v1/me/audit-log?user_id={id}"),
            token(&changed),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = app
        .get_auth("/api/v1/admin/audit-log?cursor=zz", &root)
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;

    // No password, token or refresh token in any stored row.
    let stored = serde_json::to_string(&all_audit_rows(&app).await).unwrap();
    for secret in [
        PASSWORD,
        wrong,
        new_password,
        token(&signup),
        signup["refresh_token"].as_str().unwrap(),
        token(&login),
        login["refresh_token"].as_str().unwrap(),
        token(&refreshed),
        refreshed["refresh_token"].as_str().unwrap(),
        token(&changed),
        changed["refresh_token"].as_str().unwrap(),
        root.as_str(),
    ] {
        assert!(!stored.contains(secret), "a secret reached the audit trail");
    }
}

async fn admin_actions_are_audited_with_the_acting_admin(backend: Backend) {
    let app = app!(backend);
    let (root_id, root) = admin(&app, "root@example.com").await;
    let password = "Admin-set passphrase 93";
    let res = app
        .post_auth(
            "/api/v1/admin/users",
            &root,
            &json!({"email": "made@example.com", "password": password, "name": "Made", "email_verified": true}),
        )
        .await;
    let made = json_of(res, StatusCode::CREATED).await;
    assert_eq!(made["email_verified"], true);
    let id = made["id"].as_str().unwrap().to_owned();
    let res = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/admin/users/{id}"),
        Some(&root),
        Some(&json!({"email": "renamed@example.com", "name": null})),
    )
    .await;
    let body = json_of(res, StatusCode::OK).await;
    assert_eq!(body["email"], "renamed@example.com");
    assert_eq!(body["name"], Value::Null);
    assert_eq!(
        body["email_verified"], false,
        "a new address is not verified"
    );
    // The created user signs in with the password the administrator set.
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "renamed@example.com", "password": password}),
        )
        .await;
    json_of(res, StatusCode::OK).await;
    set_disabled(&app, &root, &id, true).await;
    let rows = all_audit_rows(&app).await;
    let user_id: UserId = id.parse().unwrap();
    for kind in ["user_created", "user_updated", "user_disabled"] {
        let row = rows
            .iter()
            .find(|r| r.event_type == kind && r.user_id == Some(user_id))
            .unwrap_or_else(|| panic!("no {kind} row"));
        assert_eq!(row.actor_id, Some(root_id), "{kind}");
        assert_eq!(row.ip.as_deref(), Some("127.0.0.1"), "{kind}");
    }
    let updated = rows
        .iter()
        .find(|r| r.event_type == "user_updated")
        .unwrap();
    assert_eq!(
        updated.detail.as_ref().unwrap()["fields"],
        json!(["email", "name", "email_verified"])
    );
    let stored = serde_json::to_string(&rows).unwrap();
    assert!(!stored.contains(password));
    // Admin events are filterable by type.
    let page = json_of(
        app.get_auth("/api/v1/admin/audit-log?event_type=user_created", &root)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"][0]["actor_id"], root_id.to_string());
}

async fn bad_admin_input_gets_stable_errors(backend: Backend) {
    let app = app!(backend);
    let (_, root) = admin(&app, "root@example.com").await;
    app.signup("taken@example.com").await;
    for (body, status, code) in [
        (
            json!({"email": "taken@example.com"}),
            StatusCode::CONFLICT,
            "email_taken",
        ),
        (
            json!({"email": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (
            json!({"email": "x@example.com", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({"email": "x@example.com", "roles": ["ghost"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"email": 5}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"email": "x@example.com", "admin": true}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        let res = app.post_auth("/api/v1/admin/users", &root, &body).await;
        problem(res, status, code).await;
    }
    // Nothing half-created.
    let list = json_of(
        app.get_auth("/api/v1/admin/users?search=x@example.com", &root)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"], json!([]));
    for (body, code) in [
        (
            json!({"name": "Bad Name", "capabilities": []}),
            "invalid_field",
        ),
        (
            json!({"name": "ok", "capabilities": ["Bad Cap"]}),
            "invalid_field",
        ),
    ] {
        let res = app.post_auth("/api/v1/admin/roles", &root, &body).await;
        problem(res, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let res = app.get_auth("/api/v1/admin/users/not-an-id", &root).await;
    problem(res, StatusCode::NOT_FOUND, "not_found").await;
    let other = app.signup("other@example.com").await;
    let res = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/admin/users/{}", uid(&other)),
        Some(&root),
        Some(&json!({"email": "TAKEN@example.com"})),
    )
    .await;
    problem(res, StatusCode::CONFLICT, "email_taken").await;
}

fn link_token(mail: &auth_notify::testing::ReceivedMail, path: &str) -> String {
    let prefix = format!("https://app.example.com{path}?token=");
    let at = mail
        .text_body
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {path} link in {:?}", mail.subject));
    mail.text_body[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn mail_about(
    sink: &auth_notify::testing::SmtpSink,
    to: &str,
    subject_has: &str,
) -> auth_notify::testing::ReceivedMail {
    let (want_to, want_subject) = (to.to_owned(), subject_has.to_lowercase());
    sink.wait_for(
        move |m| {
            m.to.iter().any(|t| t == &want_to) && m.subject.to_lowercase().contains(&want_subject)
        },
        std::time::Duration::from_secs(15),
    )
    .await
    .unwrap_or_else(|| panic!("no mail to {to} about {subject_has:?}"))
}

async fn mail_flows_reuse_and_lockout_are_audited_without_their_secrets(backend: Backend) {
    let sink = auth_notify::testing::SmtpSink::start();
    let builder = TestApp::builder(backend)
        .var("AUTH__MAIL__TRANSPORT", "smtp")
        .var("AUTH__MAIL__SMTP__HOST", "127.0.0.1")
        .var("AUTH__MAIL__SMTP__PORT", &sink.port().to_string())
        .var("AUTH__MAIL__SMTP__TLS", "none")
        .var("AUTH__OUTBOX__POLL_INTERVAL_MS", "50")
        .var("AUTH__APP__URL", "https://app.example.com")
        .var("AUTH__TOKENS__REFRESH_REUSE_GRACE_SECS", "0");
    let app = app!(builder, start);
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned()];
    let t = app.signup("ada@example.com").await;
    let id = uid(&t);
    secrets.push(token(&t).to_owned());
    secrets.push(t["refresh_token"].as_str().unwrap().to_owned());

    let verify = link_token(
        &mail_about(&sink, "ada@example.com", "confirm").await,
        "/verify-email",
    );
    let res = app
        .post("/api/v1/auth/email/verify", &json!({"token": verify}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    secrets.push(verify);

    // Refresh token reuse after the (zero) grace window.
    let rotated: Value = app
        .refresh(t["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    secrets.push(rotated["refresh_token"].as_str().unwrap().to_owned());
    let res = app.refresh(t["refresh_token"].as_str().unwrap()).await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;

    // Password reset.
    let new_password = "a brand new passphrase";
    app.post(
        "/api/v1/auth/password/forgot",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let reset = link_token(
        &mail_about(&sink, "ada@example.com", "reset").await,
        "/reset-password",
    );
    let res = app
        .post(
            "/api/v1/auth/password/reset",
            &json!({"token": reset, "password": new_password}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    secrets.push(reset);
    secrets.push(new_password.to_owned());

    // Magic link and email code sign-ins.
    app.post(
        "/api/v1/auth/magic-link",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let magic = link_token(
        &mail_about(&sink, "ada@example.com", "sign-in link").await,
        "/magic-link",
    );
    let res = app
        .post("/api/v1/auth/magic-link/verify", &json!({"token": magic}))
        .await;
    let signed: Value = json_of(res, StatusCode::OK).await;
    secrets.push(magic);
    secrets.push(signed["refresh_token"].as_str().unwrap().to_owned());
    app.post(
        "/api/v1/auth/otp/send",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let mail = mail_about(&sink, "ada@example.com", "code").await;
    let code: String = mail
        .text_body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let res = app
        .post(
            "/api/v1/auth/otp/verify",
            &json!({"email": "ada@example.com", "code": wrong}),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_code").await;
    let res = app
        .post(
            "/api/v1/auth/otp/verify",
            &json!({"email": "ada@example.com", "code": code}),
        )
        .await;
    json_of(res, StatusCode::OK).await;

    // Lockout: five wrong passwords.
    let wrong_password = "not my password at all";
    for _ in 0..5 {
        app.post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": wrong_password}),
        )
        .await;
    }
    secrets.push(wrong_password.to_owned());

    let rows: Vec<AuditRecord> = all_audit_rows(&app)
        .await
        .into_iter()
        .filter(|r| r.user_id.map(|u| u.to_string()) == Some(id.clone()))
        .collect();
    let types: HashSet<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    for expected in [
        "signed_up",
        "verification_sent",
        "email_verified",
        "refresh_token_reuse_detected",
        "password_reset",
        "magic_link_sign_in",
        "email_code_failed",
        "email_code_sign_in",
        "login_failed",
        "account_locked",
    ] {
        assert!(
            types.contains(expected),
            "{expected} missing from {types:?}"
        );
    }
    let stored = serde_json::to_string(&all_audit_rows(&app).await).unwrap();
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "a secret reached the audit trail"
        );
    }
    assert!(
        !stored.contains(&format!("\"{code}\"")),
        "the code reached the audit trail"
    );
}

async fn created_users_get_the_default_roles_unless_roles_are_named(backend: Backend) {
    let app = app!(
        TestApp::builder(backend).var("AUTH__AUTH__DEFAULT_ROLES", "member"),
        start
    );
    let (_, root) = admin(&app, "root@example.com").await;
    let res = app
        .post_auth(
            "/api/v1/admin/users",
            &root,
            &json!({"email": "a@example.com"}),
        )
        .await;
    assert_eq!(
        json_of(res, StatusCode::CREATED).await["roles"],
        json!(["member"])
    );
    let res = app
        .post_auth(
            "/api/v1/admin/users",
            &root,
            &json!({"email": "b@example.com", "roles": ["admin"]}),
        )
        .await;
    assert_eq!(
        json_of(res, StatusCode::CREATED).await["roles"],
        json!(["admin"])
    );
}

/// Create `role` holding `caps` (as root) and give it to a new account; returns that
/// account's (id, access token).
async fn operator_with(app: &TestApp, root: &str, role: &str, caps: &[&str]) -> (String, String) {
    let res = app
        .post_auth(
            "/api/v1/admin/roles",
            root,
            &json!({"name": role, "capabilities": caps}),
        )
        .await;
    json_of(res, StatusCode::CREATED).await;
    let who = app.signup(&format!("{role}@example.com")).await;
    let id: UserId = uid(&who).parse().unwrap();
    grant(app, id, role).await;
    (uid(&who), token(&who).to_owned())
}

/// The account as root sees it.
async fn account(app: &TestApp, root: &str, id: &str) -> Value {
    let res = app
        .get_auth(&format!("/api/v1/admin/users/{id}"), root)
        .await;
    json_of(res, StatusCode::OK).await
}

async fn a_users_write_operator_cannot_create_or_change_an_administrator(backend: Backend) {
    let app = app!(backend);
    let (root_id, root) = admin(&app, "root@example.com").await;
    let root_id = root_id.to_string();
    let (_, writer) = operator_with(&app, &root, "writer", &["users:read", "users:write"]).await;

    // Creating an administrator needs roles:manage: refused, and no account is made.
    let res = app
        .post_auth(
            "/api/v1/admin/users",
            &writer,
            &json!({"email": "evil@example.com", "password": PASSWORD, "roles": ["admin"]}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app.get_auth("/api/v1/admin/users?search=evil", &root).await;
    let page = json_of(res, StatusCode::OK).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "{page}");
    assert!(
        app.db
            .credentials_by_email("evil@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // An administrator's account is out of reach: email, disable, delete, lock,
    // session revocation are refused and leave it as it was.
    let before = account(&app, &root, &root_id).await;
    let attempts = [
        (
            Method::PATCH,
            format!("/api/v1/admin/users/{root_id}"),
            Some(json!({"email": "writer-owned@example.com"})),
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{root_id}/disable"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/users/{root_id}/lock"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/admin/users/{root_id}"),
            None,
        ),
    ];
    for (method, path, body) in &attempts {
        let res = send(&app, method.clone(), path, Some(&writer), body.as_ref()).await;
        problem(res, StatusCode::FORBIDDEN, "insufficient_capability").await;
    }
    let after = account(&app, &root, &root_id).await;
    assert_eq!(after["email"], "root@example.com");
    assert_eq!(after["disabled"], false);
    assert_eq!(before, after);
    // Root still signs in with the same password (no lock, no takeover).
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "root@example.com", "password": PASSWORD}),
        )
        .await;
    json_of(res, StatusCode::OK).await;

    // A sessions:revoke operator cannot end an administrator's sessions either.
    let (_, revoker) = operator_with(&app, &root, "revoker", &["sessions:revoke"]).await;
    let res = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/users/{root_id}/sessions"),
        Some(&revoker),
        None,
    )
    .await;
    problem(res, StatusCode::FORBIDDEN, "insufficient_capability").await;
    let res = app.get_auth("/api/v1/me", &root).await;
    json_of(res, StatusCode::OK).await;

    // Accounts that hold nothing the writer lacks stay in reach.
    let res = app
        .post_auth(
            "/api/v1/admin/users",
            &writer,
            &json!({"email": "plain@example.com", "password": PASSWORD}),
        )
        .await;
    let plain = json_of(res, StatusCode::CREATED).await;
    let plain_id = plain["id"].as_str().unwrap();
    let res = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/admin/users/{plain_id}"),
        Some(&writer),
        Some(&json!({"email": "plain2@example.com"})),
    )
    .await;
    let changed = json_of(res, StatusCode::OK).await;
    assert_eq!(changed["email"], "plain2@example.com");
    let res = send(
        &app,
        Method::POST,
        &format!("/api/v1/admin/users/{plain_id}/disable"),
        Some(&writer),
        None,
    )
    .await;
    json_of(res, StatusCode::OK).await;
    let res = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/users/{plain_id}"),
        Some(&writer),
        None,
    )
    .await;
    json_of(res, StatusCode::NO_CONTENT).await;
}

async fn nobody_grants_a_capability_they_do_not_hold(backend: Backend) {
    let app = app!(backend);
    let (_, root) = admin(&app, "root@example.com").await;
    // hr may manage roles and accounts, but holds no audit:read.
    let (_, hr) = operator_with(
        &app,
        &root,
        "hr",
        &["users:read", "users:write", "roles:manage"],
    )
    .await;
    let res = app
        .post_auth(
            "/api/v1/admin/roles",
            &root,
            &json!({"name": "auditor", "capabilities": ["audit:read"]}),
        )
        .await;
    json_of(res, StatusCode::CREATED).await;
    let res = app
        .post_auth(
            "/api/v1/admin/roles",
            &root,
            &json!({"name": "reader", "capabilities": ["users:read"]}),
        )
        .await;
    json_of(res, StatusCode::CREATED).await;
    let target = app.signup("target@example.com").await;
    let t = uid(&target);
    let roles_before = account(&app, &root, &t).await["roles"].clone();

    // Assigning a role that carries a capability hr lacks: refused, roles unchanged.
    for role in ["auditor", "admin"] {
        let res = send(
            &app,
            Method::PUT,
            &format!("/api/v1/admin/users/{t}/roles/{role}"),
            Some(&hr),
            None,
        )
        .await;
        problem(res, StatusCode::FORBIDDEN, "insufficient_capability").await;
    }
    assert_eq!(account(&app, &root, &t).await["roles"], roles_before);
    // Nor at creation: no account is made.
    let res = app
        .post_auth(
            "/api/v1/admin/users",
            &hr,
            &json!({"email": "new@example.com", "password": PASSWORD, "roles": ["auditor"]}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN, "insufficient_capability").await;
    assert!(
        app.db
            .credentials_by_email("new@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // Nor by making a role, or widening one hr holds.
    let res = app
        .post_auth(
            "/api/v1/admin/roles",
            &hr,
            &json!({"name": "sneaky", "capabilities": ["audit:read"]}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN, "insufficient_capability").await;
    let res = send(
        &app,
        Method::PATCH,
        "/api/v1/admin/roles/hr",
        Some(&hr),
        Some(&json!({"capabilities": ["users:read", "users:write", "roles:manage", "audit:read"]})),
    )
    .await;
    problem(res, StatusCode::FORBIDDEN, "insufficient_capability").await;
    let res = app.get_auth("/api/v1/admin/audit-log", &hr).await;
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;

    // What hr holds, hr may give: at creation and by assignment.
    let res = app
        .post_auth(
            "/api/v1/admin/users",
            &hr,
            &json!({"email": "new@example.com", "password": PASSWORD, "roles": ["reader"]}),
        )
        .await;
    let created = json_of(res, StatusCode::CREATED).await;
    assert_eq!(created["roles"], json!(["reader"]));
    let res = send(
        &app,
        Method::PUT,
        &format!("/api/v1/admin/users/{t}/roles/reader"),
        Some(&hr),
        None,
    )
    .await;
    let assigned = json_of(res, StatusCode::OK).await;
    assert!(
        assigned["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("reader")),
        "{assigned}"
    );
}

/// An operator replaces an account's address (to take it over, say, then reset its
/// password): the old address is told, and every session of the account ends at once, on
/// the admin API and on the service-authentication profile's `PUT /user/:id` alike.
async fn an_address_change_tells_the_old_address_and_signs_the_account_out(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(crate::email::with_smtp(backend, &sink), start);
    let (_, root) = admin(&app, "root@example.com").await;
    let u = app.signup("ada@example.com").await;
    let id = uid(&u);
    let user_id: UserId = id.parse().unwrap();
    let second = app.login("ada@example.com").await;

    // A change that keeps the address (other letters, a new name) is not an address change.
    let res = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/admin/users/{id}"),
        Some(&root),
        Some(&json!({"email": "Ada@example.com", "name": "Ada"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.db.unrevoked_sessions_of(user_id).await.unwrap().len(),
        2
    );

    let res = send(
        &app,
        Method::PATCH,
        &format!("/api/v1/admin/users/{id}"),
        Some(&root),
        Some(&json!({"email": "mallory@example.net"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["email"], "mallory@example.net");
    assert_eq!(body["email_verified"], false);
    let notice = crate::email::mail_to(&sink, "Ada@example.com", "email address").await;
    assert!(
        notice.text_body.contains("was just changed"),
        "{}",
        notice.text_body
    );
    assert!(
        !notice.text_body.contains("mallory@example.net"),
        "the new address is not disclosed"
    );
    signed_out(&app, user_id, &[&u, &second]).await;
    let audit: Value = app
        .get_auth("/api/v1/admin/audit-log?event_type=user_updated", &root)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["detail"]["email_changed"] == true),
        "{audit}"
    );
}
