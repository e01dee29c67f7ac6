use auth_core::jwt::{AccessClaims, JwksVerifier};
use auth_e2e::{Backend, TestApp, app, on_both_backends, problem};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::password_sessions::decode_claims;

on_both_backends!(
    access_tokens_carry_the_documented_header_and_claims,
    forged_and_altered_tokens_are_rejected,
    the_generated_key_survives_a_restart,
    hs256_deployments_publish_no_keys,
    rs256_and_es256_from_pem_files,
    a_second_node_shares_keys_and_revocations,
);

fn fixture(name: &str) -> String {
    format!("{}/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn jwks(app: &TestApp) -> jsonwebtoken::jwk::JwkSet {
    app.client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn header(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn access_tokens_carry_the_documented_header_and_claims(backend: Backend) {
    let app = app!(backend);
    let t = app.signup("ada@example.com").await;
    let token = t["access_token"].as_str().unwrap();
    let h = header(token);
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["alg"], "EdDSA");
    let keys = jwks(&app).await;
    assert_eq!(keys.keys.len(), 1);
    assert_eq!(h["kid"].as_str(), keys.keys[0].common.key_id.as_deref());
    let raw = serde_json::to_value(&keys).unwrap();
    assert!(
        raw["keys"][0].get("d").is_none(),
        "private key material in the JWKS"
    );

    let c = decode_claims(token);
    for claim in [
        "iss",
        "aud",
        "sub",
        "sid",
        "iat",
        "exp",
        "jti",
        "email",
        "email_verified",
        "roles",
        "amr",
        "aal",
    ] {
        assert!(c.get(claim).is_some(), "claim {claim} missing: {c}");
    }
    assert_eq!(c["iss"], "http://auth.test");
    assert_eq!(c["aud"], "authenticated");
    assert_eq!(c["sub"], t["user"]["id"]);
    assert_eq!(c["amr"], json!(["pwd"]));
    assert_eq!(c["aal"], "aal1");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);

    // A resource server verifies with the published JWKS alone.
    let verifier = JwksVerifier::new(&keys, "http://auth.test", "authenticated", 5);
    assert_eq!(
        verifier.verify(token, chrono::Utc::now()).unwrap().sub,
        c["sub"].as_str().unwrap()
    );

    let discovery: Value = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], "http://auth.test");
    assert_eq!(
        discovery["jwks_uri"],
        "http://auth.test/.well-known/jwks.json"
    );
}

async fn forged_and_altered_tokens_are_rejected(backend: Backend) {
    let app = app!(backend);
    let t = app.signup("ada@example.com").await;
    let token = t["access_token"].as_str().unwrap();
    let kid = header(token)["kid"].as_str().unwrap().to_owned();
    let mut claims: AccessClaims = serde_json::from_value(decode_claims(token)).unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string()),
        parts[1]
    );
    let mut hs = Header::new(Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = Some(kid.clone());
    let public_pem_ish = serde_json::to_vec(&jwks(&app).await.keys[0]).unwrap();
    let confused =
        jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&public_pem_ish)).unwrap();
    claims.roles = vec!["admin".into()];
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    let foreign = {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some("at+jwt".into());
        h.kid = Some("someone-elses-key".into());
        let pem = std::fs::read(fixture("ed25519-old-private.pem")).unwrap();
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap()
    };
    for bad in [none, confused, tampered, foreign, "a.b.c".into()] {
        problem(
            app.get_auth("/api/v1/me", &bad).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        )
        .await;
    }
    assert_eq!(
        app.get_auth("/api/v1/me", token).await.status(),
        StatusCode::OK
    );
}

async fn the_generated_key_survives_a_restart(backend: Backend) {
    let first = app!(backend);
    let t = first.signup("ada@example.com").await;
    let kid = header(t["access_token"].as_str().unwrap())["kid"].clone();
    first.stop().await;
    let second = app!(TestApp::builder(backend).sharing_with(&first), start);
    assert_eq!(
        second
            .get_auth("/api/v1/me", t["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        jwks(&second).await.keys[0].common.key_id.as_deref(),
        kid.as_str()
    );
}

async fn hs256_deployments_publish_no_keys(backend: Backend) {
    let app = app!(
        TestApp::builder(backend)
            .var("AUTH__TOKENS__ALGORITHM", "HS256")
            .var(
                "AUTH__TOKENS__HS256_SECRET",
                "an-hs256-secret-of-at-least-32-bytes!"
            ),
        start
    );
    let t = app.signup("ada@example.com").await;
    assert_eq!(header(t["access_token"].as_str().unwrap())["alg"], "HS256");
    assert!(jwks(&app).await.keys.is_empty());
    assert_eq!(
        app.get_auth("/api/v1/me", t["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
}

async fn rs256_and_es256_from_pem_files(backend: Backend) {
    for (alg, private, public) in [
        ("RS256", "rs256-private.pem", "rs256-public.pem"),
        ("ES256", "es256-private.pem", "es256-public.pem"),
    ] {
        let app = app!(
            TestApp::builder(backend)
                .var("AUTH__TOKENS__ALGORITHM", alg)
                .var("AUTH__TOKENS__PRIVATE_KEY_PATH", &fixture(private))
                .var("AUTH__TOKENS__PUBLIC_KEY_PATH", &fixture(public)),
            start
        );
        let t = app.signup("ada@example.com").await;
        let token = t["access_token"].as_str().unwrap();
        assert_eq!(header(token)["alg"], alg);
        assert_eq!(
            app.get_auth("/api/v1/me", token).await.status(),
            StatusCode::OK
        );
        let verifier = JwksVerifier::new(&jwks(&app).await, "http://auth.test", "authenticated", 5);
        assert!(verifier.verify(token, chrono::Utc::now()).is_ok());
    }
}

/// Two server processes on one database behave as one: shared signing key, and a
/// session revoked through one node is refused by the other at once.
async fn a_second_node_shares_keys_and_revocations(backend: Backend) {
    let a = app!(backend);
    let b = app!(TestApp::builder(backend).sharing_with(&a), start);
    let t = a.signup("ada@example.com").await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(
        b.get_auth("/api/v1/me", access).await.status(),
        StatusCode::OK
    );
    let rotated: Value = b
        .refresh(t["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    // The token rotated on B is the current one on A.
    assert_eq!(
        a.refresh(rotated["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    let res = a
        .post_auth("/api/v1/auth/logout", access, &json!({"scope": "all"}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        b.get_auth("/api/v1/me", rotated["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}
