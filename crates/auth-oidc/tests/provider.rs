//! The OpenID Connect adapter's caches against a local HTTP server that counts what it is
//! asked: discovery and key sets are cached, and unknown `kid`s refresh the key set at
//! most once per interval.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_core::identity::{IdentityProvider, ProviderCredential, ProviderError};
use auth_oidc::{ProviderConfig, ProviderKind};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers `/.well-known/openid-configuration` and `/jwks` (an empty key set), or 500 for
/// everything when `broken`; counts requests per path.
struct Issuer {
    url: String,
    discovery_hits: Arc<AtomicUsize>,
    jwks_hits: Arc<AtomicUsize>,
}

async fn issuer(broken: bool) -> Issuer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (discovery_hits, jwks_hits) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (d, j, issuer) = (discovery_hits.clone(), jwks_hits.clone(), url.clone());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = if broken {
                ("500 Internal Server Error", "{}".to_owned())
            } else if path == "/.well-known/openid-configuration" {
                d.fetch_add(1, Ordering::SeqCst);
                (
                    "200 OK",
                    format!(
                        r#"{{"issuer":"{issuer}","authorization_endpoint":"{issuer}/auth","token_endpoint":"{issuer}/token","jwks_uri":"{issuer}/jwks"}}"#
                    ),
                )
            } else if path == "/jwks" {
                j.fetch_add(1, Ordering::SeqCst);
                ("200 OK", r#"{"keys":[]}"#.to_owned())
            } else {
                ("404 Not Found", "{}".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    Issuer {
        url,
        discovery_hits,
        jwks_hits,
    }
}

fn token(issuer: &str, kid: &str) -> ProviderCredential {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#));
    let claims = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"iss":"{issuer}","aud":"app","sub":"s","iat":1,"exp":4102444800}}"#
    ));
    ProviderCredential::IdToken {
        id_token: SecretString::from(format!(
            "{header}.{claims}.{}",
            URL_SAFE_NO_PAD.encode("sig")
        )),
        nonce: Some("n".into()),
    }
}

fn provider(issuer: &Issuer, refresh_interval: Duration) -> Arc<dyn IdentityProvider> {
    let mut config = ProviderConfig::new("op", ProviderKind::Oidc);
    config.issuer = Some(issuer.url.clone());
    config.client_ids = vec!["app".into()];
    config.jwks_refresh_min_interval = refresh_interval;
    auth_oidc::build(config).unwrap()
}

#[tokio::test]
async fn a_stream_of_unknown_kids_refreshes_the_key_set_at_most_once_per_interval() {
    let op = issuer(false).await;
    let p = provider(&op, Duration::from_secs(3600));
    for i in 0..5 {
        let err = p
            .verify(&token(&op.url, &format!("bogus-{i}")))
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::InvalidIdToken(_)), "{err:?}");
    }
    assert_eq!(
        op.discovery_hits.load(Ordering::SeqCst),
        1,
        "discovery is cached"
    );
    assert_eq!(
        op.jwks_hits.load(Ordering::SeqCst),
        1,
        "one fetch, no refresh inside the interval"
    );

    // With no minimum interval, every unknown kid refreshes.
    let op = issuer(false).await;
    let p = provider(&op, Duration::ZERO);
    for i in 0..3 {
        p.verify(&token(&op.url, &format!("bogus-{i}")))
            .await
            .unwrap_err();
    }
    assert_eq!(op.jwks_hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failing_issuer_is_unavailable_not_a_bad_token() {
    let op = issuer(true).await;
    let p = provider(&op, Duration::ZERO);
    let err = p.verify(&token(&op.url, "k")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    let err = p
        .verify(&ProviderCredential::IdToken {
            id_token: SecretString::from("garbage".to_owned()),
            nonce: Some("n".into()),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::InvalidIdToken(_)), "{err:?}");
}

#[tokio::test]
async fn an_id_token_without_a_nonce_is_refused_unless_allowed() {
    let op = issuer(false).await;
    let p = provider(&op, Duration::ZERO);
    let bare = |token: ProviderCredential| match token {
        ProviderCredential::IdToken { id_token, .. } => ProviderCredential::IdToken {
            id_token,
            nonce: None,
        },
        other => other,
    };
    let err = p.verify(&bare(token(&op.url, "k"))).await.unwrap_err();
    assert_eq!(err, ProviderError::NonceRequired);
    assert_eq!(
        op.discovery_hits.load(Ordering::SeqCst),
        0,
        "refused before any call"
    );
    let mut config = ProviderConfig::new("op", ProviderKind::Oidc);
    config.issuer = Some(op.url.clone());
    config.client_ids = vec!["app".into()];
    config.allow_missing_nonce = true;
    let lenient = auth_oidc::build(config).unwrap();
    // Allowed: checked as any token (this one is not signed by the issuer's key).
    let err = lenient
        .verify(&bare(token(&op.url, "k")))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::InvalidIdToken(_)), "{err:?}");
}
