//! No secret reaches the log: one run through the flows that carry tokens in URLs (the
//! service-authentication profile's magic-link, verification and reset links, a magic link
//! refused with 429 while still valid, the OAuth callback's `code` and `state`) with the
//! production log format capturing everything the server writes, then a scan of that log for
//! every token the run used.

use std::io::Write;
use std::sync::{Arc, Mutex};

use auth_e2e::oidc::{OidcPeer, pkce};
use auth_e2e::{Backend, PASSWORD, app, on_both_backends};
use auth_http::settings::{LogFormat, LogSettings};
use auth_notify::testing::SmtpSink;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::compat_service_auth::{PREFIX, cookie_value, link_token, set_cookies};
use crate::compat_service_auth_social::with_provider;
use crate::oauth::{browser_flow_with_callback, code_of, exchange};

on_both_backends!(no_token_reaches_the_log);

/// Everything the subscriber writes, kept for the scan.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn query(url: &str, key: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {key} in {url}"))
}

async fn no_token_reaches_the_log(backend: Backend) {
    // The production format, our crates at debug (every refused request is logged there).
    let log = Captured::default();
    let writer = log.clone();
    auth_http::telemetry::init_with_writer(
        &LogSettings {
            format: LogFormat::Json,
            level: "info,auth_http=debug,auth_core=debug,auth_db=debug,auth_notify=debug,auth_oidc=debug".into(),
        },
        move || writer.clone(),
    );
    let sink = SmtpSink::start();
    let peer = OidcPeer::start().await;
    let app = app!(
        with_provider(backend, &sink, &peer)
            .var("AUTH__RATE_LIMITS__PASSWORDLESS__PER_IP", "4")
            .var("AUTH__RATE_LIMITS__PASSWORDLESS__WINDOW_SECS", "3600"),
        start
    );
    let url = |route: &str| app.url(&format!("{PREFIX}{route}"));
    let mut used: Vec<(&str, String)> = Vec::new();

    // Register, verify by the mailed link (a token in the path).
    let res = app
        .client
        .post(url("/register"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD, "options": {"setCookie": true, "verifyEmail": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookies = set_cookies(&res);
    used.push(("jwt cookie", cookie_value(&cookies, "jwt").unwrap()));
    used.push((
        "refresh cookie",
        cookie_value(&cookies, "refresh_token").unwrap(),
    ));
    let token = link_token(&sink, "ada@example.com", "confirm", "/verify-email").await;
    let res = app
        .client
        .get(url(&format!("/email/verify/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    used.push(("verification token", token));

    // A magic link refused with 429 while still valid.
    let res = app
        .client
        .post(url("/login/magic"))
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let magic = link_token(&sink, "ada@example.com", "sign-in link", "/magic-link").await;
    // Spend the window with a token nobody was sent, then present the real one.
    let mut limited = false;
    for _ in 0..10 {
        let res = app
            .client
            .get(url("/login/magic/not-a-token-anyone-was-sent"))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    let res = app
        .client
        .get(url(&format!("/login/magic/{magic}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited, "the passwordless limit answers 429");
    used.push(("magic-link token (refused with 429)", magic));

    // A password reset by the mailed link (path and form).
    let res = app
        .client
        .post(url("/password/forgot"))
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let reset = link_token(&sink, "ada@example.com", "reset", "/reset-password").await;
    let res = app
        .client
        .get(url(&format!("/password/reset/{reset}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .client
        .post(url(&format!("/password/reset/{reset}")))
        .json(&json!({"password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    used.push(("reset token", reset));

    // The canonical OAuth redirect flow: the provider's code and state in the callback's
    // query, our one-time code in the app's.
    let (verifier, challenge) = pkce();
    let (callback, location) = browser_flow_with_callback(&app, "grace", &challenge, "").await;
    used.push(("provider code", query(&callback, "code")));
    used.push(("OAuth state", query(&callback, "state")));
    let code = code_of(&location);
    let res = exchange(&app, &code, &verifier).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    used.push(("exchange code", code));
    used.push(("PKCE verifier", verifier));
    used.push((
        "access token",
        tokens["access_token"].as_str().unwrap().to_owned(),
    ));
    used.push((
        "refresh token",
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    ));

    app.stop().await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    // The log did capture the run (the refused requests and their routes).
    assert!(text.contains("/login/magic/{token}"), "{text}");
    assert!(text.contains("\"status\":429"), "the 429 was logged");
    for (what, secret) in &used {
        assert!(secret.len() >= 8, "{what}: {secret}");
        assert!(
            !text.contains(secret.as_str()),
            "the {what} reached the log:\n{}",
            text.lines()
                .filter(|l| l.contains(secret.as_str()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
