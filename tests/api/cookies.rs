//! Cookie mode (`__Host-` cookies, Origin check + double-submit CSRF token) and CORS.

use std::collections::HashMap;

use auth_e2e::{Backend, PASSWORD, TestApp, app, on_both_backends, problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

const APP_ORIGIN: &str = "https://app.example.com";

/// `name -> full Set-Cookie line`.
fn set_cookies(res: &reqwest::Response) -> HashMap<String, String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .map(|line| (line.split('=').next().unwrap().to_owned(), line))
        .collect()
}

fn value(line: &str) -> &str {
    line.split(';').next().unwrap().split_once('=').unwrap().1
}

struct Jar {
    access: String,
    refresh: String,
    csrf: String,
}

impl Jar {
    fn from(res: &reqwest::Response) -> Self {
        let c = set_cookies(res);
        Self {
            access: value(&c["__Host-access"]).to_owned(),
            refresh: value(&c["__Host-refresh"]).to_owned(),
            csrf: value(&c["__Host-csrf"]).to_owned(),
        }
    }

    fn header(&self) -> String {
        format!(
            "__Host-access={}; __Host-refresh={}; __Host-csrf={}",
            self.access, self.refresh, self.csrf
        )
    }
}

async fn cookie_app(backend: Backend) -> Option<TestApp> {
    TestApp::builder(backend)
        .var("AUTH__COOKIES__ENABLED", "true")
        .var("AUTH__COOKIES__SAME_SITE", "Strict")
        .var("AUTH__CORS__ALLOWED_ORIGINS", APP_ORIGIN)
        .start()
        .await
}

on_both_backends!(
    token_responses_set_host_cookies,
    cookies_authenticate_and_unsafe_requests_need_origin_and_csrf_token,
    the_refresh_cookie_refreshes_and_logout_clears_cookies
);

async fn token_responses_set_host_cookies(backend: Backend) {
    let Some(app) = cookie_app(backend).await else {
        return;
    };
    let res = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookies = set_cookies(&res);
    let body: Value = res.json().await.unwrap();
    let access = &cookies["__Host-access"];
    assert_eq!(value(access), body["access_token"].as_str().unwrap());
    assert_eq!(
        value(&cookies["__Host-refresh"]),
        body["refresh_token"].as_str().unwrap()
    );
    for name in ["__Host-access", "__Host-refresh"] {
        let line = &cookies[name];
        for attribute in [
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=",
        ] {
            assert!(line.contains(attribute), "{name} lacks {attribute}: {line}");
        }
        assert!(!line.contains("Domain="), "{line}");
    }
    let csrf = &cookies["__Host-csrf"];
    assert!(csrf.contains("Secure") && csrf.contains("Path=/") && !csrf.contains("HttpOnly"));
    assert!(value(csrf).len() >= 32);

    // Off by default: no cookies.
    let plain = app!(backend);
    let res = plain
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "bob@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(res.headers().get("set-cookie").is_none());
}

async fn cookies_authenticate_and_unsafe_requests_need_origin_and_csrf_token(backend: Backend) {
    let Some(app) = cookie_app(backend).await else {
        return;
    };
    app.signup("ada@example.com").await;
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    let jar = Jar::from(&res);

    // A safe request: the access cookie is enough.
    let me = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");

    let patch = |origin: Option<&str>, csrf: Option<&str>| {
        let mut req = app
            .client
            .patch(app.url("/api/v1/me"))
            .header("cookie", jar.header())
            .json(&json!({"name": "Ada"}));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        req.send()
    };
    // No CSRF token, a wrong one, a foreign origin, no origin at all: refused.
    for (origin, csrf) in [
        (Some(APP_ORIGIN), None),
        (Some(APP_ORIGIN), Some("not-the-token")),
        (Some("https://evil.example"), Some(jar.csrf.as_str())),
        (None, Some(jar.csrf.as_str())),
    ] {
        let res = patch(origin, csrf).await.unwrap();
        problem(res, StatusCode::FORBIDDEN, "csrf_failed").await;
    }
    let unchanged: Value = app
        .get_auth("/api/v1/me", &jar.access)
        .await
        .json()
        .await
        .unwrap();
    assert!(unchanged["name"].is_null(), "{unchanged}");

    // The right origin (or Referer) and the token: accepted.
    let res = patch(Some(APP_ORIGIN), Some(&jar.csrf)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .header("cookie", jar.header())
        .header("referer", "http://auth.test/some/page")
        .header("x-csrf-token", &jar.csrf)
        .json(&json!({"name": "Ada L."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A bearer header is not a cookie: no CSRF token needed.
    let res = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&jar.access)
        .json(&json!({"name": "Ada Lovelace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["name"], "Ada Lovelace");
}

async fn the_refresh_cookie_refreshes_and_logout_clears_cookies(backend: Backend) {
    let Some(app) = cookie_app(backend).await else {
        return;
    };
    let res = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    let jar = Jar::from(&res);

    let refresh = |origin: &str, csrf: &str, cookie: String| {
        app.client
            .post(app.url("/api/v1/auth/refresh"))
            .header("cookie", cookie)
            .header("origin", origin)
            .header("x-csrf-token", csrf)
            .send()
    };
    let res = refresh("https://evil.example", &jar.csrf, jar.header())
        .await
        .unwrap();
    problem(res, StatusCode::FORBIDDEN, "csrf_failed").await;
    let res = refresh(APP_ORIGIN, &jar.csrf, jar.header()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let rotated = Jar::from(&res);
    assert_ne!(rotated.refresh, jar.refresh);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["refresh_token"].as_str().unwrap(), rotated.refresh);

    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", rotated.header())
        .header("origin", APP_ORIGIN)
        .header("x-csrf-token", &rotated.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&res);
    for name in ["__Host-access", "__Host-refresh", "__Host-csrf"] {
        assert!(cleared[name].contains("Max-Age=0"), "{name} not cleared");
        assert_eq!(value(&cleared[name]), "");
    }
    // The session is over: its refresh token no longer works.
    let res = app.refresh(&rotated.refresh).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

on_both_backends!(cors_answers_preflights_for_listed_origins_only);

async fn cors_answers_preflights_for_listed_origins_only(backend: Backend) {
    let Some(app) = cookie_app(backend).await else {
        return;
    };
    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/refresh"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, x-csrf-token",
            )
            .send()
    };
    let res = preflight(APP_ORIGIN).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], APP_ORIGIN);
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-csrf-token"), "{allowed}");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let res = preflight("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(
        res.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );

    // A simple cross-origin request from a listed origin gets the CORS headers too.
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("origin", APP_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], APP_ORIGIN);
}
