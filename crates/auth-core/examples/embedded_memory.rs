//! Embedding `auth-core` in another program with its own storage adapter: here the
//! in-memory store of the `memory` feature (the same one the core's tests use). A real
//! embedding implements the port traits of `auth_core::ports` over its own database, exactly
//! as `auth-db` does for SQLite and PostgreSQL.
//!
//! ```text
//! cargo run -p auth-core --example embedded_memory
//! ```
//!
//! Signs a user up, signs in, verifies the access token (as the service does on each
//! request, and as a resource server does with the JWK Set alone), rotates the refresh
//! token, refuses a wrong password, signs out everywhere and shows that the access token no
//! longer authenticates. Prints one `step: result` line per step and exits
//! 0 when every step behaved as expected.

#![allow(clippy::print_stdout)] // printing the steps is the example's output

use std::sync::Arc;

use async_trait::async_trait;
use auth_core::AuthCore;
use auth_core::clock::{Clock as _, SystemClock};
use auth_core::flows::SignupOutcome;
use auth_core::jwt::{JwksVerifier, JwtIssuer, KeySet, SigningAlgorithm, generate_ed25519_pem};
use auth_core::mail::{DeliveryError, EmailMessage, MailIntent, MailRenderer, Mailer};
use auth_core::memory::MemoryStore;
use auth_core::mfa::SignInOutcome;
use auth_core::model::ClientInfo;
use auth_core::random::{OsRandom, RandomSource as _};
use auth_core::secret_box::SecretBox;
use auth_core::service::{LogoutScope, SignupRequest};
use secrecy::{ExposeSecret as _, SecretString};

type Error = Box<dyn std::error::Error + Send + Sync>;

const ISSUER: &str = "https://embedded.example";
const AUDIENCE: &str = "authenticated";

/// Mail as plain `key=value` lines (an embedding brings its own templates).
struct PlainRenderer;

impl MailRenderer for PlainRenderer {
    fn render(&self, intent: &MailIntent) -> Result<EmailMessage, auth_core::error::AdapterError> {
        let text = intent
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(EmailMessage {
            to: intent.to.clone(),
            subject: intent.template.name().to_owned(),
            text,
            html: String::new(),
        })
    }
}

/// Mail goes nowhere in this example; an embedding plugs in its SMTP or API client.
struct NoMail;

#[async_trait]
impl Mailer for NoMail {
    async fn send(&self, _message: &EmailMessage) -> Result<(), DeliveryError> {
        Ok(())
    }
}

fn service(store: Arc<MemoryStore>) -> Result<AuthCore, Error> {
    // A fresh Ed25519 signing key; a real embedding keeps it (PEM) across restarts.
    let pem = generate_ed25519_pem(&OsRandom)?;
    let keys = KeySet::from_private_pem(
        SigningAlgorithm::EdDSA,
        pem.expose_secret().as_bytes(),
        None,
    )?;
    // Only what password sign-up and sign-in use: the stores they write, the signing key,
    // the sealing key of the outbox and mail. The builder defaults the rest (Argon2id, the
    // system clock, the OS random source, in-process rate limits and lockout, no second
    // factors, passkeys, administration, audit store or webhooks).
    let core = AuthCore::builder()
        .users(store.clone())
        .sessions(store.clone())
        .one_time(store.clone())
        .outbox(store)
        .tokens(Arc::new(JwtIssuer::new(keys, ISSUER, AUDIENCE, 0)))
        .sealer(Arc::new(SecretBox::new(&[(1, sealing_key())])?))
        .renderer(Arc::new(PlainRenderer))
        .mailer(Arc::new(NoMail))
        .build()?;
    Ok(core)
}

/// The key that seals pending mail in the outbox; a real embedding keeps it secret and
/// stable (and can rotate it: `SecretBox` takes several numbered keys).
fn sealing_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    OsRandom.fill(&mut key);
    key
}

fn check(step: &str, ok: bool, detail: impl std::fmt::Display) -> Result<(), Error> {
    println!("{step}: {}", if ok { "ok" } else { "FAILED" });
    if ok {
        Ok(())
    } else {
        Err(format!("{step}: {detail}").into())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let auth = service(Arc::new(MemoryStore::new()))?;
    let client = ClientInfo {
        ip: Some("127.0.0.1".into()),
        user_agent: Some("embedded_memory example".into()),
    };
    let password = SecretString::from("correct horse battery staple");

    let outcome = auth
        .mailbox()
        .signup(
            SignupRequest {
                email: "ada@example.com".into(),
                password: password.clone(),
                name: Some("Ada".into()),
                captcha_token: None,
            },
            client.clone(),
        )
        .await?;
    check(
        "signup",
        matches!(outcome, SignupOutcome::SignedIn(_)),
        "expected to be signed in",
    )?;

    // A user with a second factor gets `SignInOutcome::MfaRequired` here instead, and
    // finishes with `verify_mfa`.
    let tokens = match auth
        .sessions()
        .login("ada@example.com", &password, client.clone(), None)
        .await?
    {
        SignInOutcome::SignedIn(tokens) => *tokens,
        SignInOutcome::MfaRequired(_) => return Err("no second factor was enrolled".into()),
    };
    check("login", !tokens.access_token.is_empty(), "no access token")?;

    let caller = auth.sessions().authenticate(&tokens.access_token).await?;
    check(
        "authenticate",
        caller.claims.email == "ada@example.com",
        "wrong subject",
    )?;

    // What a resource server does with nothing but the published JWK Set.
    let verifier = JwksVerifier::new(&auth.tokens().jwks(), ISSUER, AUDIENCE, 0);
    let claims = verifier.verify(&tokens.access_token, SystemClock.now())?;
    check(
        "verify with the JWK Set",
        claims.sub == caller.user_id.to_string(),
        "sub differs",
    )?;

    let rotated = auth
        .sessions()
        .refresh(&tokens.refresh_token, &client)
        .await?;
    check(
        "refresh",
        rotated.refresh_token.expose_secret() != tokens.refresh_token.expose_secret(),
        "the refresh token did not rotate",
    )?;

    let wrong = auth
        .sessions()
        .login(
            "ada@example.com",
            &SecretString::from("wrong password"),
            client.clone(),
            None,
        )
        .await;
    check(
        "wrong password refused",
        wrong.is_err(),
        "a wrong password signed in",
    )?;

    let current = auth.sessions().authenticate(&rotated.access_token).await?;
    auth.sessions().logout(&current, LogoutScope::All).await?;
    let after = auth.sessions().authenticate(&rotated.access_token).await;
    check(
        "signed out everywhere",
        after.is_err(),
        "the access token still authenticates",
    )?;
    println!("all steps passed");
    Ok(())
}
