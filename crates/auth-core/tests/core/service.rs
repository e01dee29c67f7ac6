use auth_core::AuthError;
use auth_core::AuthSettings;
use auth_core::flows::SignupOutcome;
use auth_core::model::{ClientInfo, ProfileUpdate};
use auth_core::password::{HashingConfig, PasswordRejection};
use auth_core::ports::{SessionStore, UserStore};
use auth_core::service::{
    Authenticated, Introspection, IntrospectionClient, IssuedTokens, LogoutScope, SignupRequest,
};
use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};

use crate::support::{Harness, fast_hashing, harness, harness_on, harness_with};

const PASSWORD: &str = "correct horse battery";

fn signup_req(email: &str) -> SignupRequest {
    SignupRequest {
        email: email.into(),
        password: SecretString::from(PASSWORD),
        name: Some("  Ada Lovelace ".into()),
        captcha_token: None,
    }
}

async fn signup_ok(service: &auth_core::AuthCore, req: SignupRequest) -> IssuedTokens {
    match service.mailbox().signup(req, client()).await.unwrap() {
        SignupOutcome::SignedIn(t) => *t,
        SignupOutcome::VerificationSent => panic!("expected to be signed in"),
    }
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("127.0.0.1".into()),
        user_agent: Some("tests".into()),
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

async fn signed_up(h: &Harness, email: &str) -> (Authenticated, SecretString) {
    let t = signup_ok(&h.service, signup_req(email)).await;
    (
        h.service
            .sessions()
            .authenticate(&t.access_token)
            .await
            .unwrap(),
        t.refresh_token,
    )
}

#[tokio::test]
async fn signup_stores_a_hashed_password_and_signs_in() {
    let h = harness();
    let t = signup_ok(&h.service, signup_req(" Ada@Example.COM ")).await;
    assert_eq!(t.user.email, "Ada@example.com");
    assert_eq!(t.user.name.as_deref(), Some("Ada Lovelace"));
    assert!(!t.user.email_verified);
    assert_eq!(t.expires_in, 900);

    let creds = h
        .store
        .credentials_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    let stored = creds.password_hash.unwrap();
    assert!(stored.starts_with("$argon2id$"));
    assert!(!stored.contains(PASSWORD));

    let caller = h
        .service
        .sessions()
        .authenticate(&t.access_token)
        .await
        .unwrap();
    assert_eq!(caller.user_id, t.user.id);
    assert_eq!(caller.session_id, t.session_id);
    assert_eq!(caller.claims.amr, vec!["pwd"]);
    assert_eq!(caller.claims.aal, "aal1");
    assert_eq!(caller.claims.email, "Ada@example.com");

    // The refresh token is stored only as its hash.
    let record = h
        .store
        .refresh_token(&auth_core::opaque::hash(t.refresh_token.expose_secret()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.session_id, t.session_id);
    let session = h.store.session(t.session_id).await.unwrap().unwrap();
    assert_eq!(session.client, client());
    assert_eq!(session.expires_at, session.created_at + Duration::days(30));
}

#[tokio::test]
async fn signup_refuses_a_taken_email_whatever_its_case() {
    let h = harness();
    signup_ok(&h.service, signup_req("ada@example.com")).await;
    let err = h
        .service
        .mailbox()
        .signup(signup_req("ADA@EXAMPLE.com"), client())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, AuthError::EmailTaken), "{err:?}");
}

#[tokio::test]
async fn signup_validates_email_password_and_name() {
    let h = harness();
    let err = h
        .service
        .mailbox()
        .signup(signup_req("not-an-email"), client())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, AuthError::InvalidEmail(_)));
    let mut req = signup_req("ada@example.com");
    req.password = secret("password123");
    assert!(matches!(
        h.service.mailbox().signup(req, client()).await.map(|_| ()),
        Err(AuthError::WeakPassword(PasswordRejection::Common))
    ));
    let mut req = signup_req("ada@example.com");
    req.password = secret("short");
    assert!(matches!(
        h.service.mailbox().signup(req, client()).await.map(|_| ()),
        Err(AuthError::WeakPassword(PasswordRejection::TooShort {
            min: 8
        }))
    ));
    let mut req = signup_req("ada@example.com");
    req.name = Some("x".repeat(201));
    assert!(matches!(
        h.service.mailbox().signup(req, client()).await.map(|_| ()),
        Err(AuthError::InvalidField { field: "name", .. })
    ));
    // Nothing was created by the refused attempts.
    assert!(
        h.store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn login_accepts_the_right_password_only_and_never_says_which_part_was_wrong() {
    let h = harness();
    signup_ok(&h.service, signup_req("ada@example.com")).await;
    let t = h
        .service
        .sessions()
        .login("ADA@example.com", &secret(PASSWORD), client(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    assert_eq!(t.user.email, "ada@example.com");
    for (email, password) in [
        ("ada@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let err = h
            .service
            .sessions()
            .login(email, &secret(password), client(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidCredentials),
            "{email}: {err:?}"
        );
    }
    let huge = "x".repeat(5000);
    assert!(matches!(
        h.service
            .sessions()
            .login("ada@example.com", &secret(&huge), client(), None)
            .await,
        Err(AuthError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn login_rehashes_a_password_stored_with_old_parameters() {
    let old = harness();
    signup_ok(&old.service, signup_req("ada@example.com")).await;
    let before = old
        .store
        .credentials_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(before.contains("m=256,t=1,p=1"));

    // Same store, stronger parameters: the next login upgrades the stored hash.
    let stronger = HashingConfig {
        memory_kib: 512,
        iterations: 2,
        ..fast_hashing()
    };
    let new = harness_on(old.store.clone(), AuthSettings::default(), stronger);
    let ports_store = old.store.clone();
    let service = &new.service;
    service
        .sessions()
        .login("ada@example.com", &secret(PASSWORD), client(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    let after = ports_store
        .credentials_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(after.contains("m=512,t=2,p=1"), "{after}");
    // And the password still works against the new hash.
    service
        .sessions()
        .login("ada@example.com", &secret(PASSWORD), client(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
}

#[tokio::test]
async fn refresh_rotates_the_token_within_the_same_session() {
    let h = harness();
    let t0 = signup_ok(&h.service, signup_req("ada@example.com")).await;
    h.clock.advance(Duration::minutes(1));
    let t1 = h
        .service
        .sessions()
        .refresh(&t0.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    assert_ne!(
        t1.refresh_token.expose_secret(),
        t0.refresh_token.expose_secret()
    );
    assert_eq!(t1.session_id, t0.session_id);
    let old = h
        .store
        .refresh_token(&auth_core::opaque::hash(t0.refresh_token.expose_secret()))
        .await
        .unwrap()
        .unwrap();
    assert!(old.rotated_at.is_some());
    let session = h.store.session(t0.session_id).await.unwrap().unwrap();
    assert_eq!(session.last_used_at, h.clock_now());
    h.service
        .sessions()
        .authenticate(&t1.access_token)
        .await
        .unwrap();
}

trait ClockNow {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc>;
}
impl ClockNow for Harness {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use auth_core::clock::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn a_rotated_token_within_the_grace_window_gets_the_current_token() {
    let h = harness();
    let t0 = signup_ok(&h.service, signup_req("ada@example.com")).await;
    let t1 = h
        .service
        .sessions()
        .refresh(&t0.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    let t2 = h
        .service
        .sessions()
        .refresh(&t1.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(5));
    // Two generations behind, still within the window of the token presented.
    let again = h
        .service
        .sessions()
        .refresh(&t0.refresh_token, &ClientInfo::default())
        .await;
    // t0 was rotated 5 s ago (same instant as t1): within 10 s, so it converges on t2.
    let again = again.unwrap();
    assert_eq!(
        again.refresh_token.expose_secret(),
        t2.refresh_token.expose_secret()
    );
    assert_eq!(again.session_id, t0.session_id);
    // The current token still rotates normally afterwards.
    h.service
        .sessions()
        .refresh(&t2.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_session() {
    let h = harness();
    let t0 = signup_ok(&h.service, signup_req("ada@example.com")).await;
    let t1 = h
        .service
        .sessions()
        .refresh(&t0.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(11));
    assert!(matches!(
        h.service
            .sessions()
            .refresh(&t0.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::InvalidRefreshToken)
    ));
    let session = h.store.session(t0.session_id).await.unwrap().unwrap();
    assert!(session.revoked_at.is_some());
    // The legitimate holder's tokens die with the session.
    assert!(matches!(
        h.service
            .sessions()
            .refresh(&t1.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::InvalidRefreshToken)
    ));
    assert!(matches!(
        h.service.sessions().authenticate(&t1.access_token).await,
        Err(AuthError::InvalidToken(_))
    ));
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_converge_on_one_session() {
    let h = std::sync::Arc::new(harness());
    let t0 = signup_ok(&h.service, signup_req("ada@example.com")).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let h = h.clone();
        let token = t0.refresh_token.clone();
        tasks.push(tokio::spawn(async move {
            h.service
                .sessions()
                .refresh(&token, &ClientInfo::default())
                .await
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let issued = t.await.unwrap().unwrap();
        assert_eq!(issued.session_id, t0.session_id);
        tokens.insert(issued.refresh_token.expose_secret().to_owned());
    }
    // In memory the calls serialise: every caller gets the one successor.
    assert_eq!(tokens.len(), 1);
    let caller = h
        .service
        .sessions()
        .authenticate(&t0.access_token)
        .await
        .unwrap();
    assert_eq!(
        h.service.sessions().sessions(&caller).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn sessions_end_after_idle_and_absolute_lifetimes() {
    let h = harness();
    let t0 = signup_ok(&h.service, signup_req("ada@example.com")).await;
    h.clock.advance(Duration::days(7) + Duration::seconds(1));
    assert!(matches!(
        h.service
            .sessions()
            .refresh(&t0.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::InvalidRefreshToken)
    ));

    // Refreshing every 6 days keeps a session alive only until its absolute end.
    let mut t = h
        .service
        .sessions()
        .login("ada@example.com", &secret(PASSWORD), client(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    for _ in 0..4 {
        h.clock.advance(Duration::days(6));
        t = h
            .service
            .sessions()
            .refresh(&t.refresh_token, &ClientInfo::default())
            .await
            .unwrap();
    }
    h.clock.advance(Duration::days(6) + Duration::seconds(1));
    assert!(matches!(
        h.service
            .sessions()
            .refresh(&t.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::InvalidRefreshToken)
    ));
}

#[tokio::test]
async fn access_tokens_never_outlive_their_session() {
    let mut settings = AuthSettings::default();
    settings.sessions.idle_ttl = Duration::days(60);
    let h = harness_with(settings, fast_hashing());
    let t0 = signup_ok(&h.service, signup_req("ada@example.com")).await;
    h.clock.advance(Duration::days(30) - Duration::minutes(5));
    let t1 = h
        .service
        .sessions()
        .refresh(&t0.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(t1.expires_in, 300);
}

#[tokio::test]
async fn malformed_and_unknown_refresh_tokens_are_refused() {
    let h = harness();
    for bad in ["", "nope", &"A".repeat(43)] {
        assert!(matches!(
            h.service
                .sessions()
                .refresh(&secret(bad), &ClientInfo::default())
                .await,
            Err(AuthError::InvalidRefreshToken)
        ));
    }
}

#[tokio::test]
async fn logout_scopes_end_the_right_sessions_at_once() {
    let h = harness();
    let (a, _) = signed_up(&h, "ada@example.com").await;
    let pw = secret(PASSWORD);
    let login = || {
        h.service
            .sessions()
            .login("ada@example.com", &pw, client(), None)
    };
    let b = h
        .service
        .sessions()
        .authenticate(&login().await.unwrap().tokens().unwrap().access_token)
        .await
        .unwrap();
    let c = h
        .service
        .sessions()
        .authenticate(&login().await.unwrap().tokens().unwrap().access_token)
        .await
        .unwrap();
    let (other_user, _) = signed_up(&h, "bob@example.com").await;

    h.service
        .sessions()
        .logout(&a, LogoutScope::Session)
        .await
        .unwrap();
    assert!(
        h.service
            .sessions()
            .authenticate(&a.claims_token(&h))
            .await
            .is_err()
    );
    assert_eq!(h.service.sessions().sessions(&b).await.unwrap().len(), 2);

    h.service
        .sessions()
        .logout(&b, LogoutScope::Others)
        .await
        .unwrap();
    let left = h.service.sessions().sessions(&b).await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].current);
    assert!(
        h.store
            .session(c.session_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    h.service
        .sessions()
        .logout(&b, LogoutScope::All)
        .await
        .unwrap();
    assert!(
        h.store
            .session(b.session_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    // Another user's session is untouched.
    assert_eq!(
        h.service
            .sessions()
            .sessions(&other_user)
            .await
            .unwrap()
            .len(),
        1
    );
}

trait Token {
    fn claims_token(&self, h: &Harness) -> String;
}
impl Token for Authenticated {
    /// Re-sign the caller's claims: the same token content the client holds.
    fn claims_token(&self, h: &Harness) -> String {
        h.service.tokens().sign(&self.claims).unwrap()
    }
}

#[tokio::test]
async fn revocation_accepts_refresh_and_access_tokens_and_ignores_junk() {
    let h = harness();
    let t = signup_ok(&h.service, signup_req("ada@example.com")).await;
    h.service.sessions().revoke(&t.refresh_token).await.unwrap();
    assert!(
        h.store
            .session(t.session_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    let t = h
        .service
        .sessions()
        .login("ada@example.com", &secret(PASSWORD), client(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    h.service
        .sessions()
        .revoke(&secret(&t.access_token))
        .await
        .unwrap();
    assert!(
        h.store
            .session(t.session_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    h.service
        .sessions()
        .revoke(&secret("garbage"))
        .await
        .unwrap();
    h.service
        .sessions()
        .revoke(&secret(&"A".repeat(43)))
        .await
        .unwrap();
}

#[tokio::test]
async fn introspection_requires_client_credentials_and_reports_liveness() {
    let settings = AuthSettings {
        introspection_clients: vec![IntrospectionClient {
            id: "api".into(),
            secret: secret("s3cret-s3cret"),
        }],
        ..AuthSettings::default()
    };
    let h = harness_with(settings, fast_hashing());
    assert!(
        h.service
            .sessions()
            .authenticate_introspection_client("api", &secret("s3cret-s3cret"))
            .is_ok()
    );
    assert!(matches!(
        h.service
            .sessions()
            .authenticate_introspection_client("api", &secret("wrong")),
        Err(AuthError::InvalidClient)
    ));
    assert!(matches!(
        h.service
            .sessions()
            .authenticate_introspection_client("other", &secret("s3cret-s3cret")),
        Err(AuthError::InvalidClient)
    ));

    let t = signup_ok(&h.service, signup_req("ada@example.com")).await;
    match h
        .service
        .sessions()
        .introspect(&secret(&t.access_token), &ClientInfo::default())
        .await
        .unwrap()
    {
        Introspection::AccessToken(c) => assert_eq!(c.sid, t.session_id.to_string()),
        other => panic!("{other:?}"),
    }
    match h
        .service
        .sessions()
        .introspect(&t.refresh_token, &ClientInfo::default())
        .await
        .unwrap()
    {
        Introspection::RefreshToken { sub, sid, .. } => {
            assert_eq!((sub, sid), (t.user.id, t.session_id))
        }
        other => panic!("{other:?}"),
    }
    let caller = h
        .service
        .sessions()
        .authenticate(&t.access_token)
        .await
        .unwrap();
    h.service
        .sessions()
        .logout(&caller, LogoutScope::Session)
        .await
        .unwrap();
    assert!(matches!(
        h.service
            .sessions()
            .introspect(&secret(&t.access_token), &ClientInfo::default())
            .await
            .unwrap(),
        Introspection::Inactive
    ));
    assert!(matches!(
        h.service
            .sessions()
            .introspect(&t.refresh_token, &ClientInfo::default())
            .await
            .unwrap(),
        Introspection::Inactive
    ));
    assert!(matches!(
        h.service
            .sessions()
            .introspect(&secret("junk"), &ClientInfo::default())
            .await
            .unwrap(),
        Introspection::Inactive
    ));
}

#[tokio::test]
async fn profile_updates_are_validated_and_clearable() {
    let h = harness();
    let (caller, _) = signed_up(&h, "ada@example.com").await;
    let user = h
        .service
        .sessions()
        .update_me(
            &caller,
            ProfileUpdate {
                name: Some(Some(" Countess ".into())),
                avatar_url: Some(Some("https://img.example.com/a.png".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(user.name.as_deref(), Some("Countess"));
    assert_eq!(
        user.avatar_url_or_gravatar(),
        "https://img.example.com/a.png"
    );

    let bad = h
        .service
        .sessions()
        .update_me(
            &caller,
            ProfileUpdate {
                avatar_url: Some(Some("javascript:alert(1)".into())),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(
        bad,
        Err(AuthError::InvalidField {
            field: "avatar_url",
            ..
        })
    ));

    let user = h
        .service
        .sessions()
        .update_me(
            &caller,
            ProfileUpdate {
                name: Some(None),
                avatar_url: Some(None),
            },
        )
        .await
        .unwrap();
    assert_eq!(user.name, None);
    assert!(
        user.avatar_url_or_gravatar()
            .starts_with("https://gravatar.com/avatar/")
    );
    assert_eq!(h.service.sessions().me(&caller).await.unwrap(), user);
}

#[tokio::test]
async fn a_user_can_revoke_only_their_own_sessions() {
    let h = harness();
    let (ada, _) = signed_up(&h, "ada@example.com").await;
    let (bob, _) = signed_up(&h, "bob@example.com").await;
    assert!(matches!(
        h.service
            .sessions()
            .revoke_own_session(&ada, bob.session_id)
            .await,
        Err(AuthError::NotFound)
    ));
    assert!(
        h.store
            .session(bob.session_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    h.service
        .sessions()
        .revoke_own_session(&ada, ada.session_id)
        .await
        .unwrap();
    assert!(matches!(
        h.service
            .sessions()
            .revoke_own_session(&ada, ada.session_id)
            .await,
        Err(AuthError::NotFound)
    ));
}

#[tokio::test]
async fn purge_removes_only_sessions_that_ended_long_ago() {
    let h = harness();
    let (ada, _) = signed_up(&h, "ada@example.com").await;
    let (bob, _) = signed_up(&h, "bob@example.com").await;
    h.service
        .sessions()
        .logout(&ada, LogoutScope::Session)
        .await
        .unwrap();
    h.clock.advance(Duration::days(2));
    assert_eq!(
        h.service
            .sessions()
            .purge_ended_sessions(Duration::days(1))
            .await
            .unwrap(),
        1
    );
    assert!(h.store.session(ada.session_id).await.unwrap().is_none());
    assert!(h.store.session(bob.session_id).await.unwrap().is_some());
}
