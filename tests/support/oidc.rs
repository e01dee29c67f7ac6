//! A real OpenID provider for the tests: the `oidc-provider` npm package run by Node
//! (tests/peers/oidc-provider/server.js) on 127.0.0.1, and a client that drives its
//! development login form over HTTP with a cookie jar.

use std::path::PathBuf;
use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the auth server under test expects the provider to send the browser back
/// (`server.public_url` of the test apps is `http://auth.test`).
pub const CALLBACK: &str = "http://auth.test/api/v1/auth/oauth/testop/callback";
/// Redirect URI of the native apps registered at the provider.
pub const NATIVE_REDIRECT: &str = "http://app.test/native";

fn peer_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/peers/oidc-provider"))
}

/// Install the pinned packages when `make test` has not (a plain `cargo test`): loudly,
/// once, even with tests running in parallel processes.
fn ensure_installed() {
    let dir = peer_dir();
    let ready = dir.join("node_modules/.package-lock.json");
    if ready.exists() {
        return;
    }
    let lock = dir.join(".install-lock");
    if std::fs::create_dir(&lock).is_ok() {
        eprintln!(
            "tests/peers/oidc-provider: node_modules missing, running `npm ci` (pinned by package-lock.json)"
        );
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status();
        let _ = std::fs::remove_dir(&lock);
        assert!(
            matches!(status, Ok(s) if s.success()),
            "`npm ci` in tests/peers/oidc-provider failed: {status:?}"
        );
    } else {
        // Another test process is installing; a lock left by a killed one is reported.
        let started = std::time::Instant::now();
        while !ready.exists() && lock.exists() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(150),
                "waited 150 s for `npm ci` in tests/peers/oidc-provider; remove {} if no install runs",
                lock.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(
            ready.exists(),
            "`npm ci` in tests/peers/oidc-provider failed"
        );
    }
}

/// A client for the provider's own endpoints that gives up rather than hang a test.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(crate::REQUEST_TIMEOUT)
        .build()
        .expect("client")
}

/// A running `oidc-provider`.
pub struct OidcPeer {
    /// `http://127.0.0.1:<port>`: the issuer.
    pub issuer: String,
    _child: Child,
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

impl OidcPeer {
    /// Start the provider on a free port and wait until it listens.
    pub async fn start() -> Self {
        Self::start_with_callback(CALLBACK).await
    }

    /// As [`Self::start`], with `callback` as the auth server's registered redirect URI
    /// (a compatibility profile that serves its own callback route).
    pub async fn start_with_callback(callback: &str) -> Self {
        ensure_installed();
        let mut child = Command::new("node")
            .arg("server.js")
            .current_dir(peer_dir())
            .env("PORT", "0")
            .env("AUTH_CALLBACK", callback)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()) // shown with a failing test's output
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/peers/oidc-provider/server.js");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let listening = async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .expect("provider output")
                    .expect("the provider exited before listening");
                if let Some(issuer) = line.strip_prefix("listening ") {
                    break issuer.to_owned();
                }
            }
        };
        let issuer = tokio::time::timeout(crate::REQUEST_TIMEOUT, listening)
            .await
            .expect("the provider did not listen in time");
        // Keep draining its output so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            issuer,
            _child: child,
        }
    }

    /// The provider starts signing with a new key (the old one stays published).
    pub async fn rotate_key(&self) -> String {
        let res = client()
            .post(format!("{}/test/rotate", self.issuer))
            .send()
            .await
            .expect("rotate");
        let body: Value = res.json().await.expect("json");
        body["kid"].as_str().expect("kid").to_owned()
    }

    /// An ID token with these claims, signed with the provider's current key.
    pub async fn mint(&self, claims: &Value) -> String {
        let res = client()
            .post(format!("{}/test/mint", self.issuer))
            .json(claims)
            .send()
            .await
            .expect("mint");
        let body: Value = res.json().await.expect("json");
        body["id_token"].as_str().expect("id_token").to_owned()
    }

    /// A browser: a cookie jar, no automatic redirects.
    pub fn browser() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(crate::REQUEST_TIMEOUT)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// Follow redirects from `url`, signing in as `login` on the development login form
    /// and consenting, until a redirect leaves for a URL starting with `until`; return it.
    pub async fn sign_in_through(
        browser: &reqwest::Client,
        url: &str,
        login: &str,
        until: &str,
    ) -> String {
        let mut url = url.to_owned();
        let mut form: Option<Vec<(&str, String)>> = None;
        for _ in 0..20 {
            let res = match form.take() {
                Some(fields) => browser.post(&url).form(&fields).send().await,
                None => browser.get(&url).send().await,
            }
            .expect("request to the provider");
            let status = res.status();
            if status.is_redirection() {
                let location = res
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .expect("location")
                    .to_owned();
                let next = reqwest::Url::parse(&url)
                    .expect("url")
                    .join(&location)
                    .expect("location URL")
                    .to_string();
                if next.starts_with(until) {
                    return next;
                }
                url = next;
                continue;
            }
            assert_eq!(status, StatusCode::OK, "provider page {url}");
            let page = res.text().await.expect("page");
            let action = page
                .split("action=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("a form on the provider page")
                .to_owned();
            url = reqwest::Url::parse(&url)
                .expect("url")
                .join(&action)
                .expect("form action")
                .to_string();
            form = Some(if page.contains("name=\"login\"") {
                vec![
                    ("prompt", "login".to_owned()),
                    ("login", login.to_owned()),
                    ("password", "any".to_owned()),
                ]
            } else {
                vec![("prompt", "consent".to_owned())]
            });
        }
        panic!("too many steps at the provider");
    }

    /// An ID token issued to `client_id` for `login` by the real authorization code flow
    /// (what an app gets on the device), with `nonce` when given.
    pub async fn id_token(
        &self,
        client_id: &str,
        client_secret: &str,
        login: &str,
        nonce: Option<&str>,
    ) -> String {
        let (verifier, challenge) = pkce();
        let mut authorize = reqwest::Url::parse(&format!("{}/auth", self.issuer)).expect("url");
        authorize
            .query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid email profile")
            .append_pair("redirect_uri", NATIVE_REDIRECT)
            .append_pair("state", "app-state")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(nonce) = nonce {
            authorize.query_pairs_mut().append_pair("nonce", nonce);
        }
        let browser = Self::browser();
        let back =
            Self::sign_in_through(&browser, authorize.as_str(), login, NATIVE_REDIRECT).await;
        let code = reqwest::Url::parse(&back)
            .expect("redirect URL")
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {back}"));
        let res = client()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client_id, Some(client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", NATIVE_REDIRECT),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(res.status(), StatusCode::OK, "token endpoint");
        let body: Value = res.json().await.expect("json");
        body["id_token"].as_str().expect("id_token").to_owned()
    }
}
