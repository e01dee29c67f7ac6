//! Social and OpenID Connect sign-in against a real OpenID provider (`oidc-provider` on
//! loopback) and local servers speaking the GitHub, Facebook and X APIs.

use auth_core::identity::IdentityStore as _;
use auth_core::model::UserId;
use auth_core::ports::UserStore as _;
use auth_e2e::oidc::{CALLBACK, OidcPeer, pkce};
use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends, problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::password_sessions::decode_claims;
use crate::social_fakes::SocialFakes;

on_both_backends!(
    id_token_sign_in_creates_the_account_then_signs_it_in,
    foreign_expired_forged_and_wrong_nonce_tokens_are_refused,
    id_tokens_need_a_nonce_unless_the_provider_allows_none,
    a_rotated_signing_key_is_fetched_on_its_unknown_kid,
    unknown_and_unreachable_providers,
    redirect_flow_with_pkce_end_to_end,
    verified_emails_on_both_sides_link_automatically,
    an_unverified_side_links_nothing_until_verified,
    strict_mode_requires_a_separate_signup,
    unlinking_the_last_way_to_sign_in_is_refused,
    github_signs_in_with_the_primary_verified_email,
    github_redirect_flow_exchanges_the_code_with_pkce,
    facebook_checks_the_app_and_the_appsecret_proof,
    x_oauth2_and_oauth1_tokens_reach_the_same_identity,
    a_provider_sign_in_stops_at_the_second_factor,
);

pub(crate) const DONE: &str = "http://app.test/done";

/// An app whose provider `testop` is the peer; the native apps' client id is allowed.
pub(crate) fn with_peer(backend: Backend, peer: &OidcPeer) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__PROVIDERS__TESTOP__ISSUER", &peer.issuer)
        .var(
            "AUTH__PROVIDERS__TESTOP__CLIENT_IDS",
            "auth-server,native-app",
        )
        .var(
            "AUTH__PROVIDERS__TESTOP__CLIENT_SECRET",
            "auth-server-secret",
        )
        .var(
            "AUTH__PROVIDERS__TESTOP__JWKS_REFRESH_MIN_INTERVAL_SECS",
            "0",
        )
        // Most tests hand in tokens without a nonce (an app that cannot send one);
        // `id_tokens_need_a_nonce_unless_the_provider_allows_none` tests the default.
        .var("AUTH__PROVIDERS__TESTOP__ALLOW_MISSING_NONCE", "true")
        .var("AUTH__APP__REDIRECT_ALLOW_LIST", DONE)
}

async fn native_token(peer: &OidcPeer, login: &str) -> String {
    peer.id_token("native-app", "native-secret", login, None)
        .await
}

async fn sign_in(app: &TestApp, provider: &str, body: &Value) -> reqwest::Response {
    app.post(&format!("/api/v1/auth/oauth/{provider}/token"), body)
        .await
}

async fn user_count(app: &TestApp, email: &str) -> usize {
    usize::from(app.db.credentials_by_email(email).await.unwrap().is_some())
}

async fn me(app: &TestApp, token: &str) -> Value {
    let res = app.get_auth("/api/v1/me", token).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn id_token_sign_in_creates_the_account_then_signs_it_in(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(with_peer(backend, &peer), start);
    let token = native_token(&peer, "ada").await;

    // First sign-in creates the account (the name in the body wins, as Apple sends it).
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": token, "name": "Ada Lovelace"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let first: Value = res.json().await.unwrap();
    let user = &first["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["identities"].as_array().unwrap().len(), 1);
    assert_eq!(user["identities"][0]["provider"], "testop");
    assert_eq!(user["identities"][0]["email"], "ada@example.com");
    let claims = decode_claims(first["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["oauth"]));
    assert_eq!(claims["aal"], "aal1");

    // The account has no password, and one identity keyed by (provider, subject).
    let creds = app
        .db
        .credentials_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(creds.password_hash.is_none());
    let identity = app
        .db
        .identity_by_subject("testop", "ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, creds.user.id);

    // A second token of the same subject signs the same account in.
    let again = native_token(&peer, "ada").await;
    let res = sign_in(&app, "testop", &json!({"id_token": again})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second: Value = res.json().await.unwrap();
    assert_eq!(second["user"]["id"], user["id"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let profile = me(&app, second["access_token"].as_str().unwrap()).await;
    assert_eq!(profile["identities"].as_array().unwrap().len(), 1);

    // Its tokens work like any other session's.
    let refreshed = app.refresh(second["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK);

    // Exactly one of id_token / access_token.
    let res = sign_in(&app, "testop", &json!({})).await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": "x", "access_token": "y"}),
    )
    .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

async fn foreign_expired_forged_and_wrong_nonce_tokens_are_refused(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(
        with_peer(backend, &peer)
            // The Apple preset, its endpoints pointed at the peer (nonces as SHA-256 hex).
            .var("AUTH__PROVIDERS__APPLE__ISSUER", &peer.issuer)
            .var(
                "AUTH__PROVIDERS__APPLE__JWKS_URI",
                &format!("{}/jwks", peer.issuer)
            )
            .var("AUTH__PROVIDERS__APPLE__CLIENT_IDS", "native-app"),
        start
    );

    // Issued by the provider, but to another app.
    let foreign = peer
        .id_token("other-app", "other-secret", "eve", None)
        .await;
    let res = sign_in(&app, "testop", &json!({"id_token": foreign})).await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_id_token").await;

    // Signed by the provider's key, but expired.
    let now = chrono::Utc::now().timestamp();
    let expired = peer
        .mint(&json!({
            "iss": peer.issuer, "aud": "native-app", "sub": "eve",
            "email": "eve@example.com", "email_verified": true,
            "iat": now - 7200, "exp": now - 3600,
        }))
        .await;
    let res = sign_in(&app, "testop", &json!({"id_token": expired})).await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_id_token").await;

    // Another issuer's claims under the provider's signature.
    let wrong_iss = peer
        .mint(&json!({
            "iss": "https://elsewhere.example", "aud": "native-app", "sub": "eve",
            "iat": now, "exp": now + 600,
        }))
        .await;
    let res = sign_in(&app, "testop", &json!({"id_token": wrong_iss})).await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_id_token").await;

    // A genuine token with its payload altered.
    let genuine = native_token(&peer, "eve").await;
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    parts[1] = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut payload: Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
        payload["sub"] = json!("mallory");
        b64.encode(serde_json::to_vec(&payload).unwrap())
    };
    let res = sign_in(&app, "testop", &json!({"id_token": parts.join(".")})).await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_id_token").await;
    let res = sign_in(&app, "testop", &json!({"id_token": "not.a.jwt"})).await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_id_token").await;

    // Nonces: the app's nonce must be the token's.
    let with_nonce = peer
        .id_token("native-app", "native-secret", "eve", Some("n-1"))
        .await;
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": with_nonce, "nonce": "n-2"}),
    )
    .await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_id_token").await;
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": genuine, "nonce": "n-1"}),
    )
    .await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_id_token").await;
    assert_eq!(
        user_count(&app, "eve@example.com").await,
        0,
        "nothing created"
    );
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": with_nonce, "nonce": "n-1"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);

    // The Apple preset (endpoints pointed at the peer): the token carries the SHA-256 hex
    // of the nonce the app posts.
    let hashed = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(b"raw-nonce"))
    };
    let apple_like = peer
        .id_token("native-app", "native-secret", "eve", Some(&hashed))
        .await;
    let res = sign_in(
        &app,
        "apple",
        &json!({"id_token": apple_like, "nonce": "raw-nonce"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = sign_in(
        &app,
        "apple",
        &json!({"id_token": apple_like, "nonce": "other"}),
    )
    .await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_id_token").await;
}

async fn a_rotated_signing_key_is_fetched_on_its_unknown_kid(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(with_peer(backend, &peer), start);
    let before = native_token(&peer, "ada").await;
    let res = sign_in(&app, "testop", &json!({"id_token": before})).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the first key set is now cached"
    );
    let first: Value = res.json().await.unwrap();

    let kid = peer.rotate_key().await;
    let after = native_token(&peer, "ada").await;
    let header: Value = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        serde_json::from_slice(&b64.decode(after.split('.').next().unwrap()).unwrap()).unwrap()
    };
    assert_eq!(header["kid"], kid, "the provider signs with the new key");
    let res = sign_in(&app, "testop", &json!({"id_token": after})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second: Value = res.json().await.unwrap();
    assert_eq!(second["user"]["id"], first["user"]["id"]);
}

async fn unknown_and_unreachable_providers(backend: Backend) {
    // Nothing listens on port 1 of loopback.
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__PROVIDERS__DOWN__ISSUER", "http://127.0.0.1:1")
            .var("AUTH__PROVIDERS__DOWN__CLIENT_IDS", "app")
            .var("AUTH__PROVIDERS__DOWN__TIMEOUT_SECS", "2")
            .var("AUTH__APP__REDIRECT_ALLOW_LIST", DONE),
        start
    );
    let res = sign_in(&app, "nope", &json!({"id_token": "a.b.c"})).await;
    problem(res, StatusCode::NOT_FOUND, "unknown_provider").await;
    let token = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            b64.encode(br#"{"alg":"RS256","kid":"k"}"#),
            b64.encode(
                br#"{"iss":"http://127.0.0.1:1","aud":"app","sub":"s","exp":4102444800,"iat":1}"#
            ),
            b64.encode(b"sig")
        )
    };
    let res = sign_in(&app, "down", &json!({"id_token": token, "nonce": "n"})).await;
    problem(res, StatusCode::BAD_GATEWAY, "provider_unavailable").await;
    let (_, challenge) = pkce();
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/auth/oauth/down/authorize?redirect_to={DONE}&code_challenge={challenge}&code_challenge_method=S256"
        )))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_GATEWAY, "provider_unavailable").await;
}

/// Drive the browser flow from `authorize` to the app's `redirect_to`; returns that URL.
async fn browser_flow(app: &TestApp, login: &str, challenge: &str, intent: &str) -> String {
    browser_flow_with_callback(app, login, challenge, intent)
        .await
        .1
}

/// [`browser_flow`], also returning the provider's callback URL (its `code` and `state`).
pub(crate) async fn browser_flow_with_callback(
    app: &TestApp,
    login: &str,
    challenge: &str,
    intent: &str,
) -> (String, String) {
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/auth/oauth/testop/authorize?redirect_to={DONE}&code_challenge={challenge}&code_challenge_method=S256{intent}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let to_provider = res.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&to_provider).unwrap();
    let q = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"));
    assert!(q("state").is_some() && q("nonce").is_some() && q("code_challenge").is_some());
    assert_ne!(
        q("code_challenge").as_deref(),
        Some(challenge),
        "our own PKCE pair, not the app's"
    );
    assert_eq!(q("redirect_uri").as_deref(), Some(CALLBACK));

    let browser = OidcPeer::browser();
    let callback = OidcPeer::sign_in_through(&browser, &to_provider, login, CALLBACK).await;
    // The test server's public URL is http://auth.test: deliver the callback to it.
    let callback = callback.replacen("http://auth.test", &app.address, 1);
    let res = browser.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    (callback, location)
}

pub(crate) fn code_of(location: &str) -> String {
    assert!(location.starts_with(&format!("{DONE}?")), "{location}");
    reqwest::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"))
}

pub(crate) async fn exchange(app: &TestApp, code: &str, verifier: &str) -> reqwest::Response {
    app.post(
        "/api/v1/auth/oauth/exchange",
        &json!({"code": code, "code_verifier": verifier}),
    )
    .await
}

async fn redirect_flow_with_pkce_end_to_end(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(with_peer(backend, &peer), start);

    let (verifier, challenge) = pkce();
    let location = browser_flow(&app, "grace", &challenge, "").await;
    let code = code_of(&location);
    let res = exchange(&app, &code, &verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["user"]["email"], "grace@example.com");
    assert_eq!(tokens["user"]["identities"][0]["provider"], "testop");
    let profile = me(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(profile["id"], tokens["user"]["id"]);
    // Single use.
    let res = exchange(&app, &code, &verifier).await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_code").await;

    // A wrong verifier burns the code.
    let (verifier, challenge) = pkce();
    let code = code_of(&browser_flow(&app, "grace", &challenge, "").await);
    let res = exchange(
        &app,
        &code,
        "a-verifier-of-someone-else-entirely-0123456789",
    )
    .await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_code").await;
    let res = exchange(&app, &code, &verifier).await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_code").await;

    // A state is single use: replaying the callback fails.
    let res = app
        .client
        .get(app.url("/api/v1/auth/oauth/testop/callback?state=forged&code=x"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST, "invalid_state").await;

    // Errors after a valid state go back to the app.
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/auth/oauth/testop/authorize?redirect_to={DONE}&code_challenge={challenge}&code_challenge_method=S256"
        )))
        .send()
        .await
        .unwrap();
    let to_provider = reqwest::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let state = to_provider
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/auth/oauth/testop/callback?state={state}&error=access_denied"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!("{DONE}?error=provider_rejected")
    );

    // The app's return address must be on the allow-list, and PKCE is S256 only.
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/auth/oauth/testop/authorize?redirect_to=http://evil.test/done&code_challenge={challenge}&code_challenge_method=S256"
        )))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/auth/oauth/testop/authorize?redirect_to={DONE}&code_challenge={challenge}&code_challenge_method=plain"
        )))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

async fn password_account(app: &TestApp, email: &str, verified: bool) -> (UserId, String) {
    let t = app.signup(email).await;
    let id: UserId = t["user"]["id"].as_str().unwrap().parse().unwrap();
    if verified {
        app.verify_email(email).await;
    }
    (id, t["access_token"].as_str().unwrap().to_owned())
}

async fn verified_emails_on_both_sides_link_automatically(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(with_peer(backend, &peer), start);
    let (id, _) = password_account(&app, "ada@example.com", true).await;

    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "ada").await}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["id"], id.to_string());
    assert_eq!(t["user"]["identities"].as_array().unwrap().len(), 1);
    // The password still works.
    app.login("ada@example.com").await;
}

async fn an_unverified_side_links_nothing_until_verified(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(with_peer(backend, &peer), start);

    // Our side unverified: no automatic link, nothing created.
    let (id, access) = password_account(&app, "ada@example.com", false).await;
    let token = native_token(&peer, "ada").await;
    let res = sign_in(&app, "testop", &json!({"id_token": token})).await;
    problem(res, StatusCode::CONFLICT, "link_required").await;
    assert!(
        app.db
            .identity_by_subject("testop", "ada")
            .await
            .unwrap()
            .is_none()
    );

    // Signed in, the account cannot link it either while its address is unverified (an
    // identity linked to a pre-hijacked account would outlive its adoption) ...
    let res = app
        .post_auth(
            "/api/v1/auth/oauth/testop/link",
            &access,
            &json!({"id_token": token}),
        )
        .await;
    problem(res, StatusCode::FORBIDDEN, "link_requires_verified_email").await;
    assert!(
        app.db
            .identity_by_subject("testop", "ada")
            .await
            .unwrap()
            .is_none()
    );

    // ... and once it is verified, the user links it; then it signs them in.
    app.verify_email("ada@example.com").await;
    let res = app
        .post_auth(
            "/api/v1/auth/oauth/testop/link",
            &access,
            &json!({"id_token": token}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["id"], id.to_string());
    assert_eq!(user["identities"][0]["provider"], "testop");
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "ada").await}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["id"], id.to_string());

    // The identity cannot be linked to a second account.
    let (_, other) = password_account(&app, "bob@example.com", true).await;
    let res = app
        .post_auth(
            "/api/v1/auth/oauth/testop/link",
            &other,
            &json!({"id_token": native_token(&peer, "ada").await}),
        )
        .await;
    problem(res, StatusCode::CONFLICT, "identity_exists").await;

    // The provider's side unverified: no automatic link either, and the same answer as
    // when no account has the address (no probing for accounts).
    password_account(&app, "unverified-carol@example.com", true).await;
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "unverified-carol").await}),
    )
    .await;
    problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "provider_email_unverified",
    )
    .await;
    assert!(
        app.db
            .identity_by_subject("testop", "unverified-carol")
            .await
            .unwrap()
            .is_none()
    );

    // No account at all: none is made with an address the provider did not verify.
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "unverified-dave").await}),
    )
    .await;
    problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "provider_email_unverified",
    )
    .await;
    assert_eq!(user_count(&app, "unverified-dave@example.com").await, 0);
    assert!(
        app.db
            .identity_by_subject("testop", "unverified-dave")
            .await
            .unwrap()
            .is_none()
    );
}

async fn strict_mode_requires_a_separate_signup(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(
        with_peer(backend, &peer).var("AUTH__PROVIDERS__TESTOP__SIGNUP", "strict"),
        start
    );
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "dan").await}),
    )
    .await;
    problem(res, StatusCode::FORBIDDEN, "signup_required").await;
    assert_eq!(user_count(&app, "dan@example.com").await, 0);

    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "dan").await, "intent": "signup"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let created: Value = res.json().await.unwrap();

    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "dan").await, "intent": "signup"}),
    )
    .await;
    problem(res, StatusCode::CONFLICT, "identity_exists").await;

    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "dan").await}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["id"], created["user"]["id"]);

    let res = sign_in(&app, "testop", &json!({"id_token": "x", "intent": "maybe"})).await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

async fn unlinking_the_last_way_to_sign_in_is_refused(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(with_peer(backend, &peer), start);
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "erin").await}),
    )
    .await;
    let t: Value = res.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    let first = t["user"]["identities"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = app
        .client
        .delete(app.url(&format!("/api/v1/me/identities/{first}")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::CONFLICT, "last_sign_in_method").await;

    // With a second identity, the first can go; then the second is the last one.
    let res = app
        .post_auth(
            "/api/v1/auth/oauth/testop/link",
            &access,
            &json!({"id_token": native_token(&peer, "erin-work").await}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["identities"].as_array().unwrap().len(), 2);
    let second = user["identities"][1]["id"].as_str().unwrap().to_owned();
    let delete = |id: String| {
        let (app, access) = (&app, access.clone());
        async move {
            app.client
                .delete(app.url(&format!("/api/v1/me/identities/{id}")))
                .bearer_auth(&access)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(delete(first.clone()).await.status(), StatusCode::NO_CONTENT);
    problem(delete(first).await, StatusCode::NOT_FOUND, "not_found").await;
    problem(
        delete(second).await,
        StatusCode::CONFLICT,
        "last_sign_in_method",
    )
    .await;
    let left = app
        .db
        .identities_of(t["user"]["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].subject, "erin-work");

    // An account with a password may drop its only identity.
    let (_, pw_access) = password_account(&app, "frank@example.com", true).await;
    let res = app
        .post_auth(
            "/api/v1/auth/oauth/testop/link",
            &pw_access,
            &json!({"id_token": native_token(&peer, "frank").await}),
        )
        .await;
    let user: Value = res.json().await.unwrap();
    let only = user["identities"][0]["id"].as_str().unwrap();
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/me/identities/{only}")))
        .bearer_auth(&pw_access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": "frank@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

fn with_fakes(backend: Backend, fakes: &SocialFakes) -> TestAppBuilder {
    TestApp::builder(backend)
        .var("AUTH__PROVIDERS__GITHUB__CLIENT_IDS", "gh-client")
        .var("AUTH__PROVIDERS__GITHUB__CLIENT_SECRET", "gh-secret")
        .var("AUTH__PROVIDERS__GITHUB__API_BASE_URL", &fakes.url)
        .var(
            "AUTH__PROVIDERS__GITHUB__AUTHORIZATION_ENDPOINT",
            &format!("{}/login/oauth/authorize", fakes.url),
        )
        .var(
            "AUTH__PROVIDERS__GITHUB__TOKEN_ENDPOINT",
            &format!("{}/login/oauth/access_token", fakes.url),
        )
        .var("AUTH__APP__REDIRECT_ALLOW_LIST", DONE)
        .var("AUTH__PROVIDERS__FACEBOOK__CLIENT_IDS", "fb-app")
        .var("AUTH__PROVIDERS__FACEBOOK__CLIENT_SECRET", "fb-secret")
        .var("AUTH__PROVIDERS__FACEBOOK__API_BASE_URL", &fakes.url)
        .var(
            "AUTH__PROVIDERS__FACEBOOK__AUTHORIZATION_ENDPOINT",
            &format!("{}/dialog/oauth", fakes.url),
        )
        .var(
            "AUTH__PROVIDERS__FACEBOOK__TOKEN_ENDPOINT",
            &format!("{}/oauth/access_token", fakes.url),
        )
        .var("AUTH__PROVIDERS__TWITTER__CLIENT_IDS", "x-client")
        .var("AUTH__PROVIDERS__TWITTER__CONSUMER_KEY", "x-consumer-key")
        .var(
            "AUTH__PROVIDERS__TWITTER__CONSUMER_SECRET",
            "x-consumer-secret",
        )
        .var("AUTH__PROVIDERS__TWITTER__API_BASE_URL", &fakes.url)
        .var("AUTH__PROVIDERS__TWITTER__CLIENT_SECRET", "x-secret")
        .var(
            "AUTH__PROVIDERS__TWITTER__AUTHORIZATION_ENDPOINT",
            &format!("{}/i/oauth2/authorize", fakes.url),
        )
        .var(
            "AUTH__PROVIDERS__TWITTER__TOKEN_ENDPOINT",
            &format!("{}/2/oauth2/token", fakes.url),
        )
}

async fn github_signs_in_with_the_primary_verified_email(backend: Backend) {
    let fakes = SocialFakes::start().await;
    let app = app!(with_fakes(backend, &fakes), start);
    let res = sign_in(&app, "github", &json!({"access_token": "gh-token-ada"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["email"], "ada@github.example");
    assert_eq!(t["user"]["email_verified"], true);
    assert_eq!(t["user"]["name"], "Ada GitHub");
    assert!(
        app.db
            .identity_by_subject("github", "4242")
            .await
            .unwrap()
            .is_some()
    );

    let res = sign_in(&app, "github", &json!({"access_token": "revoked"})).await;
    problem(res, StatusCode::UNAUTHORIZED, "provider_rejected").await;
    // A live token issued to another GitHub app: /user would answer it, the check does not.
    let res = sign_in(&app, "github", &json!({"access_token": "gh-token-mallory"})).await;
    problem(res, StatusCode::UNAUTHORIZED, "provider_rejected").await;
    assert_eq!(user_count(&app, "mallory@github.example").await, 0);
    assert!(
        app.db
            .identity_by_subject("github", "6666")
            .await
            .unwrap()
            .is_none()
    );
    let res = sign_in(&app, "github", &json!({"id_token": "a.b.c"})).await;
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
}

async fn facebook_checks_the_app_and_the_appsecret_proof(backend: Backend) {
    let fakes = SocialFakes::start().await;
    let app = app!(with_fakes(backend, &fakes), start);
    // The fake refuses /me unless appsecret_proof is HMAC-SHA256(token, app secret).
    let res = sign_in(&app, "facebook", &json!({"access_token": "fb-token-ada"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["email"], "ada@fb.example");
    assert_eq!(t["user"]["name"], "Ada Facebook");
    assert!(
        app.db
            .identity_by_subject("facebook", "1001")
            .await
            .unwrap()
            .is_some()
    );

    // A valid token issued to another app is not ours.
    let res = sign_in(
        &app,
        "facebook",
        &json!({"access_token": "fb-token-other-app"}),
    )
    .await;
    problem(res, StatusCode::UNAUTHORIZED, "provider_rejected").await;
    assert_eq!(user_count(&app, "mallory@fb.example").await, 0);
    let res = sign_in(&app, "facebook", &json!({"access_token": "expired"})).await;
    problem(res, StatusCode::UNAUTHORIZED, "provider_rejected").await;

    // The browser flow: the code exchanged with PKCE, then the same checks of the token.
    let (verifier, challenge) = pkce();
    let location = round_trip(&app, "facebook", &challenge, false).await;
    let res = exchange(&app, &code_of(&location), &verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["user"]["id"], t["user"]["id"]);
    assert_eq!(fakes.pkce_failures(), 0);
    let (_, challenge) = pkce();
    let location = round_trip(&app, "facebook", &challenge, true).await;
    assert_eq!(location, format!("{DONE}?error=provider_rejected"));
}

async fn x_oauth2_and_oauth1_tokens_reach_the_same_identity(backend: Backend) {
    let fakes = SocialFakes::start().await;
    // By default an OAuth 2.0 token an app hands in is refused: X cannot tell us which client
    // it was issued to. Signing in and linking alike.
    let strict = app!(with_fakes(backend, &fakes), start);
    let res = sign_in(&strict, "twitter", &json!({"access_token": "x-token-ada"})).await;
    problem(res, StatusCode::UNAUTHORIZED, "provider_rejected").await;
    let (_, access) = password_account(&strict, "ada@example.com", true).await;
    let res = strict
        .post_auth(
            "/api/v1/auth/oauth/twitter/link",
            &access,
            &json!({"access_token": "x-token-ada"}),
        )
        .await;
    problem(res, StatusCode::UNAUTHORIZED, "provider_rejected").await;
    strict.stop().await;

    let app = app!(
        with_fakes(backend, &fakes).var(
            "AUTH__PROVIDERS__TWITTER__ACCEPT_UNBOUND_ACCESS_TOKENS",
            "true"
        ),
        start
    );
    // X shares no email address: a new account cannot be made from it alone.
    let res = sign_in(&app, "twitter", &json!({"access_token": "x-token-ada"})).await;
    problem(
        res,
        StatusCode::UNPROCESSABLE_ENTITY,
        "provider_email_missing",
    )
    .await;

    let (id, access) = password_account(&app, "ada@example.com", true).await;
    let res = app
        .post_auth(
            "/api/v1/auth/oauth/twitter/link",
            &access,
            &json!({"access_token": "x-token-ada"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // OAuth 2.0 user token.
    let res = sign_in(&app, "twitter", &json!({"access_token": "x-token-ada"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["id"], id.to_string());

    // OAuth 1.0a token and secret: the fake checks the HMAC-SHA1 signature.
    let res = sign_in(
        &app,
        "twitter",
        &json!({"access_token": "x1-token", "access_token_secret": "x1-secret"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["id"], id.to_string());
    let res = sign_in(
        &app,
        "twitter",
        &json!({"access_token": "x1-token", "access_token_secret": "wrong-secret"}),
    )
    .await;
    problem(res, StatusCode::UNAUTHORIZED, "provider_rejected").await;
    assert_eq!(
        fakes.bad_signatures(),
        1,
        "the fake saw exactly one bad signature"
    );

    // The browser flow: OAuth 2.0 with PKCE, the client authenticated with HTTP Basic.
    let (verifier, challenge) = pkce();
    let location = round_trip(&app, "twitter", &challenge, false).await;
    let res = exchange(&app, &code_of(&location), &verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["id"], id.to_string());
    assert_eq!(fakes.pkce_failures(), 0);
    let (_, challenge) = pkce();
    let location = round_trip(&app, "twitter", &challenge, true).await;
    assert_eq!(location, format!("{DONE}?error=provider_rejected"));
}

/// authorize -> the provider -> callback; returns where the callback sends the browser.
async fn github_round_trip(app: &TestApp, challenge: &str, tamper_code: bool) -> String {
    round_trip(app, "github", challenge, tamper_code).await
}

/// authorize -> the provider stand-in -> callback for `provider`.
async fn round_trip(app: &TestApp, provider: &str, challenge: &str, tamper_code: bool) -> String {
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/auth/oauth/{provider}/authorize?redirect_to={DONE}&code_challenge={challenge}&code_challenge_method=S256"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let to_github = res.headers()["location"].to_str().unwrap().to_owned();
    let res = app.client.get(&to_github).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FOUND,
        "the stand-in accepts the request"
    );
    let mut callback = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&format!(
        "http://auth.test/api/v1/auth/oauth/{provider}/callback?"
    )));
    if tamper_code {
        callback = callback.replace("-code-", "-forged-");
    }
    let callback = callback.replacen("http://auth.test", &app.address, 1);
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    res.headers()["location"].to_str().unwrap().to_owned()
}

async fn github_redirect_flow_exchanges_the_code_with_pkce(backend: Backend) {
    let fakes = SocialFakes::start().await;
    let app = app!(with_fakes(backend, &fakes), start);
    let (verifier, challenge) = pkce();
    let location = github_round_trip(&app, &challenge, false).await;
    let res = exchange(&app, &code_of(&location), &verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["email"], "ada@github.example");
    assert_eq!(t["user"]["identities"][0]["provider"], "github");
    assert_eq!(
        fakes.pkce_failures(),
        0,
        "our PKCE verifier matched our challenge"
    );

    // A code the provider does not know: back to the app with the error, nothing created.
    let (_, challenge) = pkce();
    let location = github_round_trip(&app, &challenge, true).await;
    assert_eq!(location, format!("{DONE}?error=provider_rejected"));
}

/// A provider sign-in is one factor, like a password: a user with TOTP gets the challenge,
/// and the verified code finishes the sign-in at aal2.
async fn a_provider_sign_in_stops_at_the_second_factor(backend: Backend) {
    use auth_core::mfa::{base32_decode, time_step, totp_code};

    let peer = OidcPeer::start().await;
    let app = app!(with_peer(backend, &peer), start);
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "ada").await}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let first: Value = res.json().await.unwrap();
    let bearer = first["access_token"].as_str().unwrap();

    let res = app
        .post_auth("/api/v1/auth/mfa/totp/enroll", bearer, &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let enrolment: Value = res.json().await.unwrap();
    let secret = base32_decode(enrolment["secret"].as_str().unwrap()).unwrap();
    let step = time_step(chrono::Utc::now());
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/totp/activate",
            bearer,
            &json!({"factor_id": enrolment["factor_id"], "code": totp_code(&secret, step)}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // The next provider sign-in answers the challenge, not tokens.
    let res = sign_in(
        &app,
        "testop",
        &json!({"id_token": native_token(&peer, "ada").await}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["mfa_required"], true, "{challenge}");
    assert!(challenge.get("access_token").is_none() && challenge.get("refresh_token").is_none());
    assert!(
        challenge["factors"]
            .as_array()
            .unwrap()
            .contains(&json!("totp"))
    );

    // A fresh code (the next time step: the activation used this one) finishes it at aal2.
    let res = app
        .post(
            "/api/v1/auth/mfa/verify",
            &json!({
                "mfa_token": challenge["mfa_token"],
                "factor": "totp",
                "code": totp_code(&secret, step + 1),
            }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let done: Value = res.json().await.unwrap();
    let claims = decode_claims(done["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["oauth", "otp"]));
    assert_eq!(claims["aal"], "aal2");
    assert_eq!(done["user"]["email"], "ada@example.com");
}

/// Issue 14, hole 10: a native ID token is bound to its sign-in by the app's nonce. By
/// default one handed in without a nonce is refused (422 `invalid_field` `nonce`) and
/// creates nothing, whichever provider; `providers.<id>.allow_missing_nonce` lets a provider
/// whose apps cannot send one through.
async fn id_tokens_need_a_nonce_unless_the_provider_allows_none(backend: Backend) {
    let peer = OidcPeer::start().await;
    let app = app!(
        with_peer(backend, &peer).var("AUTH__PROVIDERS__TESTOP__ALLOW_MISSING_NONCE", "false"),
        start
    );
    let bare = native_token(&peer, "eve").await;
    for body in [
        json!({"id_token": bare}),
        json!({"id_token": bare, "nonce": ""}),
    ] {
        let res = sign_in(&app, "testop", &body).await;
        let problem = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with("nonce required"),
            "{problem}"
        );
    }
    assert_eq!(
        user_count(&app, "eve@example.com").await,
        0,
        "nothing created"
    );
    // The app's nonce in the token and in the request: signed in.
    let bound = peer
        .id_token("native-app", "native-secret", "eve", Some("n-1"))
        .await;
    let res = sign_in(&app, "testop", &json!({"id_token": bound, "nonce": "n-1"})).await;
    assert_eq!(res.status(), StatusCode::OK);

    let lenient = app!(with_peer(backend, &peer), start);
    let res = sign_in(&lenient, "testop", &json!({"id_token": bare})).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "allowed by the provider setting"
    );
}
