//! The `timelapseme` profile: credential sign-up and sign-in, rotating refresh tokens,
//! RS256 tokens with `nickname` and `userId`, plain-text errors.

use auth_core::identity::IdentityStore as _;
use auth_core::model::UserId;
use auth_core::ports::{SessionStore as _, UserStore as _};
use auth_e2e::oidc::OidcPeer;
use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    timelapseme_client_story,
    timelapseme_users_are_shared_with_the_canonical_api,
    timelapseme_strict_provider_sign_up_and_sign_in,
    timelapseme_refuses_second_factor_accounts,
);

const PREFIX: &str = "/compat/timelapseme";

fn fixture(name: &str) -> String {
    format!("{}/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn with_profile(backend: Backend) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__COMPAT__TIMELAPSEME__ENABLED", "true")
        .var(
            "AUTH__COMPAT__TIMELAPSEME__PRIVATE_KEY_PATH",
            &fixture("rs256-private.pem"),
        )
        .var(
            "AUTH__COMPAT__TIMELAPSEME__PUBLIC_KEY_PATH",
            &fixture("rs256-public.pem"),
        )
        .var(
            "AUTH__COMPAT__TIMELAPSEME__ISSUER",
            "https://auth.timelapse.me",
        )
        .var(
            "AUTH__COMPAT__TIMELAPSEME__AUDIENCE",
            "https://api.timelapse.me",
        )
}

async fn post(app: &TestApp, route: &str, body: &Value) -> Response {
    app.post(&format!("{PREFIX}{route}"), body).await
}

async fn pair(res: Response) -> (String, String) {
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["acessToken", "refreshToken"]);
    (
        body["acessToken"].as_str().unwrap().to_owned(),
        body["refreshToken"].as_str().unwrap().to_owned(),
    )
}

async fn plain(res: Response, status: StatusCode) -> String {
    assert_eq!(res.status(), status);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    res.text().await.unwrap()
}

fn claims(token: &str) -> Value {
    let public = std::fs::read(fixture("rs256-public.pem")).unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&["https://auth.timelapse.me"]);
    validation.set_audience(&["https://api.timelapse.me"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

async fn timelapseme_client_story(backend: Backend) {
    let app = app!(with_profile(backend), start);
    let signup = json!({
        "email": "melvin@example.com",
        "password": "Moo00!_*&-long-enough",
        "passwordConfirm": "Moo00!_*&-long-enough",
        "nickname": "Melvin Friedman",
    });
    let mut mismatch = signup.clone();
    mismatch["passwordConfirm"] = json!("something else");
    assert!(
        !plain(
            post(&app, "/api/v1/signup/credentials", &mismatch).await,
            StatusCode::BAD_REQUEST
        )
        .await
        .is_empty()
    );
    let (access, _) = pair(post(&app, "/api/v1/signup/credentials", &signup).await).await;
    let c = claims(&access);
    assert_eq!(c["nickname"], "Melvin Friedman");
    assert_eq!(c["userId"], c["sub"]);
    plain(
        post(&app, "/api/v1/signup/credentials", &signup).await,
        StatusCode::CONFLICT,
    )
    .await;

    // Sign in.
    let body = plain(
        post(
            &app,
            "/api/v1/auth/credentials",
            &json!({"email": "melvin@example.com", "password": "wrong password"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(body, "Invalid credentials");
    let (access, refresh) = pair(
        post(
            &app,
            "/api/v1/auth/credentials",
            &json!({"email": "melvin@example.com", "password": "Moo00!_*&-long-enough"}),
        )
        .await,
    )
    .await;
    assert_eq!(claims(&access)["nickname"], "Melvin Friedman");

    // Rotating refresh tokens: the prior one is invalid at once (and its reuse ends the
    // session).
    let (_, rotated) =
        pair(post(&app, "/api/v1/refresh", &json!({"refreshToken": refresh})).await).await;
    assert_ne!(rotated, refresh);
    plain(
        post(&app, "/api/v1/refresh", &json!({"refreshToken": refresh})).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    plain(
        post(&app, "/api/v1/refresh", &json!({"refreshToken": rotated})).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    plain(
        post(&app, "/api/v1/refresh", &json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

async fn timelapseme_users_are_shared_with_the_canonical_api(backend: Backend) {
    let app = app!(with_profile(backend), start);
    pair(
        post(
            &app,
            "/api/v1/signup/credentials",
            &json!({"email": "ada@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD, "nickname": "Ada"}),
        )
        .await,
    )
    .await;
    let canonical = app.login("ada@example.com").await;
    assert!(canonical["access_token"].is_string());

    app.signup("grace@example.com").await;
    let (access, _) = pair(
        post(
            &app,
            "/api/v1/auth/credentials",
            &json!({"email": "grace@example.com", "password": PASSWORD}),
        )
        .await,
    )
    .await;
    assert_eq!(
        app.get_auth("/api/v1/me", &access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// The canonical providers `google` and `apple` (their presets, issuer and key set pointed
/// at the OpenID provider peer): `JWT_AUDIENCE_GOOGLE`/`APPLE` are their `client_ids`.
fn with_providers(backend: Backend, peer: &OidcPeer) -> TestAppBuilder {
    let jwks = format!("{}/jwks", peer.issuer);
    with_profile(backend)
        .var("AUTH__PROVIDERS__GOOGLE__ISSUER", &peer.issuer)
        .var("AUTH__PROVIDERS__GOOGLE__JWKS_URI", &jwks)
        .var("AUTH__PROVIDERS__GOOGLE__CLIENT_IDS", "native-app")
        .var("AUTH__PROVIDERS__APPLE__ISSUER", &peer.issuer)
        .var("AUTH__PROVIDERS__APPLE__JWKS_URI", &jwks)
        .var("AUTH__PROVIDERS__APPLE__CLIENT_IDS", "native-app")
        // Its apps post the ID token alone: the operator allows no nonce.
        .var("AUTH__PROVIDERS__GOOGLE__ALLOW_MISSING_NONCE", "true")
        .var("AUTH__PROVIDERS__APPLE__ALLOW_MISSING_NONCE", "true")
}

async fn native_token(peer: &OidcPeer, login: &str) -> String {
    peer.id_token("native-app", "native-secret", login, None)
        .await
}

async fn user_id_of(app: &TestApp, email: &str) -> Option<UserId> {
    app.db
        .credentials_by_email(email)
        .await
        .unwrap()
        .map(|c| c.user.id)
}

async fn timelapseme_strict_provider_sign_up_and_sign_in(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(with_providers(backend, &peer), start);

    // Sign-in of an unknown user fails; nothing is created.
    let body = plain(
        post(
            &app,
            "/api/v1/auth/google",
            &json!({"jwt": native_token(&peer, "ada").await}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(body, "User does not exist");
    assert_eq!(user_id_of(&app, "ada@example.com").await, None);

    // Sign-up creates it: the token carries the provider's name as nickname and userId.
    let (access, refresh) = pair(
        post(
            &app,
            "/api/v1/signup/google",
            &json!({"jwt": native_token(&peer, "ada").await}),
        )
        .await,
    )
    .await;
    assert_eq!(
        jsonwebtoken::decode_header(&access).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    let c = claims(&access);
    assert_eq!(c["nickname"], "User ada");
    assert_eq!(c["userId"], c["sub"]);
    assert_eq!(c["email"], "ada@example.com");
    assert_eq!(c["amr"], json!(["oauth"]));
    let ada: UserId = c["sub"].as_str().unwrap().parse().unwrap();
    assert_eq!(user_id_of(&app, "ada@example.com").await, Some(ada));
    let identity = app
        .db
        .identity_by_subject("google", "ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, ada);
    assert_eq!(app.db.unrevoked_sessions_of(ada).await.unwrap().len(), 1);
    // Its refresh token rotates like the credential one.
    let (_, rotated) =
        pair(post(&app, "/api/v1/refresh", &json!({"refreshToken": refresh})).await).await;
    assert_ne!(rotated, refresh);

    // Signing up again fails; signing in now works.
    let body = plain(
        post(
            &app,
            "/api/v1/signup/google",
            &json!({"jwt": native_token(&peer, "ada").await}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body, "User already exists");
    let (access, _) = pair(
        post(
            &app,
            "/api/v1/auth/google",
            &json!({"jwt": native_token(&peer, "ada").await}),
        )
        .await,
    )
    .await;
    assert_eq!(claims(&access)["userId"], ada.to_string());

    // The same user through the canonical API.
    let res = app
        .post(
            "/api/v1/auth/oauth/google/token",
            &json!({"id_token": native_token(&peer, "ada").await}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let canonical: Value = res.json().await.unwrap();
    assert_eq!(canonical["user"]["id"], ada.to_string());

    // And the other way: created by the canonical API, an existing user here.
    let res = app
        .post(
            "/api/v1/auth/oauth/apple/token",
            &json!({"id_token": native_token(&peer, "linus").await}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let linus: Value = res.json().await.unwrap();
    plain(
        post(
            &app,
            "/api/v1/signup/apple",
            &json!({"jwt": native_token(&peer, "linus").await}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    let (access, _) = pair(
        post(
            &app,
            "/api/v1/auth/apple",
            &json!({"jwt": native_token(&peer, "linus").await}),
        )
        .await,
    )
    .await;
    assert_eq!(claims(&access)["userId"], linus["user"]["id"]);

    // An account with the address already exists (signed up with a password).
    pair(
        post(
            &app,
            "/api/v1/signup/credentials",
            &json!({"email": "melvin@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD, "nickname": "Melvin"}),
        )
        .await,
    )
    .await;
    let body = plain(
        post(
            &app,
            "/api/v1/signup/apple",
            &json!({"jwt": native_token(&peer, "melvin@example.com").await}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body, "User already exists");
    assert!(
        app.db
            .identity_by_subject("apple", "melvin@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // The JWT must carry the email; without a name the nickname is the address's local part.
    let now = chrono::Utc::now().timestamp();
    let silent = peer
        .mint(&json!({
            "iss": peer.issuer, "aud": "native-app", "sub": "silent",
            "iat": now, "exp": now + 600,
        }))
        .await;
    let body = plain(
        post(&app, "/api/v1/signup/google", &json!({"jwt": silent})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body, "The token carries no email");
    let nameless = peer
        .mint(&json!({
            "iss": peer.issuer, "aud": "native-app", "sub": "quiet",
            "email": "quiet.one@example.com", "email_verified": true,
            "iat": now, "exp": now + 600,
        }))
        .await;
    let (access, _) =
        pair(post(&app, "/api/v1/signup/apple", &json!({"jwt": nameless})).await).await;
    assert_eq!(claims(&access)["nickname"], "quiet.one");

    // Tokens that are not the provider's, or not for this app.
    let foreign = peer
        .id_token("other-app", "other-secret", "eve", None)
        .await;
    for jwt in [foreign.as_str(), "not.a.jwt"] {
        for route in ["/api/v1/signup/google", "/api/v1/auth/google"] {
            let body = plain(
                post(&app, route, &json!({"jwt": jwt})).await,
                StatusCode::UNAUTHORIZED,
            )
            .await;
            assert_eq!(body, "Invalid token");
        }
    }
    assert_eq!(user_id_of(&app, "eve@example.com").await, None);
    let body = plain(
        post(&app, "/api/v1/signup/google", &json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body, "Missing jwt");
}

async fn timelapseme_refuses_second_factor_accounts(backend: Backend) {
    use auth_core::mfa::{base32_decode, time_step, totp_code};

    let peer = OidcPeer::start().await;
    let app = app!(with_providers(backend, &peer), start);
    // Signed up through the profile with a password and with Google linked.
    pair(
        post(
            &app,
            "/api/v1/signup/credentials",
            &json!({"email": "ada@example.com", "password": PASSWORD, "passwordConfirm": PASSWORD, "nickname": "Ada"}),
        )
        .await,
    )
    .await;
    // Linking needs a verified address (pre-account hijacking, docs/security.md).
    app.verify_email("ada@example.com").await;
    let canonical = app.login("ada@example.com").await;
    let bearer = canonical["access_token"].as_str().unwrap();
    let user_id: UserId = canonical["user"]["id"].as_str().unwrap().parse().unwrap();
    let res = app
        .post_auth(
            "/api/v1/auth/oauth/google/link",
            bearer,
            &json!({"id_token": native_token(&peer, "ada").await}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // An active TOTP factor, enrolled through the canonical API; then every session ends.
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
    let body = plain(
        post(
            &app,
            "/api/v1/auth/credentials",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body, "This account signs in with a second factor");
    let body = plain(
        post(
            &app,
            "/api/v1/auth/google",
            &json!({"jwt": native_token(&peer, "ada").await}),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body, "This account signs in with a second factor");
    assert!(
        app.db
            .unrevoked_sessions_of(user_id)
            .await
            .unwrap()
            .is_empty()
    );
}
