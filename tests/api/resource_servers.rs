//! Resource servers verify our access tokens with nothing but the JWK Set: with
//! independent libraries (PyJWT, npm `jose`) and with auth-core's own `JwksVerifier` (the
//! `verify_tokens` example), for each signing algorithm. And the example that embeds
//! auth-core over its in-memory store runs to the end.

use std::io::Write as _;
use std::process::{Command, Stdio};

use auth_e2e::{Backend, TestApp, app};
use serde_json::Value;

use crate::peers::{example, peers};

const ISSUER: &str = "http://auth.test";
const AUDIENCE: &str = "authenticated";

fn fixture(name: &str) -> String {
    format!("{}/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn json_line(out: &std::process::Output, who: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{who}: not a JSON answer ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A token with its signature altered (one character of the third part).
fn tampered(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", sig.into_iter().collect::<String>())
}

async fn tokens_verify_with_independent_libraries(algorithm: &str, key: Option<&str>) {
    let Some(peers) = peers("tokens_verify_with_independent_libraries") else {
        return;
    };
    let mut builder = TestApp::builder(Backend::Sqlite).var("AUTH__TOKENS__ALGORITHM", algorithm);
    if let Some(key) = key {
        builder = builder.var("AUTH__TOKENS__PRIVATE_KEY_PATH", &fixture(key));
    }
    let app = app!(builder, start);
    let signed_in = app.signup("ada@example.com").await;
    let token = signed_in["access_token"].as_str().unwrap().to_owned();
    let user_id = signed_in["user"]["id"].as_str().unwrap().to_owned();

    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in jwks["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                key.get(private).is_none(),
                "the JWK Set publishes {private}"
            );
        }
    }
    let jwks_file = std::env::temp_dir().join(format!(
        "auth-e2e-jwks-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let jwks_path = jwks_file.display().to_string();

    let pyjwt = |token: &str, issuer: &str| {
        let out = Command::new(&peers.python)
            .arg(peers.dir.join("pyjwt_verify.py"))
            .args([&jwks_path, issuer, AUDIENCE, token])
            .output()
            .expect("python runs");
        json_line(&out, "PyJWT")
    };
    let jose = |token: &str, issuer: &str| {
        let out = Command::new("node")
            .arg(peers.dir.join("jose/verify.mjs"))
            .args([&jwks_path, issuer, AUDIENCE, token])
            .output()
            .expect("node runs");
        json_line(&out, "jose")
    };

    for (who, answer) in [
        ("PyJWT", pyjwt(&token, ISSUER)),
        ("jose", jose(&token, ISSUER)),
    ] {
        assert_eq!(answer["valid"], true, "{who} ({algorithm}): {answer}");
        assert_eq!(answer["alg"], algorithm, "{who}");
        assert_eq!(answer["claims"]["sub"], user_id.as_str(), "{who}");
        assert_eq!(answer["claims"]["email"], "ada@example.com", "{who}");
        assert_eq!(answer["claims"]["iss"], ISSUER, "{who}");
    }
    let bad = tampered(&token);
    for (who, answer) in [
        ("PyJWT", pyjwt(&bad, ISSUER)),
        ("jose", jose(&bad, ISSUER)),
        ("PyJWT wrong issuer", pyjwt(&token, "http://elsewhere.test")),
        ("jose wrong issuer", jose(&token, "http://elsewhere.test")),
    ] {
        assert_eq!(answer["valid"], false, "{who} ({algorithm}): {answer}");
    }

    // auth-core's JwksVerifier, as a resource server would use it (the example fetches the
    // JWK Set over HTTP).
    let mut child = Command::new(example("verify_tokens"))
        .args([&app.url("/.well-known/jwks.json"), ISSUER, AUDIENCE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("verify_tokens runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{token}\n{bad}\n").as_bytes())
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        answers.len(),
        2,
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(answers[0]["valid"], true, "{}", answers[0]);
    assert_eq!(answers[0]["sub"], user_id.as_str());
    assert_eq!(answers[1]["valid"], false);
    assert_eq!(answers[1]["error"], "invalid access token: bad signature");
    assert_eq!(out.status.code(), Some(1), "one token was invalid");
    let _ = std::fs::remove_file(&jwks_file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_tokens_verify_with_pyjwt_jose_and_jwks_verifier() {
    tokens_verify_with_independent_libraries("EdDSA", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_verify_with_pyjwt_jose_and_jwks_verifier() {
    tokens_verify_with_independent_libraries("ES256", Some("es256-private.pem")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_verify_with_pyjwt_jose_and_jwks_verifier() {
    tokens_verify_with_independent_libraries("RS256", Some("rs256-private.pem")).await;
}

/// The example that embeds auth-core with the in-memory store runs every step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_memory_example_runs() {
    let exe = example("embedded_memory");
    let out = tokio::task::spawn_blocking(move || Command::new(exe).output())
        .await
        .unwrap()
        .expect("embedded_memory runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all steps passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
