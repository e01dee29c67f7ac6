use auth_core::AuthError;
use auth_core::AuthSettings;
use auth_core::flows::{EmailConfirmation, SignupOutcome};
use auth_core::mail::DeliveryError;
use auth_core::model::ClientInfo;
use auth_core::ports::{SessionStore, UserStore};
use auth_core::service::{IssuedTokens, SignupRequest};
use chrono::Duration;
use secrecy::SecretString;

use crate::support::{Harness, fast_hashing, harness, harness_with};

const PASSWORD: &str = "correct horse battery";

fn s(v: &str) -> SecretString {
    SecretString::from(v)
}

fn req(email: &str) -> SignupRequest {
    SignupRequest {
        email: email.into(),
        password: s(PASSWORD),
        name: Some("Ada".into()),
        captcha_token: None,
    }
}

async fn signed_in(h: &Harness, email: &str) -> IssuedTokens {
    match h
        .service
        .mailbox()
        .signup(req(email), ClientInfo::default())
        .await
        .unwrap()
    {
        SignupOutcome::SignedIn(t) => *t,
        SignupOutcome::VerificationSent => panic!("confirmation is optional here"),
    }
}

fn required() -> Harness {
    let mut settings = AuthSettings::default();
    settings.email.confirmation = EmailConfirmation::Required;
    harness_with(settings, fast_hashing())
}

#[tokio::test]
async fn optional_confirmation_signs_in_and_mails_a_single_use_link() {
    let h = harness();
    let t = signed_in(&h, "ada@example.com").await;
    assert!(!t.user.email_verified);
    h.deliver().await;
    let token = h
        .mailer
        .token("ada@example.com", "verify_email")
        .expect("verification mail");
    let user = h.service.mailbox().verify_email(&s(&token)).await.unwrap();
    assert!(user.email_verified);
    assert!(
        h.store
            .user_by_id(t.user.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    assert!(matches!(
        h.service.mailbox().verify_email(&s(&token)).await,
        Err(AuthError::InvalidOneTimeToken)
    ));
}

#[tokio::test]
async fn verification_links_expire_and_a_new_one_retires_the_old() {
    let h = harness();
    let t = signed_in(&h, "ada@example.com").await;
    h.deliver().await;
    let first = h.mailer.token("ada@example.com", "verify_email").unwrap();
    let caller = h
        .service
        .sessions()
        .authenticate(&t.access_token)
        .await
        .unwrap();
    h.service
        .mailbox()
        .send_verification(&caller)
        .await
        .unwrap();
    h.deliver().await;
    let second = h.mailer.token("ada@example.com", "verify_email").unwrap();
    assert_ne!(first, second);
    assert!(matches!(
        h.service.mailbox().verify_email(&s(&first)).await,
        Err(AuthError::InvalidOneTimeToken)
    ));
    h.clock.advance(Duration::hours(24) + Duration::seconds(1));
    assert!(matches!(
        h.service.mailbox().verify_email(&s(&second)).await,
        Err(AuthError::InvalidOneTimeToken)
    ));
}

#[tokio::test]
async fn required_confirmation_holds_sign_in_until_the_link_is_followed() {
    let h = required();
    let outcome = h
        .service
        .mailbox()
        .signup(req("ada@example.com"), ClientInfo::default())
        .await
        .unwrap();
    assert!(matches!(outcome, SignupOutcome::VerificationSent));
    let login = h
        .service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), ClientInfo::default(), None)
        .await;
    assert!(matches!(login, Err(AuthError::EmailNotVerified)));
    // A wrong password still says only "invalid credentials".
    let wrong = h
        .service
        .sessions()
        .login(
            "ada@example.com",
            &s("not the password"),
            ClientInfo::default(),
            None,
        )
        .await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    h.deliver().await;
    let token = h.mailer.token("ada@example.com", "verify_email").unwrap();
    h.service.mailbox().verify_email(&s(&token)).await.unwrap();
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), ClientInfo::default(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
}

#[tokio::test]
async fn a_duplicate_signup_under_required_confirmation_answers_the_same_and_warns_the_owner() {
    let h = required();
    h.service
        .mailbox()
        .signup(req("ada@example.com"), ClientInfo::default())
        .await
        .unwrap();
    let again = h
        .service
        .mailbox()
        .signup(req("ADA@example.com"), ClientInfo::default())
        .await
        .unwrap();
    assert!(matches!(again, SignupOutcome::VerificationSent));
    h.deliver().await;
    assert_eq!(h.mailer.to("ada@example.com", "signup_attempted").len(), 1);
    assert_eq!(
        h.mailer.to("ada@example.com", "verify_email").len(),
        1,
        "no second account, no second link"
    );
}

#[tokio::test]
async fn forgot_password_does_the_same_work_for_known_and_unknown_addresses() {
    let h = harness();
    signed_in(&h, "ada@example.com").await;
    h.deliver().await;
    h.service
        .mailbox()
        .forgot_password("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.service
        .mailbox()
        .forgot_password("nobody@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    // At request time each wrote exactly one opaque job of the same kind.
    assert_eq!(
        h.store.pending_outbox_kinds(),
        vec!["password_reset_requested", "password_reset_requested"]
    );
    h.deliver().await;
    assert_eq!(h.mailer.to("ada@example.com", "password_reset").len(), 1);
    assert!(
        h.mailer
            .to("nobody@example.com", "password_reset")
            .is_empty()
    );
    assert!(matches!(
        h.service
            .mailbox()
            .forgot_password("not an email", &ClientInfo::default(), None)
            .await,
        Err(AuthError::InvalidEmail(_))
    ));
}

#[tokio::test]
async fn reset_sets_the_password_ends_every_session_and_is_single_use() {
    let h = harness();
    let t = signed_in(&h, "ada@example.com").await;
    h.service
        .mailbox()
        .forgot_password("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let token = h.mailer.token("ada@example.com", "password_reset").unwrap();
    let weak = h
        .service
        .mailbox()
        .reset_password(&s(&token), &s("password"), &ClientInfo::default())
        .await;
    assert!(matches!(weak, Err(AuthError::WeakPassword(_))));
    h.service
        .mailbox()
        .reset_password(
            &s(&token),
            &s("a brand new passphrase"),
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    assert!(matches!(
        h.service
            .sessions()
            .login("ada@example.com", &s(PASSWORD), ClientInfo::default(), None)
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    h.service
        .sessions()
        .login(
            "ada@example.com",
            &s("a brand new passphrase"),
            ClientInfo::default(),
            None,
        )
        .await
        .unwrap()
        .tokens()
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
    assert!(
        h.service
            .sessions()
            .authenticate(&t.access_token)
            .await
            .is_err()
    );
    assert!(matches!(
        h.service
            .mailbox()
            .reset_password(
                &s(&token),
                &s("another new passphrase"),
                &ClientInfo::default()
            )
            .await,
        Err(AuthError::InvalidOneTimeToken)
    ));
    h.deliver().await;
    assert_eq!(
        h.mailer.to("ada@example.com", "password_was_reset").len(),
        1
    );
}

#[tokio::test]
async fn reset_links_expire_and_a_newer_one_invalidates_the_older() {
    let h = harness();
    signed_in(&h, "ada@example.com").await;
    h.service
        .mailbox()
        .forgot_password("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let first = h.mailer.token("ada@example.com", "password_reset").unwrap();
    h.service
        .mailbox()
        .forgot_password("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let second = h.mailer.token("ada@example.com", "password_reset").unwrap();
    assert!(matches!(
        h.service
            .mailbox()
            .reset_password(
                &s(&first),
                &s("a brand new passphrase"),
                &ClientInfo::default()
            )
            .await,
        Err(AuthError::InvalidOneTimeToken)
    ));
    h.clock
        .advance(Duration::minutes(30) + Duration::seconds(1));
    assert!(matches!(
        h.service
            .mailbox()
            .reset_password(
                &s(&second),
                &s("a brand new passphrase"),
                &ClientInfo::default()
            )
            .await,
        Err(AuthError::InvalidOneTimeToken)
    ));
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), ClientInfo::default(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
}

#[tokio::test]
async fn change_password_needs_the_current_one_and_replaces_every_session() {
    let h = harness();
    let t = signed_in(&h, "ada@example.com").await;
    let other = h
        .service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), ClientInfo::default(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    let caller = h
        .service
        .sessions()
        .authenticate(&t.access_token)
        .await
        .unwrap();
    let wrong = h
        .service
        .mailbox()
        .change_password(
            &caller,
            &s("not it at all"),
            &s("a brand new passphrase"),
            ClientInfo::default(),
        )
        .await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    let weak = h
        .service
        .mailbox()
        .change_password(
            &caller,
            &s(PASSWORD),
            &s("qwerty123"),
            ClientInfo::default(),
        )
        .await;
    assert!(matches!(weak, Err(AuthError::WeakPassword(_))));
    // A pending reset link dies with the change.
    h.service
        .mailbox()
        .forgot_password("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let reset = h.mailer.token("ada@example.com", "password_reset").unwrap();

    let fresh = h
        .service
        .mailbox()
        .change_password(
            &caller,
            &s(PASSWORD),
            &s("a brand new passphrase"),
            ClientInfo::default(),
        )
        .await
        .unwrap();
    assert_ne!(fresh.session_id, t.session_id);
    h.service
        .sessions()
        .authenticate(&fresh.access_token)
        .await
        .unwrap();
    for old in [&t, &other] {
        assert!(
            h.service
                .sessions()
                .authenticate(&old.access_token)
                .await
                .is_err(),
            "an old access token still works"
        );
        assert!(
            h.service
                .sessions()
                .refresh(&old.refresh_token, &ClientInfo::default())
                .await
                .is_err()
        );
    }
    assert!(matches!(
        h.service
            .mailbox()
            .reset_password(
                &s(&reset),
                &s("yet another passphrase"),
                &ClientInfo::default()
            )
            .await,
        Err(AuthError::InvalidOneTimeToken)
    ));
    h.deliver().await;
    assert_eq!(h.mailer.to("ada@example.com", "password_changed").len(), 1);
}

#[tokio::test]
async fn magic_links_sign_in_verify_the_address_and_honour_the_allow_list() {
    let mut settings = AuthSettings::default();
    settings.email.redirect_allow_list = vec!["https://app.example.com".into()];
    let h = harness_with(settings, fast_hashing());
    let t = signed_in(&h, "ada@example.com").await;
    let bad = h
        .service
        .mailbox()
        .request_magic_link(
            "ada@example.com",
            Some("https://evil.example.net/x".into()),
            &ClientInfo::default(),
            None,
        )
        .await;
    assert!(matches!(
        bad,
        Err(AuthError::InvalidField {
            field: "redirect_to",
            ..
        })
    ));
    let sneaky = h
        .service
        .mailbox()
        .request_magic_link(
            "ada@example.com",
            Some("https://app.example.com@evil.example.net/".into()),
            &ClientInfo::default(),
            None,
        )
        .await;
    assert!(matches!(
        sneaky,
        Err(AuthError::InvalidField {
            field: "redirect_to",
            ..
        })
    ));
    h.service
        .mailbox()
        .request_magic_link(
            "ada@example.com",
            Some("https://app.example.com/welcome".into()),
            &ClientInfo::default(),
            None,
        )
        .await
        .unwrap();
    h.deliver().await;
    let token = h.mailer.token("ada@example.com", "magic_link").unwrap();
    let signed = h
        .service
        .mailbox()
        .verify_magic_link(&s(&token), ClientInfo::default())
        .await
        .unwrap();
    let signed_tokens = signed.outcome.tokens().unwrap();
    assert_eq!(signed_tokens.user.id, t.user.id);
    assert!(signed_tokens.user.email_verified);
    assert_eq!(
        signed.redirect_to.as_deref(),
        Some("https://app.example.com/welcome")
    );
    let caller = h
        .service
        .sessions()
        .authenticate(&signed_tokens.access_token)
        .await
        .unwrap();
    assert_eq!(caller.claims.amr, vec!["email"]);
    assert!(
        h.service
            .mailbox()
            .verify_magic_link(&s(&token), ClientInfo::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn magic_links_sign_up_new_addresses_only_when_allowed_and_expire() {
    let h = harness();
    h.service
        .mailbox()
        .request_magic_link("new@example.com", None, &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let token = h.mailer.token("new@example.com", "magic_link").unwrap();
    let signed = h
        .service
        .mailbox()
        .verify_magic_link(&s(&token), ClientInfo::default())
        .await
        .unwrap();
    let signed_tokens = signed.outcome.tokens().unwrap();
    assert_eq!(signed_tokens.user.email, "new@example.com");
    assert!(signed_tokens.user.email_verified);
    // The passwordless account has no password to sign in with.
    assert!(
        h.service
            .sessions()
            .login("new@example.com", &s(PASSWORD), ClientInfo::default(), None)
            .await
            .is_err()
    );

    h.service
        .mailbox()
        .request_magic_link("new@example.com", None, &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let late = h.mailer.token("new@example.com", "magic_link").unwrap();
    h.clock
        .advance(Duration::minutes(15) + Duration::seconds(1));
    assert!(
        h.service
            .mailbox()
            .verify_magic_link(&s(&late), ClientInfo::default())
            .await
            .is_err()
    );

    let mut settings = AuthSettings::default();
    settings.email.passwordless_signup = false;
    let closed = harness_with(settings, fast_hashing());
    closed
        .service
        .mailbox()
        .request_magic_link("stranger@example.com", None, &ClientInfo::default(), None)
        .await
        .unwrap();
    closed
        .service
        .mailbox()
        .send_email_code("stranger@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    closed.deliver().await;
    assert!(closed.mailer.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn email_codes_sign_in_once_and_die_after_five_wrong_tries() {
    // Rate limits would stop this many tries first; this test is about the code itself.
    let mut settings = AuthSettings::default();
    settings.guard.rate_limits_enabled = false;
    let h = harness_with(settings, fast_hashing());
    signed_in(&h, "ada@example.com").await;
    h.service
        .mailbox()
        .send_email_code("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let code = h
        .mailer
        .value("ada@example.com", "email_otp", "code")
        .unwrap();
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()));
    let t = h
        .service
        .mailbox()
        .verify_email_code("ADA@example.com", &code, ClientInfo::default())
        .await
        .unwrap()
        .tokens()
        .unwrap();
    assert_eq!(
        h.service
            .sessions()
            .authenticate(&t.access_token)
            .await
            .unwrap()
            .claims
            .amr,
        vec!["otp"]
    );
    assert!(matches!(
        h.service
            .mailbox()
            .verify_email_code("ada@example.com", &code, ClientInfo::default())
            .await,
        Err(AuthError::InvalidCode)
    ));

    h.service
        .mailbox()
        .send_email_code("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let code = h
        .mailer
        .value("ada@example.com", "email_otp", "code")
        .unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert!(matches!(
            h.service
                .mailbox()
                .verify_email_code("ada@example.com", wrong, ClientInfo::default())
                .await,
            Err(AuthError::InvalidCode)
        ));
    }
    assert!(
        matches!(
            h.service
                .mailbox()
                .verify_email_code("ada@example.com", &code, ClientInfo::default())
                .await,
            Err(AuthError::InvalidCode)
        ),
        "the code must be dead after five wrong tries"
    );

    h.service
        .mailbox()
        .send_email_code("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let code = h
        .mailer
        .value("ada@example.com", "email_otp", "code")
        .unwrap();
    h.clock
        .advance(Duration::minutes(10) + Duration::seconds(1));
    assert!(matches!(
        h.service
            .mailbox()
            .verify_email_code("ada@example.com", &code, ClientInfo::default())
            .await,
        Err(AuthError::InvalidCode)
    ));
}

#[tokio::test]
async fn undeliverable_mail_is_retried_with_backoff_and_nothing_is_lost() {
    let h = harness();
    signed_in(&h, "ada@example.com").await;
    *h.mailer.failing.lock().unwrap() = Some(DeliveryError::Transient("connection refused".into()));
    assert_eq!(h.service.worker().process_outbox(16).await.unwrap(), 1);
    assert_eq!(h.store.pending_outbox_kinds(), vec!["mail"]);
    // Not due again before the first delay (5 s) ...
    assert_eq!(h.service.worker().process_outbox(16).await.unwrap(), 0);
    h.clock.advance(Duration::seconds(5));
    assert_eq!(h.service.worker().process_outbox(16).await.unwrap(), 1);
    // ... then 10 s.
    h.clock.advance(Duration::seconds(9));
    assert_eq!(h.service.worker().process_outbox(16).await.unwrap(), 0);
    *h.mailer.failing.lock().unwrap() = None;
    h.clock.advance(Duration::seconds(1));
    h.deliver().await;
    assert_eq!(h.mailer.to("ada@example.com", "verify_email").len(), 1);
    assert!(h.store.pending_outbox_kinds().is_empty());
    assert_eq!(
        h.store.outbox_errors(),
        vec![Some("connection refused".to_owned())]
    );
}

#[tokio::test]
async fn permanent_failures_and_day_old_entries_are_given_up() {
    let h = harness();
    signed_in(&h, "ada@example.com").await;
    *h.mailer.failing.lock().unwrap() = Some(DeliveryError::Permanent("550 no such user".into()));
    h.deliver().await;
    assert!(
        h.store.pending_outbox_kinds().is_empty(),
        "a permanent failure is not retried"
    );

    *h.mailer.failing.lock().unwrap() = Some(DeliveryError::Transient("down".into()));
    signed_in(&h, "bob@example.com").await;
    h.deliver().await;
    h.clock.advance(Duration::hours(25));
    h.deliver().await;
    assert!(
        h.store.pending_outbox_kinds().is_empty(),
        "a day-old entry is given up"
    );
}

#[tokio::test]
async fn outbox_payloads_are_sealed_at_rest_and_erased_once_sent() {
    let h = harness();
    signed_in(&h, "ada@example.com").await;
    let sealed = h.store.pending_outbox_payloads();
    assert_eq!(sealed.len(), 1);
    h.deliver().await;
    let token = h.mailer.token("ada@example.com", "verify_email").unwrap();
    let text = String::from_utf8_lossy(&sealed[0]).into_owned();
    assert!(
        !text.contains(&token) && !text.contains("ada@example.com") && !text.contains("verify")
    );
    assert!(
        h.store.all_outbox_payloads().iter().all(Vec::is_empty),
        "a delivered payload must be erased"
    );
}

#[tokio::test]
async fn every_flow_emits_its_security_event_without_secrets() {
    use auth_core::events::EventKind as K;
    let h = harness();
    let t = signed_in(&h, "ada@example.com").await;
    h.service
        .sessions()
        .login(
            "ada@example.com",
            &s("wrong password!"),
            ClientInfo::default(),
            None,
        )
        .await
        .unwrap_err();
    h.service
        .sessions()
        .login(
            "nobody@example.com",
            &s("wrong password!"),
            ClientInfo::default(),
            None,
        )
        .await
        .unwrap_err();
    h.deliver().await;
    let token = h.mailer.token("ada@example.com", "verify_email").unwrap();
    h.service.mailbox().verify_email(&s(&token)).await.unwrap();
    h.service
        .mailbox()
        .forgot_password("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let reset = h.mailer.token("ada@example.com", "password_reset").unwrap();
    h.service
        .mailbox()
        .reset_password(
            &s(&reset),
            &s("a brand new passphrase"),
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let t2 = h
        .service
        .sessions()
        .login(
            "ada@example.com",
            &s("a brand new passphrase"),
            ClientInfo::default(),
            None,
        )
        .await
        .unwrap()
        .tokens()
        .unwrap();
    let caller = h
        .service
        .sessions()
        .authenticate(&t2.access_token)
        .await
        .unwrap();
    h.service
        .sessions()
        .logout(&caller, auth_core::service::LogoutScope::All)
        .await
        .unwrap();
    let kinds = h.events.kinds();
    for expected in [
        K::SignedUp,
        K::VerificationSent,
        K::LoginFailed,
        K::EmailVerified,
        K::PasswordResetRequested,
        K::PasswordReset,
        K::LoginSucceeded,
        K::LoggedOut,
    ] {
        assert!(
            kinds.contains(&expected),
            "{expected:?} missing from {kinds:?}"
        );
    }
    let failures: Vec<_> = h
        .events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind == K::LoginFailed)
        .map(|e| (e.user_id, e.detail.clone()))
        .collect();
    assert_eq!(
        failures,
        vec![
            (Some(t.user.id), Some("wrong_password".into())),
            (None, Some("unknown_account".into()))
        ]
    );
    let all = format!("{:?}", h.events.0.lock().unwrap());
    for secret in [
        PASSWORD,
        "wrong password!",
        "a brand new passphrase",
        token.as_str(),
        reset.as_str(),
        t.access_token.as_str(),
    ] {
        assert!(!all.contains(secret), "an event carries a secret");
    }
}
