//! The OpenAPI document: it covers every registered route (and nothing else), the checked-in
//! copy `docs/openapi.json` equals the served document, and the `/docs` page renders the
//! routes in a real browser (headless Chromium).
//!
//! Regenerate the checked-in copy after changing a route:
//! `UPDATE_OPENAPI=1 cargo nextest run -p auth-e2e -E 'test(/openapi/)'`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use actix_web::http::Method;
use actix_web::test as actix_test;
use actix_web::{App, HttpRequest, HttpResponse, web};
use auth_e2e::{Backend, app};
use reqwest::StatusCode;
use serde_json::Value;

const UNROUTED: &str = "x-test-unrouted";

/// Every full path pattern of the live route table, read from actix's resource map (the
/// tree that the router itself builds from the registration code).
fn leaf_patterns(debug: &str) -> Vec<String> {
    // `ResourceMap { pattern: ResourceDef { .. patterns: Single("/x") .. }, .., nodes: Some([..]) | None }`
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String, bool)> = Vec::new(); // (depth at open, pattern, has children)
    let bytes = debug.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &debug[i..];
        if rest.starts_with("ResourceMap {") {
            stack.push((depth, String::new(), false));
            depth += 1;
            i += "ResourceMap {".len();
            continue;
        }
        if let Some(tail) = rest.strip_prefix("patterns: Single(\"") {
            let end = tail.find('"').expect("closing quote");
            if let Some(top) = stack.last_mut().filter(|t| t.1.is_empty()) {
                top.1 = tail[..end].to_owned();
                if top.1.is_empty() {
                    top.1.push('\u{0}');
                }
            }
            // Go on at the `(`: the literal is skipped below.
            i += "patterns: Single".len();
            continue;
        }
        if let Some(top) = stack
            .last_mut()
            .filter(|_| rest.starts_with("nodes: Some("))
        {
            top.2 = true;
        }
        match bytes[i] {
            // Skip string literals: patterns and regexes hold brackets of their own.
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => {
                depth -= 1;
                if stack.last().is_some_and(|t| t.0 == depth) {
                    let (_, _, has_children) = stack.last().cloned().expect("top");
                    if !has_children {
                        let path: String =
                            stack.iter().map(|t| t.1.trim_matches('\u{0}')).collect();
                        out.push(path);
                    }
                    stack.pop();
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `{id:regex}` -> `{id}`; a path fit for a request, parameters filled in.
fn normalise(pattern: &str) -> (String, String) {
    let mut doc = String::new();
    let mut concrete = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '{' {
            let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
            let name = name.split(':').next().unwrap_or_default().to_owned();
            doc.push_str(&format!("{{{name}}}"));
            concrete.push_str("00000000-0000-0000-0000-000000000000");
        } else {
            doc.push(c);
            concrete.push(c);
        }
    }
    (doc, concrete)
}

async fn route_table() -> BTreeSet<(String, String)> {
    let app = actix_test::init_service(
        App::new()
            .configure(auth_http::routes::docs::configure)
            .configure(auth_http::routes::configure)
            // Registered by startup.rs on the main port unless `metrics.port` moves it.
            .route("/metrics", web::get().to(auth_http::metrics::scrape))
            .default_service(web::to(|req: HttpRequest| async move {
                HttpResponse::NotFound()
                    .insert_header((UNROUTED, "1"))
                    .body(format!("{:?}", req.resource_map()))
            })),
    )
    .await;
    let probe = actix_test::TestRequest::get()
        .uri("/__no_such_route__")
        .to_request();
    let debug = String::from_utf8(actix_test::call_and_read_body(&app, probe).await.to_vec())
        .expect("utf-8");
    let patterns = leaf_patterns(&debug);
    assert!(
        patterns.len() > 10,
        "could not read the route table: {patterns:?} from {debug}"
    );
    let mut routes = BTreeSet::new();
    for pattern in patterns {
        let (doc_path, concrete) = normalise(&pattern);
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let req = actix_test::TestRequest::default()
                .method(method.clone())
                .uri(&concrete)
                .to_request();
            let res = actix_test::call_service(&app, req).await;
            if !res.headers().contains_key(UNROUTED) {
                routes.insert((method.as_str().to_lowercase(), doc_path.clone()));
            }
        }
    }
    routes
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

fn served_document() -> (String, Value) {
    let text = auth_http::openapi::document_json().to_owned();
    let value = serde_json::from_str(&text).expect("the document is JSON");
    (text, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_covers_every_registered_route() {
    let registered = route_table().await;
    let (_, doc) = served_document();
    let documented = documented(&doc);
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "registered but not in the OpenAPI document (add #[utoipa::path] and list it in routes::docs::ApiDoc): {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&registered).collect();
    assert!(
        stale.is_empty(),
        "in the OpenAPI document but not registered: {stale:?}"
    );
}

#[test]
fn openapi_document_describes_errors_and_security() {
    let (_, doc) = served_document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Problem"]["properties"]["code"].is_object());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('2') || s.starts_with('3')),
                "{method} {path}: no success response"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"]["schema"]["$ref"]
                            == "#/components/schemas/Problem",
                        "{method} {path} {status}: errors are problem+json"
                    );
                }
            }
            assert!(
                responses.contains_key("500") && responses.contains_key("503"),
                "{method} {path}"
            );
            let bearer = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if bearer {
                assert!(responses.contains_key("401"), "{method} {path}: 401");
            }
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("400"), "{method} {path}: 400");
            }
        }
    }
    // The routes every client relies on, with their documented successes.
    let op = |m: &str, p: &str| doc["paths"][p][m].clone();
    assert!(op("post", "/api/v1/auth/signup")["responses"]["201"].is_object());
    assert!(op("post", "/api/v1/auth/signup")["responses"]["409"].is_object());
    assert!(op("post", "/api/v1/auth/login")["responses"]["401"].is_object());
    assert_eq!(
        op("post", "/api/v1/auth/login")["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/SignInResult"
    );
    let sign_in = &doc["components"]["schemas"]["SignInResult"]["oneOf"];
    assert_eq!(sign_in[0]["$ref"], "#/components/schemas/TokenResponse");
    assert_eq!(sign_in[1]["$ref"], "#/components/schemas/MfaChallenge");
}

fn checked_in_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
}

/// The served document equals `docs/openapi.json`; `UPDATE_OPENAPI=1` rewrites the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_in_openapi_matches_the_served_document() {
    let app = app!(Backend::Sqlite);
    let res = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let served = res.text().await.unwrap();
    assert_eq!(served, served_document().0);
    let path = checked_in_path();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &served).unwrap();
        eprintln!("UPDATE_OPENAPI=1: wrote {}", path.display());
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == served,
        "docs/openapi.json differs from the served document; regenerate it with \
         `UPDATE_OPENAPI=1 cargo nextest run -p auth-e2e -E 'test(/openapi/)'`"
    );
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// `/docs` works from the binary alone: headless Chromium loads it (the script is served by
/// the server itself) and the rendered page lists the routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_lists_the_routes_in_a_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is required in CI (.ci/run installs it with apt-get)"
        );
        eprintln!(
            "\n\n*** SKIPPED docs_page_lists_the_routes_in_a_browser: no chromium on PATH \
             (apt-get install chromium) ***\n\n"
        );
        return;
    };
    let app = app!(Backend::Sqlite);
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("/docs/assets/redoc.standalone.js"));
    assert!(
        !html.contains("https://"),
        "the page must not load anything from the internet"
    );
    let profile = tempfile_dir();
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let url = app.url("/docs");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=20000",
                "--dump-dom",
            ])
            .arg(profile_arg)
            .arg(url)
            .output()
    })
    .await
    .unwrap()
    .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && dom.contains("auth-http"),
        "chromium failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, doc) = served_document();
    let mut absent = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            // As the DOM dump writes text.
            let summary = op["summary"]
                .as_str()
                .unwrap_or_default()
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            if !dom.contains(path.as_str()) || (!summary.is_empty() && !dom.contains(&summary)) {
                absent.push(format!("{path} ({summary})"));
            }
        }
    }
    assert!(
        absent.is_empty(),
        "the rendered page does not list: {absent:?}"
    );
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "auth-e2e-chromium-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
