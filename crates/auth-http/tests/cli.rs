//! The binary as an operator runs it: commands, exit codes, logs.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_auth-http");

/// A client that fails a request the server never answers instead of hanging the test.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("auth-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(&self.0)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "AUTH_CONFIG_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
            )
            .env(
                "AUTH__DATABASE__URL",
                format!("sqlite://{}/auth.db", self.0.display()),
            )
            .env("AUTH__DATA_DIR", self.0.join("data"));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn config_check_prints_effective_settings_with_secrets_redacted() {
    let dir = Workdir::new();
    let out = dir
        .command(
            &["config", "check"],
            &[
                ("AUTH__TOKENS__ALGORITHM", "HS256"),
                (
                    "AUTH__TOKENS__HS256_SECRET",
                    "a-very-secret-value-of-32-bytes-or-more",
                ),
            ],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("a-very-secret-value"), "{text}");
    let settings: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(settings["tokens"]["hs256_secret"], "[redacted]");
    assert_eq!(settings["tokens"]["algorithm"], "HS256");
    assert_eq!(settings["server"]["port"], 8080);
}

#[test]
fn a_bad_setting_exits_2_naming_the_key() {
    let dir = Workdir::new();
    for (key, value, named) in [
        ("AUTH__SERVER__PORT", "http", "port"),
        ("AUTH__TOKENS__ALGORITHM", "HS256", "tokens.hs256_secret"),
        (
            "AUTH__PASSWORD_POLICY__MAX_LENGTH",
            "8",
            "password_policy.max_length",
        ),
        (
            "AUTH__AUTH__DEFAULT_ROLES",
            "user,admin",
            "auth.default_roles",
        ),
        ("AUTH__WEBHOOKS__MAX_ATTEMPTS", "0", "webhooks.max_attempts"),
        (
            "AUTH__WEBHOOKS__ALLOWED_HOSTS",
            "https://x.org",
            "webhooks.allowed_hosts",
        ),
        ("AUTH__AUDIT__RETENTION_DAYS", "0", "audit.retention_days"),
    ] {
        for args in [&["serve"][..], &["config", "check"][..], &["migrate"][..]] {
            let out = dir.command(args, &[(key, value)]).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{args:?} {key}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(named), "{args:?} {key}: {stderr}");
        }
    }
}

#[test]
fn migrate_applies_the_schema_and_is_idempotent() {
    let dir = Workdir::new();
    for _ in 0..2 {
        let out = dir.command(&["migrate"], &[]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.0.join("auth.db").exists());
}

#[test]
fn an_unreachable_database_fails_start_up_with_exit_1() {
    let dir = Workdir::new();
    let out = dir
        .command(
            &["migrate"],
            &[
                (
                    "AUTH__DATABASE__URL",
                    "postgres://postgres@127.0.0.1:1/none",
                ),
                ("AUTH__DATABASE__CONNECT_TIMEOUT_SECS", "1"),
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("database"));
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"][..],
        &["migrate", "--help"][..],
        &["config", "check", "--help"][..],
        &["keys", "--help"][..],
        &["keys", "generate", "--help"][..],
        &["keys", "rotate", "--help"][..],
        &["users", "create-admin", "--help"][..],
        &["users", "import", "--help"][..],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
    assert_eq!(
        Command::new(BIN)
            .arg("frobnicate")
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

/// Runs the real binary with debug logs, drives a whole session, and checks that no
/// password, token or key reaches the log; then SIGTERM stops it cleanly with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_no_secrets_and_sigterm_stops_cleanly() {
    let dir = Workdir::new();
    let mut child = tokio::process::Command::from(dir.command(
        &["serve"],
        &[
            ("AUTH__SERVER__PORT", "0"),
            ("AUTH__LOG__FORMAT", "json"),
            ("AUTH__LOG__LEVEL", "debug"),
        ],
    ))
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let port = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push(line.clone());
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "listening"
            {
                return v["address"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse::<u16>()
                    .unwrap();
            }
        }
        panic!("server exited before listening: {log:?}");
    })
    .await
    .expect("server did not start");
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push(line);
        }
        log
    });

    let base = format!("http://127.0.0.1:{port}");
    let http = http_client();
    let password = "Unique-Passphrase-7f3a9c";
    let t: Value = http
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"email": "ada@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wrong = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": "Wrong-Passphrase-11"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let r: Value = http
        .post(format!("{base}/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": t["refresh_token"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let me = http
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(r["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");

    let log = reader.await.unwrap().join("\n");
    // A refused login is the client's business: not a warning. Stopping is not an outage.
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_default();
        let level = v["level"].as_str().unwrap_or_default();
        assert!(
            level != "WARN" && level != "ERROR",
            "unexpected warning or error: {line}"
        );
    }
    assert!(
        log.contains("SignedUp") && log.contains("LoginFailed"),
        "the log is not the one expected"
    );
    let key = std::fs::read_to_string(dir.0.join("data/keys/ed25519.pem")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    for secret in [
        password,
        "Wrong-Passphrase-11",
        t["refresh_token"].as_str().unwrap(),
        r["refresh_token"].as_str().unwrap(),
        t["access_token"].as_str().unwrap(),
        r["access_token"].as_str().unwrap(),
        key_body,
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

/// Start `serve` in `dir` on a free port; answers the child and its base URL.
async fn serve(dir: &Workdir) -> (tokio::process::Child, String) {
    serve_with(dir, &[]).await
}

/// [`serve`] with more environment variables.
async fn serve_with(dir: &Workdir, vars: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let mut all = vec![("AUTH__SERVER__PORT", "0"), ("AUTH__LOG__FORMAT", "json")];
    all.extend_from_slice(vars);
    let mut child = tokio::process::Command::from(dir.command(&["serve"], &all))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = listening(&mut child).await;
    (child, base)
}

/// Wait until a `serve` child started with JSON logs on stderr listens; its base URL.
async fn listening(child: &mut tokio::process::Child) -> String {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "listening"
            {
                return v["address"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse::<u16>()
                    .unwrap();
            }
        }
        panic!("server exited before listening");
    })
    .await
    .expect("server did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    format!("http://127.0.0.1:{port}")
}

fn create_admin(dir: &Workdir, email: &str, stdin: Option<&str>) -> std::process::Output {
    let mut args = vec!["users", "create-admin", "--email", email];
    if stdin.is_some() {
        args.push("--password-stdin");
    }
    let mut child = dir
        .command(&args, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

/// The first administrator comes from the command line; the server then accepts them on
/// the admin API. Bad input fails with exit 1 and says why, without echoing the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_create_admin_makes_an_administrator_the_api_accepts() {
    let dir = Workdir::new();
    let password = "Root-Passphrase-4b8e1d";
    let out = create_admin(&dir, "root@example.com", Some(&format!("{password}\n")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("created administrator root@example.com"),
        "{stdout}"
    );

    let again = create_admin(&dir, "ROOT@example.com", Some(&format!("{password}\n")));
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let weak = create_admin(&dir, "weak@example.com", Some("short\n"));
    assert_eq!(weak.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&weak.stderr).into_owned();
    assert!(stderr.contains("password rejected"), "{stderr}");
    assert!(!stderr.contains("short\n"));
    let bad = create_admin(&dir, "not-an-email", Some(&format!("{password}\n")));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--email"));
    // Without --password-stdin and without a terminal, it cannot prompt.
    let no_tty = create_admin(&dir, "tty@example.com", None);
    assert_eq!(no_tty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_tty.stderr).contains("--password-stdin"));

    let (_child, base) = serve(&dir).await;
    let http = http_client();
    let t: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "root@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["user"]["roles"], json!(["admin"]));
    assert_eq!(t["user"]["email_verified"], true);
    let users: Value = http
        .get(format!("{base}/api/v1/admin/users"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["root@example.com"], "nothing half-created");
    let audit: Value = http
        .get(format!(
            "{base}/api/v1/admin/audit-log?event_type=user_created"
        ))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["items"][0]["detail"]["by"], "cli");
}

#[test]
fn keys_generate_writes_pem_files_the_server_accepts() {
    let dir = Workdir::new();
    for alg in ["EdDSA", "ES256", "RS256"] {
        let out_dir = dir.0.join(alg);
        let out = dir
            .command(
                &[
                    "keys",
                    "generate",
                    "--algorithm",
                    alg,
                    "--out",
                    out_dir.to_str().unwrap(),
                ],
                &[],
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out_dir.join("private.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{alg}");
        }
        let public = std::fs::read_to_string(out_dir.join("public.pem")).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{alg}");
        // The configuration that uses them passes `config check`.
        let check = dir
            .command(
                &["config", "check"],
                &[
                    ("AUTH__TOKENS__ALGORITHM", alg),
                    (
                        "AUTH__TOKENS__PRIVATE_KEY_PATH",
                        out_dir.join("private.pem").to_str().unwrap(),
                    ),
                    (
                        "AUTH__TOKENS__PUBLIC_KEY_PATH",
                        out_dir.join("public.pem").to_str().unwrap(),
                    ),
                ],
            )
            .output()
            .unwrap();
        assert!(check.status.success(), "{alg}");
        // Never replaces existing files.
        let again = dir
            .command(
                &[
                    "keys",
                    "generate",
                    "--algorithm",
                    alg,
                    "--out",
                    out_dir.to_str().unwrap(),
                ],
                &[],
            )
            .output()
            .unwrap();
        assert_eq!(again.status.code(), Some(1), "{alg}");
    }
    let bad = dir
        .command(
            &["keys", "generate", "--algorithm", "HS256", "--out", "x"],
            &[],
        )
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn keys_rotate_adds_a_key_file_and_refuses_pem_configurations() {
    let dir = Workdir::new();
    let out = dir.command(&["keys", "rotate"], &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("added signing key"));
    let files: Vec<String> = std::fs::read_dir(dir.0.join("data/keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().any(|f| f == "ed25519.pem"));
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("ed25519-") && f.ends_with(".pem"))
    );

    let out = dir
        .command(
            &["keys", "rotate"],
            &[
                ("AUTH__TOKENS__ALGORITHM", "HS256"),
                (
                    "AUTH__TOKENS__HS256_SECRET",
                    "a-very-secret-value-of-32-bytes-or-more",
                ),
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("docs/deployment.md"));
}

/// Accounts exported from another backend come in with their bcrypt hashes and sign in
/// with their old passwords, through the canonical API and a compatibility profile; bad
/// lines are reported by number without echoing the hash, and a second run skips what is
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_import_brings_bcrypt_accounts_that_sign_in_with_their_old_passwords() {
    let dir = Workdir::new();
    // Made by node's bcryptjs for "secret-of-ada" (cost 10) and Openwall's vector ("U*U").
    let ada = bcrypt::hash("secret-of-ada", 10)
        .unwrap()
        .replacen("$2b$", "$2a$", 1);
    let bob = "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
    let lines = [
        json!({"email": "ada@example.com", "password_hash": ada, "name": "Ada Lovelace", "email_verified": true}).to_string(),
        json!({"email": "bob@example.com", "password_hash": bob}).to_string(),
        String::new(),
        json!({"email": "eve@example.com", "password_hash": "$2b$10$not-a-hash"}).to_string(),
        json!({"email": "not-an-email", "password_hash": bob}).to_string(),
        "{\"email\": ".to_owned(),
        json!({"email": "link-only@example.com"}).to_string(),
    ];
    std::fs::write(dir.0.join("users.jsonl"), lines.join("\n")).unwrap();
    let import = |file: &str| {
        dir.command(&["users", "import", "--file", file], &[])
            .output()
            .unwrap()
    };
    let out = import("users.jsonl");
    assert_eq!(out.status.code(), Some(1), "bad lines fail the run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("imported 3, skipped 0 (already there), failed 3"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for expected in [
        "line 4: eve@example.com",
        "line 5: email",
        "line 6: not an account",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(!stderr.contains("$2") && !stdout.contains("$2"), "{stderr}");
    let again = import("users.jsonl");
    let stdout = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(
        stdout.contains("imported 0, skipped 3 (already there), failed 3"),
        "{stdout}"
    );
    assert_eq!(import("missing.jsonl").status.code(), Some(1));

    let mut child = tokio::process::Command::from(dir.command(
        &["serve"],
        &[
            ("AUTH__SERVER__PORT", "0"),
            ("AUTH__LOG__FORMAT", "json"),
            ("AUTH__COMPAT__NESTJS_BOILERPLATE__ENABLED", "true"),
            (
                "AUTH__COMPAT__NESTJS_BOILERPLATE__JWT_SECRET",
                "nestjs-boilerplate-secret-0123456789abcdef",
            ),
        ],
    ))
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let base = listening(&mut child).await;
    let http = http_client();
    let login = |path: &'static str, email: &'static str, password: &'static str| {
        let req = http
            .post(format!("{base}{path}"))
            .json(&json!({"email": email, "password": password}));
        async move { req.send().await.unwrap() }
    };
    let res = login("/api/v1/auth/login", "ada@example.com", "secret-of-ada").await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["user"]["name"], "Ada Lovelace");
    assert_eq!(t["user"]["email_verified"], true);
    // Upgraded to Argon2id at that sign-in; the same password keeps working, through the
    // replaced backend's API too.
    let res = login(
        "/compat/nestjs-boilerplate/api/v1/auth/email/login",
        "ada@example.com",
        "secret-of-ada",
    )
    .await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let res = login(
        "/compat/nestjs-boilerplate/api/v1/auth/email/login",
        "bob@example.com",
        "U*U",
    )
    .await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let res = login("/api/v1/auth/login", "bob@example.com", "U*V").await;
    assert_eq!(res.status(), reqwest::StatusCode::UNAUTHORIZED);
}

/// A loopback HTTP listener that answers every request 200 and counts them: a webhook
/// receiver, or a forward proxy that would deliver anything it is handed.
struct Counter {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Counter {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    // Read the head and the body its Content-Length announces, then answer.
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&seen).to_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if seen.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Self { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The webhook client pins the address it checked; a proxy from the environment would
/// resolve the host itself (a rebinding to an internal address would pass), so deliveries
/// ignore `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_ignore_proxy_variables() {
    let dir = Workdir::new();
    let password = "Root-Passphrase-4b8e1d";
    let out = create_admin(&dir, "root@example.com", Some(&format!("{password}\n")));
    assert!(out.status.success());
    let receiver = Counter::start().await;
    let proxy = Counter::start().await;
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let (_child, base) = serve_with(
        &dir,
        &[
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("HTTPS_PROXY", &proxy_url),
            ("ALL_PROXY", &proxy_url),
            ("AUTH__WEBHOOKS__ALLOW_HTTP", "true"),
            ("AUTH__WEBHOOKS__ALLOW_PRIVATE_ADDRESSES", "true"),
            ("AUTH__OUTBOX__POLL_INTERVAL_MS", "50"),
        ],
    )
    .await;
    let http = http_client();
    let login = |password: &str| {
        http.post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "root@example.com", "password": password}))
            .send()
    };
    let t: Value = login(password).await.unwrap().json().await.unwrap();
    let res = http
        .post(format!("{base}/api/v1/admin/webhooks"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .json(&json!({
            "url": format!("http://127.0.0.1:{}/hook", receiver.port),
            "event_types": ["login_failed"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::CREATED);
    let res = login("not the password at all").await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::UNAUTHORIZED);
    tokio::time::timeout(Duration::from_secs(20), async {
        while receiver.hits() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no delivery reached the receiver; the proxy saw {}",
            proxy.hits()
        )
    });
    assert_eq!(proxy.hits(), 0, "a delivery went through the proxy");
}
