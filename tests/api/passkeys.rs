//! Passkeys over HTTP on SQLite and PostgreSQL, with a software authenticator
//! (webauthn-authenticator-rs `SoftPasskey`) playing the browser and the authenticator.
//!
//! The soft authenticator answers only for credentials named in `allowCredentials` and
//! returns no user handle: for the discoverable sign-in the test does what a platform
//! authenticator does with a resident credential (it picks the credential and returns the
//! user handle it stored at registration).

use auth_core::passkeys::PasskeyStore;
use auth_e2e::{Backend, TestApp, app, on_both_backends, problem};
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse,
};

use crate::password_sessions::decode_claims;

on_both_backends!(
    register_a_passkey_and_sign_in_without_a_password,
    a_wrong_origin_is_refused,
    a_sign_counter_regression_is_refused,
    passkeys_are_off_unless_configured,
    adding_a_passkey_needs_aal2_once_the_user_has_a_factor,
);

const ORIGIN: &str = "https://app.example.com";

async fn passkey_app(backend: Backend) -> Option<TestApp> {
    TestApp::builder(backend)
        .var("AUTH__PASSKEYS__ENABLED", "true")
        .var("AUTH__PASSKEYS__RP_ID", "example.com")
        .var("AUTH__PASSKEYS__ORIGINS", ORIGIN)
        .start()
        .await
}

fn bearer(t: &Value) -> &str {
    t["access_token"].as_str().unwrap()
}

/// Sign up and register a passkey; returns (tokens, authenticator, credential id, user id).
async fn registered(app: &TestApp) -> (Value, SoftPasskey, Vec<u8>, uuid::Uuid) {
    let t = app.signup("ada@example.com").await;
    let res = app
        .post_auth(
            "/api/v1/auth/passkeys/register/start",
            bearer(&t),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let start: Value = res.json().await.unwrap();
    let options: CreationChallengeResponse =
        serde_json::from_value(start["options"].clone()).unwrap();
    let user_id: uuid::Uuid = t["user"]["id"].as_str().unwrap().parse().unwrap();
    let handle: &[u8] = options.public_key.user.id.as_ref();
    assert_eq!(handle, user_id.as_bytes());
    let mut authenticator = SoftPasskey::new(true);
    let credential = authenticator
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    let res = app
        .post_auth(
            "/api/v1/auth/passkeys/register/finish",
            bearer(&t),
            &json!({"ceremony_id": start["ceremony_id"], "credential": credential, "name": "laptop"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let item: Value = res.json().await.unwrap();
    assert_eq!(item["name"], "laptop");
    let credential_id = credential.raw_id.to_vec();
    // The ceremony is single use.
    let res = app
        .post_auth(
            "/api/v1/auth/passkeys/register/finish",
            bearer(&t),
            &json!({"ceremony_id": start["ceremony_id"], "credential": credential}),
        )
        .await;
    problem(res, StatusCode::UNAUTHORIZED, "invalid_passkey").await;
    (t, authenticator, credential_id, user_id)
}

/// Run a discoverable sign-in ceremony up to the assertion (not sent).
async fn assertion(
    app: &TestApp,
    authenticator: &mut SoftPasskey,
    credential_id: &[u8],
    user_id: uuid::Uuid,
) -> (Value, PublicKeyCredential) {
    let res = app
        .post("/api/v1/auth/passkeys/login/start", &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let start: Value = res.json().await.unwrap();
    let mut options: RequestChallengeResponse =
        serde_json::from_value(start["options"].clone()).unwrap();
    assert!(
        options.public_key.allow_credentials.is_empty(),
        "discoverable"
    );
    assert_eq!(options.public_key.rp_id, "example.com");
    options.public_key.allow_credentials = vec![AllowCredentials {
        type_: "public-key".into(),
        id: credential_id.to_vec(),
        transports: None,
    }];
    let mut response = authenticator
        .do_authentication(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    response.response.user_handle = Some(user_id.as_bytes().to_vec());
    (start["ceremony_id"].clone(), response)
}

async fn finish(
    app: &TestApp,
    ceremony_id: &Value,
    credential: &PublicKeyCredential,
) -> reqwest::Response {
    app.post(
        "/api/v1/auth/passkeys/login/finish",
        &json!({"ceremony_id": ceremony_id, "credential": credential}),
    )
    .await
}

async fn register_a_passkey_and_sign_in_without_a_password(backend: Backend) {
    let Some(app) = passkey_app(backend).await else {
        return;
    };
    let (t, mut authenticator, credential_id, user_id) = registered(&app).await;
    let stored = app
        .db
        .passkeys_of(auth_core::model::UserId(user_id))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].credential_id, credential_id);

    let (ceremony_id, response) =
        assertion(&app, &mut authenticator, &credential_id, user_id).await;
    let res = finish(&app, &ceremony_id, &response).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    let claims = decode_claims(bearer(&tokens));
    assert_eq!(claims["sub"], user_id.to_string());
    assert_eq!(claims["aal"], "aal2");
    assert_eq!(claims["amr"], json!(["hwk", "user"]));
    let stored = app
        .db
        .passkeys_of(auth_core::model::UserId(user_id))
        .await
        .unwrap();
    assert_eq!(stored[0].counter, 1);
    assert!(stored[0].last_used_at.is_some());
    // The ceremony is single use: the same assertion again is refused.
    problem(
        finish(&app, &ceremony_id, &response).await,
        StatusCode::UNAUTHORIZED,
        "invalid_passkey",
    )
    .await;

    // Listed; deleting needs an aal2 token: the signup token (aal1) is refused.
    let list: Value = app
        .get_auth("/api/v1/auth/passkeys", bearer(&t))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let delete = |token: String| {
        let url = app.url(&format!("/api/v1/auth/passkeys/{id}"));
        let client = app.client.clone();
        async move { client.delete(url).bearer_auth(token).send().await.unwrap() }
    };
    problem(
        delete(bearer(&t).to_owned()).await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    assert_eq!(
        delete(bearer(&tokens).to_owned()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(
        app.db
            .passkeys_of(auth_core::model::UserId(user_id))
            .await
            .unwrap()
            .is_empty()
    );
    let (ceremony_id, response) =
        assertion(&app, &mut authenticator, &credential_id, user_id).await;
    problem(
        finish(&app, &ceremony_id, &response).await,
        StatusCode::UNAUTHORIZED,
        "invalid_passkey",
    )
    .await;
}

async fn a_wrong_origin_is_refused(backend: Backend) {
    let Some(app) = passkey_app(backend).await else {
        return;
    };
    let (_, mut authenticator, credential_id, user_id) = registered(&app).await;
    let (ceremony_id, mut response) =
        assertion(&app, &mut authenticator, &credential_id, user_id).await;
    // What a phishing page at another origin would relay.
    let mut client_data: Value =
        serde_json::from_slice(response.response.client_data_json.as_ref()).unwrap();
    assert!(client_data["origin"].as_str().unwrap().starts_with(ORIGIN));
    client_data["origin"] = json!("https://app.example.net");
    response.response.client_data_json = serde_json::to_vec(&client_data).unwrap();
    problem(
        finish(&app, &ceremony_id, &response).await,
        StatusCode::UNAUTHORIZED,
        "invalid_passkey",
    )
    .await;
    let stored = app
        .db
        .passkeys_of(auth_core::model::UserId(user_id))
        .await
        .unwrap();
    assert_eq!(stored[0].counter, 0, "nothing recorded");
}

async fn a_sign_counter_regression_is_refused(backend: Backend) {
    let Some(app) = passkey_app(backend).await else {
        return;
    };
    let (_, mut authenticator, credential_id, user_id) = registered(&app).await;
    let (ceremony_id, response) =
        assertion(&app, &mut authenticator, &credential_id, user_id).await;
    assert_eq!(
        finish(&app, &ceremony_id, &response).await.status(),
        StatusCode::OK
    );
    // A clone of the authenticator went ahead: the server has seen counter 1000.
    let stored = app
        .db
        .passkeys_of(auth_core::model::UserId(user_id))
        .await
        .unwrap()
        .remove(0);
    assert!(
        app.db
            .record_passkey_use(stored.id, 1000, &stored.credential, chrono::Utc::now())
            .await
            .unwrap()
    );
    let (ceremony_id, response) =
        assertion(&app, &mut authenticator, &credential_id, user_id).await;
    problem(
        finish(&app, &ceremony_id, &response).await,
        StatusCode::UNAUTHORIZED,
        "invalid_passkey",
    )
    .await;
    let after = app
        .db
        .passkeys_of(auth_core::model::UserId(user_id))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(after.counter, 1000, "the regression changed nothing");
}

async fn passkeys_are_off_unless_configured(backend: Backend) {
    let app = app!(backend);
    let res = app
        .post("/api/v1/auth/passkeys/login/start", &json!({}))
        .await;
    problem(res, StatusCode::BAD_REQUEST, "not_enabled").await;
}

/// Issue 14, hole 10. A session that never passed the second factor (here the sign-up
/// session, from before TOTP was added) cannot plant a passkey, which would then sign in at
/// `aal2` by itself; after a step-up it can. An assertion without user verification does
/// not sign in (webauthn-rs requires it; the core would also ask for the second factor).
async fn adding_a_passkey_needs_aal2_once_the_user_has_a_factor(backend: Backend) {
    use auth_core::mfa::{time_step, totp_code};
    let Some(app) = passkey_app(backend).await else {
        return;
    };
    let t = app.signup("ada@example.com").await;
    let user_id: uuid::Uuid = t["user"]["id"].as_str().unwrap().parse().unwrap();
    let (secret, _) = crate::mfa::enrol_totp(&app, bearer(&t)).await;
    let start = |token: String| {
        let app = &app;
        async move {
            app.post_auth("/api/v1/auth/passkeys/register/start", &token, &json!({}))
                .await
        }
    };
    problem(
        start(bearer(&t).to_owned()).await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    let res = app
        .post_auth(
            "/api/v1/auth/mfa/verify",
            bearer(&t),
            &json!({"factor": "totp", "code": totp_code(&secret, time_step(chrono::Utc::now()) + 1)}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let stepped: Value = res.json().await.unwrap();
    let res = start(bearer(&stepped).to_owned()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let begun: Value = res.json().await.unwrap();
    let options: CreationChallengeResponse =
        serde_json::from_value(begun["options"].clone()).unwrap();
    let mut authenticator = SoftPasskey::new(true);
    let credential = authenticator
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    let body = json!({"ceremony_id": begun["ceremony_id"], "credential": credential});
    // Finishing with the aal1 token is refused too, and leaves the ceremony unspent.
    problem(
        app.post_auth("/api/v1/auth/passkeys/register/finish", bearer(&t), &body)
            .await,
        StatusCode::FORBIDDEN,
        "step_up_required",
    )
    .await;
    let res = app
        .post_auth(
            "/api/v1/auth/passkeys/register/finish",
            bearer(&stepped),
            &body,
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let credential_id = credential.raw_id.to_vec();

    // An assertion without user verification: no sign-in, no session.
    let res = app
        .post("/api/v1/auth/passkeys/login/start", &json!({}))
        .await;
    let begun: Value = res.json().await.unwrap();
    let mut options: RequestChallengeResponse =
        serde_json::from_value(begun["options"].clone()).unwrap();
    options.public_key.user_verification = webauthn_rs_proto::UserVerificationPolicy::Preferred;
    options.public_key.allow_credentials = vec![AllowCredentials {
        type_: "public-key".into(),
        id: credential_id.clone(),
        transports: None,
    }];
    let mut response = authenticator
        .do_authentication(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    response.response.user_handle = Some(user_id.as_bytes().to_vec());
    let sessions = crate::mfa::session_count(&app, bearer(&stepped)).await;
    problem(
        finish(&app, &begun["ceremony_id"], &response).await,
        StatusCode::UNAUTHORIZED,
        "invalid_passkey",
    )
    .await;
    assert_eq!(
        crate::mfa::session_count(&app, bearer(&stepped)).await,
        sessions
    );
    // With user verification: two factors, aal2.
    let (ceremony_id, response) =
        assertion(&app, &mut authenticator, &credential_id, user_id).await;
    let tokens: Value = finish(&app, &ceremony_id, &response)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(decode_claims(bearer(&tokens))["aal"], "aal2");
}
