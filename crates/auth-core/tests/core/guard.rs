use auth_core::AuthError;
use auth_core::AuthSettings;
use auth_core::guard::{GroupLimits, Limit, LimitGroup};
use auth_core::model::ClientInfo;
use auth_core::operators::capability::UsersWrite;
use auth_core::password::PasswordRejection;
use auth_core::service::SignupRequest;
use chrono::Duration;
use secrecy::SecretString;

use crate::support::{Harness, fast_hashing, harness, harness_with};

const PASSWORD: &str = "correct horse battery";

fn s(v: &str) -> SecretString {
    SecretString::from(v)
}

fn from(ip: &str) -> ClientInfo {
    ClientInfo {
        ip: Some(ip.into()),
        user_agent: None,
    }
}

async fn signup(h: &Harness, email: &str) {
    let req = SignupRequest {
        email: email.into(),
        password: s(PASSWORD),
        name: None,
        captcha_token: None,
    };
    h.service
        .mailbox()
        .signup(req, from("10.0.0.1"))
        .await
        .unwrap();
}

fn limited(group: LimitGroup, per_ip: Option<u32>, per_identifier: Option<u32>) -> Harness {
    let mut settings = AuthSettings::default();
    let window = Duration::seconds(60);
    let limits = GroupLimits {
        per_ip: per_ip.map(|max| Limit { max, window }),
        per_identifier: per_identifier.map(|max| Limit { max, window }),
    };
    settings.guard.limits.insert(group, limits);
    settings.guard.lockout.enabled = false;
    harness_with(settings, fast_hashing())
}

#[tokio::test]
async fn a_limit_trips_at_its_count_per_ip_and_resets_with_the_window() {
    let h = limited(LimitGroup::Login, Some(3), None);
    signup(&h, "ada@example.com").await;
    for _ in 0..3 {
        h.service
            .sessions()
            .login("ada@example.com", &s(PASSWORD), from("203.0.113.7"), None)
            .await
            .unwrap()
            .tokens()
            .unwrap();
    }
    let err = h
        .service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), from("203.0.113.7"), None)
        .await
        .unwrap_err();
    let AuthError::RateLimited { retry_after_secs } = err else {
        panic!("{err:?}")
    };
    assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}");
    // Another address is not affected.
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), from("203.0.113.8"), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    h.clock
        .advance(Duration::seconds(i64::try_from(retry_after_secs).unwrap()));
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), from("203.0.113.7"), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
}

#[tokio::test]
async fn a_limit_per_account_holds_across_addresses() {
    let h = limited(LimitGroup::PasswordReset, None, Some(2));
    for ip in ["198.51.100.1", "198.51.100.2"] {
        h.service
            .mailbox()
            .forgot_password("Ada@Example.com", &from(ip), None)
            .await
            .unwrap();
    }
    let err = h
        .service
        .mailbox()
        .forgot_password("ada@example.com", &from("198.51.100.3"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::RateLimited { .. }), "{err:?}");
    // The count is per account: another address of mail is free.
    h.service
        .mailbox()
        .forgot_password("bob@example.com", &from("198.51.100.3"), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn lockout_story_failures_lock_refuse_even_the_right_password_then_unlock() {
    let h = harness();
    signup(&h, "ada@example.com").await;
    for _ in 0..4 {
        let e = h
            .service
            .sessions()
            .login(
                "ada@example.com",
                &s("wrong password!"),
                from("10.0.0.2"),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::InvalidCredentials));
    }
    // The fifth failure locks: it still says "invalid credentials" itself.
    let e = h
        .service
        .sessions()
        .login(
            "ada@example.com",
            &s("wrong password!"),
            from("10.0.0.2"),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidCredentials));
    let e = h
        .service
        .sessions()
        .login("ADA@example.com", &s(PASSWORD), from("10.0.0.2"), None)
        .await
        .unwrap_err();
    let AuthError::AccountLocked { retry_after_secs } = e else {
        panic!("{e:?}")
    };
    assert_eq!(retry_after_secs, 15 * 60);
    // Locked for the client that failed only: the owner elsewhere signs in.
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), from("10.0.0.3"), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    h.deliver().await;
    assert_eq!(
        h.mailer.to("ada@example.com", "account_locked").len(),
        1,
        "the owner is told"
    );

    h.clock.advance(Duration::minutes(15));
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), from("10.0.0.2"), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    // Success reset the count: four more failures do not lock.
    for _ in 0..4 {
        h.service
            .sessions()
            .login(
                "ada@example.com",
                &s("wrong password!"),
                from("10.0.0.2"),
                None,
            )
            .await
            .unwrap_err();
    }
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), from("10.0.0.3"), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
}

#[tokio::test]
async fn unknown_emails_lock_the_same_way_and_failures_age_out() {
    let h = harness();
    for _ in 0..5 {
        h.service
            .sessions()
            .login(
                "ghost@example.com",
                &s("wrong password!"),
                from("10.0.0.2"),
                None,
            )
            .await
            .unwrap_err();
    }
    let e = h
        .service
        .sessions()
        .login(
            "ghost@example.com",
            &s("wrong password!"),
            from("10.0.0.2"),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::AccountLocked { .. }), "{e:?}");
    h.deliver().await;
    assert!(h.mailer.sent.lock().unwrap().is_empty(), "nobody to tell");

    signup(&h, "ada@example.com").await;
    for _ in 0..4 {
        h.service
            .sessions()
            .login(
                "ada@example.com",
                &s("wrong password!"),
                from("10.0.0.2"),
                None,
            )
            .await
            .unwrap_err();
    }
    h.clock.advance(Duration::minutes(2));
    // The window passed: this failure starts a new count and does not lock.
    h.service
        .sessions()
        .login(
            "ada@example.com",
            &s("wrong password!"),
            from("10.0.0.2"),
            None,
        )
        .await
        .unwrap_err();
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), from("10.0.0.2"), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
}

#[tokio::test]
async fn an_administrator_can_unlock() {
    let h = harness();
    signup(&h, "ada@example.com").await;
    for _ in 0..5 {
        h.service
            .sessions()
            .login(
                "ada@example.com",
                &s("wrong password!"),
                from("10.0.0.2"),
                None,
            )
            .await
            .unwrap_err();
    }
    assert!(matches!(
        h.service
            .sessions()
            .login("ada@example.com", &s(PASSWORD), from("10.0.0.2"), None)
            .await,
        Err(AuthError::AccountLocked { .. })
    ));
    h.service
        .operators()
        .create_admin("root@example.com", s(PASSWORD))
        .await
        .unwrap();
    let root = h
        .service
        .sessions()
        .login("root@example.com", &s(PASSWORD), from("10.0.0.9"), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    let admin = h
        .service
        .operators()
        .authorize::<UsersWrite>(&root.access_token, ClientInfo::default())
        .await
        .unwrap();
    let ada = h
        .service
        .operators()
        .admin_list_users(&admin, Some("ada@".into()), None, None)
        .await
        .unwrap()
        .items
        .remove(0);
    h.service
        .operators()
        .admin_unlock_user(&admin, ada.user.id)
        .await
        .unwrap();
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), from("10.0.0.2"), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
}

#[tokio::test]
async fn guessable_passwords_are_refused_when_a_minimum_score_is_set() {
    let mut settings = AuthSettings::default();
    settings.guard.min_password_score = 3;
    let h = harness_with(settings, fast_hashing());
    let weak = SignupRequest {
        email: "ada@example.com".into(),
        password: s("aaaaaaaaaaaaaaa"),
        name: None,
        captcha_token: None,
    };
    let e = h
        .service
        .mailbox()
        .signup(weak, from("10.0.0.1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::WeakPassword(PasswordRejection::TooGuessable { min_score: 3 })
        ),
        "{e:?}"
    );
    signup(&h, "ada@example.com").await;
}
