//! Test kit of the end-to-end suite: the real server on 127.0.0.1 port 0 over a fresh
//! SQLite file or a fresh PostgreSQL database, and an HTTP client.

pub mod proxy;

use std::path::PathBuf;

pub mod oidc;

use auth_db::Database;
use auth_db::testing::TestDatabase;
use auth_http::settings::{Settings, SettingsSource};
use auth_http::startup::Application;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// Longest wait for one answer from the server under test or a peer: a hang fails the
/// test, saying which call hung, instead of stalling the whole run.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A password that passes the default policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// A running server and what a test needs around it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    /// A client with no cookies and no redirects.
    pub client: reqwest::Client,
    /// Direct access to the same database, to check the state left behind.
    pub db: Database,
    /// The settings the server runs with.
    pub settings: Settings,
    handle: auth_http::lifecycle::AppHandle,
    /// The server task: its result is what `serve` would exit with.
    pub server: std::sync::Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
    // Dropped last: removes the database and the data directory.
    pub test_db: std::sync::Arc<TestDatabase>,
    data_dir: PathBuf,
}

/// Builder of a [`TestApp`].
pub struct TestAppBuilder {
    backend: Backend,
    vars: Vec<(String, String)>,
    shared: Option<(std::sync::Arc<TestDatabase>, PathBuf)>,
    proxy: Option<std::sync::Arc<proxy::TcpProxy>>,
    environment: Option<String>,
}

impl TestAppBuilder {
    /// Set a configuration key as its environment variable would (`AUTH__TOKENS__...`).
    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Run on the database and data directory of another app (a second node, or a restart).
    pub fn sharing_with(mut self, other: &TestApp) -> Self {
        self.backend = other.backend();
        self.shared = Some((other.test_db.clone(), other.data_dir.clone()));
        self
    }

    /// Reach the database through `proxy` (PostgreSQL): the proxy is pointed at the real
    /// server and the app at the proxy.
    pub fn through(mut self, proxy: std::sync::Arc<proxy::TcpProxy>) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Load the `AUTH_ENV=<name>` overlay of `config/` as well.
    pub fn environment(mut self, name: &str) -> Self {
        self.environment = Some(name.to_owned());
        self
    }

    /// Start the server; `None` when PostgreSQL is unavailable and skipping was asked for.
    pub async fn start(self) -> Option<TestApp> {
        self.try_start()
            .await
            .map(|started| started.expect("application starts"))
    }

    /// [`TestAppBuilder::start`], answering why the server refused to start instead of
    /// failing the test.
    pub async fn try_start(self) -> Option<Result<TestApp, String>> {
        let (test_db, data_dir) = match self.shared {
            Some(shared) => shared,
            None => {
                let db = match self.backend {
                    Backend::Sqlite => TestDatabase::sqlite(),
                    Backend::Postgres => TestDatabase::postgres()?,
                };
                let dir = std::env::temp_dir()
                    .join(format!("auth-e2e-{}", uuid::Uuid::new_v4().simple()));
                (std::sync::Arc::new(db), dir)
            }
        };
        let mut vars: Vec<(String, String)> = vec![
            ("AUTH__SERVER__PORT".into(), "0".into()),
            ("AUTH__SERVER__WORKERS".into(), "2".into()),
            ("AUTH__SERVER__PUBLIC_URL".into(), "http://auth.test".into()),
            ("AUTH__DATABASE__URL".into(), test_db.url().to_owned()),
            ("AUTH__DATA_DIR".into(), data_dir.display().to_string()),
            ("AUTH__LOG__LEVEL".into(), "warn".into()),
        ];
        if let Some(proxy) = &self.proxy {
            let url = test_db.url();
            let (scheme, rest) = url.split_once("://").expect("database URL");
            let (userinfo, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
            let (authority, path) = rest.split_once('/').expect("database URL has a name");
            proxy.target(authority);
            let at = if userinfo.is_empty() { "" } else { "@" };
            vars.push((
                "AUTH__DATABASE__URL".into(),
                format!("{scheme}://{userinfo}{at}127.0.0.1:{}/{path}", proxy.port),
            ));
        }
        vars.extend(self.vars);
        let settings = Settings::load(&SettingsSource {
            config_dir: Some(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../config"
            ))),
            environment: self.environment.clone(),
            vars: Some(vars.into_iter().collect()),
        })
        .expect("test settings");
        let app = match Application::build(settings.clone()).await {
            Ok(app) => app,
            Err(e) => return Some(Err(e.to_string())),
        };
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = std::sync::Mutex::new(Some(tokio::spawn(app.run_until_stopped())));
        // A request the server never answers fails the test (with where) instead of
        // hanging it.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client");
        let db = test_db.database().await;
        Some(Ok(TestApp {
            address,
            client,
            db,
            settings,
            handle,
            server,
            test_db,
            data_dir,
        }))
    }
}

impl TestApp {
    /// A server on `backend` with the default configuration plus `vars`.
    pub fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            vars: Vec::new(),
            shared: None,
            proxy: None,
            environment: None,
        }
    }

    /// Which backend this app runs on.
    pub fn backend(&self) -> Backend {
        if self.test_db.url().starts_with("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// Stop the server gracefully.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// A handle to stop the server from another task.
    pub fn handle(&self) -> auth_http::lifecycle::AppHandle {
        self.handle.clone()
    }

    /// Drop the PostgreSQL database under the running server (simulates losing it).
    pub async fn drop_database(&self) {
        let url = self.test_db.url();
        let (base, name) = url.rsplit_once('/').expect("database URL has a name");
        let (client, connection) =
            tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
                .await
                .expect("admin connection");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .expect("drop database");
    }

    /// Full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// POST JSON with a bearer token.
    pub async fn post_auth(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// GET with a bearer token.
    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Sign up `email` with [`PASSWORD`]; returns the TokenResponse.
    pub async fn signup(&self, email: &str) -> Value {
        let res = self
            .post(
                "/api/v1/auth/signup",
                &json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "signup of {email}");
        res.json().await.expect("json")
    }

    /// Log in `email` with [`PASSWORD`]; returns the TokenResponse.
    /// Mark `email`'s account verified as its own sign-up link would (the account keeps
    /// its password, sessions and factors; a later mailbox sign-in adopts nothing).
    pub async fn verify_email(&self, email: &str) {
        use auth_core::ports::UserStore as _;
        let canonical = email.to_lowercase();
        let user = self
            .db
            .credentials_by_email(&canonical)
            .await
            .expect("user lookup")
            .unwrap_or_else(|| panic!("no account {email}"))
            .user;
        self.db
            .mark_email_verified(
                user.id,
                &canonical,
                auth_core::model::MailboxProof::SignupLink,
                chrono::Utc::now(),
            )
            .await
            .expect("mark verified")
            .expect("same address");
    }

    pub async fn login(&self, email: &str) -> Value {
        let res = self
            .post(
                "/api/v1/auth/login",
                &json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "login of {email}");
        res.json().await.expect("json")
    }

    /// Refresh; returns the response.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Read a problem+json body, checking its media type and shape.
pub async fn problem(res: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(res.status(), status, "status");
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content-type {content_type}"
    );
    let body: Value = res.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["title"].is_string() && body["detail"].is_string() && body["type"].is_string(),
        "{body}"
    );
    body
}

/// Instantiate an async test `fn(Backend)` on SQLite and on PostgreSQL. The test starts
/// its own app with [`TestApp::builder`] and returns early when PostgreSQL is skipped.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await;
            }
        }
    )+};
}

/// Start an app with the default configuration, or return from the test when PostgreSQL
/// is skipped (only ever outside CI, and loudly).
#[macro_export]
macro_rules! app {
    ($backend:expr) => {
        match $crate::TestApp::builder($backend).start().await {
            Some(app) => app,
            None => return,
        }
    };
    ($builder:expr, start) => {
        match $builder.start().await {
            Some(app) => app,
            None => return,
        }
    };
}

/// A tiny HTTP server on loopback standing in for a third-party API we cannot reach
/// (CAPTCHA siteverify, breached-password range API), speaking its real wire format.
pub struct FakeApi {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    handle: actix_web::dev::ServerHandle,
}

impl FakeApi {
    /// hCaptcha/Turnstile/reCAPTCHA siteverify: form `secret`, `response`, `remoteip` ->
    /// `{"success": bool}`; succeeds for `secret` = "captcha-secret" and response "good-token".
    pub async fn siteverify() -> Self {
        Self::start(|cfg| {
            cfg.route(
                "/siteverify",
                actix_web::web::post().to(|form: actix_web::web::Form<std::collections::HashMap<String, String>>| async move {
                    let ok = form.get("secret").map(String::as_str) == Some("captcha-secret")
                        && form.get("response").map(String::as_str) == Some("good-token");
                    let codes: Vec<&str> = if ok { vec![] } else { vec!["invalid-input-response"] };
                    actix_web::HttpResponse::Ok().json(json!({"success": ok, "error-codes": codes}))
                }),
            );
        })
        .await
    }

    /// The k-anonymity range API, knowing one breached password: `password-of-ada-1`.
    pub async fn pwned_range() -> Self {
        Self::start(|cfg| {
            cfg.route(
                "/range/{prefix}",
                actix_web::web::get().to(|prefix: actix_web::web::Path<String>| async move {
                    use sha1::{Digest, Sha1};
                    let full = hex_upper(&Sha1::digest(b"password-of-ada-1"));
                    let mut body = String::from("0018A45C4D1DEF81644B54AB7F969B88D65:0\r\n");
                    if full[..5] == *prefix {
                        body.push_str(&format!("{}:4242\r\n", &full[5..]));
                    }
                    actix_web::HttpResponse::Ok()
                        .content_type("text/plain")
                        .body(body)
                }),
            );
        })
        .await
    }

    async fn start(routes: fn(&mut actix_web::web::ServiceConfig)) -> Self {
        let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(routes))
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("bind fake API");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            handle,
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
