//! The `service-authentication` profile: OAuth sign-in through the browser with
//! cookie-carried tokens, linking a provider identity, and magic links; against the real
//! OpenID provider peer and the SMTP sink.

use auth_core::identity::IdentityStore as _;
use auth_core::model::UserId;
use auth_core::ports::{SessionStore as _, UserStore as _};
use auth_e2e::oidc::OidcPeer;
use auth_e2e::{Backend, PASSWORD, TestApp, TestAppBuilder, app, on_both_backends};
use auth_notify::testing::SmtpSink;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::compat_service_auth::{
    PREFIX, ProfileCookies, cookie_value, link_token, set_cookies, with_profile,
};

on_both_backends!(
    service_authentication_oauth_browser_story,
    service_authentication_links_a_provider_identity,
    service_authentication_magic_link_story,
    service_authentication_second_factor_accounts_stop_before_the_cookies,
);

/// Where the app wants the browser back.
const DONE: &str = "http://app.test/done";
/// The profile's own callback, registered at the provider (`server.public_url` of the test
/// apps is `http://auth.test`).
const PROFILE_CALLBACK: &str =
    "http://auth.test/compat/service-authentication/oauth/testop/callback";
/// `app.url` of [`with_profile`].
const APP_URL: &str = "https://app.example.com";

/// The profile, the SMTP sink and the peer as provider `testop`; the app's return
/// addresses (and `app.url`) on the allow-list.
pub(crate) fn with_provider(backend: Backend, sink: &SmtpSink, peer: &OidcPeer) -> TestAppBuilder {
    with_profile(backend, sink)
        .var("AUTH__PROVIDERS__TESTOP__ISSUER", &peer.issuer)
        .var(
            "AUTH__PROVIDERS__TESTOP__CLIENT_IDS",
            "auth-server,native-app",
        )
        .var(
            "AUTH__PROVIDERS__TESTOP__CLIENT_SECRET",
            "auth-server-secret",
        )
        .var("AUTH__PROVIDERS__TESTOP__ALLOW_MISSING_NONCE", "true")
        .var(
            "AUTH__APP__REDIRECT_ALLOW_LIST",
            &format!("{DONE},{APP_URL}"),
        )
}

fn url(app: &TestApp, route: &str) -> String {
    app.url(&format!("{PREFIX}{route}"))
}

async fn get(app: &TestApp, route: &str, jwt: Option<&str>) -> Response {
    let mut req = app.client.get(url(app, route));
    if let Some(jwt) = jwt {
        req = req.profile_cookies(&format!("jwt={jwt}"));
    }
    req.send().await.unwrap()
}

fn location(res: &Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

fn query(url: &str, key: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// An `{"error": message}` answer with `status`.
async fn error_body(res: Response, status: StatusCode) -> String {
    assert_eq!(res.status(), status);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = res.json().await.unwrap();
    body["error"]
        .as_str()
        .expect("{\"error\": message}")
        .to_owned()
}

/// The `Cookie` header that carries the flow cookie `GET /oauth/:provider` set: only the
/// browser holding it can finish that flow.
fn flow_cookie(res: &Response) -> String {
    let cookies = set_cookies(res);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let flow = &cookies[0];
    assert!(
        flow.contains("HttpOnly")
            && flow.contains("SameSite=None; Secure")
            && flow.contains(&format!("Path={PREFIX}/oauth;")),
        "{flow}"
    );
    let value = cookie_value(&cookies, "jwt_oauth_state").expect("the flow cookie");
    assert_eq!(Some(&value), query(&location(res), "state").as_ref());
    format!("jwt_oauth_state={value}")
}

/// A request to the callback from the browser that holds `flow` (the flow cookie).
async fn back_with(app: &TestApp, callback: &str, flow: &str) -> Response {
    app.client
        .get(callback)
        .header("cookie", flow)
        .send()
        .await
        .unwrap()
}

/// `GET /oauth/testop` then the provider's sign-in as `login`: the callback URL the
/// provider sends the browser to, rewritten to reach the test server, and the flow cookie.
async fn to_callback(app: &TestApp, login: &str, query: &str) -> (String, String) {
    let res = get(app, &format!("/oauth/testop{query}"), None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let flow = flow_cookie(&res);
    let to_provider = location(&res);
    let browser = OidcPeer::browser();
    let back = OidcPeer::sign_in_through(&browser, &to_provider, login, PROFILE_CALLBACK).await;
    (back.replacen("http://auth.test", &app.address, 1), flow)
}

async fn user_id_of(app: &TestApp, email: &str) -> UserId {
    app.db
        .credentials_by_email(email)
        .await
        .unwrap()
        .expect("the user row")
        .user
        .id
}

async fn service_authentication_oauth_browser_story(backend: Backend) {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start_with_callback(PROFILE_CALLBACK).await;
    let app = app!(with_provider(backend, &sink, &peer), start);

    // To the provider with our state, nonce and PKCE challenge, back to our own callback.
    let res = get(&app, &format!("/oauth/testop?redirect_to={DONE}"), None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let flow = flow_cookie(&res);
    let to_provider = location(&res);
    assert!(to_provider.starts_with(&format!("{}/", peer.issuer)));
    assert_eq!(
        query(&to_provider, "redirect_uri").as_deref(),
        Some(PROFILE_CALLBACK)
    );
    assert_eq!(
        query(&to_provider, "code_challenge_method").as_deref(),
        Some("S256")
    );
    for key in ["state", "nonce", "code_challenge"] {
        assert!(query(&to_provider, key).is_some(), "{key}");
    }

    // The provider signs grace in and sends the browser back: the session opens, the
    // cookies are set on the redirect to the app.
    let browser = OidcPeer::browser();
    let callback = OidcPeer::sign_in_through(&browser, &to_provider, "grace", PROFILE_CALLBACK)
        .await
        .replacen("http://auth.test", &app.address, 1);
    // Carried to another browser (login CSRF), the callback signs nothing in, and leaves
    // the state for the browser that started the flow.
    let res = app.client.get(&callback).send().await.unwrap();
    error_body(res, StatusCode::BAD_REQUEST).await;
    let res = back_with(&app, &callback, "jwt_oauth_state=someone-elses-state").await;
    error_body(res, StatusCode::BAD_REQUEST).await;
    assert!(
        app.db
            .credentials_by_email("grace@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let res = back_with(&app, &callback, &flow).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), DONE);
    let cookies = set_cookies(&res);
    assert!(
        cookies.contains(&format!(
            "jwt_oauth_state=; Path={PREFIX}/oauth; HttpOnly; SameSite=None; Secure; Max-Age=0"
        )),
        "the flow cookie is cleared: {cookies:?}"
    );
    let cookies: Vec<String> = cookies
        .into_iter()
        .filter(|c| !c.starts_with("jwt_oauth_state="))
        .collect();
    assert_eq!(cookies.len(), 3, "the tokens and the double-submit value");
    assert!(
        cookies
            .iter()
            .all(|c| (c.contains("HttpOnly") != c.starts_with("csrf_token="))
                && c.contains("SameSite=Lax")
                && c.contains(&format!("Path={PREFIX}")))
    );
    let jwt = cookie_value(&cookies, "jwt").expect("jwt cookie");
    let refresh = cookie_value(&cookies, "refresh_token").expect("refresh cookie");

    // The cookie signs the browser in.
    let res = get(&app, "/user", Some(&jwt)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["email"], "grace@example.com");
    assert_eq!(user["email_verified"], true);

    // State left behind: the user, its identity and one open session.
    let id = user_id_of(&app, "grace@example.com").await;
    assert_eq!(user["id"], id.to_string());
    let identity = app
        .db
        .identity_by_subject("testop", "grace")
        .await
        .unwrap()
        .expect("identity");
    assert_eq!(identity.user_id, id);
    let sessions = app.db.unrevoked_sessions_of(id).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].amr, vec!["oauth".to_owned()]);

    // The refresh cookie is an ordinary refresh token of that session.
    let res = app
        .client
        .get(url(&app, "/token/refresh"))
        .profile_cookies(&format!("refresh_token={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // The state is single use: a replayed callback opens nothing.
    let res = back_with(&app, &callback, &flow).await;
    error_body(res, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.db.unrevoked_sessions_of(id).await.unwrap().len(), 1);
    let res = get(&app, "/oauth/testop/callback?code=x", None).await;
    error_body(res, StatusCode::BAD_REQUEST).await;

    // The same user through the canonical API (a native ID token of the same login).
    let id_token = peer
        .id_token("native-app", "native-secret", "grace", None)
        .await;
    let res = app
        .post(
            "/api/v1/auth/oauth/testop/token",
            &json!({"id_token": id_token}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let canonical: Value = res.json().await.unwrap();
    assert_eq!(canonical["user"]["id"], id.to_string());
    // The profile's JWT is signed with its own key: not a canonical bearer.
    assert_eq!(
        app.get_auth("/api/v1/me", &jwt).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A return address off the allow-list is refused before the provider.
    let res = get(
        &app,
        "/oauth/testop?redirect_to=http://evil.test/done",
        None,
    )
    .await;
    assert!(res.headers().get("location").is_none());
    let message = error_body(res, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("redirect_to"), "{message}");
    let res = get(&app, &format!("/oauth/nope?redirect_to={DONE}"), None).await;
    error_body(res, StatusCode::NOT_FOUND).await;

    // The provider's refusal goes back to the app with the canonical error code; without
    // `redirect_to` the browser returns to `app.url`.
    let res = get(&app, "/oauth/testop", None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let flow = flow_cookie(&res);
    let state = query(&location(&res), "state").unwrap();
    let res = back_with(
        &app,
        &url(
            &app,
            &format!("/oauth/testop/callback?state={state}&error=access_denied"),
        ),
        &flow,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), format!("{APP_URL}?error=provider_rejected"));
    assert!(
        set_cookies(&res)
            .iter()
            .all(|c| c.starts_with("jwt_oauth_state=;"))
    );

    // Apple's form_post comes back as a POST with the same fields.
    let res = get(&app, &format!("/oauth/testop?redirect_to={DONE}"), None).await;
    let flow = flow_cookie(&res);
    let state = query(&location(&res), "state").unwrap();
    let res = app
        .client
        .post(url(&app, "/oauth/testop/callback"))
        .header("cookie", &flow)
        .form(&[("state", state.as_str()), ("error", "access_denied")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), format!("{DONE}?error=provider_rejected"));
    assert_eq!(app.db.unrevoked_sessions_of(id).await.unwrap().len(), 2);
}

async fn service_authentication_links_a_provider_identity(backend: Backend) {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start_with_callback(PROFILE_CALLBACK).await;
    let app = app!(with_provider(backend, &sink, &peer), start);
    let link = |credential: Value, jwt: Option<String>, bearer: Option<String>| {
        let mut req = app.client.post(url(&app, "/oauth/link")).json(&credential);
        if let Some(jwt) = jwt {
            req = req.profile_cookies(&format!("jwt={jwt}"));
        }
        if let Some(bearer) = bearer {
            req = req.bearer_auth(bearer);
        }
        async move { req.send().await.unwrap() }
    };

    // A password account registered through the profile, signed in by cookie.
    let res = app
        .client
        .post(url(&app, "/register"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD, "options": {"setCookie": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let jwt = cookie_value(&set_cookies(&res), "jwt").unwrap();
    let id = user_id_of(&app, "ada@example.com").await;
    // Linking needs a verified address (pre-account hijacking, docs/security.md).
    app.verify_email("ada@example.com").await;

    // No JWT, no link; a body with both credentials is refused.
    let token = peer
        .id_token("native-app", "native-secret", "ada-at-op", None)
        .await;
    let res = link(json!({"provider": "testop", "id_token": token}), None, None).await;
    error_body(res, StatusCode::UNAUTHORIZED).await;
    let res = link(
        json!({"provider": "testop", "id_token": token, "access_token": "x"}),
        Some(jwt.clone()),
        None,
    )
    .await;
    error_body(res, StatusCode::BAD_REQUEST).await;
    let res = link(json!({"id_token": token}), Some(jwt.clone()), None).await;
    error_body(res, StatusCode::BAD_REQUEST).await;

    // Linked with the cookie: the user with its identities.
    let res = link(
        json!({"provider": "testop", "id_token": token}),
        Some(jwt.clone()),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["id"], id.to_string());
    assert_eq!(user["identities"][0]["provider"], "testop");
    assert_eq!(user["identities"][0]["email"], "ada-at-op@example.com");
    let identity = app
        .db
        .identity_by_subject("testop", "ada-at-op")
        .await
        .unwrap()
        .expect("identity");
    assert_eq!(identity.user_id, id);

    // The linked identity signs the same user in through the canonical API.
    let again = peer
        .id_token("native-app", "native-secret", "ada-at-op", None)
        .await;
    let res = app
        .post(
            "/api/v1/auth/oauth/testop/token",
            &json!({"id_token": again}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["user"]["id"],
        id.to_string()
    );

    // Another account cannot take the identity (bearer JWT this time).
    let res = app
        .client
        .post(url(&app, "/register"))
        .json(&json!({"email": "eve@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let eve: Value = res.json().await.unwrap();
    app.verify_email("eve@example.com").await;
    let fresh = peer
        .id_token("native-app", "native-secret", "ada-at-op", None)
        .await;
    let res = link(
        json!({"provider": "testop", "id_token": fresh}),
        None,
        Some(eve["token"].as_str().unwrap().to_owned()),
    )
    .await;
    error_body(res, StatusCode::CONFLICT).await;
    assert_eq!(
        app.db
            .identity_by_subject("testop", "ada-at-op")
            .await
            .unwrap()
            .unwrap()
            .user_id,
        id
    );
}

async fn service_authentication_magic_link_story(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app!(with_profile(backend, &sink), start);
    let post = |route: &str, body: Value| {
        let req = app.client.post(url(&app, route)).json(&body);
        async move { req.send().await.unwrap() }
    };
    // An account made through the canonical API.
    let canonical = app.signup("ada@example.com").await;
    // Verified by its own sign-up link: the mailbox sign-in below is not an adoption.
    app.verify_email("ada@example.com").await;

    // The same answer for a known and an unknown address; nothing is created for the
    // unknown one by asking.
    let known = post(
        "/login/magic",
        json!({"email": "ada@example.com", "redirect_to": format!("{APP_URL}/after")}),
    )
    .await;
    let unknown = post("/login/magic", json!({"email": "nobody@example.com"})).await;
    assert_eq!(known.status(), StatusCode::OK);
    assert_eq!(unknown.status(), StatusCode::OK);
    assert_eq!(
        known.json::<Value>().await.unwrap(),
        unknown.json::<Value>().await.unwrap()
    );
    assert!(
        app.db
            .credentials_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let res = post(
        "/login/magic",
        json!({"email": "ada@example.com", "redirect_to": "https://evil.example.net/"}),
    )
    .await;
    error_body(res, StatusCode::BAD_REQUEST).await;
    let res = post("/login/magic", json!({})).await;
    error_body(res, StatusCode::BAD_REQUEST).await;

    // The mailed link is the canonical one to the app; its token signs in here.
    let token = link_token(&sink, "ada@example.com", "sign-in link", "/magic-link").await;
    let res = get(&app, &format!("/login/magic/{token}"), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookies = set_cookies(&res);
    let jwt = cookie_value(&cookies, "jwt").expect("jwt cookie");
    assert!(cookie_value(&cookies, "refresh_token").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["id"], canonical["user"]["id"]);
    assert_eq!(body["token"], jwt.as_str());
    assert!(body["refresh_token"].is_string() && body["expires_in"].is_number());
    assert_eq!(body["redirect_to"], format!("{APP_URL}/after"));

    let res = get(&app, "/user", Some(&jwt)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["email"],
        "ada@example.com"
    );
    let id: UserId = canonical["user"]["id"].as_str().unwrap().parse().unwrap();
    let sessions = app.db.unrevoked_sessions_of(id).await.unwrap();
    assert_eq!(sessions.len(), 2, "the canonical sign-up's and the link's");
    assert!(sessions.iter().any(|s| s.amr == vec!["email".to_owned()]));

    // Single use.
    let res = get(&app, &format!("/login/magic/{token}"), None).await;
    assert!(set_cookies(&res).is_empty());
    error_body(res, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.db.unrevoked_sessions_of(id).await.unwrap().len(), 2);

    // The canonical password still signs the same user in.
    assert_eq!(
        app.login("ada@example.com").await["user"]["id"],
        body["user"]["id"]
    );
}

async fn enable_totp(app: &TestApp, email: &str) -> Vec<u8> {
    use auth_core::mfa::{base32_decode, time_step, totp_code};
    let bearer = app.login(email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post_auth("/api/v1/auth/mfa/totp/enroll", &bearer, &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let enrolment: Value = res.json().await.unwrap();
    let secret = base32_decode(enrolment["secret"].as_str().unwrap()).unwrap();
    let code = totp_code(&secret, time_step(chrono::Utc::now()));
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/totp/activate",
            &bearer,
            &json!({"factor_id": enrolment["factor_id"], "code": code}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    secret
}

/// An account with a second factor: the magic link gets the `/login` answer for such
/// accounts and the browser flow goes back with `error=mfa_required`; no cookie, no session.
async fn service_authentication_second_factor_accounts_stop_before_the_cookies(backend: Backend) {
    let sink = SmtpSink::start();
    let peer = OidcPeer::start_with_callback(PROFILE_CALLBACK).await;
    let app = app!(with_provider(backend, &sink, &peer), start);
    // grace@example.com is the peer's address of login `grace`, verified on both sides.
    app.signup("grace@example.com").await;
    let id = user_id_of(&app, "grace@example.com").await;
    let token = link_token(&sink, "grace@example.com", "confirm", "/verify-email").await;
    let res = app
        .post("/api/v1/auth/email/verify", &json!({"token": token}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    enable_totp(&app, "grace@example.com").await;
    let open_sessions = app.db.unrevoked_sessions_of(id).await.unwrap().len();

    let res = app
        .client
        .post(url(&app, "/login/magic"))
        .json(&json!({"email": "grace@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let token = link_token(&sink, "grace@example.com", "sign-in link", "/magic-link").await;
    let res = get(&app, &format!("/login/magic/{token}"), None).await;
    assert!(set_cookies(&res).is_empty());
    let login_answer = app
        .client
        .post(url(&app, "/login"))
        .json(&json!({"email": "grace@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), login_answer.status());
    let magic: Value = res.json().await.unwrap();
    let login: Value = login_answer.json().await.unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v
            .as_object()
            .map_or_else(Vec::new, |o| o.keys().cloned().collect());
        k.sort();
        k
    };
    assert_eq!(keys(&magic), keys(&login), "{magic} / {login}");
    assert!(magic.get("token").is_none() && magic.get("refresh_token").is_none());

    let (callback, flow) = to_callback(&app, "grace", &format!("?redirect_to={DONE}")).await;
    let res = back_with(&app, &callback, &flow).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), format!("{DONE}?error=mfa_required"));
    assert!(
        set_cookies(&res)
            .iter()
            .all(|c| c.starts_with("jwt_oauth_state=;")),
        "no session cookie"
    );
    assert_eq!(
        app.db.unrevoked_sessions_of(id).await.unwrap().len(),
        open_sessions
    );
    // The identity is linked by the verified address all the same.
    assert_eq!(
        app.db
            .identity_by_subject("testop", "grace")
            .await
            .unwrap()
            .unwrap()
            .user_id,
        id
    );
}
