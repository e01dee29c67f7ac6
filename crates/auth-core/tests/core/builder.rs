//! `AuthCore::builder`: an embedding gives the stores password sign-in writes and gets
//! working defaults for the rest; a missing required port is named.

use std::sync::Arc;

use auth_core::events::EventKind;
use auth_core::flows::SignupOutcome;
use auth_core::memory::MemoryStore;
use auth_core::model::ClientInfo;
use auth_core::secret_box::SecretBox;
use auth_core::service::{LogoutScope, SignupRequest};
use auth_core::{AuthCore, AuthCoreBuilder, AuthError, BuildError};
use secrecy::SecretString;

use crate::support::{PlainRenderer, RecordingEvents, RecordingMailer, ed25519_issuer};

const PASSWORD: &str = "correct horse battery staple";

fn password_only(store: &Arc<MemoryStore>) -> AuthCoreBuilder {
    AuthCore::builder()
        .users(store.clone())
        .sessions(store.clone())
        .one_time(store.clone())
        .outbox(store.clone())
        .tokens(Arc::new(ed25519_issuer()))
        .sealer(Arc::new(SecretBox::new(&[(1, [7; 32])]).unwrap()))
        .renderer(Arc::new(PlainRenderer))
        .mailer(Arc::new(RecordingMailer::default()))
}

fn s(v: &str) -> SecretString {
    SecretString::from(v.to_owned())
}

#[test]
fn a_missing_required_port_is_named() {
    let store = Arc::new(MemoryStore::new());
    let missing = AuthCore::builder()
        .users(store.clone())
        .sessions(store.clone())
        .one_time(store.clone())
        .outbox(store)
        .build()
        .unwrap_err();
    assert!(
        matches!(missing, BuildError::Missing("tokens")),
        "{missing}"
    );
    assert_eq!(
        missing.to_string(),
        "auth-core builder: `tokens` is required"
    );
}

#[tokio::test]
async fn password_sign_in_runs_on_the_required_ports_alone() {
    let store = Arc::new(MemoryStore::new());
    let events = Arc::new(RecordingEvents::default());
    let core = password_only(&store)
        .events(events.clone())
        .build()
        .unwrap();

    let signup = core
        .mailbox()
        .signup(
            SignupRequest {
                email: "ada@example.com".into(),
                password: s(PASSWORD),
                name: None,
                captcha_token: None,
            },
            ClientInfo::default(),
        )
        .await
        .unwrap();
    assert!(matches!(signup, SignupOutcome::SignedIn(_)));

    // No second-factor store: nobody has a factor, so sign-in opens a session at once.
    let tokens = core
        .sessions()
        .login("ada@example.com", &s(PASSWORD), ClientInfo::default(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    let caller = core
        .sessions()
        .authenticate(&tokens.access_token)
        .await
        .unwrap();
    let rotated = core
        .sessions()
        .refresh(&tokens.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(rotated.session_id, tokens.session_id);

    // No audit store: a failed sign-in is still a 401 (its event reaches the sink).
    let wrong = core
        .sessions()
        .login(
            "ada@example.com",
            &s("wrong password!"),
            ClientInfo::default(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(wrong, AuthError::InvalidCredentials), "{wrong:?}");
    assert!(events.kinds().contains(&EventKind::LoginFailed));

    // What needs a store that was not given says so instead of storing it nowhere.
    let refused = core.mfa().enroll_totp(&caller, None).await.unwrap_err();
    assert!(matches!(refused, AuthError::Unavailable(_)), "{refused:?}");
    assert!(core.passkeys().passkeys(&caller).await.unwrap().is_empty());

    core.sessions()
        .logout(&caller, LogoutScope::All)
        .await
        .unwrap();
    assert!(
        core.sessions()
            .authenticate(&tokens.access_token)
            .await
            .is_err()
    );
}
