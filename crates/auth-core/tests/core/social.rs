//! Social sign-in use cases on the in-memory store, a manual clock and a scripted provider
//! (the adapters are tested against real peers in the end-to-end suite).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use auth_core::AuthCore;
use auth_core::AuthError;
use auth_core::clock::ManualClock;
use auth_core::events::EventKind;
use auth_core::identity::{
    AuthorizationRequest, CodeExchange, ExternalIdentity, IdentityProvider, IdentityStore as _,
    ProviderCredential, ProviderError,
};
use auth_core::memory::MemoryStore;
use auth_core::model::ClientInfo;
use auth_core::password::Argon2Hasher;
use auth_core::ports::UserStore as _;
use auth_core::random::OsRandom;
use auth_core::secret_box::SecretBox;
use auth_core::social::{
    ProviderEntry, SignInIntent, SignupMode, SocialService, SocialSettings, pkce_challenge,
};
use auth_core::{AuthSettings, Ports};
use chrono::{Duration, TimeZone, Utc};
use secrecy::SecretString;

use crate::support::{
    PlainRenderer, RecordingEvents, RecordingMailer, ed25519_issuer, fast_hashing,
};

/// Answers per credential (the ID token or access token string) and per authorization code.
#[derive(Default)]
struct Scripted {
    answers: Mutex<HashMap<String, Result<ExternalIdentity, ProviderError>>>,
    last_authorization: Mutex<Option<AuthorizationRequest>>,
}

impl Scripted {
    fn answer(&self, key: &str, answer: Result<ExternalIdentity, ProviderError>) {
        self.answers.lock().unwrap().insert(key.to_owned(), answer);
    }

    fn lookup(&self, key: &str) -> Result<ExternalIdentity, ProviderError> {
        self.answers
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_else(|| Err(ProviderError::InvalidIdToken("unknown".into())))
    }
}

#[async_trait]
impl IdentityProvider for Scripted {
    async fn verify(
        &self,
        credential: &ProviderCredential,
    ) -> Result<ExternalIdentity, ProviderError> {
        use secrecy::ExposeSecret as _;
        match credential {
            ProviderCredential::IdToken { id_token, .. } => self.lookup(id_token.expose_secret()),
            ProviderCredential::AccessToken { access_token, .. } => {
                self.lookup(access_token.expose_secret())
            }
        }
    }

    async fn authorization_url(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<String, ProviderError> {
        *self.last_authorization.lock().unwrap() = Some(request.clone());
        Ok(format!("https://op.test/auth?state={}", request.state))
    }

    async fn exchange_code(
        &self,
        exchange: &CodeExchange,
    ) -> Result<ExternalIdentity, ProviderError> {
        self.lookup(&exchange.code)
    }
}

struct Social {
    service: SocialService,
    auth: Arc<AuthCore>,
    provider: Arc<Scripted>,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    events: Arc<RecordingEvents>,
}

fn social(signup: SignupMode) -> Social {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
    ));
    let events = Arc::new(RecordingEvents::default());
    let ports = Ports {
        users: store.clone(),
        sessions: store.clone(),
        hasher: Arc::new(Argon2Hasher::new(&fast_hashing()).unwrap()),
        tokens: Arc::new(ed25519_issuer()),
        clock: clock.clone(),
        rng: Arc::new(OsRandom),
        one_time: store.clone(),
        outbox: store.clone(),
        sealer: Arc::new(SecretBox::new(&[(1, [9; 32])]).unwrap()),
        renderer: Arc::new(PlainRenderer),
        mailer: Arc::new(RecordingMailer::default()),
        events: events.clone(),
        rate_limits: store.clone(),
        lockouts: store.clone(),
        captcha: None,
        breached: None,
        operators: store.clone(),
        audit: store.clone(),
        webhooks: store.clone(),
        webhook_sender: Arc::new(crate::support::UnreachableWebhooks),
        mfa: store.clone(),
        passkeys: store.clone(),
        passkey_ceremonies: None,
        sms: None,
    };
    let auth = Arc::new(AuthCore::new(ports, AuthSettings::default()));
    let provider = Arc::new(Scripted::default());
    let mut providers = HashMap::new();
    providers.insert(
        "op".to_owned(),
        ProviderEntry {
            provider: provider.clone(),
            signup,
        },
    );
    let service = SocialService::new(
        auth.clone(),
        store.clone(),
        providers,
        SocialSettings {
            public_url: "https://auth.test".into(),
            redirect_allow_list: vec!["https://app.test/done".into()],
            ..SocialSettings::default()
        },
    );
    Social {
        service,
        auth,
        provider,
        store,
        clock,
        events,
    }
}

fn ada(verified: bool) -> ExternalIdentity {
    ExternalIdentity {
        provider: String::new(),
        subject: "sub-ada".into(),
        email: Some("ada@example.com".into()),
        email_verified: verified,
        name: Some("Ada".into()),
        avatar_url: None,
    }
}

fn id_token(s: &str) -> ProviderCredential {
    ProviderCredential::IdToken {
        id_token: SecretString::from(s.to_owned()),
        nonce: None,
    }
}

async fn sign_in(s: &Social, token: &str) -> Result<auth_core::service::IssuedTokens, AuthError> {
    s.service
        .sign_in(
            "op",
            &id_token(token),
            SignInIntent::Signin,
            None,
            ClientInfo::default(),
        )
        .await
        .map(|o| o.tokens().expect("no second factor in these tests"))
}

/// Run `authorize` then `callback` with the provider answering `code`; returns the app's
/// one-time code and its verifier.
async fn browser_flow(s: &Social, code: &str) -> (String, String) {
    let verifier = "v".repeat(50);
    s.service
        .authorize(
            "op",
            "https://app.test/done",
            &pkce_challenge(&verifier),
            "S256",
            SignInIntent::Signin,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let state = s
        .provider
        .last_authorization
        .lock()
        .unwrap()
        .clone()
        .unwrap()
        .state;
    let location = s
        .service
        .callback("op", Some(&state), Some(code), None, ClientInfo::default())
        .await
        .unwrap();
    let one_time = location
        .strip_prefix("https://app.test/done?code=")
        .unwrap()
        .to_owned();
    (one_time, verifier)
}

#[tokio::test]
async fn the_one_time_code_dies_after_sixty_seconds() {
    let s = social(SignupMode::Auto);
    s.provider.answer("provider-code", Ok(ada(true)));
    let (code, verifier) = browser_flow(&s, "provider-code").await;
    s.clock.advance(Duration::seconds(61));
    let err = s
        .service
        .exchange(
            &code.into(),
            &verifier.clone().into(),
            ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::InvalidCode), "{err:?}");

    let (code, verifier) = browser_flow(&s, "provider-code").await;
    s.clock.advance(Duration::seconds(59));
    let tokens = s
        .service
        .exchange(&code.into(), &verifier.into(), ClientInfo::default())
        .await
        .unwrap()
        .tokens()
        .unwrap();
    assert_eq!(tokens.user.email, "ada@example.com");
}

#[tokio::test]
async fn a_state_dies_after_ten_minutes() {
    let s = social(SignupMode::Auto);
    s.provider.answer("provider-code", Ok(ada(true)));
    s.service
        .authorize(
            "op",
            "https://app.test/done",
            &pkce_challenge(&"v".repeat(50)),
            "S256",
            SignInIntent::Signin,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let state = s
        .provider
        .last_authorization
        .lock()
        .unwrap()
        .clone()
        .unwrap()
        .state;
    s.clock.advance(Duration::minutes(10));
    let failure = s
        .service
        .callback(
            "op",
            Some(&state),
            Some("provider-code"),
            None,
            ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(failure.error, AuthError::InvalidOAuthState));
    assert_eq!(
        failure.redirect_to, None,
        "an unknown state has nowhere to go back to"
    );
    assert!(
        s.store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_unavailable_provider_creates_nothing() {
    let s = social(SignupMode::Auto);
    s.provider.answer(
        "t",
        Err(ProviderError::Unavailable("connection refused".into())),
    );
    let err = sign_in(&s, "t").await.unwrap_err();
    assert!(matches!(err, AuthError::ProviderUnavailable(_)), "{err:?}");
    assert!(
        s.store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.events.kinds(), vec![EventKind::LoginFailed]);
}

#[tokio::test]
async fn disabled_sign_up_never_creates_an_account() {
    let s = social(SignupMode::Disabled);
    s.provider.answer("t", Ok(ada(true)));
    let err = sign_in(&s, "t").await.unwrap_err();
    assert!(matches!(err, AuthError::SignupDisabled), "{err:?}");
    assert!(
        s.store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_social_sign_in_opens_an_oauth_session_and_says_so_without_secrets() {
    let s = social(SignupMode::Auto);
    s.provider.answer("secret-id-token", Ok(ada(true)));
    let tokens = sign_in(&s, "secret-id-token").await.unwrap();
    assert!(tokens.user.email_verified, "the provider verified it");
    let identity = s
        .store
        .identity_by_subject("op", "sub-ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, tokens.user.id);
    assert_eq!(
        s.events.kinds(),
        vec![EventKind::SignedUp, EventKind::SocialSignIn]
    );
    let recorded = format!("{:?}", s.events.0.lock().unwrap());
    assert!(!recorded.contains("secret-id-token"));
    let session = auth_core::ports::SessionStore::session(s.store.as_ref(), tokens.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.amr, vec!["oauth".to_owned()]);
    assert_eq!(session.aal, "aal1");
}

#[tokio::test]
async fn an_unknown_provider_is_refused() {
    let s = social(SignupMode::Auto);
    let err = s
        .service
        .sign_in(
            "nope",
            &id_token("t"),
            SignInIntent::Signin,
            None,
            ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::UnknownProvider));
}

#[tokio::test]
async fn no_account_is_created_with_an_email_the_provider_did_not_verify() {
    let s = social(SignupMode::Auto);
    s.provider.answer("t", Ok(ada(false)));
    let err = sign_in(&s, "t").await.unwrap_err();
    assert!(matches!(err, AuthError::ProviderEmailUnverified), "{err:?}");
    assert!(
        s.store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.store
            .identity_by_subject("op", "sub-ada")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn strict_mode_redirect_flow_signs_up_only_when_asked() {
    let s = social(SignupMode::Strict);
    s.provider.answer("provider-code", Ok(ada(true)));
    let start = |intent| {
        let s = &s;
        async move {
            s.service
                .authorize(
                    "op",
                    "https://app.test/done",
                    &pkce_challenge(&"v".repeat(50)),
                    "S256",
                    intent,
                    &ClientInfo::default(),
                )
                .await
                .unwrap();
            let state = s
                .provider
                .last_authorization
                .lock()
                .unwrap()
                .clone()
                .unwrap()
                .state;
            s.service
                .callback(
                    "op",
                    Some(&state),
                    Some("provider-code"),
                    None,
                    ClientInfo::default(),
                )
                .await
        }
    };
    let failure = start(SignInIntent::Signin).await.unwrap_err();
    assert!(matches!(failure.error, AuthError::SignupRequired));
    assert_eq!(
        failure.redirect_to.as_deref(),
        Some("https://app.test/done")
    );
    assert!(
        s.store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let location = start(SignInIntent::Signup).await.unwrap();
    assert!(location.starts_with("https://app.test/done?code="));
    assert!(
        s.store
            .identity_by_subject("op", "sub-ada")
            .await
            .unwrap()
            .is_some()
    );
    let failure = start(SignInIntent::Signup).await.unwrap_err();
    assert!(matches!(failure.error, AuthError::IdentityExists));
    assert!(start(SignInIntent::Signin).await.is_ok());
}

/// Start the session flow of a cookie-based client; returns the provider's state and the
/// redirect URI it was asked with.
async fn start_session_flow(s: &Social, service: &SocialService) -> (String, String) {
    service
        .authorize_session(
            "op",
            "https://app.test/done",
            SignInIntent::Signin,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let request = s
        .provider
        .last_authorization
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    (request.state, request.redirect_uri)
}

#[tokio::test]
async fn the_session_flow_opens_the_session_at_the_profile_callback() {
    let s = social(SignupMode::Auto);
    s.provider.answer("provider-code", Ok(ada(true)));
    let service = s
        .service
        .for_profile(s.auth.clone())
        .with_callback_path("/compat/x/oauth/{provider}/callback");
    let (state, redirect_uri) = start_session_flow(&s, &service).await;
    assert_eq!(redirect_uri, "https://auth.test/compat/x/oauth/op/callback");
    let done = service
        .callback_session(
            "op",
            Some(&state),
            Some("provider-code"),
            None,
            ClientInfo::default(),
        )
        .await
        .unwrap();
    assert_eq!(done.redirect_to, "https://app.test/done");
    let tokens = done.outcome.tokens().expect("a session, no second factor");
    assert_eq!(tokens.user.email, "ada@example.com");
    let identity = s
        .store
        .identity_by_subject("op", "sub-ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, tokens.user.id);
    let session = auth_core::ports::SessionStore::session(s.store.as_ref(), tokens.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.amr, vec!["oauth".to_owned()]);
    assert_eq!(
        s.events.kinds(),
        vec![EventKind::SignedUp, EventKind::SocialSignIn]
    );

    // The state is single use: a replay has nowhere to go back to and opens nothing.
    let failure = service
        .callback_session(
            "op",
            Some(&state),
            Some("provider-code"),
            None,
            ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(failure.error, AuthError::InvalidOAuthState));
    assert_eq!(failure.redirect_to, None);
    assert_eq!(s.events.kinds().len(), 2);

    // The canonical service still asks for its own callback.
    s.service
        .authorize(
            "op",
            "https://app.test/done",
            &pkce_challenge(&"v".repeat(50)),
            "S256",
            SignInIntent::Signin,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let request = s
        .provider
        .last_authorization
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(
        request.redirect_uri,
        "https://auth.test/api/v1/auth/oauth/op/callback"
    );
}

#[tokio::test]
async fn the_two_browser_flows_do_not_redeem_each_others_states() {
    let s = social(SignupMode::Auto);
    s.provider.answer("provider-code", Ok(ada(true)));
    // A session-flow state at the app-code callback: refused, consumed, nothing created.
    let (state, _) = start_session_flow(&s, &s.service).await;
    let failure = s
        .service
        .callback(
            "op",
            Some(&state),
            Some("provider-code"),
            None,
            ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(failure.error, AuthError::InvalidOAuthState));
    assert_eq!(
        failure.redirect_to.as_deref(),
        Some("https://app.test/done")
    );
    // An app-code state at the session callback: refused the same way.
    s.service
        .authorize(
            "op",
            "https://app.test/done",
            &pkce_challenge(&"v".repeat(50)),
            "S256",
            SignInIntent::Signin,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let state = s
        .provider
        .last_authorization
        .lock()
        .unwrap()
        .clone()
        .unwrap()
        .state;
    let failure = s
        .service
        .callback_session(
            "op",
            Some(&state),
            Some("provider-code"),
            None,
            ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(failure.error, AuthError::InvalidOAuthState));
    assert!(
        s.store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.events.kinds().is_empty());
}

#[tokio::test]
async fn the_session_flow_checks_the_return_address_and_the_provider() {
    let s = social(SignupMode::Auto);
    let err = s
        .service
        .authorize_session(
            "op",
            "https://evil.test/done",
            SignInIntent::Signin,
            &ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::InvalidField {
                field: "redirect_to",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(s.provider.last_authorization.lock().unwrap().is_none());
    let err = s
        .service
        .authorize_session(
            "nope",
            "https://app.test/done",
            SignInIntent::Signin,
            &ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::UnknownProvider));

    // A provider error after a valid state goes back to the app; no session is opened.
    s.provider.answer("provider-code", Ok(ada(true)));
    let (state, _) = start_session_flow(&s, &s.service).await;
    let failure = s
        .service
        .callback_session(
            "op",
            Some(&state),
            None,
            Some("access_denied"),
            ClientInfo::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(failure.error, AuthError::ProviderRejected(_)));
    assert_eq!(
        failure.redirect_to.as_deref(),
        Some("https://app.test/done")
    );
    assert!(
        s.store
            .identity_by_subject("op", "sub-ada")
            .await
            .unwrap()
            .is_none()
    );
}

async fn strict(
    s: &Social,
    token: &str,
    intent: SignInIntent,
) -> Result<auth_core::service::IssuedTokens, AuthError> {
    s.service
        .sign_in_strict("op", &id_token(token), intent, None, ClientInfo::default())
        .await
        .map(|o| o.tokens().expect("no second factor in these tests"))
}

#[tokio::test]
async fn strict_sign_in_keeps_sign_up_and_sign_in_apart_whatever_the_mode() {
    // The provider's mode is `auto`: the strict call still never signs up implicitly.
    let s = social(SignupMode::Auto);
    s.provider.answer("t", Ok(ada(true)));
    let err = strict(&s, "t", SignInIntent::Signin).await.unwrap_err();
    assert!(matches!(err, AuthError::SignupRequired), "{err:?}");
    assert!(
        s.store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );

    let created = strict(&s, "t", SignInIntent::Signup).await.unwrap();
    assert_eq!(created.user.email, "ada@example.com");
    let identity = s
        .store
        .identity_by_subject("op", "sub-ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, created.user.id);
    let err = strict(&s, "t", SignInIntent::Signup).await.unwrap_err();
    assert!(matches!(err, AuthError::IdentityExists), "{err:?}");
    let again = strict(&s, "t", SignInIntent::Signin).await.unwrap();
    assert_eq!(again.user.id, created.user.id);

    // Another identity with the same, verified address: the account exists.
    let mut other = ada(true);
    other.subject = "sub-ada-2".into();
    s.provider.answer("t2", Ok(other.clone()));
    let err = strict(&s, "t2", SignInIntent::Signup).await.unwrap_err();
    assert!(matches!(err, AuthError::EmailTaken), "{err:?}");
    // An unverified address tells nothing about accounts.
    other.email_verified = false;
    s.provider.answer("t3", Ok(other));
    let err = strict(&s, "t3", SignInIntent::Signup).await.unwrap_err();
    assert!(matches!(err, AuthError::ProviderEmailUnverified), "{err:?}");
    assert!(
        s.store
            .identity_by_subject("op", "sub-ada-2")
            .await
            .unwrap()
            .is_none()
    );

    // No address at all: refused both ways, also for a known identity.
    let mut silent = ada(true);
    silent.email = None;
    s.provider.answer("t4", Ok(silent));
    for intent in [SignInIntent::Signup, SignInIntent::Signin] {
        let err = strict(&s, "t4", intent).await.unwrap_err();
        assert!(matches!(err, AuthError::ProviderEmailMissing), "{err:?}");
    }
}

#[tokio::test]
async fn strict_sign_up_never_creates_accounts_for_a_disabled_provider() {
    let s = social(SignupMode::Disabled);
    s.provider.answer("t", Ok(ada(true)));
    let err = strict(&s, "t", SignInIntent::Signup).await.unwrap_err();
    assert!(matches!(err, AuthError::SignupDisabled), "{err:?}");
    assert!(
        s.store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
}
