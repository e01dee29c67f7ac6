//! The `service-authentication` profile: register, log in with cookie-carried JWTs,
//! refresh and revoke, the `options` object, password reset and email verification.

use std::time::Duration;

use auth_core::ports::SessionStore as _;

use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends};
use auth_notify::testing::{ReceivedMail, SmtpSink};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    service_authentication_client_story,
    cross_site_requests_change_nothing
);

pub(crate) const SECRET: &str = "service-authentication-jwt-secret-0123456789ab";
pub(crate) const PREFIX: &str = "/compat/service-authentication";

pub(crate) fn with_profile(backend: Backend, sink: &SmtpSink) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__COMPAT__SERVICE_AUTHENTICATION__ENABLED", "true")
        .var("AUTH__COMPAT__SERVICE_AUTHENTICATION__JWT_SECRET", SECRET)
        .var("AUTH__MAIL__TRANSPORT", "smtp")
        .var("AUTH__MAIL__FROM", "Auth <auth@example.com>")
        .var("AUTH__MAIL__SMTP__HOST", "127.0.0.1")
        .var("AUTH__MAIL__SMTP__PORT", &sink.port().to_string())
        .var("AUTH__MAIL__SMTP__TLS", "none")
        .var("AUTH__OUTBOX__POLL_INTERVAL_MS", "50")
        .var("AUTH__APP__URL", "https://app.example.com")
}

pub(crate) async fn link_token(sink: &SmtpSink, to: &str, subject: &str, path: &str) -> String {
    let (want, subject) = (to.to_owned(), subject.to_owned());
    let mail: ReceivedMail = sink
        .wait_for(
            move |m| m.to.iter().any(|t| t == &want) && m.subject.to_lowercase().contains(&subject),
            Duration::from_secs(15),
        )
        .await
        .expect("mail");
    let marker = format!("{path}?token=");
    let at = mail.text_body.find(&marker).expect("link");
    mail.text_body[at + marker.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// What a page of the app sends with the profile's cookies: the `cookies` and the readable
/// `csrf_token` cookie, repeated in `X-CSRF-Token` (the double submit every
/// cookie-authenticated unsafe request needs).
pub(crate) trait ProfileCookies {
    fn profile_cookies(self, cookies: &str) -> Self;
}

impl ProfileCookies for reqwest::RequestBuilder {
    fn profile_cookies(self, cookies: &str) -> Self {
        self.header("cookie", format!("{cookies}; csrf_token={E2E_CSRF}"))
            .header("x-csrf-token", E2E_CSRF)
    }
}

/// The double-submit value the tests' pages use.
pub(crate) const E2E_CSRF: &str = "e2e-csrf-value";

/// `name=value` of the `Set-Cookie` headers.
pub(crate) fn set_cookies(res: &Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn cookie_value(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|c| {
        let first = c.split(';').next().unwrap();
        let (k, v) = first.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

async fn service_authentication_client_story(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let url = |route: &str| app.url(&format!("{PREFIX}{route}"));
    let post = |route: &str, body: Value| {
        let req = app.client.post(url(route)).json(&body);
        async move { req.send().await.unwrap() }
    };

    // Register with setCookie: 201, the JWT in an HttpOnly cookie.
    let res = post(
        "/register",
        json!({"email": "ada@example.com", "password": PASSWORD, "options": {"setCookie": true, "verifyEmail": true}}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookies = set_cookies(&res);
    let jwt = cookie_value(&cookies, "jwt").expect("jwt cookie");
    // The tokens are HttpOnly; the double-submit value is for the page's script.
    assert!(cookies.iter().all(|c| c.contains("Secure")));
    assert!(
        cookies
            .iter()
            .all(|c| c.starts_with("csrf_token=") != c.contains("HttpOnly"))
    );
    assert!(cookie_value(&cookies, "csrf_token").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ada@example.com");

    // The cookie authenticates.
    let res = app
        .client
        .get(url("/user"))
        .profile_cookies(&format!("jwt={jwt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["email_verified"], false);
    assert_eq!(
        app.client.get(url("/user")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Verify the address with the mailed token.
    let token = link_token(&sink, "ada@example.com", "confirm", "/verify-email").await;
    let res = app
        .client
        .get(url(&format!("/email/verify/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["user"]["email_verified"],
        true
    );

    // Log in: cookies by default, none with setCookie false.
    let res = post(
        "/login",
        json!({"email": "ada@example.com", "password": PASSWORD, "options": {"setCookie": false}}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    let res = post(
        "/login",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookies = set_cookies(&res);
    let jwt = cookie_value(&cookies, "jwt").unwrap();
    let refresh = cookie_value(&cookies, "refresh_token").unwrap();
    let res = post(
        "/login",
        json!({"email": "ada@example.com", "password": "wrong password here"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.json::<Value>().await.unwrap()["error"].is_string());

    // Refresh from the cookie: new cookies.
    let res = app
        .client
        .get(url("/token/refresh"))
        .profile_cookies(&format!("refresh_token={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookies = set_cookies(&res);
    let jwt2 = cookie_value(&cookies, "jwt").unwrap();
    let refresh2 = cookie_value(&cookies, "refresh_token").unwrap();
    assert_ne!(refresh2, refresh);
    assert_ne!(jwt2, jwt);

    // Revoke: 200, cookies cleared, the session is over.
    let res = app
        .client
        .get(url("/token/revoke"))
        .profile_cookies(&format!("jwt={jwt2}; refresh_token={refresh2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cleared = set_cookies(&res);
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("jwt=;") && c.contains("Max-Age=0"))
    );
    let res = app
        .client
        .get(url("/user"))
        .profile_cookies(&format!("jwt={jwt2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Register without a password: a random one, and a reset mail when asked.
    let res = post(
        "/register",
        json!({"email": "grace@example.com", "options": {"sendResetEmail": true}}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(set_cookies(&res).is_empty());
    let token = link_token(&sink, "grace@example.com", "reset", "/reset-password").await;
    let res = app
        .client
        .get(url(&format!("/password/reset/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = post(
        &format!("/password/reset/{token}"),
        json!({"password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Shared with the canonical API.
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "grace@example.com", "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    app.signup("linus@example.com").await;
    let res = post(
        "/login",
        json!({"email": "linus@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Forgot: the same answer for every address.
    let known = post("/password/forgot", json!({"email": "ada@example.com"})).await;
    let unknown = post("/password/forgot", json!({"email": "nobody@example.com"})).await;
    assert_eq!(known.status(), StatusCode::OK);
    assert_eq!(
        known.json::<Value>().await.unwrap(),
        unknown.json::<Value>().await.unwrap()
    );
}

/// The attacks of a page on another site, against a victim's browser holding the profile's
/// cookies: a `text/plain` login (login CSRF), a forged unsafe request carrying the cookies
/// without the double-submit value, and top-level navigations to the seed's state-changing
/// GET routes. Each is refused and changes nothing; the same requests from the app work.
async fn cross_site_requests_change_nothing(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let url = |route: &str| app.url(&format!("{PREFIX}{route}"));
    let mallory = app.signup("mallory@example.com").await;
    let ada = app.signup("ada@example.com").await;
    let ada_id: auth_core::model::UserId = ada["user"]["id"].as_str().unwrap().parse().unwrap();

    // Login CSRF: a form post of the attacker's credentials as text/plain.
    let res = app
        .client
        .post(url("/login"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(format!(
            r#"{{"email":"mallory@example.com","password":"{PASSWORD}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(set_cookies(&res).is_empty());
    // JSON from a foreign origin (a CORS-approved fetch would be needed) is refused too.
    let res = app
        .client
        .post(url("/login"))
        .header("origin", "https://evil.example")
        .json(&json!({"email": "mallory@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookies(&res).is_empty());
    let _ = mallory;

    // The victim signed in through the app: cookies in the browser.
    let res = app
        .client
        .post(url("/login"))
        .header("origin", "https://app.example.com")
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookies = set_cookies(&res);
    let jwt = cookie_value(&cookies, "jwt").unwrap();
    let refresh = cookie_value(&cookies, "refresh_token").unwrap();
    let csrf = cookie_value(&cookies, "csrf_token").unwrap();
    let sessions = app.db.unrevoked_sessions_of(ada_id).await.unwrap().len();

    // A forged unsafe request: the cookies ride along, the double-submit value cannot.
    let res = app
        .client
        .post(url("/email/verify"))
        .header("cookie", format!("jwt={jwt}; refresh_token={refresh}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Top-level navigations from another site to the state-changing GET routes.
    for route in ["/token/revoke", "/token/refresh"] {
        let res = app
            .client
            .get(url(route))
            .header("cookie", format!("jwt={jwt}; refresh_token={refresh}"))
            .header("sec-fetch-site", "cross-site")
            .header("referer", "https://evil.example/page")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{route}");
        assert!(set_cookies(&res).is_empty());
    }
    assert_eq!(
        app.db.unrevoked_sessions_of(ada_id).await.unwrap().len(),
        sessions,
        "nothing was revoked"
    );

    // The app itself: the double submit passes, the same-site navigation revokes.
    let res = app
        .client
        .post(url("/email/verify"))
        .header(
            "cookie",
            format!("jwt={jwt}; refresh_token={refresh}; csrf_token={csrf}"),
        )
        .header("x-csrf-token", &csrf)
        .header("origin", "https://app.example.com")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let res = app
        .client
        .get(url("/token/revoke"))
        .header("cookie", format!("jwt={jwt}; refresh_token={refresh}"))
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.starts_with("csrf_token=;"))
    );
    assert_eq!(
        app.db.unrevoked_sessions_of(ada_id).await.unwrap().len(),
        sessions - 1
    );
}
