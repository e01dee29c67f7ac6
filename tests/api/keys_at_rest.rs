//! Signing keys at rest: on PostgreSQL the generated private keys live in the database, so
//! with `secrets.encryption_key` they are stored sealed (a dump forges nothing), keys stored
//! in clear before a key was configured are sealed at the next start, an encryption key
//! rotation re-seals them, and production refuses to start without the key.

use auth_e2e::{Backend, TestApp, app, on_both_backends};
use reqwest::StatusCode;
use secrecy::ExposeSecret;

on_both_backends!(production_refuses_postgres_without_an_encryption_key);

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// The stored form of every generated key.
async fn stored(app: &TestApp) -> Vec<String> {
    app.db
        .signing_key_ring()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key.private_pem.expose_secret().to_owned())
        .collect()
}

async fn still_valid(app: &TestApp, access_token: &str) {
    let res = app.get_auth("/api/v1/me", access_token).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_keys_are_sealed_in_the_database() {
    // Before an encryption key: stored in clear (the warning's case).
    let clear = app!(TestApp::builder(Backend::Postgres), start);
    let token = clear.signup("ada@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = stored(&clear).await;
    assert!(before.iter().all(|pem| pem.contains("PRIVATE KEY")));
    clear.stop().await;

    // With a key: the same key, sealed in place; its tokens still verify.
    let sealed = app!(
        TestApp::builder(Backend::Postgres)
            .sharing_with(&clear)
            .var("AUTH__SECRETS__ENCRYPTION_KEY", KEY_A),
        start
    );
    let after = stored(&sealed).await;
    assert_eq!(after.len(), before.len());
    for pem in &after {
        assert!(pem.starts_with("sealed:v1:"), "{pem}");
        assert!(!pem.contains("PRIVATE KEY"));
    }
    still_valid(&sealed, &token).await;
    sealed.stop().await;

    // A rotation of the encryption key re-seals under the new one.
    let rotated = app!(
        TestApp::builder(Backend::Postgres)
            .sharing_with(&clear)
            .var("AUTH__SECRETS__ENCRYPTION_KEY", KEY_B)
            .var("AUTH__SECRETS__PREVIOUS_ENCRYPTION_KEYS", KEY_A),
        start
    );
    let resealed = stored(&rotated).await;
    assert!(resealed.iter().all(|pem| pem.starts_with("sealed:v1:")));
    assert!(
        resealed.iter().all(|pem| !after.contains(pem)),
        "sealed again"
    );
    still_valid(&rotated, &token).await;
    rotated.stop().await;

    // Only the new key now: enough; without any key: a clear refusal, not clear keys.
    let only_b = app!(
        TestApp::builder(Backend::Postgres)
            .sharing_with(&clear)
            .var("AUTH__SECRETS__ENCRYPTION_KEY", KEY_B),
        start
    );
    still_valid(&only_b, &token).await;
    only_b.stop().await;
    let Some(refused) = TestApp::builder(Backend::Postgres)
        .sharing_with(&clear)
        .try_start()
        .await
    else {
        return;
    };
    let error = refused
        .err()
        .expect("a sealed key without the encryption key refuses to start");
    assert!(error.contains("secrets.encryption_key"), "{error}");
}

/// `AUTH_ENV=production` on PostgreSQL names the missing key and does not start; with the
/// key it starts. SQLite keeps its key in a private file of the data directory and starts.
async fn production_refuses_postgres_without_an_encryption_key(backend: Backend) {
    let production = || {
        TestApp::builder(backend)
            .environment("production")
            .var("AUTH__SERVER__HOST", "127.0.0.1")
    };
    let Some(started) = production().try_start().await else {
        return;
    };
    match backend {
        Backend::Postgres => {
            let error = started.err().expect("production refuses to start");
            assert!(
                error.contains("AUTH_ENV=production") && error.contains("secrets.encryption_key"),
                "{error}"
            );
            let app = app!(
                production().var("AUTH__SECRETS__ENCRYPTION_KEY", KEY_A),
                start
            );
            app.signup("ada@example.com").await;
            assert!(
                stored(&app)
                    .await
                    .iter()
                    .all(|pem| pem.starts_with("sealed:v1:"))
            );
        }
        Backend::Sqlite => {
            let app = started.expect("SQLite starts");
            app.signup("ada@example.com").await;
        }
    }
}
