//! The `service-authentication` profile: second factors (`/mfa/*`, `/otp/*`,
//! `/authenticator/*`) over the canonical MFA services, on SQLite and PostgreSQL. SMS goes
//! through the development file transport (each message a file under `data_dir/sms`), mail
//! to a real SMTP sink; TOTP codes are computed for the real clock (one step of skew either
//! side is accepted, so a test uses the previous, the current and the next step in turn).

use std::time::Duration;

use auth_core::mfa::{base32_decode, time_step, totp_code};
use auth_core::ports::SessionStore;
use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends, problem};
use auth_notify::testing::SmtpSink;
use base64::Engine as _;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::compat_service_auth::{PREFIX, ProfileCookies, cookie_value, set_cookies, with_profile};

on_both_backends!(
    authenticator_app_guards_the_profile_login_and_the_canonical_one,
    sms_factor_enrols_signs_in_and_is_removed_through_the_profile,
    email_codes_sign_in_and_a_canonical_factor_is_asked_by_the_profile,
    a_dead_mfa_token_answers_in_the_profile_format_and_a_rate_limit_as_a_problem,
);

const ADA: &str = "ada@example.com";

fn step() -> i64 {
    time_step(chrono::Utc::now())
}

fn with_sms(backend: Backend, sink: &SmtpSink) -> TestAppBuilder {
    with_profile(backend, sink)
        .var("AUTH__SMS__TRANSPORT", "file")
        .var("AUTH__SMS__PASSWORDLESS", "true")
        // The story takes more second-factor steps in one rate-limit window than a user would.
        .var("AUTH__RATE_LIMITS__MFA_VERIFY__PER_IDENTIFIER", "20")
}

/// A client of the profile: JSON requests under its prefix, with an optional `jwt` cookie.
struct Profile<'a> {
    app: &'a TestApp,
}

impl Profile<'_> {
    async fn post(&self, route: &str, body: &Value) -> Response {
        self.app
            .client
            .post(self.app.url(&format!("{PREFIX}{route}")))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn post_jwt(&self, route: &str, jwt: &str, body: &Value) -> Response {
        self.app
            .client
            .post(self.app.url(&format!("{PREFIX}{route}")))
            .profile_cookies(&format!("jwt={jwt}"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn user(&self, jwt: &str) -> Response {
        self.app
            .client
            .get(self.app.url(&format!("{PREFIX}/user")))
            .profile_cookies(&format!("jwt={jwt}"))
            .send()
            .await
            .unwrap()
    }

    /// Register `email` with cookies; the JWT.
    async fn register(&self, email: &str) -> String {
        let res = self
            .post(
                "/register",
                &json!({"email": email, "password": PASSWORD, "options": {"setCookie": true}}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        cookie_value(&set_cookies(&res), "jwt").expect("jwt cookie")
    }

    /// `/login` of an account with a second factor: no cookie, `mfa_required`.
    async fn login_mfa(&self, email: &str) -> Value {
        let res = self
            .post("/login", &json!({"email": email, "password": PASSWORD}))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(set_cookies(&res).is_empty());
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["mfa_required"], true, "{body}");
        assert!(body["mfa_token"].is_string() && body.get("token").is_none());
        body
    }
}

/// The profile's error body `{"error": message}` with `status`.
async fn profile_error(res: Response, status: StatusCode, message: &str) {
    assert_eq!(res.status(), status);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": message})
    );
}

/// Signed in: the cookies carry a JWT that `/user` accepts for `email`.
async fn signed_in_with_cookies(profile: &Profile<'_>, res: Response, email: &str) -> Value {
    assert_eq!(res.status(), StatusCode::OK);
    let cookies = set_cookies(&res);
    let jwt = cookie_value(&cookies, "jwt").expect("jwt cookie");
    assert!(cookie_value(&cookies, "refresh_token").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token"], jwt.as_str());
    assert_eq!(body["user"]["email"], email);
    let me = profile.user(&jwt).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap()["email"], email);
    body
}

/// The canonical state: `GET /api/v1/auth/mfa/factors` with a canonical access token.
async fn canonical_factors(app: &TestApp, access_token: &str) -> Value {
    let res = app.get_auth("/api/v1/auth/mfa/factors", access_token).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

fn kinds(status: &Value) -> Vec<&str> {
    status["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect()
}

/// The `n`-th text message (1-based) written by the file transport: (number, code).
async fn sms(app: &TestApp, n: usize) -> (String, String) {
    let dir = app.settings.data_dir.join("sms");
    for _ in 0..400 {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "txt"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        if let Some(file) = names.get(n - 1) {
            let text = std::fs::read_to_string(file).unwrap();
            let to = text
                .lines()
                .next()
                .unwrap()
                .strip_prefix("To: ")
                .unwrap()
                .to_owned();
            let code = text
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .unwrap_or_else(|| panic!("no code in {text:?}"))
                .to_owned();
            return (to, code);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no text message #{n}");
}

fn other_than(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

async fn authenticator_app_guards_the_profile_login_and_the_canonical_one(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let profile = Profile { app: &app };
    let jwt = profile.register(ADA).await;

    // Setup needs the JWT (cookie or bearer).
    profile_error(
        profile.post("/authenticator/setup", &json!({})).await,
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
    )
    .await;
    let res = profile
        .post_jwt("/authenticator/setup", &jwt, &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let setup: Value = res.json().await.unwrap();
    let secret_b32 = setup["secret"].as_str().unwrap();
    let secret = base32_decode(secret_b32).unwrap();
    let url = setup["otpauth_url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/") && url.contains(&format!("secret={secret_b32}")));
    let svg = base64::engine::general_purpose::STANDARD
        .decode(
            setup["qr_code"]
                .as_str()
                .unwrap()
                .strip_prefix("data:image/svg+xml;base64,")
                .unwrap(),
        )
        .unwrap();
    assert!(String::from_utf8(svg).unwrap().contains("<svg"));

    // A wrong first code activates nothing: the canonical login still opens a session.
    profile_error(
        profile
            .post_jwt(
                "/authenticator/verify",
                &jwt,
                &json!({"code": totp_code(&secret, step() + 10)}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired code",
    )
    .await;
    assert!(app.login(ADA).await["access_token"].is_string());

    let res = profile
        .post_jwt(
            "/authenticator/verify",
            &jwt,
            &json!({"code": totp_code(&secret, step() - 1)}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    // Nothing left to activate.
    profile_error(
        profile
            .post_jwt("/authenticator/verify", &jwt, &json!({"code": "123456"}))
            .await,
        StatusCode::NOT_FOUND,
        "No such factor or enrolment",
    )
    .await;

    // The factor added through the profile guards the canonical login.
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": ADA, "password": PASSWORD}),
        )
        .await;
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["mfa_required"], true);
    let res = app
        .post(
            "/api/v1/auth/mfa/verify",
            &json!({"mfa_token": challenge["mfa_token"], "factor": "totp", "code": totp_code(&secret, step())}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let canonical: Value = res.json().await.unwrap();
    let canonical_token = canonical["access_token"].as_str().unwrap();
    let status = canonical_factors(&app, canonical_token).await;
    assert_eq!(status["enabled"], true);
    assert_eq!(kinds(&status), ["totp"]);
    assert_eq!(status["recovery_codes_remaining"], 10);

    // The profile's login stops at the second factor; /mfa/verify finishes it.
    let challenge = profile.login_mfa(ADA).await;
    assert_eq!(challenge["factors"], json!(["totp", "recovery_code"]));
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    profile_error(
        profile
            .post(
                "/mfa/verify",
                &json!({"mfa_token": mfa_token, "code": "000000x"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired code",
    )
    .await;
    let res = profile
        .post(
            "/mfa/verify",
            &json!({"mfa_token": mfa_token, "code": totp_code(&secret, step() + 1)}),
        )
        .await;
    signed_in_with_cookies(&profile, res, ADA).await;
    // The mfa_token works once.
    profile_error(
        profile
            .post(
                "/mfa/verify",
                &json!({"mfa_token": mfa_token, "code": totp_code(&secret, step() + 1)}),
            )
            .await,
        StatusCode::UNAUTHORIZED,
        "Invalid or expired mfa_token",
    )
    .await;

    // A recovery code, with setCookie false: the JWT in the body only.
    let challenge = profile.login_mfa(ADA).await;
    let res = profile
        .post(
            "/mfa/verify",
            &json!({"mfa_token": challenge["mfa_token"], "factor": "recovery_code", "code": codes[0], "options": {"setCookie": false}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    let body: Value = res.json().await.unwrap();
    let res = app
        .client
        .get(app.url(&format!("{PREFIX}/user")))
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A recovery code works once.
    let challenge = profile.login_mfa(ADA).await;
    profile_error(
        profile
            .post(
                "/mfa/verify",
                &json!({"mfa_token": challenge["mfa_token"], "factor": "recovery_code", "code": codes[0]}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired code",
    )
    .await;
    assert_eq!(
        canonical_factors(&app, canonical_token).await["recovery_codes_remaining"],
        9
    );

    // Removing the app needs a current code: refused without one, or with a wrong one.
    profile_error(
        profile
            .post_jwt("/mfa/remove", &jwt, &json!({"factor": "totp"}))
            .await,
        StatusCode::BAD_REQUEST,
        "code is required",
    )
    .await;
    profile_error(
        profile
            .post_jwt(
                "/mfa/remove",
                &jwt,
                &json!({"factor": "totp", "code": "abcd-efgh-ijkl-mnop", "code_factor": "recovery_code"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired code",
    )
    .await;
    assert_eq!(
        kinds(&canonical_factors(&app, canonical_token).await),
        ["totp"]
    );
    let res = profile
        .post_jwt(
            "/mfa/remove",
            &jwt,
            &json!({"factor": "totp", "code": codes[1], "code_factor": "recovery_code"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["message"],
        "Authenticator app removed"
    );
    // MFA is off: no factor, no recovery code; both logins open a session at once.
    let status = canonical_factors(&app, canonical_token).await;
    assert_eq!(status["enabled"], false);
    assert!(kinds(&status).is_empty());
    assert_eq!(status["recovery_codes_remaining"], 0);
    assert!(app.login(ADA).await["access_token"].is_string());
    let res = profile
        .post("/login", &json!({"email": ADA, "password": PASSWORD}))
        .await;
    signed_in_with_cookies(&profile, res, ADA).await;
}

async fn sms_factor_enrols_signs_in_and_is_removed_through_the_profile(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_sms(backend, &sink), start);
    let profile = Profile { app: &app };
    let jwt = profile.register(ADA).await;
    // A canonical session opened before the factor exists, to read the canonical state.
    let canonical = app.login(ADA).await;
    let canonical_token = canonical["access_token"].as_str().unwrap();

    profile_error(
        profile
            .post_jwt("/mfa/setup", &jwt, &json!({"phone": "0123"}))
            .await,
        StatusCode::BAD_REQUEST,
        "phone must be an E.164 number (+ and 8 to 15 digits, e.g. +14155550123)",
    )
    .await;
    let res = profile
        .post_jwt("/mfa/setup", &jwt, &json!({"phone": "+1 (415) 555-0123"}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.json::<Value>().await.unwrap()["phone"], "+•••••••••23");
    let (to, code) = sms(&app, 1).await;
    assert_eq!(to, "+14155550123");
    profile_error(
        profile
            .post_jwt("/mfa/verify", &jwt, &json!({"code": other_than(&code)}))
            .await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired code",
    )
    .await;
    let res = profile
        .post_jwt("/mfa/verify", &jwt, &json!({"code": code}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["recovery_codes"].as_array().unwrap().len(), 10);
    let status = canonical_factors(&app, canonical_token).await;
    assert_eq!(kinds(&status), ["sms"]);
    assert_eq!(status["recovery_codes_remaining"], 10);

    // The canonical login asks for it too.
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": ADA, "password": PASSWORD}),
        )
        .await;
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["factors"], json!(["sms", "recovery_code"]));

    // Sign in through the profile: /otp/send {mfa_token}, then /mfa/verify with the code.
    let challenge = profile.login_mfa(ADA).await;
    assert_eq!(challenge["factors"], json!(["sms", "recovery_code"]));
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    let res = profile
        .post("/otp/send", &json!({"mfa_token": mfa_token}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let (to, code) = sms(&app, 2).await;
    assert_eq!(to, "+14155550123");
    let res = profile
        .post(
            "/mfa/verify",
            &json!({"mfa_token": mfa_token, "factor": "sms", "code": code}),
        )
        .await;
    let body = signed_in_with_cookies(&profile, res, ADA).await;
    let claims = crate::password_sessions::decode_claims(body["token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "sms"]));
    assert_eq!(claims["aal"], "aal2");

    // /otp/verify {mfa_token, code} is the same step, SMS by default.
    let challenge = profile.login_mfa(ADA).await;
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    profile
        .post("/otp/send", &json!({"mfa_token": mfa_token}))
        .await;
    let (_, code) = sms(&app, 3).await;
    let res = profile
        .post(
            "/otp/verify",
            &json!({"mfa_token": mfa_token, "code": code}),
        )
        .await;
    signed_in_with_cookies(&profile, res, ADA).await;

    // Passwordless by SMS: the same answer for every number; the verified one signs in.
    let unknown = profile
        .post("/otp/send", &json!({"phone": "+14155550199"}))
        .await;
    let known = profile
        .post("/otp/send", &json!({"phone": "+1 415 555 0123"}))
        .await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(
        unknown.json::<Value>().await.unwrap(),
        known.json::<Value>().await.unwrap()
    );
    let (to, code) = sms(&app, 4).await;
    assert_eq!(to, "+14155550123");
    let res = profile
        .post(
            "/otp/verify",
            &json!({"phone": "+14155550123", "code": code}),
        )
        .await;
    let body = signed_in_with_cookies(&profile, res, ADA).await;
    let claims = crate::password_sessions::decode_claims(body["token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["sms"]));

    // /otp/remove needs a current SMS code: refused without one.
    profile_error(
        profile.post_jwt("/otp/remove", &jwt, &json!({})).await,
        StatusCode::BAD_REQUEST,
        "code is required",
    )
    .await;
    let res = profile.post_jwt("/otp/send", &jwt, &json!({})).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let (_, code) = sms(&app, 5).await;
    profile_error(
        profile
            .post_jwt("/otp/remove", &jwt, &json!({"code": other_than(&code)}))
            .await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired code",
    )
    .await;
    let res = profile
        .post_jwt("/otp/remove", &jwt, &json!({"code": code}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["message"],
        "SMS factor removed"
    );
    let status = canonical_factors(&app, canonical_token).await;
    assert_eq!(status["enabled"], false);
    assert!(kinds(&status).is_empty());
    // The number no longer signs in, and the password alone does again.
    profile_error(
        profile
            .post(
                "/otp/verify",
                &json!({"phone": "+14155550123", "code": code}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired code",
    )
    .await;
    let res = profile
        .post("/login", &json!({"email": ADA, "password": PASSWORD}))
        .await;
    signed_in_with_cookies(&profile, res, ADA).await;
}

async fn email_codes_sign_in_and_a_canonical_factor_is_asked_by_the_profile(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let profile = Profile { app: &app };
    let t = app.signup(ADA).await;
    // Verified by its own sign-up link: the mailbox sign-in below is not an adoption.
    app.verify_email(ADA).await;

    // The same answer for every address.
    let known = profile.post("/otp/send", &json!({"email": ADA})).await;
    let unknown = profile
        .post("/otp/send", &json!({"email": "nobody@example.com"}))
        .await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(
        known.json::<Value>().await.unwrap(),
        unknown.json::<Value>().await.unwrap()
    );
    profile_error(
        profile.post("/otp/send", &json!({})).await,
        StatusCode::BAD_REQUEST,
        "Give one of email, phone or mfa_token",
    )
    .await;
    let code = mail_code(&sink, 1).await;
    profile_error(
        profile
            .post(
                "/otp/verify",
                &json!({"email": ADA, "code": other_than(&code)}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Invalid or expired code",
    )
    .await;
    let res = profile
        .post("/otp/verify", &json!({"email": ADA, "code": code}))
        .await;
    signed_in_with_cookies(&profile, res, ADA).await;

    // SMS is not configured on this server.
    let bearer = t["access_token"].as_str().unwrap();
    let res = app
        .client
        .post(app.url(&format!("{PREFIX}/mfa/setup")))
        .bearer_auth(bearer)
        .json(&json!({"phone": "+14155550123"}))
        .send()
        .await
        .unwrap();
    // A canonical access token is not the profile's JWT.
    profile_error(res, StatusCode::UNAUTHORIZED, "Unauthorized").await;
    let jwt = profile
        .post("/login", &json!({"email": ADA, "password": PASSWORD}))
        .await;
    let jwt = cookie_value(&set_cookies(&jwt), "jwt").unwrap();
    profile_error(
        profile
            .post_jwt("/mfa/setup", &jwt, &json!({"phone": "+14155550123"}))
            .await,
        StatusCode::BAD_REQUEST,
        "SMS codes not enabled",
    )
    .await;
    profile_error(
        profile
            .post("/otp/send", &json!({"phone": "+14155550123"}))
            .await,
        StatusCode::BAD_REQUEST,
        "SMS codes not enabled",
    )
    .await;

    // A factor added through the canonical API is asked after the profile's email code.
    let res = app
        .post_auth("/api/v1/auth/mfa/totp/enroll", bearer, &json!({}))
        .await;
    let enrollment: Value = res.json().await.unwrap();
    let secret = base32_decode(enrollment["secret"].as_str().unwrap()).unwrap();
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/totp/activate",
            bearer,
            &json!({"factor_id": enrollment["factor_id"], "code": totp_code(&secret, step())}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(kinds(&canonical_factors(&app, bearer).await), ["totp"]);

    profile.post("/otp/send", &json!({"email": ADA})).await;
    let code = mail_code(&sink, 2).await;
    let res = profile
        .post("/otp/verify", &json!({"email": ADA, "code": code}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["mfa_required"], true);
    assert_eq!(challenge["factors"], json!(["totp", "recovery_code"]));
    let res = profile
        .post(
            "/mfa/verify",
            &json!({"mfa_token": challenge["mfa_token"], "code": totp_code(&secret, step() + 1)}),
        )
        .await;
    let body = signed_in_with_cookies(&profile, res, ADA).await;
    let claims = crate::password_sessions::decode_claims(body["token"].as_str().unwrap());
    assert_eq!(claims["aal"], "aal2");
}

/// The code of the `n`-th sign-in code mail to Ada.
async fn mail_code(sink: &SmtpSink, n: usize) -> String {
    for _ in 0..400 {
        let mails: Vec<_> = sink
            .messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == ADA) && m.subject.contains("sign-in code"))
            .collect();
        if let Some(mail) = mails.get(n - 1) {
            return mail
                .text_body
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .expect("a 6-digit code in the mail")
                .to_owned();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no code mail #{n}");
}

async fn a_dead_mfa_token_answers_in_the_profile_format_and_a_rate_limit_as_a_problem(
    backend: Backend,
) {
    let sink = SmtpSink::start();
    let app = app!(
        with_profile(backend, &sink).var("AUTH__RATE_LIMITS__MFA_VERIFY__PER_IDENTIFIER", "8"),
        start
    );
    let profile = Profile { app: &app };
    let jwt = profile.register(ADA).await;
    let setup: Value = profile
        .post_jwt("/authenticator/setup", &jwt, &json!({"label": "phone"}))
        .await
        .json()
        .await
        .unwrap();
    let secret = base32_decode(setup["secret"].as_str().unwrap()).unwrap();
    let res = profile
        .post_jwt(
            "/authenticator/verify",
            &jwt,
            &json!({"code": totp_code(&secret, step()), "factor_id": setup["factor_id"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Neither an mfa_token nor a JWT.
    profile_error(
        profile
            .post("/mfa/verify", &json!({"code": "123456"}))
            .await,
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
    )
    .await;
    // Five wrong codes kill the mfa_token: the right code no longer helps.
    let challenge = profile.login_mfa(ADA).await;
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    for _ in 0..5 {
        profile_error(
            profile
                .post(
                    "/mfa/verify",
                    &json!({"mfa_token": mfa_token, "code": "12345"}),
                )
                .await,
            StatusCode::BAD_REQUEST,
            "Invalid or expired code",
        )
        .await;
    }
    profile_error(
        profile
            .post(
                "/mfa/verify",
                &json!({"mfa_token": mfa_token, "code": totp_code(&secret, step() + 1)}),
            )
            .await,
        StatusCode::UNAUTHORIZED,
        "Invalid or expired mfa_token",
    )
    .await;
    // The account's limit on second-factor attempts spans sign-ins; the profile has no
    // shape for it, so it stays problem+json with Retry-After.
    let challenge = profile.login_mfa(ADA).await;
    for _ in 0..2 {
        let res = profile
            .post(
                "/mfa/verify",
                &json!({"mfa_token": challenge["mfa_token"], "code": "12345"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let res = profile
        .post(
            "/mfa/verify",
            &json!({"mfa_token": challenge["mfa_token"], "code": "12345"}),
        )
        .await;
    assert!(res.headers().contains_key("retry-after"));
    problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Nothing was opened: the registration's session is the user's only one.
    let me: Value = profile.user(&jwt).await.json().await.unwrap();
    let user_id: auth_core::model::UserId = me["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        app.db.unrevoked_sessions_of(user_id).await.unwrap().len(),
        1
    );
}
