//! The `nestjs-boilerplate` profile: the boilerplate's front end story over HTTP, with
//! mail read from a real SMTP server on loopback.

use std::time::Duration;

use auth_core::identity::IdentityStore as _;
use auth_core::jwt::{JwtIssuer, KeySet, TokenIssuer as _};
use auth_core::model::UserId;
use auth_core::ports::{SessionStore as _, UserStore as _};
use auth_e2e::oidc::OidcPeer;
use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends};
use auth_notify::testing::{ReceivedMail, SmtpSink};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::social_fakes::SocialFakes;

on_both_backends!(
    nestjs_boilerplate_front_end_story,
    nestjs_boilerplate_users_are_shared_with_the_canonical_api,
    nestjs_boilerplate_mounted_at_root,
    nestjs_boilerplate_provider_sign_in,
    nestjs_boilerplate_refuses_second_factor_accounts,
);

const SECRET: &str = "nestjs-boilerplate-access-secret-0123456789abcdef";
const PREFIX: &str = "/compat/nestjs-boilerplate";

fn with_profile(backend: Backend, sink: &SmtpSink, prefix: &str) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__COMPAT__NESTJS_BOILERPLATE__ENABLED", "true")
        .var("AUTH__COMPAT__NESTJS_BOILERPLATE__PREFIX", prefix)
        .var("AUTH__COMPAT__NESTJS_BOILERPLATE__JWT_SECRET", SECRET)
        .var("AUTH__COMPAT__NESTJS_BOILERPLATE__ACCESS_TTL_SECS", "600")
        .var("AUTH__MAIL__TRANSPORT", "smtp")
        .var("AUTH__MAIL__FROM", "Auth <auth@example.com>")
        .var("AUTH__MAIL__SMTP__HOST", "127.0.0.1")
        .var("AUTH__MAIL__SMTP__PORT", &sink.port().to_string())
        .var("AUTH__MAIL__SMTP__TLS", "none")
        .var("AUTH__OUTBOX__POLL_INTERVAL_MS", "50")
        .var("AUTH__APP__URL", "https://app.example.com")
}

async fn mail_to(sink: &SmtpSink, to: &str, subject_has: &str) -> ReceivedMail {
    let (want_to, want_subject) = (to.to_owned(), subject_has.to_lowercase());
    sink.wait_for(
        move |m| {
            m.to.iter().any(|t| t == &want_to) && m.subject.to_lowercase().contains(&want_subject)
        },
        Duration::from_secs(15),
    )
    .await
    .unwrap_or_else(|| panic!("no mail to {to} about {subject_has:?}"))
}

/// The token of the link to `path` in `mail` (what the boilerplate calls the `hash`).
fn hash_in(mail: &ReceivedMail, path: &str) -> String {
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

    async fn post(&self, route: &str, body: &Value) -> Response {
        self.app
            .client
            .post(self.url(route))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn post_bearer(&self, route: &str, token: &str) -> Response {
        self.app
            .client
            .post(self.url(route))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn me(&self, token: &str) -> Response {
        self.app
            .client
            .get(self.url("/api/v1/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn login(&self, email: &str, password: &str) -> Value {
        let res = self
            .post(
                "/api/v1/auth/email/login",
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "login of {email}");
        res.json().await.unwrap()
    }
}

async fn unprocessable(res: Response) -> Value {
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], 422, "{body}");
    assert!(body["errors"].is_object(), "{body}");
    body["errors"].clone()
}

async fn unauthorized(res: Response) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"statusCode": 401, "message": "Unauthorized"}));
}

async fn nestjs_boilerplate_front_end_story(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink, PREFIX), start);
    let nest = Client {
        app: &app,
        prefix: PREFIX,
    };

    // Sign up: validation errors name the field.
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/email/register",
            &json!({"email": "ada@example.com", "password": "kq7w2z", "firstName": "Ada"}),
        )
        .await,
    )
    .await;
    assert!(errors["lastName"].is_string(), "{errors}");
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/email/register",
            &json!({"email": "ada@example.com", "password": "kq7w", "firstName": "Ada", "lastName": "Lovelace"}),
        )
        .await,
    )
    .await;
    assert!(errors["password"].is_string(), "{errors}");
    let res = nest
        .post(
            "/api/v1/auth/email/register",
            &json!({"email": "ada@example.com", "password": "kq7w2z", "firstName": "Ada", "lastName": "Lovelace"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.bytes().await.unwrap().is_empty());
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/email/register",
            &json!({"email": "ada@example.com", "password": "kq7w2z", "firstName": "Ada", "lastName": "Lovelace"}),
        )
        .await,
    )
    .await;
    assert_eq!(errors, json!({"email": "emailAlreadyExists"}));

    // Confirm the address with the hash of the mail.
    let mail = mail_to(&sink, "ada@example.com", "confirm").await;
    let hash = hash_in(&mail, "/verify-email");
    let res = nest
        .post("/api/v1/auth/email/confirm", &json!({"hash": hash}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let errors = unprocessable(
        nest.post("/api/v1/auth/email/confirm", &json!({"hash": hash}))
            .await,
    )
    .await;
    assert_eq!(errors, json!({"hash": "invalidHash"}));

    // Sign in: token, refreshToken, tokenExpires in milliseconds, the user entity.
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/email/login",
            &json!({"email": "ada@example.com", "password": "wrong1"}),
        )
        .await,
    )
    .await;
    assert_eq!(errors, json!({"password": "incorrectPassword"}));
    let before = chrono::Utc::now().timestamp_millis();
    let login = nest.login("ada@example.com", "kq7w2z").await;
    let token = login["token"].as_str().unwrap().to_owned();
    let refresh = login["refreshToken"].as_str().unwrap().to_owned();
    let expires = login["tokenExpires"].as_i64().unwrap();
    assert!(
        expires >= before + 590_000 && expires <= chrono::Utc::now().timestamp_millis() + 600_000,
        "tokenExpires {expires}"
    );
    let user = &login["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["firstName"], "Ada");
    assert_eq!(user["lastName"], "Lovelace");
    assert_eq!(user["provider"], "email");
    assert_eq!(user["status"], json!({"id": 1, "name": "Active"}));
    assert!(user["id"].is_string() && user["createdAt"].is_string());

    // The access token is HS256 under AUTH_JWT_SECRET.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    let issuer = JwtIssuer::new(
        KeySet::from_hs256_secret(SECRET.as_bytes()).unwrap(),
        "http://auth.test",
        "nestjs-boilerplate",
        0,
    );
    let claims = issuer.verify(&token, chrono::Utc::now()).unwrap();
    assert_eq!(claims.sub, user["id"].as_str().unwrap());

    // Requests with the token.
    let res = nest.me(&token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
    unauthorized(
        app.client
            .get(nest.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let res = app
        .client
        .patch(nest.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .json(&json!({"firstName": "Augusta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["firstName"], "Augusta");
    assert_eq!(me["lastName"], "Lovelace");

    // Refresh with the refresh token as bearer: a new token and refresh token.
    let res = nest.post_bearer("/api/v1/auth/refresh", &refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let refreshed: Value = res.json().await.unwrap();
    let keys: Vec<&String> = refreshed.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["refreshToken", "token", "tokenExpires"]);
    let token2 = refreshed["token"].as_str().unwrap().to_owned();
    assert_ne!(refreshed["refreshToken"], refresh.as_str());
    unauthorized(
        nest.post_bearer("/api/v1/auth/refresh", "not-a-token")
            .await,
    )
    .await;
    assert_eq!(nest.me(&token2).await.status(), StatusCode::OK);

    // Log out: the session ends.
    let res = nest.post_bearer("/api/v1/auth/logout", &token2).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    unauthorized(nest.me(&token2).await).await;
    unauthorized(
        nest.post_bearer(
            "/api/v1/auth/refresh",
            refreshed["refreshToken"].as_str().unwrap(),
        )
        .await,
    )
    .await;

    // Forgotten password: 204 for any address, the hash of the mail resets it.
    for email in ["ada@example.com", "nobody@example.com"] {
        let res = nest
            .post("/api/v1/auth/forgot/password", &json!({"email": email}))
            .await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    let mail = mail_to(&sink, "ada@example.com", "reset").await;
    let hash = hash_in(&mail, "/reset-password");
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/reset/password",
            &json!({"password": "n3wpass", "hash": "bogus"}),
        )
        .await,
    )
    .await;
    assert_eq!(errors, json!({"hash": "invalidHash"}));
    let res = nest
        .post(
            "/api/v1/auth/reset/password",
            &json!({"password": "n3wpass", "hash": hash}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    unprocessable(
        nest.post(
            "/api/v1/auth/email/login",
            &json!({"email": "ada@example.com", "password": "kq7w2z"}),
        )
        .await,
    )
    .await;
    let last = nest.login("ada@example.com", "n3wpass").await;

    // Delete the account: 204, its tokens die and it cannot sign in again.
    let last_token = last["token"].as_str().unwrap();
    let res = app
        .client
        .delete(nest.url("/api/v1/auth/me"))
        .bearer_auth(last_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    unauthorized(nest.me(last_token).await).await;
    unprocessable(
        nest.post(
            "/api/v1/auth/email/login",
            &json!({"email": "ada@example.com", "password": "n3wpass"}),
        )
        .await,
    )
    .await;

    // Bad JSON is a 400 in the Nest shape.
    let res = app
        .client
        .post(nest.url("/api/v1/auth/email/login"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["statusCode"], 400);
}

async fn nestjs_boilerplate_users_are_shared_with_the_canonical_api(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink, PREFIX), start);
    let nest = Client {
        app: &app,
        prefix: PREFIX,
    };

    // Created through the profile, signs in through the canonical API.
    let res = nest
        .post(
            "/api/v1/auth/email/register",
            &json!({"email": "ada@example.com", "password": PASSWORD, "firstName": "Ada", "lastName": "Lovelace"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let canonical = app.login("ada@example.com").await;
    let res = app
        .get_auth("/api/v1/me", canonical["access_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["name"], "Ada Lovelace");

    // Created through the canonical API, signs in through the profile.
    app.signup("grace@example.com").await;
    let login = nest.login("grace@example.com", PASSWORD).await;
    assert_eq!(login["user"]["email"], "grace@example.com");

    // Each API accepts only its own access tokens.
    let nest_token = login["token"].as_str().unwrap();
    let res = app.get_auth("/api/v1/me", nest_token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    unauthorized(nest.me(canonical["access_token"].as_str().unwrap()).await).await;

    // The profile's password rule (6 characters) does not weaken the canonical one.
    let res = app
        .post(
            "/api/v1/auth/signup",
            &json!({"email": "short@example.com", "password": "kq7w2z"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = nest
        .post(
            "/api/v1/auth/email/register",
            &json!({"email": "short@example.com", "password": "kq7w2z", "firstName": "S", "lastName": "T"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

async fn nestjs_boilerplate_mounted_at_root(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink, "/"), start);
    let nest = Client {
        app: &app,
        prefix: "/",
    };
    let res = nest
        .post(
            "/api/v1/auth/email/register",
            &json!({"email": "ada@example.com", "password": PASSWORD, "firstName": "Ada", "lastName": "Lovelace"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let login = nest.login("ada@example.com", PASSWORD).await;
    assert_eq!(
        nest.me(login["token"].as_str().unwrap()).await.status(),
        StatusCode::OK
    );
    // Where the boilerplate's paths clash with canonical ones, the profile answers.
    let res = nest
        .post_bearer(
            "/api/v1/auth/refresh",
            login["refreshToken"].as_str().unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let refreshed: Value = res.json().await.unwrap();
    assert!(refreshed["tokenExpires"].is_i64());
    // Elsewhere the canonical API still works.
    let canonical = app.login("ada@example.com").await;
    let res = app
        .get_auth("/api/v1/me", canonical["access_token"].as_str().unwrap())
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

/// The canonical providers `google` and `apple` (their presets, issuer and key set pointed
/// at the OpenID provider peer; the native app's client id allowed).
fn with_oidc_providers(builder: TestAppBuilder, peer: &OidcPeer) -> TestAppBuilder {
    let jwks = format!("{}/jwks", peer.issuer);
    builder
        .var("AUTH__PROVIDERS__GOOGLE__ISSUER", &peer.issuer)
        .var("AUTH__PROVIDERS__GOOGLE__JWKS_URI", &jwks)
        .var("AUTH__PROVIDERS__GOOGLE__CLIENT_IDS", "native-app")
        .var("AUTH__PROVIDERS__APPLE__ISSUER", &peer.issuer)
        .var("AUTH__PROVIDERS__APPLE__JWKS_URI", &jwks)
        .var("AUTH__PROVIDERS__APPLE__CLIENT_IDS", "native-app")
        // The boilerplate's apps post `{idToken}` alone: the operator allows no nonce.
        .var("AUTH__PROVIDERS__GOOGLE__ALLOW_MISSING_NONCE", "true")
        .var("AUTH__PROVIDERS__APPLE__ALLOW_MISSING_NONCE", "true")
}

/// The canonical providers `facebook` and `twitter` on the stand-ins of their APIs.
fn with_user_api_providers(builder: TestAppBuilder, fakes: &SocialFakes) -> TestAppBuilder {
    builder
        .var("AUTH__PROVIDERS__FACEBOOK__CLIENT_IDS", "fb-app")
        .var("AUTH__PROVIDERS__FACEBOOK__CLIENT_SECRET", "fb-secret")
        .var("AUTH__PROVIDERS__FACEBOOK__API_BASE_URL", &fakes.url)
        .var("AUTH__PROVIDERS__TWITTER__CONSUMER_KEY", "x-consumer-key")
        .var(
            "AUTH__PROVIDERS__TWITTER__CONSUMER_SECRET",
            "x-consumer-secret",
        )
        .var("AUTH__PROVIDERS__TWITTER__CLIENT_IDS", "x-client")
        .var("AUTH__PROVIDERS__TWITTER__API_BASE_URL", &fakes.url)
}

fn nest_issuer() -> JwtIssuer {
    JwtIssuer::new(
        KeySet::from_hs256_secret(SECRET.as_bytes()).unwrap(),
        "http://auth.test",
        "nestjs-boilerplate",
        0,
    )
}

/// A provider login answered like the email login; checks the shape and the HS256 token.
async fn social_login(res: Response) -> Value {
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["refreshToken", "token", "tokenExpires", "user"]);
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().alg,
        jsonwebtoken::Algorithm::HS256
    );
    let claims = nest_issuer().verify(token, chrono::Utc::now()).unwrap();
    assert_eq!(claims.sub, body["user"]["id"].as_str().unwrap());
    assert_eq!(claims.amr, ["oauth"]);
    assert!(body["refreshToken"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["tokenExpires"].as_i64().unwrap() > chrono::Utc::now().timestamp_millis());
    body
}

async fn canonical_token(app: &TestApp, provider: &str, body: &Value) -> Value {
    let res = app
        .post(&format!("/api/v1/auth/oauth/{provider}/token"), body)
        .await;
    assert_eq!(res.status(), StatusCode::OK, "canonical {provider} sign-in");
    res.json().await.unwrap()
}

async fn native_token(peer: &OidcPeer, login: &str) -> String {
    peer.id_token("native-app", "native-secret", login, None)
        .await
}

async fn nestjs_boilerplate_provider_sign_in(backend: Backend) {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start().await;
    let fakes = SocialFakes::start().await;
    let app = app!(
        with_user_api_providers(
            with_oidc_providers(with_profile(backend, &sink, PREFIX), &peer),
            &fakes
        ),
        start
    );
    let nest = Client {
        app: &app,
        prefix: PREFIX,
    };

    // Google: the first sign-in creates the account (the boilerplate signs up new users).
    let errors = unprocessable(nest.post("/api/v1/auth/google/login", &json!({})).await).await;
    assert_eq!(errors, json!({"idToken": "idToken should not be empty"}));
    let ada = social_login(
        nest.post(
            "/api/v1/auth/google/login",
            &json!({"idToken": native_token(&peer, "ada").await}),
        )
        .await,
    )
    .await;
    let user = &ada["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["provider"], "google");
    assert_eq!(user["socialId"], "ada");
    assert_eq!(user["firstName"], "User");
    assert_eq!(user["lastName"], "ada");
    assert_eq!(user["status"], json!({"id": 1, "name": "Active"}));
    let ada_id: UserId = user["id"].as_str().unwrap().parse().unwrap();
    let identity = app
        .db
        .identity_by_subject("google", "ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, ada_id);
    let row = app
        .db
        .credentials_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.user.id, ada_id);
    assert!(row.user.email_verified);
    // Its token works on the profile's routes; the session is the core's.
    let res = nest.me(ada["token"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.db.unrevoked_sessions_of(ada_id).await.unwrap().len(), 1);
    // Signing in again finds the same account; the canonical API signs in the same user.
    let again = social_login(
        nest.post(
            "/api/v1/auth/google/login",
            &json!({"idToken": native_token(&peer, "ada").await}),
        )
        .await,
    )
    .await;
    assert_eq!(again["user"]["id"], ada_id.to_string());
    let canonical = canonical_token(
        &app,
        "google",
        &json!({"id_token": native_token(&peer, "ada").await}),
    )
    .await;
    assert_eq!(canonical["user"]["id"], ada_id.to_string());

    // A token the provider did not issue to us: the boilerplate's `wrongToken`.
    let foreign = peer
        .id_token("other-app", "other-secret", "eve", None)
        .await;
    for token in [foreign.as_str(), "not.a.jwt"] {
        let errors = unprocessable(
            nest.post("/api/v1/auth/google/login", &json!({"idToken": token}))
                .await,
        )
        .await;
        assert_eq!(errors, json!({"user": "wrongToken"}));
    }
    assert!(
        app.db
            .credentials_by_email("eve@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // Apple: the names the app got on the first sign-in become the display name.
    let grace = social_login(
        nest.post(
            "/api/v1/auth/apple/login",
            &json!({"idToken": native_token(&peer, "grace").await, "firstName": "Grace", "lastName": "Hopper"}),
        )
        .await,
    )
    .await;
    assert_eq!(grace["user"]["firstName"], "Grace");
    assert_eq!(grace["user"]["lastName"], "Hopper");
    assert_eq!(grace["user"]["provider"], "apple");
    let grace_id: UserId = grace["user"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        app.db
            .user_by_id(grace_id)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_deref(),
        Some("Grace Hopper")
    );
    assert_eq!(
        app.db
            .identity_by_subject("apple", "grace")
            .await
            .unwrap()
            .unwrap()
            .user_id,
        grace_id
    );
    // Created through the canonical API, signed in through the profile.
    let linus = canonical_token(
        &app,
        "apple",
        &json!({"id_token": native_token(&peer, "linus").await}),
    )
    .await;
    let through_nest = social_login(
        nest.post(
            "/api/v1/auth/apple/login",
            &json!({"idToken": native_token(&peer, "linus").await, "firstName": "Other"}),
        )
        .await,
    )
    .await;
    assert_eq!(through_nest["user"]["id"], linus["user"]["id"]);
    assert_eq!(
        through_nest["user"]["firstName"], "User",
        "a name is taken on sign-up only"
    );

    // Facebook: the access token, checked with the app and its appsecret_proof.
    let fb = social_login(
        nest.post(
            "/api/v1/auth/facebook/login",
            &json!({"accessToken": "fb-token-ada"}),
        )
        .await,
    )
    .await;
    assert_eq!(fb["user"]["email"], "ada@fb.example");
    assert_eq!(fb["user"]["provider"], "facebook");
    assert_eq!(fb["user"]["socialId"], "1001");
    assert_eq!(
        app.db
            .identity_by_subject("facebook", "1001")
            .await
            .unwrap()
            .unwrap()
            .user_id
            .to_string(),
        fb["user"]["id"].as_str().unwrap()
    );
    let canonical =
        canonical_token(&app, "facebook", &json!({"access_token": "fb-token-ada"})).await;
    assert_eq!(canonical["user"]["id"], fb["user"]["id"]);
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/facebook/login",
            &json!({"accessToken": "fb-token-other-app"}),
        )
        .await,
    )
    .await;
    assert_eq!(errors, json!({"user": "wrongToken"}));
    assert!(
        app.db
            .credentials_by_email("mallory@fb.example")
            .await
            .unwrap()
            .is_none()
    );

    // Twitter (OAuth 1.0a): X shares no address, so it signs in an account it was linked
    // to; it cannot create one.
    let x1 = json!({"accessTokenKey": "x1-token", "accessTokenSecret": "x1-secret"});
    let errors = unprocessable(nest.post("/api/v1/auth/twitter/login", &x1).await).await;
    assert_eq!(errors, json!({"email": "emailMissing"}));
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/twitter/login",
            &json!({"accessTokenKey": "x1-token"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        errors,
        json!({"accessTokenSecret": "accessTokenSecret should not be empty"})
    );
    let password = app.signup("ada.x@example.com").await;
    app.verify_email("ada.x@example.com").await;
    let res = app
        .post_auth(
            "/api/v1/auth/oauth/twitter/link",
            password["access_token"].as_str().unwrap(),
            &json!({"access_token": "x1-token", "access_token_secret": "x1-secret"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let x = social_login(nest.post("/api/v1/auth/twitter/login", &x1).await).await;
    assert_eq!(x["user"]["id"], password["user"]["id"]);
    assert_eq!(x["user"]["provider"], "twitter");
    assert_eq!(x["user"]["socialId"], "777");
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/twitter/login",
            &json!({"accessTokenKey": "x1-token", "accessTokenSecret": "wrong-secret"}),
        )
        .await,
    )
    .await;
    assert_eq!(errors, json!({"user": "wrongToken"}));
    assert_eq!(fakes.bad_signatures(), 1);
}

/// Enrol and activate TOTP for the holder of `bearer` through the canonical API.
async fn activate_totp(app: &TestApp, bearer: &str) {
    use auth_core::mfa::{base32_decode, time_step, totp_code};
    let res = app
        .post_auth("/api/v1/auth/mfa/totp/enroll", bearer, &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let enrolment: Value = res.json().await.unwrap();
    let secret = base32_decode(enrolment["secret"].as_str().unwrap()).unwrap();
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/totp/activate",
            bearer,
            &json!({
                "factor_id": enrolment["factor_id"],
                "code": totp_code(&secret, time_step(chrono::Utc::now())),
            }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn nestjs_boilerplate_refuses_second_factor_accounts(backend: Backend) {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start().await;
    // X configured for OAuth 2.0 only (no OAuth 1.0a consumer key).
    let app = app!(
        with_oidc_providers(with_profile(backend, &sink, PREFIX), &peer)
            .var("AUTH__PROVIDERS__TWITTER__CLIENT_IDS", "x-client"),
        start
    );
    let nest = Client {
        app: &app,
        prefix: PREFIX,
    };
    // A password account with Google linked and an active TOTP factor.
    let signup = app.signup("ada@example.com").await;
    let bearer = signup["access_token"].as_str().unwrap();
    let user_id: UserId = signup["user"]["id"].as_str().unwrap().parse().unwrap();
    app.verify_email("ada@example.com").await;
    let res = app
        .post_auth(
            "/api/v1/auth/oauth/google/link",
            bearer,
            &json!({"id_token": native_token(&peer, "ada").await}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    activate_totp(&app, bearer).await;
    let res = app
        .post_auth("/api/v1/auth/logout", bearer, &json!({"scope": "all"}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(
        app.db
            .unrevoked_sessions_of(user_id)
            .await
            .unwrap()
            .is_empty()
    );

    // Neither the password nor the provider opens a session through the profile.
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/email/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await,
    )
    .await;
    assert_eq!(errors, json!({"password": "mfaRequired"}));
    let errors = unprocessable(
        nest.post(
            "/api/v1/auth/google/login",
            &json!({"idToken": native_token(&peer, "ada").await}),
        )
        .await,
    )
    .await;
    assert_eq!(errors, json!({"password": "mfaRequired"}));
    assert!(
        app.db
            .unrevoked_sessions_of(user_id)
            .await
            .unwrap()
            .is_empty()
    );

    // The canonical API still carries the second step for this account.
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["mfa_required"], true);

    // A provider this server has not configured, or not for OAuth 1.0a: the boilerplate's
    // 404.
    let res = nest
        .post(
            "/api/v1/auth/facebook/login",
            &json!({"accessToken": "fb-token-ada"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"statusCode": 404, "message": "Not Found"}));
    let res = nest
        .post(
            "/api/v1/auth/twitter/login",
            &json!({"accessTokenKey": "x1-token", "accessTokenSecret": "x1-secret"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"statusCode": 404, "message": "Not Found"}));
}
