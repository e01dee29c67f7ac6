//! The `gsdlabs` profile: the challenge's client story over HTTP (form bodies,
//! `x-access-token`, Boom errors, non-rotating refresh).

use auth_core::jwt::{JwtIssuer, KeySet, TokenIssuer as _};
use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    gsdlabs_client_story,
    gsdlabs_users_are_shared_with_the_canonical_api,
    gsdlabs_mounted_at_root,
    gsdlabs_refuses_an_account_with_a_second_factor,
);

const SECRET: &str = "gsdlabs-challenge-access-token-secret-0123456789";
const PREFIX: &str = "/compat/gsdlabs";
const GOOD: &str = "Sup3rSecret";

fn with_profile(backend: Backend, prefix: &str) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__COMPAT__GSDLABS__ENABLED", "true")
        .var("AUTH__COMPAT__GSDLABS__PREFIX", prefix)
        .var("AUTH__COMPAT__GSDLABS__JWT_SECRET", SECRET)
}

struct Client<'a> {
    app: &'a TestApp,
    prefix: &'a str,
}

impl Client<'_> {
    fn url(&self, route: &str) -> String {
        if self.prefix == "/" {
            self.app.url(route)
        } else {
            self.app.url(&format!("{}{route}", self.prefix))
        }
    }

    async fn form(&self, route: &str, token: Option<&str>, form: &[(&str, &str)]) -> Response {
        let mut req = self.app.client.post(self.url(route)).form(form);
        if let Some(t) = token {
            req = req.header("x-access-token", t);
        }
        req.send().await.unwrap()
    }

    async fn me(&self, token: Option<&str>) -> Response {
        let mut req = self.app.client.get(self.url("/me"));
        if let Some(t) = token {
            req = req.header("x-access-token", t);
        }
        req.send().await.unwrap()
    }

    async fn logout(&self, token: &str, refresh: &str) -> Response {
        self.app
            .client
            .delete(self.url("/access-tokens"))
            .header("x-access-token", token)
            .form(&[("refresh_token", refresh)])
            .send()
            .await
            .unwrap()
    }
}

async fn boom(res: Response, status: StatusCode, message: Option<&str>) -> Value {
    assert_eq!(res.status(), status);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["statusCode"], status.as_u16(), "{body}");
    assert_eq!(body["error"], status.canonical_reason().unwrap(), "{body}");
    if let Some(m) = message {
        assert_eq!(body["message"], m, "{body}");
    }
    body
}

async fn pair(res: Response) -> (String, String) {
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["jwt", "refresh_token"]);
    (
        body["jwt"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn issuer() -> JwtIssuer {
    JwtIssuer::new(
        KeySet::from_hs256_secret(SECRET.as_bytes()).unwrap(),
        "http://auth.test",
        "gsdlabs",
        0,
    )
}

async fn gsdlabs_client_story(backend: Backend) {
    let app = app!(with_profile(backend, PREFIX), start);
    let gsd = Client {
        app: &app,
        prefix: PREFIX,
    };
    let invalid = Some("Invalid request payload input");

    // Sign up: a missing key or a password off the schema is a 400.
    boom(
        gsd.form(
            "/users",
            None,
            &[("email", "ada@example.com"), ("password", GOOD)],
        )
        .await,
        StatusCode::BAD_REQUEST,
        invalid,
    )
    .await;
    for weak in ["short1A", "alllowercase1", "ALLUPPERCASE1", "NoDigitsHere"] {
        boom(
            gsd.form(
                "/users",
                None,
                &[
                    ("email", "ada@example.com"),
                    ("name", "Ada"),
                    ("password", weak),
                ],
            )
            .await,
            StatusCode::BAD_REQUEST,
            invalid,
        )
        .await;
    }
    let (jwt, refresh) = pair(
        gsd.form(
            "/users",
            None,
            &[
                ("email", "ada@example.com"),
                ("name", "Ada"),
                ("password", GOOD),
            ],
        )
        .await,
    )
    .await;

    // Ten-minute HS256 access tokens.
    let claims = issuer().verify(&jwt, chrono::Utc::now()).unwrap();
    assert_eq!(claims.exp - claims.iat, 600);

    // GET /me with x-access-token.
    boom(gsd.me(None).await, StatusCode::UNAUTHORIZED, None).await;
    let res = gsd.me(Some(&jwt)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["name"], "Ada");
    assert_eq!(me["email"], "ada@example.com");
    assert!(me["avatar_url"].as_str().unwrap().starts_with("https://"));

    // Log in.
    boom(
        gsd.form("/access-tokens", None, &[("email", "ada@example.com")])
            .await,
        StatusCode::BAD_REQUEST,
        invalid,
    )
    .await;
    boom(
        gsd.form(
            "/access-tokens",
            None,
            &[("email", "ada@example.com"), ("password", "Wr0ngPassword")],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        None,
    )
    .await;
    let (jwt2, refresh2) = pair(
        gsd.form(
            "/access-tokens",
            None,
            &[("email", "ada@example.com"), ("password", GOOD)],
        )
        .await,
    )
    .await;

    // Refresh with an expired access token: a new jwt, no new refresh token, and the
    // same refresh token keeps working (no rotation).
    let mut old = issuer().verify(&jwt2, chrono::Utc::now()).unwrap();
    old.iat -= 3600;
    old.nbf -= 3600;
    old.exp = old.iat + 600;
    let expired = issuer().sign(&old).unwrap();
    boom(gsd.me(Some(&expired)).await, StatusCode::UNAUTHORIZED, None).await;
    for _ in 0..2 {
        let res = gsd
            .form(
                "/access-tokens/refresh",
                Some(&expired),
                &[("refresh_token", &refresh2)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["jwt"]);
        let fresh = body["jwt"].as_str().unwrap();
        assert_eq!(gsd.me(Some(fresh)).await.status(), StatusCode::OK);
    }
    // Not without a token, not with another session's refresh token, not without the key.
    boom(
        gsd.form(
            "/access-tokens/refresh",
            None,
            &[("refresh_token", &refresh2)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        None,
    )
    .await;
    boom(
        gsd.form(
            "/access-tokens/refresh",
            Some(&expired),
            &[("refresh_token", &refresh)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        None,
    )
    .await;
    boom(
        gsd.form("/access-tokens/refresh", Some(&expired), &[])
            .await,
        StatusCode::BAD_REQUEST,
        invalid,
    )
    .await;

    // Log out: 204, and the session is over.
    let res = gsd.logout(&jwt2, &refresh2).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    boom(gsd.me(Some(&jwt2)).await, StatusCode::UNAUTHORIZED, None).await;
    boom(
        gsd.form(
            "/access-tokens/refresh",
            Some(&expired),
            &[("refresh_token", &refresh2)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        None,
    )
    .await;
    // The first session is untouched.
    assert_eq!(gsd.me(Some(&jwt)).await.status(), StatusCode::OK);
}

async fn gsdlabs_users_are_shared_with_the_canonical_api(backend: Backend) {
    let app = app!(with_profile(backend, PREFIX), start);
    let gsd = Client {
        app: &app,
        prefix: PREFIX,
    };
    // Created through the profile (its schema allows this password), signs in through
    // the canonical API.
    pair(
        gsd.form(
            "/users",
            None,
            &[
                ("email", "ada@example.com"),
                ("name", "Ada"),
                ("password", GOOD),
            ],
        )
        .await,
    )
    .await;
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": GOOD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let canonical: Value = res.json().await.unwrap();
    let res = app
        .get_auth("/api/v1/me", canonical["access_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["name"], "Ada");

    // The profile's schema is the profile's: the canonical API signs up a password it
    // would refuse, and that user signs in through the profile.
    app.signup("grace@example.com").await;
    let (jwt, _) = pair(
        gsd.form(
            "/access-tokens",
            None,
            &[("email", "grace@example.com"), ("password", PASSWORD)],
        )
        .await,
    )
    .await;
    assert_eq!(gsd.me(Some(&jwt)).await.status(), StatusCode::OK);
    // Tokens do not cross.
    let res = app.get_auth("/api/v1/me", &jwt).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn gsdlabs_refuses_an_account_with_a_second_factor(backend: Backend) {
    let app = app!(with_profile(backend, PREFIX), start);
    let gsd = Client {
        app: &app,
        prefix: PREFIX,
    };
    let t = app.signup("ada@example.com").await;
    let token = t["access_token"].as_str().unwrap();
    crate::mfa::enrol_totp(&app, token).await;
    let res = gsd
        .form(
            "/access-tokens",
            None,
            &[("email", "ada@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"statusCode": 403, "error": "Forbidden", "message": "This account signs in with a second factor"})
    );
    // No session was opened: only the sign-up's.
    assert_eq!(crate::mfa::session_count(&app, token).await, 1);
}

async fn gsdlabs_mounted_at_root(backend: Backend) {
    let app = app!(with_profile(backend, "/"), start);
    let gsd = Client {
        app: &app,
        prefix: "/",
    };
    let (jwt, _) = pair(
        gsd.form(
            "/users",
            None,
            &[
                ("email", "ada@example.com"),
                ("name", "Ada"),
                ("password", GOOD),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(gsd.me(Some(&jwt)).await.status(), StatusCode::OK);
    // The canonical API still answers at its own paths.
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": GOOD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
}
