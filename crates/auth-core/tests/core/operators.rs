//! Roles, account administration, the audit trail and the webhook schedule, on the
//! in-memory store.

use auth_core::AuthError;
use auth_core::audit::{AuditQuery, AuditStore, Recorded};
use auth_core::clock::Clock as _;
use auth_core::events::{EventKind, SecurityEvent};
use auth_core::flows::SignupOutcome;
use auth_core::model::ClientInfo;
use auth_core::operators::capability::{Capability, RolesManage, UsersRead, UsersWrite};
use auth_core::operators::{Operator, RoleInput};
use auth_core::ports::SessionStore;
use auth_core::service::{IssuedTokens, SignupRequest};
use auth_core::webhooks::WebhookSettings;
use chrono::Duration;
use secrecy::SecretString;

use crate::support::{Harness, harness};

const PASSWORD: &str = "correct horse battery";

fn s(v: &str) -> SecretString {
    SecretString::from(v)
}

async fn signed_in(h: &Harness, email: &str) -> IssuedTokens {
    let req = SignupRequest {
        email: email.into(),
        password: s(PASSWORD),
        name: None,
        captcha_token: None,
    };
    match h
        .service
        .mailbox()
        .signup(req, ClientInfo::default())
        .await
        .unwrap()
    {
        SignupOutcome::SignedIn(t) => *t,
        SignupOutcome::VerificationSent => panic!("confirmation is optional here"),
    }
}

/// An application-defined capability, as an embedder declares one.
struct AppReports;

impl Capability for AppReports {
    const NAME: &'static str = "app:reports";
}

/// The access token of a freshly created administrator.
async fn root(h: &Harness) -> String {
    h.service
        .operators()
        .create_admin("root@example.com", s(PASSWORD))
        .await
        .unwrap();
    let t = h
        .service
        .sessions()
        .login(
            "root@example.com",
            &s(PASSWORD),
            ClientInfo::default(),
            None,
        )
        .await
        .unwrap()
        .tokens()
        .unwrap();
    t.access_token
}

async fn operator<C: Capability>(h: &Harness, token: &str) -> Operator<C> {
    h.service
        .operators()
        .authorize::<C>(token, ClientInfo::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_disabled_user_cannot_open_a_session_by_any_means() {
    let h = harness();
    let admin = operator::<UsersWrite>(&h, &root(&h).await).await;
    let t = signed_in(&h, "ada@example.com").await;
    h.verify_email(t.user.id, "ada@example.com").await;
    h.service
        .operators()
        .admin_set_disabled(&admin, t.user.id, true)
        .await
        .unwrap();
    assert!(
        h.store
            .unrevoked_sessions_of(t.user.id)
            .await
            .unwrap()
            .is_empty()
    );
    let login = h
        .service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), ClientInfo::default(), None)
        .await;
    assert!(
        matches!(login, Err(AuthError::AccountDisabled)),
        "{login:?}"
    );
    assert!(matches!(
        h.service
            .sessions()
            .refresh(&t.refresh_token, &ClientInfo::default())
            .await,
        Err(AuthError::InvalidRefreshToken)
    ));
    h.service
        .mailbox()
        .request_magic_link("ada@example.com", None, &ClientInfo::default(), None)
        .await
        .unwrap();
    h.service
        .mailbox()
        .send_email_code("ada@example.com", &ClientInfo::default(), None)
        .await
        .unwrap();
    h.deliver().await;
    let token = h.mailer.token("ada@example.com", "magic_link").unwrap();
    let link = h
        .service
        .mailbox()
        .verify_magic_link(&s(&token), ClientInfo::default())
        .await;
    assert!(matches!(link, Err(AuthError::AccountDisabled)));
    let code = h
        .mailer
        .value("ada@example.com", "email_otp", "code")
        .unwrap();
    let by_code = h
        .service
        .mailbox()
        .verify_email_code("ada@example.com", &code, ClientInfo::default())
        .await;
    assert!(matches!(by_code, Err(AuthError::AccountDisabled)));
    assert!(
        h.store
            .unrevoked_sessions_of(t.user.id)
            .await
            .unwrap()
            .is_empty()
    );
    h.service
        .operators()
        .admin_set_disabled(&admin, t.user.id, false)
        .await
        .unwrap();
    h.service
        .sessions()
        .login("ada@example.com", &s(PASSWORD), ClientInfo::default(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn capabilities_come_from_the_current_roles() {
    let h = harness();
    let admin = operator::<RolesManage>(&h, &root(&h).await).await;
    let t = signed_in(&h, "ada@example.com").await;
    let forbidden = h
        .service
        .operators()
        .authorize::<AppReports>(&t.access_token, ClientInfo::default())
        .await;
    assert!(matches!(forbidden, Err(AuthError::Forbidden)));
    h.service
        .operators()
        .create_role(
            &admin,
            "reporter".into(),
            RoleInput {
                capabilities: vec!["app:reports".into()],
                description: None,
            },
        )
        .await
        .unwrap();
    h.service
        .operators()
        .change_user_role(&admin, t.user.id, "reporter", true)
        .await
        .unwrap();
    // The same token: the check reads the user record, not the token's claims.
    h.service
        .operators()
        .authorize::<AppReports>(&t.access_token, ClientInfo::default())
        .await
        .unwrap();
    h.service
        .operators()
        .change_user_role(&admin, t.user.id, "reporter", false)
        .await
        .unwrap();
    assert!(matches!(
        h.service
            .operators()
            .authorize::<AppReports>(&t.access_token, ClientInfo::default())
            .await,
        Err(AuthError::Forbidden)
    ));
    assert!(matches!(
        h.service
            .operators()
            .authorize::<UsersRead>("junk", ClientInfo::default())
            .await,
        Err(AuthError::InvalidToken(_))
    ));
}

#[tokio::test]
async fn audit_rows_past_retention_are_pruned() {
    let h = harness();
    let event = |at| SecurityEvent {
        kind: EventKind::LoginFailed,
        at,
        user_id: None,
        session_id: None,
        client: None,
        detail: Some("wrong_password".into()),
        actor: None,
    };
    let old = h.clock.now();
    h.store
        .append(&Recorded::unpublished(event(old)))
        .await
        .unwrap();
    h.clock.advance(Duration::days(60));
    h.store
        .append(&Recorded::unpublished(event(h.clock.now())))
        .await
        .unwrap();
    h.clock.advance(Duration::days(31));
    assert_eq!(h.service.operators().prune_audit_log().await.unwrap(), 1);
    let left = h
        .store
        .query(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].at > old);
}

#[tokio::test]
async fn audit_rows_store_snake_case_types_and_json_details() {
    let h = harness();
    let event = SecurityEvent {
        kind: EventKind::RefreshTokenReuseDetected,
        at: h.clock.now(),
        user_id: None,
        session_id: None,
        client: Some(ClientInfo {
            ip: Some("203.0.113.7".into()),
            user_agent: Some("curl/8".into()),
        }),
        detail: Some("scope=all".into()),
        actor: None,
    };
    h.store.append(&Recorded::unpublished(event)).await.unwrap();
    let rows = h
        .store
        .query(&AuditQuery {
            event_type: Some("refresh_token_reuse_detected".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(
        rows[0].detail,
        Some(serde_json::json!({"reason": "scope=all"}))
    );
}

#[test]
fn the_default_webhook_schedule_makes_at_least_five_attempts_over_about_a_day() {
    let s = WebhookSettings::default();
    assert!(s.max_attempts >= 5);
    let mut total = Duration::zero();
    let mut previous = Duration::zero();
    for attempts in 1..s.max_attempts {
        let delay = s.retry_delay(attempts).unwrap();
        assert!(delay > previous, "exponential");
        previous = delay;
        total += delay;
    }
    assert_eq!(s.retry_delay(s.max_attempts), None);
    assert!(
        total >= Duration::hours(18) && total <= Duration::hours(36),
        "{total}"
    );
}

#[tokio::test]
async fn an_imported_bcrypt_account_signs_in_and_its_hash_is_upgraded() {
    use auth_core::operators::ImportedAccount;
    use auth_core::ports::UserStore as _;

    let h = harness();
    let bcrypt = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"; // "U*U"
    let account = |email: &str, hash: &str| ImportedAccount {
        email: email.into(),
        password_hash: Some(hash.into()),
        name: Some("Ada".into()),
        email_verified: true,
        roles: Vec::new(),
    };
    let user = h
        .service
        .operators()
        .import_account(account("ada@example.com", bcrypt))
        .await
        .unwrap();
    assert!(user.email_verified);
    assert_eq!(user.name.as_deref(), Some("Ada"));
    assert!(matches!(
        h.service
            .operators()
            .import_account(account("ADA@example.com", bcrypt))
            .await,
        Err(AuthError::EmailTaken)
    ));
    assert!(matches!(
        h.service
            .operators()
            .import_account(account("eve@example.com", "plain text"))
            .await,
        Err(AuthError::InvalidRequest(_))
    ));

    let wrong = h
        .service
        .sessions()
        .login("ada@example.com", &s("U*V"), ClientInfo::default(), None)
        .await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    let stored = |h: &Harness| {
        let store = h.store.clone();
        async move {
            store
                .credentials_by_email("ada@example.com")
                .await
                .unwrap()
                .unwrap()
                .password_hash
                .unwrap()
        }
    };
    assert_eq!(stored(&h).await, bcrypt, "a failed sign-in changes nothing");
    let t = h
        .service
        .sessions()
        .login("ada@example.com", &s("U*U"), ClientInfo::default(), None)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    assert_eq!(t.user.id, user.id);
    assert!(stored(&h).await.starts_with("$argon2id$"));
    // The upgraded hash still takes the same password.
    h.service
        .sessions()
        .login("ada@example.com", &s("U*U"), ClientInfo::default(), None)
        .await
        .unwrap();

    let rows = h
        .store
        .query(&AuditQuery {
            event_type: Some("user_created".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].detail.as_ref().unwrap()["by"], "import");
    assert!(
        !serde_json::to_string(&rows[0].detail)
            .unwrap()
            .contains("$2a$")
    );
}
