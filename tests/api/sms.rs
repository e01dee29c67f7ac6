//! SMS codes as a second factor over HTTP on SQLite and PostgreSQL, delivered through the
//! Twilio-compatible adapter to a local HTTP server that speaks Twilio's wire format and
//! records each request (form fields `To`, `From`, `Body`; HTTP Basic `sid:token`), and
//! through the development file transport.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use auth_e2e::{Backend, PASSWORD, TestApp, app, on_both_backends, problem};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::password_sessions::decode_claims;

on_both_backends!(
    sms_second_factor_through_a_twilio_compatible_api,
    the_development_transport_writes_messages_to_the_data_directory,
    sms_is_off_unless_configured,
);

const EMAIL: &str = "ada@example.com";
const SID: &str = "AC0123456789abcdef";
const TOKEN: &str = "twilio-auth-token";
const FROM: &str = "+15005550006";

/// One request the fake API received.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    authorization: String,
    form: HashMap<String, String>,
}

/// A Twilio Messages API stand-in on loopback: records requests, answers 201 like Twilio.
struct FakeTwilio {
    url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeTwilio {
    async fn start() -> Self {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let shared = web::Data::from(requests.clone());
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new().app_data(shared.clone()).route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                web::post().to(
                    |req: HttpRequest,
                     form: web::Form<HashMap<String, String>>,
                     log: web::Data<Mutex<Vec<Recorded>>>| async move {
                        let authorization = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let form = form.into_inner();
                        let body = json!({
                            "sid": "SM0123456789abcdef0123456789abcdef",
                            "account_sid": req.match_info().get("sid"),
                            "to": form.get("To"),
                            "from": form.get("From"),
                            "status": "queued",
                            "num_segments": "1",
                        });
                        log.lock().unwrap().push(Recorded {
                            path: req.path().to_owned(),
                            authorization,
                            form,
                        });
                        HttpResponse::Created().json(body)
                    },
                ),
            )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            requests,
            handle,
        }
    }

    /// Wait (bounded) until the `n`-th request has arrived, and return it.
    async fn nth(&self, n: usize) -> Recorded {
        for _ in 0..200 {
            if let Some(r) = self.requests.lock().unwrap().get(n - 1) {
                return r.clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the fake Twilio API received no request #{n}");
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

fn code_in(body: &str) -> String {
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {body:?}"))
        .to_owned()
}

async fn verify_sms(app: &TestApp, mfa_token: &str, code: &str) -> reqwest::Response {
    app.post(
        "/api/v1/auth/mfa/verify",
        &json!({"mfa_token": mfa_token, "factor": "sms", "code": code}),
    )
    .await
}

fn bearer(t: &Value) -> &str {
    t["access_token"].as_str().unwrap()
}

async fn sms_second_factor_through_a_twilio_compatible_api(backend: Backend) {
    let twilio = FakeTwilio::start().await;
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__SMS__TRANSPORT", "twilio")
            .var("AUTH__SMS__FROM", FROM)
            .var("AUTH__SMS__TWILIO__BASE_URL", &twilio.url)
            .var("AUTH__SMS__TWILIO__ACCOUNT_SID", SID)
            .var("AUTH__SMS__TWILIO__AUTH_TOKEN", TOKEN)
            .var("AUTH__SMS__PASSWORDLESS", "true")
            .var("AUTH__OUTBOX__POLL_INTERVAL_MS", "50"),
        start
    );
    let t = app.signup(EMAIL).await;
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/sms/enroll",
            bearer(&t),
            &json!({"phone": "415 555 0123"}),
        )
        .await;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/sms/enroll",
            bearer(&t),
            &json!({"phone": "+1 (415) 555-0123"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let enrollment: Value = res.json().await.unwrap();
    assert_eq!(enrollment["phone"], "+•••••••••23");

    // The request in Twilio's wire format.
    let first = twilio.nth(1).await;
    assert_eq!(
        first.path,
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    assert_eq!(first.authorization, format!("Basic {basic}"));
    assert_eq!(first.form["To"], "+14155550123");
    assert_eq!(first.form["From"], FROM);
    let code = code_in(&first.form["Body"]);

    let res = app
        .post_auth(
            "/api/v1/auth/mfa/sms/activate",
            bearer(&t),
            &json!({"factor_id": enrollment["factor_id"], "code": code}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let codes: Value = res.json().await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);

    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": EMAIL, "password": PASSWORD}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["mfa_required"], true);
    assert_eq!(body["factors"], json!(["sms", "recovery_code"]));
    let mfa_token = body["mfa_token"].as_str().unwrap();
    let res = app
        .post(
            "/api/v1/auth/mfa/sms/send",
            &json!({"mfa_token": mfa_token}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let second = twilio.nth(2).await;
    assert_eq!(second.form["To"], "+14155550123");
    let code = code_in(&second.form["Body"]);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    problem(
        verify_sms(&app, mfa_token, wrong).await,
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;
    let res = verify_sms(&app, mfa_token, &code).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    let claims = decode_claims(bearer(&tokens));
    assert_eq!(claims["amr"], json!(["pwd", "sms"]));
    assert_eq!(claims["aal"], "aal2");
    // A code works once.
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": EMAIL, "password": PASSWORD}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    let res = app
        .post(
            "/api/v1/auth/mfa/verify",
            &json!({"mfa_token": body["mfa_token"], "factor": "sms", "code": code}),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_code").await;

    // Passwordless sign-in by SMS: the same answer for any number; only the verified number
    // of an SMS factor gets a code.
    for phone in ["+14155550199", "+1 415 555 0123"] {
        let res = app
            .post("/api/v1/auth/otp/send", &json!({"phone": phone}))
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    let res = app
        .post("/api/v1/auth/otp/send", &json!({"phone": "0123"}))
        .await;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let third = twilio.nth(3).await;
    assert_eq!(third.form["To"], "+14155550123");
    let code = code_in(&third.form["Body"]);
    let res = app
        .post(
            "/api/v1/auth/otp/verify",
            &json!({"phone": "+14155550123", "code": code}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    let claims = decode_claims(bearer(&tokens));
    // SMS is the user's only factor: it is not asked twice.
    assert_eq!(claims["amr"], json!(["sms"]));
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(twilio.requests.lock().unwrap().len(), 3);
}

async fn the_development_transport_writes_messages_to_the_data_directory(backend: Backend) {
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__SMS__TRANSPORT", "file")
            .var("AUTH__OUTBOX__POLL_INTERVAL_MS", "50"),
        start
    );
    let t = app.signup(EMAIL).await;
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/sms/enroll",
            bearer(&t),
            &json!({"phone": "+33612345678"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let dir = app.settings.data_dir.join("sms");
    let mut text = None;
    for _ in 0..200 {
        let file = std::fs::read_dir(&dir).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .find(|f| f.path().extension().is_some_and(|e| e == "txt"))
        });
        if let Some(file) = file {
            text = Some(std::fs::read_to_string(file.path()).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let text = text.expect("an SMS file");
    assert!(text.starts_with("To: +33612345678\n\n"), "{text}");
    code_in(&text);
}

async fn sms_is_off_unless_configured(backend: Backend) {
    let app = app!(backend);
    let t = app.signup(EMAIL).await;
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/sms/enroll",
            bearer(&t),
            &json!({"phone": "+14155550123"}),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST, "not_enabled").await;
}
