//! Webhooks against a real HTTP receiver on 127.0.0.1 that checks each signature with the
//! Standard Webhooks algorithm (written here, not taken from the server).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use auth_core::audit::{AuditQuery, AuditStore};
use auth_core::ports::{OutboxStore, SessionStore};
use auth_core::webhooks::WebhookStore;
use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends, problem};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

on_both_backends!(
    endpoints_are_managed_and_the_secret_is_shown_once,
    deliveries_are_signed_and_retried_after_a_500,
    a_receiver_that_is_down_gets_the_message_when_it_is_back,
    during_a_rotation_both_secrets_sign,
    an_endpoint_failing_too_long_is_disabled_and_audited,
    a_sign_in_whose_event_cannot_be_written_fails_and_opens_nothing,
);

const WAIT: Duration = Duration::from_secs(20);

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// A webhook receiver: answers the queued statuses in turn, then 200.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    fn start_on(
        listener: std::net::TcpListener,
        answers: &[u16],
    ) -> (Self, actix_web::dev::ServerHandle) {
        let receiver = Self::default();
        receiver
            .statuses
            .lock()
            .unwrap()
            .extend(answers.iter().rev());
        let state = receiver.clone();
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    state.received.lock().unwrap().push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body: String::from_utf8(body.to_vec()).unwrap(),
                    });
                    let status = state.statuses.lock().unwrap().pop().unwrap_or(200);
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .finish()
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        (receiver, handle)
    }

    fn start(answers: &[u16]) -> (Self, String, actix_web::dev::ServerHandle) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let (r, h) = Self::start_on(listener, answers);
        (r, url, h)
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        tokio::time::timeout(WAIT, async {
            loop {
                let all = self.all();
                if all.len() >= n {
                    return all;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the receiver did not get {n} requests: {:?}", self.all()))
    }
}

/// The specification's check: HMAC-SHA256 over `id.timestamp.body`, keyed with the
/// base64-decoded secret after `whsec_`; any of the space-separated `v1,` signatures.
fn signed_with(secret: &str, r: &Received) -> bool {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = B64.encode(mac.finalize().into_bytes());
    r.signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

fn loopback_webhooks(backend: Backend) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__WEBHOOKS__ALLOW_HTTP", "true")
        .var("AUTH__WEBHOOKS__ALLOW_PRIVATE_ADDRESSES", "true")
        .var("AUTH__WEBHOOKS__RETRY_INITIAL_MS", "100")
        .var("AUTH__WEBHOOKS__TIMEOUT_SECS", "2")
        .var("AUTH__OUTBOX__POLL_INTERVAL_MS", "50")
}

async fn admin(app: &TestApp) -> String {
    let t = app.signup("root@example.com").await;
    let id = t["user"]["id"].as_str().unwrap().parse().unwrap();
    crate::operators::grant(app, id, "admin").await;
    t["access_token"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, root: &str, url: &str, types: &[&str]) -> Value {
    let res = app
        .post_auth(
            "/api/v1/admin/webhooks",
            root,
            &json!({"url": url, "event_types": types}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

async fn fail_login(app: &TestApp) {
    fail_login_as(app, "nobody@example.com").await;
}

/// A sign-in for an unknown account (distinct addresses stay below the lockout).
async fn fail_login_as(app: &TestApp, email: &str) {
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": email, "password": "wrong password here"}),
        )
        .await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

async fn deliveries(app: &TestApp, root: &str, id: &str) -> Vec<Value> {
    let res = app
        .get_auth(&format!("/api/v1/admin/webhooks/{id}/deliveries"), root)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

async fn endpoints_are_managed_and_the_secret_is_shown_once(backend: Backend) {
    let app = app!(backend);
    let root = admin(&app).await;
    let created = create(
        &app,
        &root,
        "https://hooks.example.com/in",
        &["user_deleted"],
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let raw = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    assert!(raw.len() >= 24);
    let id = created["id"].as_str().unwrap().to_owned();
    let got: Value = app
        .get_auth(&format!("/api/v1/admin/webhooks/{id}"), &root)
        .await
        .json()
        .await
        .unwrap();
    assert!(got.get("secret").is_none(), "{got}");
    assert_eq!(got["event_types"], json!(["user_deleted"]));
    assert_eq!(got["enabled"], true);
    let list: Value = app
        .get_auth("/api/v1/admin/webhooks", &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&secret));
    // Stored sealed, not in clear; and not in the audit trail.
    let stored = app.db.endpoint(id.parse().unwrap()).await.unwrap().unwrap();
    assert!(!stored.secret_sealed.contains(&secret[6..]));
    let rows = app
        .db
        .query(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(rows.iter().any(|r| r.event_type == "webhook_created"));
    assert!(!serde_json::to_string(&rows).unwrap().contains(&secret[6..]));
    // Validation: https only, no private addresses, known event type syntax.
    for (body, code) in [
        (
            json!({"url": "http://hooks.example.com/in", "event_types": ["*"]}),
            "invalid_field",
        ),
        (
            json!({"url": "https://127.0.0.1/in", "event_types": ["*"]}),
            "invalid_field",
        ),
        (
            json!({"url": "https://169.254.169.254/latest", "event_types": ["*"]}),
            "invalid_field",
        ),
        (
            json!({"url": "https://hooks.example.com/in", "event_types": []}),
            "invalid_field",
        ),
        (
            json!({"url": "https://hooks.example.com/in", "event_types": ["Login Failed"]}),
            "invalid_field",
        ),
    ] {
        let res = app.post_auth("/api/v1/admin/webhooks", &root, &body).await;
        problem(res, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let res = app
        .post_auth(
            "/api/v1/admin/webhooks",
            &root,
            &json!({"event_types": ["*"]}),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    // Update, then delete.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/webhooks/{id}")))
        .bearer_auth(&root)
        .json(&json!({"enabled": false, "event_types": ["login_failed", "signed_up"], "description": "SIEM"}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["enabled"], false);
    assert_eq!(body["description"], "SIEM");
    assert_eq!(body["event_types"], json!(["login_failed", "signed_up"]));
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/admin/webhooks/{id}")))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .get_auth(&format!("/api/v1/admin/webhooks/{id}"), &root)
        .await;
    problem(res, StatusCode::NOT_FOUND, "not_found").await;
}

async fn deliveries_are_signed_and_retried_after_a_500(backend: Backend) {
    let (receiver, url, _h) = Receiver::start(&[500]);
    let app = app!(loopback_webhooks(backend), start);
    let root = admin(&app).await;
    let created = create(&app, &root, &url, &["login_failed"]).await;
    let secret = created["secret"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    fail_login(&app).await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got[0].id, got[1].id, "a retry keeps the webhook-id");
    for r in &got {
        assert!(signed_with(secret, r), "bad signature: {r:?}");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["type"], "login_failed");
        assert_eq!(body["data"]["detail"]["reason"], "unknown_account");
        assert!(!r.body.contains("wrong password here"));
    }
    // Each attempt recorded, newest first.
    let list = tokio::time::timeout(WAIT, async {
        loop {
            let list = deliveries(&app, &root, id).await;
            if list.len() >= 2 {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["attempt"], 1);
    assert_eq!(list[1]["status_code"], 500);
    assert_eq!(list[1]["succeeded"], false);
    assert_eq!(list[0]["attempt"], 2);
    assert_eq!(list[0]["status_code"], 200);
    assert_eq!(list[0]["succeeded"], true);
    assert_eq!(list[0]["message_id"], got[0].id.as_str());
    // Only subscribed types are delivered: a successful sign-up is not.
    app.signup("ada@example.com").await;
    fail_login(&app).await;
    let got = receiver.wait_for(3).await;
    assert!(got.iter().all(|r| r.body.contains("login_failed")));
}

async fn a_receiver_that_is_down_gets_the_message_when_it_is_back(backend: Backend) {
    // Reserve a port, then close it: nothing listens there for now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = app!(loopback_webhooks(backend), start);
    let root = admin(&app).await;
    let created = create(
        &app,
        &root,
        &format!("http://127.0.0.1:{port}/hook"),
        &["login_failed"],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    fail_login(&app).await;
    let failed = tokio::time::timeout(WAIT, async {
        loop {
            let list = deliveries(&app, &root, &id).await;
            if !list.is_empty() {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(failed[0]["succeeded"], false);
    assert_eq!(failed[0]["status_code"], Value::Null);
    assert!(failed[0]["error"].is_string());
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (receiver, _h) = Receiver::start_on(listener, &[]);
    let got = receiver.wait_for(1).await;
    assert!(signed_with(created["secret"].as_str().unwrap(), &got[0]));
    let list = tokio::time::timeout(WAIT, async {
        loop {
            let list = deliveries(&app, &root, &id).await;
            if list.iter().any(|d| d["succeeded"] == true) {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the success is recorded");
    assert!(list.iter().all(|d| d["message_id"] == got[0].id.as_str()));
    assert!(list.len() >= 2);
}

async fn during_a_rotation_both_secrets_sign(backend: Backend) {
    let (receiver, url, _h) = Receiver::start(&[]);
    let app = app!(loopback_webhooks(backend), start);
    let root = admin(&app).await;
    let created = create(&app, &root, &url, &["login_failed"]).await;
    let old = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap();
    let res = app
        .post_auth(
            &format!("/api/v1/admin/webhooks/{id}/rotate-secret"),
            &root,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_expires_at"].is_string());
    fail_login(&app).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].signature.split(' ').count(), 2);
    assert!(signed_with(&new, &got[0]));
    assert!(signed_with(&old, &got[0]));
    assert!(!signed_with(
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &got[0]
    ));
}

async fn an_endpoint_failing_too_long_is_disabled_and_audited(backend: Backend) {
    let (receiver, url, _h) = Receiver::start(&[500, 500, 500, 500, 500]);
    let builder = loopback_webhooks(backend).var("AUTH__WEBHOOKS__DISABLE_AFTER_SECS", "0");
    let app = app!(builder, start);
    let root = admin(&app).await;
    let created = create(&app, &root, &url, &["login_failed"]).await;
    let id = created["id"].as_str().unwrap();
    fail_login(&app).await;
    receiver.wait_for(1).await;
    let endpoint = tokio::time::timeout(WAIT, async {
        loop {
            let e: Value = app
                .get_auth(&format!("/api/v1/admin/webhooks/{id}"), &root)
                .await
                .json()
                .await
                .unwrap();
            if e["enabled"] == false {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .starts_with("failing since")
    );
    let page: Value = app
        .get_auth(
            "/api/v1/admin/audit-log?event_type=webhook_endpoint_disabled",
            &root,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["detail"]["endpoint_id"], id);
    // Disabled: no more deliveries, and the message is not retried.
    fail_login(&app).await;
    wait_for_empty_outbox(&app).await;
    assert_eq!(receiver.all().len(), 1);
    // Enabled again by an administrator, it receives new events.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/webhooks/{id}")))
        .bearer_auth(&root)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["failing_since"], Value::Null);
    assert_eq!(body["disabled_reason"], Value::Null);
}

async fn wait_for_empty_outbox(app: &TestApp) {
    tokio::time::timeout(WAIT, async {
        while app.db.backlog().await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the outbox drains");
}

/// Two server processes on one PostgreSQL database: each event is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_event_once() {
    let (receiver, url, _h) = Receiver::start(&[]);
    let a = app!(loopback_webhooks(Backend::Postgres), start);
    let b = app!(loopback_webhooks(Backend::Postgres).sharing_with(&a), start);
    let root = admin(&a).await;
    let created = create(&a, &root, &url, &["login_failed", "signed_up"]).await;
    let secret = created["secret"].as_str().unwrap();
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        fail_login_as(node, &format!("ghost{i}@example.com")).await;
        let res = node
            .post(
                "/api/v1/auth/signup",
                &json!({"email": format!("u{i}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    receiver.wait_for(12).await;
    wait_for_empty_outbox(&a).await;
    let got = receiver.all();
    assert_eq!(got.len(), 12, "no duplicate deliveries");
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 12);
    assert!(got.iter().all(|r| signed_with(secret, r)));
}

/// The outbox rule, end to end: a sign-in's audit row and webhook delivery are written in
/// the transaction that opens its session. While the database refuses audit rows (a
/// trigger), a sign-in fails, opens no session and queues no delivery; once it accepts
/// them again, the sign-in succeeds with its row and its delivery. (Before, the sign-in
/// succeeded and its row and delivery were dropped with a log line.)
async fn a_sign_in_whose_event_cannot_be_written_fails_and_opens_nothing(backend: Backend) {
    let app = app!(loopback_webhooks(backend), start);
    let root = admin(&app).await;
    let (receiver, url, _server) = Receiver::start(&[]);
    create(&app, &root, &url, &["login_succeeded"]).await;
    let ada = app.signup("ada@example.com").await;
    let ada_id: auth_core::model::UserId = ada["user"]["id"].as_str().unwrap().parse().unwrap();
    let sessions = || async { app.db.unrevoked_sessions_of(ada_id).await.unwrap().len() };
    let logins = || async {
        app.db
            .query(&AuditQuery {
                user_id: Some(ada_id),
                event_type: Some("login_succeeded".into()),
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .len()
    };
    let before = sessions().await;

    app.test_db.execute(match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$; \
             CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION refuse_audit();"
        }
    });
    let refused = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(refused.status().is_server_error(), "{}", refused.status());
    assert_eq!(
        sessions().await,
        before,
        "a session opened without its event"
    );
    assert_eq!(logins().await, 0);

    app.test_db.execute(match backend {
        Backend::Sqlite => "DROP TRIGGER refuse_audit;",
        Backend::Postgres => "DROP TRIGGER refuse_audit ON audit_log;",
    });
    app.login("ada@example.com").await;
    assert_eq!(sessions().await, before + 1);
    assert_eq!(logins().await, 1);
    let newest = app.db.unrevoked_sessions_of(ada_id).await.unwrap()[0].id;
    receiver.wait_for(1).await;
    // The refused sign-in left no delivery behind to arrive late.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.all();
    assert_eq!(got.len(), 1, "{got:?}");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "login_succeeded");
    assert_eq!(body["data"]["user_id"], ada["user"]["id"]);
    assert_eq!(body["data"]["session_id"], newest.to_string());
}
