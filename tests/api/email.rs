//! Mail flows against a real SMTP server on loopback: the test reads the mail the server
//! really sent and follows its link or code.

use std::time::Duration;

use auth_core::ports::UserStore;
use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends, problem};
use auth_notify::testing::{ReceivedMail, SmtpSink};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    verification_link_confirms_the_address,
    required_confirmation_holds_sign_in_and_does_not_reveal_accounts,
    forgot_and_reset_password_end_to_end,
    change_password_replaces_every_session,
    magic_link_signs_in_and_honours_the_allow_list,
    email_code_signs_in_and_dies_after_five_wrong_tries,
    six_digit_codes_have_a_daily_cap_per_account,
    mail_survives_an_smtp_outage,
);

const WAIT: Duration = Duration::from_secs(15);

pub(crate) fn with_smtp(backend: Backend, sink: &SmtpSink) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__MAIL__TRANSPORT", "smtp")
        .var("AUTH__MAIL__FROM", "Auth <auth@example.com>")
        .var("AUTH__MAIL__SMTP__HOST", "127.0.0.1")
        .var("AUTH__MAIL__SMTP__PORT", &sink.port().to_string())
        .var("AUTH__MAIL__SMTP__TLS", "none")
        .var("AUTH__MAIL__SMTP__TIMEOUT_SECS", "2")
        .var("AUTH__OUTBOX__POLL_INTERVAL_MS", "50")
        .var("AUTH__OUTBOX__RETRY_BASE_DELAY_MS", "100")
        .var("AUTH__OUTBOX__RETRY_MAX_DELAY_SECS", "1")
        .var("AUTH__APP__URL", "https://app.example.com")
        .var("AUTH__APP__REDIRECT_ALLOW_LIST", "https://shop.example.com")
}

pub(crate) async fn mail_to(sink: &SmtpSink, to: &str, subject_has: &str) -> ReceivedMail {
    let (want_to, want_subject) = (to.to_owned(), subject_has.to_lowercase());
    sink.wait_for(
        move |m| {
            m.to.iter().any(|t| t == &want_to) && m.subject.to_lowercase().contains(&want_subject)
        },
        WAIT,
    )
    .await
    .unwrap_or_else(|| panic!("no mail to {to} about {subject_has:?}"))
}

pub(crate) fn token_in(mail: &ReceivedMail, path: &str) -> String {
    let at = mail
        .text_body
        .find(&format!("https://app.example.com{path}?token="))
        .unwrap_or_else(|| panic!("no {path} link in {:?}", mail.subject));
    let rest = &mail.text_body[at..];
    let start = rest.find("token=").unwrap() + "token=".len();
    rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

pub(crate) fn code_in(mail: &ReceivedMail) -> String {
    mail.text_body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a 6-digit code in the mail")
        .to_owned()
}

async fn verification_link_confirms_the_address(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_smtp(backend, &sink), start);
    let t = app.signup("ada@example.com").await;
    assert_eq!(t["user"]["email_verified"], false);
    let mail = mail_to(&sink, "ada@example.com", "confirm").await;
    assert!(mail.from.contains("auth@example.com"));
    assert!(
        mail.html_body
            .contains("https://app.example.com/verify-email?token=")
    );
    let token = token_in(&mail, "/verify-email");
    // The database holds only the hash of what the mail carries. The worker erases the
    // payload just after the SMTP server accepted the mail: wait for that step.
    let mut erased = false;
    for _ in 0..100 {
        let entries = app.db.outbox_entries().await.unwrap();
        if entries.iter().all(|e| !e.has_payload) {
            erased = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(erased, "a delivered entry keeps its payload");

    assert_eq!(
        app.post("/api/v1/auth/email/verify", &json!({"token": token}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let me: Value = app
        .get_auth("/api/v1/me", t["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email_verified"], true);
    problem(
        app.post("/api/v1/auth/email/verify", &json!({"token": token}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_or_expired_token",
    )
    .await;

    // Resend while verified: accepted, nothing sent.
    let res = app
        .post_auth(
            "/api/v1/auth/email/verify/send",
            t["access_token"].as_str().unwrap(),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
}

async fn required_confirmation_holds_sign_in_and_does_not_reveal_accounts(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(
        with_smtp(backend, &sink).var("AUTH__AUTH__EMAIL_CONFIRMATION", "required"),
        start
    );
    let body = json!({"email": "ada@example.com", "password": PASSWORD});
    let first = app.post("/api/v1/auth/signup", &body).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first, json!({"status": "verification_sent"}));
    let again = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "ADA@example.com", "password": "another good passphrase"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "a duplicate sign-up must look the same"
    );
    mail_to(&sink, "ada@example.com", "tried to sign up").await;

    problem(
        app.post("/api/v1/auth/login", &body).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    let mail = mail_to(&sink, "ada@example.com", "confirm").await;
    let token = token_in(&mail, "/verify-email");
    assert_eq!(
        app.post("/api/v1/auth/email/verify", &json!({"token": token}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    app.login("ada@example.com").await;
}

async fn forgot_and_reset_password_end_to_end(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_smtp(backend, &sink), start);
    let t = app.signup("ada@example.com").await;
    let known = app
        .post(
            "/api/v1/auth/password/forgot",
            &json!({"email": "Ada@Example.com"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/auth/password/forgot",
            &json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(
        known.json::<Value>().await.unwrap(),
        unknown.json::<Value>().await.unwrap()
    );

    let mail = mail_to(&sink, "ada@example.com", "reset").await;
    let token = token_in(&mail, "/reset-password");
    let weak = app
        .post(
            "/api/v1/auth/password/reset",
            &json!({"token": token, "password": "12345678"}),
        )
        .await;
    problem(weak, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    let res = app
        .post(
            "/api/v1/auth/password/reset",
            &json!({"token": token, "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    problem(
        app.post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        app.post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "a brand new passphrase"})
        )
        .await
        .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_auth("/api/v1/me", t["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(t["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let reuse = app
        .post(
            "/api/v1/auth/password/reset",
            &json!({"token": token, "password": "yet another passphrase"}),
        )
        .await;
    problem(reuse, StatusCode::BAD_REQUEST, "invalid_or_expired_token").await;
    mail_to(&sink, "ada@example.com", "was reset").await;

    // Nothing was ever sent to the unknown address.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sink.messages()
            .iter()
            .all(|m| !m.to.iter().any(|t| t == "nobody@example.com"))
    );
}

async fn change_password_replaces_every_session(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_smtp(backend, &sink), start);
    let t = app.signup("ada@example.com").await;
    let other = app.login("ada@example.com").await;
    let access = t["access_token"].as_str().unwrap();
    let wrong = app.post_auth("/api/v1/auth/password/change", access, &json!({"current_password": "nope nope nope", "new_password": "a brand new passphrase"})).await;
    problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let res = app
        .post_auth(
            "/api/v1/auth/password/change",
            access,
            &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let fresh: Value = res.json().await.unwrap();
    assert_eq!(
        app.get_auth("/api/v1/me", fresh["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    for old in [&t, &other] {
        assert_eq!(
            app.get_auth("/api/v1/me", old["access_token"].as_str().unwrap())
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let user_id = t["user"]["id"].as_str().unwrap().parse().unwrap();
    let stored = app.db.user_by_id(user_id).await.unwrap().unwrap();
    assert_eq!(stored.email, "ada@example.com");
    mail_to(&sink, "ada@example.com", "changed").await;
}

async fn magic_link_signs_in_and_honours_the_allow_list(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_smtp(backend, &sink), start);
    let bad = app
        .post(
            "/api/v1/auth/magic-link",
            &json!({"email": "new@example.com", "redirect_to": "https://evil.example.net/"}),
        )
        .await;
    problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let res = app
        .post(
            "/api/v1/auth/magic-link",
            &json!({"email": "new@example.com", "redirect_to": "https://shop.example.com/cart"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let mail = mail_to(&sink, "new@example.com", "sign-in link").await;
    let token = token_in(&mail, "/magic-link");
    let res = app
        .post("/api/v1/auth/magic-link/verify", &json!({"token": token}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["redirect_to"], "https://shop.example.com/cart");
    assert_eq!(body["user"]["email"], "new@example.com");
    assert_eq!(body["user"]["email_verified"], true);
    problem(
        app.post("/api/v1/auth/magic-link/verify", &json!({"token": token}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_or_expired_token",
    )
    .await;
}

async fn email_code_signs_in_and_dies_after_five_wrong_tries(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_smtp(backend, &sink), start);
    app.signup("ada@example.com").await;
    assert_eq!(
        app.post(
            "/api/v1/auth/otp/send",
            &json!({"email": "ada@example.com"})
        )
        .await
        .status(),
        StatusCode::ACCEPTED
    );
    let code = code_in(&mail_to(&sink, "ada@example.com", "code").await);
    let res = app
        .post(
            "/api/v1/auth/otp/verify",
            &json!({"email": "ada@example.com", "code": code}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    problem(
        app.post(
            "/api/v1/auth/otp/verify",
            &json!({"email": "ada@example.com", "code": code}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;

    sink.clear();
    app.post(
        "/api/v1/auth/otp/send",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let code = code_in(&mail_to(&sink, "ada@example.com", "code").await);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        problem(
            app.post(
                "/api/v1/auth/otp/verify",
                &json!({"email": "ada@example.com", "code": wrong}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_code",
        )
        .await;
    }
    problem(
        app.post(
            "/api/v1/auth/otp/verify",
            &json!({"email": "ada@example.com", "code": code}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_code",
    )
    .await;
    problem(
        app.post("/api/v1/auth/otp/send", &json!({"phone": "+15555550100"}))
            .await,
        StatusCode::BAD_REQUEST,
        "not_enabled",
    )
    .await;
}

async fn mail_survives_an_smtp_outage(backend: Backend) {
    let sink = SmtpSink::start();
    let port = sink.port();
    sink.stop();
    let app = app!(with_smtp(backend, &sink), start);
    // The request succeeds although the mail server is down.
    app.signup("ada@example.com").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let entries = app.db.outbox_entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0].attempts >= 1 && entries[0].done_at.is_none() && entries[0].last_error.is_some(),
        "{entries:?}"
    );
    drop(sink);
    let sink = SmtpSink::start_on(port);
    mail_to(&sink, "ada@example.com", "confirm").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1, "delivered exactly once");
}

/// Two server processes on one PostgreSQL: every mail goes out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_each_mail_once() {
    let sink = SmtpSink::start();
    let a = app!(with_smtp(Backend::Postgres, &sink), start);
    let b = app!(with_smtp(Backend::Postgres, &sink).sharing_with(&a), start);
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        node.signup(&format!("user{i}@example.com")).await;
        node.post(
            "/api/v1/auth/password/forgot",
            &json!({"email": format!("user{i}@example.com")}),
        )
        .await;
    }
    for i in 0..10 {
        mail_to(&sink, &format!("user{i}@example.com"), "reset").await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 20, "10 confirmations and 10 resets, each once");
    let entries = a.db.outbox_entries().await.unwrap();
    assert!(entries.iter().all(|e| e.done_at.is_some()), "{entries:?}");
}

/// Issue 14, hole 10: besides the short limits (per code, per 10 minutes), wrong 6-digit
/// codes of an account are capped per day, from every client and every code together;
/// past the cap even the right code is refused (429 with Retry-After) until the day is
/// over, and the account's authenticator codes are capped with it. Other accounts go on.
async fn six_digit_codes_have_a_daily_cap_per_account(backend: Backend) {
    use auth_core::mfa::{time_step, totp_code};
    let sink = SmtpSink::start();
    let app = app!(
        with_smtp(backend, &sink)
            .var("AUTH__LOCKOUT__CODE_FAILURES_PER_DAY", "3")
            .var("AUTH__SERVER__TRUSTED_PROXIES", "127.0.0.1,::1"),
        start
    );
    let t = app.signup("ada@example.com").await;
    let (secret, _) = crate::mfa::enrol_totp(&app, t["access_token"].as_str().unwrap()).await;
    let send = |email: &'static str| {
        let app = &app;
        async move {
            let res = app
                .post("/api/v1/auth/otp/send", &json!({"email": email}))
                .await;
            assert_eq!(res.status(), StatusCode::ACCEPTED);
        }
    };
    let verify = |code: String, from: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/v1/auth/otp/verify"))
                .header("x-forwarded-for", from)
                .json(&json!({"email": "ada@example.com", "code": code}))
                .send()
                .await
                .unwrap()
        }
    };
    send("ada@example.com").await;
    let code = code_in(&mail_to(&sink, "ada@example.com", "code").await);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    // Three wrong codes from three addresses: each code lives on (5 tries), the day's cap
    // of the account is reached.
    for from in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        problem(
            verify(wrong.to_owned(), from).await,
            StatusCode::BAD_REQUEST,
            "invalid_code",
        )
        .await;
    }
    let res = verify(code, "198.51.100.7").await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((86_000..=86_400).contains(&retry), "{retry}");
    problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The authenticator app's codes of the same account are capped with them.
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    let res = app
        .post(
            "/api/v1/auth/mfa/verify",
            &json!({
                "mfa_token": body["mfa_token"],
                "factor": "totp",
                "code": totp_code(&secret, time_step(chrono::Utc::now())),
            }),
        )
        .await;
    problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another account is not affected.
    app.signup("bob@example.com").await;
    sink.clear();
    send("bob@example.com").await;
    let code = code_in(&mail_to(&sink, "bob@example.com", "code").await);
    let res = app
        .post(
            "/api/v1/auth/otp/verify",
            &json!({"email": "bob@example.com", "code": code}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}
