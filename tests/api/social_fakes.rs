//! One local HTTP server speaking the parts of the GitHub, Facebook Graph and X APIs that
//! sign-in uses, in their real response formats.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{HttpRequest, HttpResponse, web};
use auth_oidc::oauth1;
use serde_json::json;

pub struct SocialFakes {
    pub url: String,
    bad_signatures: Arc<AtomicUsize>,
    pkce_failures: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

type Query = web::Query<HashMap<String, String>>;

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

/// GitHub users by token: `gh-token-ada` was issued to our app `gh-client`,
/// `gh-token-mallory` to another app; both are live tokens the user API accepts.
fn github_account(token: Option<&str>) -> Option<(u64, &'static str, &'static str)> {
    match token? {
        "gh-token-ada" => Some((4242, "ada", "Ada GitHub")),
        "gh-token-mallory" => Some((6666, "mallory", "Mallory")),
        _ => None,
    }
}

async fn github_user(req: HttpRequest) -> HttpResponse {
    let Some((id, login, name)) = github_account(bearer(&req).as_deref()) else {
        return HttpResponse::Unauthorized().json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401"
        }));
    };
    HttpResponse::Ok().json(json!({
        "login": login, "id": id, "node_id": "MDQ6VXNlcjQyNDI=",
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "type": "User", "name": name, "email": null
    }))
}

async fn github_emails(req: HttpRequest) -> HttpResponse {
    let Some((_, login, _)) = github_account(bearer(&req).as_deref()) else {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    };
    HttpResponse::Ok().json(json!([
        {"email": "old@github.example", "primary": false, "verified": false, "visibility": null},
        {"email": format!("{login}@github.example"), "primary": true, "verified": true, "visibility": "private"}
    ]))
}

/// GitHub's "check a token" (`POST /applications/{client_id}/token`): HTTP Basic with the
/// app's client id and secret; 404 for a token that is not a live token of that app.
async fn github_check_token(
    req: HttpRequest,
    client_id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> HttpResponse {
    use base64::Engine as _;
    let not_found = || {
        HttpResponse::NotFound().json(json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/apps/oauth-applications#check-a-token",
            "status": "404"
        }))
    };
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("gh-client:gh-secret")
    );
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(basic.as_str());
    if !authorized || client_id.as_str() != "gh-client" {
        return not_found();
    }
    let token = body["access_token"].as_str();
    match (token, github_account(token)) {
        (Some(token @ "gh-token-ada"), Some((id, login, _))) => HttpResponse::Ok().json(json!({
            "id": 1, "url": "https://api.github.com/authorizations/1",
            "scopes": ["read:user", "user:email"], "token": token,
            "token_last_eight": &token[token.len() - 8..], "hashed_token": "25f94a2a5c7fbaf499c665bc73d67c1c87e496da8985131633ee0a95819db2e8",
            "app": {"url": "http://app.test", "name": "Our app", "client_id": "gh-client"},
            "note": null, "note_url": null, "updated_at": "2026-11-01T00:00:00Z",
            "created_at": "2026-11-01T00:00:00Z", "fingerprint": null, "expires_at": null,
            "user": {"login": login, "id": id, "type": "User", "site_admin": false}
        })),
        _ => not_found(),
    }
}

fn graph_error(message: &str, code: u32) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}
    }))
}

async fn facebook_debug_token(q: Query) -> HttpResponse {
    if q.get("access_token").map(String::as_str) != Some("fb-app|fb-secret") {
        return graph_error(
            "Invalid OAuth access token - Cannot parse access token",
            190,
        );
    }
    let data = match q.get("input_token").map(String::as_str) {
        Some("fb-token-ada") => json!({
            "app_id": "fb-app", "type": "USER", "application": "Test", "is_valid": true,
            "expires_at": 4102444800u64, "scopes": ["email", "public_profile"], "user_id": "1001"
        }),
        Some("fb-token-other-app") => json!({
            "app_id": "another-app", "type": "USER", "application": "Other", "is_valid": true,
            "expires_at": 4102444800u64, "scopes": ["email"], "user_id": "1002"
        }),
        _ => json!({
            "is_valid": false,
            "error": {"code": 190, "message": "Session has expired", "subcode": 463}
        }),
    };
    HttpResponse::Ok().json(json!({"data": data}))
}

async fn facebook_me(q: Query) -> HttpResponse {
    let token = q.get("access_token").cloned().unwrap_or_default();
    let expected = auth_oidc::userinfo::appsecret_proof(&token, "fb-secret");
    if q.get("appsecret_proof") != Some(&expected) {
        return graph_error("Invalid appsecret_proof provided in the API argument", 100);
    }
    match token.as_str() {
        "fb-token-ada" => HttpResponse::Ok().json(json!({
            "id": "1001", "name": "Ada Facebook", "email": "ada@fb.example",
            "picture": {"data": {"height": 50, "is_silhouette": false, "url": "https://platform-lookaside.fbsbx.com/p.jpg", "width": 50}}
        })),
        "fb-token-other-app" => HttpResponse::Ok().json(json!({
            "id": "1002", "name": "Mallory", "email": "mallory@fb.example"
        })),
        _ => graph_error("Error validating access token", 190),
    }
}

async fn x_users_me(req: HttpRequest) -> HttpResponse {
    if bearer(&req).as_deref() != Some("x-token-ada") {
        return HttpResponse::Unauthorized().json(json!({
            "title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"
        }));
    }
    HttpResponse::Ok().json(json!({
        "data": {"id": "777", "name": "Ada X", "username": "ada_x",
                 "profile_image_url": "https://pbs.twimg.com/profile_images/1/a_normal.jpg"}
    }))
}

fn x_unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({
        "errors": [{"code": 32, "message": "Could not authenticate you."}]
    }))
}

async fn x_verify_credentials(
    req: HttpRequest,
    q: Query,
    bad: web::Data<Arc<AtomicUsize>>,
) -> HttpResponse {
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(fields) = oauth1::parse_authorization_header(header) else {
        return x_unauthorized();
    };
    let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let ok_shape = field("oauth_consumer_key").as_deref() == Some("x-consumer-key")
        && field("oauth_signature_method").as_deref() == Some("HMAC-SHA1")
        && field("oauth_token").as_deref() == Some("x1-token")
        && field("oauth_nonce").is_some()
        && field("oauth_timestamp").is_some();
    let Some(signature) = field("oauth_signature").filter(|_| ok_shape) else {
        return x_unauthorized();
    };
    // Recompute the signature over what was received (RFC 5849 section 3.4.1).
    let host = req.connection_info().host().to_owned();
    let base_uri = format!("http://{host}{}", req.path());
    let mut params: Vec<(String, String)> = q.into_inner().into_iter().collect();
    params.extend(fields);
    let base = oauth1::signature_base_string(req.method().as_str(), &base_uri, &params);
    if oauth1::sign(&base, "x-consumer-secret", "x1-secret") != signature {
        bad.fetch_add(1, Ordering::SeqCst);
        return x_unauthorized();
    }
    HttpResponse::Ok().json(json!({
        "id": 777, "id_str": "777", "name": "Ada X", "screen_name": "ada_x",
        "profile_image_url_https": "https://pbs.twimg.com/profile_images/1/a_normal.jpg"
    }))
}

/// GitHub's OAuth app flow: codes issued by `authorize`, with the PKCE challenge each
/// must be redeemed with.
#[derive(Default)]
struct GithubGrants {
    challenges: std::sync::Mutex<HashMap<String, String>>,
    pkce_failures: Arc<AtomicUsize>,
}

async fn github_authorize(q: Query, grants: web::Data<GithubGrants>) -> HttpResponse {
    let ok = matches!(
        q.get("client_id").map(String::as_str),
        Some("gh-client" | "x-client" | "fb-app")
    ) && q.get("response_type").map(String::as_str) == Some("code")
        && q.get("code_challenge_method").map(String::as_str) == Some("S256");
    let (Some(redirect_uri), Some(state), Some(challenge)) = (
        q.get("redirect_uri"),
        q.get("state"),
        q.get("code_challenge"),
    ) else {
        return HttpResponse::BadRequest().body("missing parameters");
    };
    if !ok {
        return HttpResponse::BadRequest().body("bad client or PKCE method");
    }
    let prefix = match q.get("client_id").map(String::as_str) {
        Some("x-client") => "x-code",
        Some("fb-app") => "fb-code",
        _ => "gh-code",
    };
    let code = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    grants
        .challenges
        .lock()
        .unwrap()
        .insert(code.clone(), challenge.clone());
    let mut back = reqwest::Url::parse(redirect_uri).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    HttpResponse::Found()
        .insert_header(("location", back.to_string()))
        .finish()
}

/// `POST /login/oauth/access_token`: GitHub answers errors with 200 and an `error` field.
async fn github_access_token(
    form: web::Form<HashMap<String, String>>,
    grants: web::Data<GithubGrants>,
) -> HttpResponse {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let error = |e: &str| {
        HttpResponse::Ok().json(json!({
            "error": e,
            "error_description": "The code passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"
        }))
    };
    if form.get("client_id").map(String::as_str) != Some("gh-client")
        || form.get("client_secret").map(String::as_str) != Some("gh-secret")
    {
        return error("incorrect_client_credentials");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(challenge) = grants.challenges.lock().unwrap().remove(&code) else {
        return error("bad_verification_code");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if computed != challenge {
        grants.pkce_failures.fetch_add(1, Ordering::SeqCst);
        return error("bad_verification_code");
    }
    HttpResponse::Ok().json(json!({
        "access_token": "gh-token-ada", "token_type": "bearer", "scope": "read:user,user:email"
    }))
}

/// X's OAuth 2.0 token endpoint (`POST /2/oauth2/token`): a confidential client
/// authenticates with HTTP Basic; errors are 400 `{"error", "error_description"}`.
async fn x_token(
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
    grants: web::Data<GithubGrants>,
) -> HttpResponse {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let error = |e: &str| {
        HttpResponse::BadRequest().json(json!({
            "error": e,
            "error_description": "Value passed for the authorization code was invalid."
        }))
    };
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("x-client:x-secret")
    );
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(basic.as_str());
    if !authorized || form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return HttpResponse::Unauthorized().json(json!({
            "error": "unauthorized_client",
            "error_description": "Missing valid authorization header"
        }));
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(challenge) = grants.challenges.lock().unwrap().remove(&code) else {
        return error("invalid_request");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if computed != challenge {
        grants.pkce_failures.fetch_add(1, Ordering::SeqCst);
        return error("invalid_request");
    }
    HttpResponse::Ok().json(json!({
        "token_type": "bearer", "expires_in": 7200, "access_token": "x-token-ada",
        "scope": "users.read tweet.read"
    }))
}

/// Facebook's `oauth/access_token` (Graph API; errors are 400 `{"error": {...}}`).
async fn facebook_access_token(
    form: web::Form<HashMap<String, String>>,
    grants: web::Data<GithubGrants>,
) -> HttpResponse {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    if form.get("client_id").map(String::as_str) != Some("fb-app")
        || form.get("client_secret").map(String::as_str) != Some("fb-secret")
    {
        return graph_error("Error validating client secret.", 1);
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(challenge) = grants.challenges.lock().unwrap().remove(&code) else {
        return graph_error("Invalid verification code format.", 100);
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if computed != challenge {
        grants.pkce_failures.fetch_add(1, Ordering::SeqCst);
        return graph_error("Invalid code verifier.", 100);
    }
    HttpResponse::Ok().json(json!({
        "access_token": "fb-token-ada", "token_type": "bearer", "expires_in": 5183944
    }))
}

impl SocialFakes {
    pub async fn start() -> Self {
        let bad_signatures = Arc::new(AtomicUsize::new(0));
        let data = web::Data::new(bad_signatures.clone());
        let grants = web::Data::new(GithubGrants::default());
        let pkce_failures = grants.pkce_failures.clone();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .app_data(grants.clone())
                .route("/login/oauth/authorize", web::get().to(github_authorize))
                .route("/i/oauth2/authorize", web::get().to(github_authorize))
                .route("/dialog/oauth", web::get().to(github_authorize))
                .route("/oauth/access_token", web::post().to(facebook_access_token))
                .route("/2/oauth2/token", web::post().to(x_token))
                .route(
                    "/login/oauth/access_token",
                    web::post().to(github_access_token),
                )
                .route(
                    "/applications/{client_id}/token",
                    web::post().to(github_check_token),
                )
                .route("/user", web::get().to(github_user))
                .route("/user/emails", web::get().to(github_emails))
                .route("/debug_token", web::get().to(facebook_debug_token))
                .route("/me", web::get().to(facebook_me))
                .route("/2/users/me", web::get().to(x_users_me))
                .route(
                    "/1.1/account/verify_credentials.json",
                    web::get().to(x_verify_credentials),
                )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind fake APIs");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            bad_signatures,
            pkce_failures,
            handle,
        }
    }

    /// Token requests whose PKCE verifier did not match the challenge.
    pub fn pkce_failures(&self) -> usize {
        self.pkce_failures.load(Ordering::SeqCst)
    }

    pub fn bad_signatures(&self) -> usize {
        self.bad_signatures.load(Ordering::SeqCst)
    }
}

impl Drop for SocialFakes {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}
