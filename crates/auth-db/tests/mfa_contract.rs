//! Contract of the MFA and passkey storage ports (`MfaStore`, `PasskeyStore`): every
//! scenario runs against the in-memory reference store, SQLite and PostgreSQL, and checks
//! the atomic steps the core relies on (a TOTP step, a recovery code, a challenge, a sign
//! counter or a ceremony is used once, even by concurrent callers).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use auth_core::AuthError;
use auth_core::email::Email;
use auth_core::mfa::{FactorKind, MfaFactor, MfaStore, NewMfaChallenge};
use auth_core::model::{ClientInfo, NewSession, NewUser, SessionId, TokenHash, UserId};
use auth_core::outbox::NewOutboxMessage;
use auth_core::passkeys::{CeremonyKind, PasskeyCeremony, PasskeyStore, StoredPasskey};
use auth_core::ports::{SessionStore, UserStore};
use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use uuid::Uuid;

trait Store: UserStore + SessionStore + MfaStore + PasskeyStore + 'static {}
impl<T: UserStore + SessionStore + MfaStore + PasskeyStore + 'static> Store for T {}
type Shared = Arc<dyn Store>;

auth_db::on_every_store!(
    totp_steps_only_move_forward_and_concurrent_uses_succeed_once,
    one_active_factor_of_a_kind_per_user,
    recovery_codes_are_consumed_once_and_go_with_the_last_factor,
    challenges_die_at_max_failures_and_complete_once,
    step_up_raises_a_live_session_only,
    passkey_counters_only_move_forward_and_ceremonies_are_taken_once,
);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 1, 0, 0).unwrap() + Duration::microseconds(123_456)
}

fn hash(s: &str) -> TokenHash {
    auth_core::opaque::hash(s)
}

fn notice() -> NewOutboxMessage {
    NewOutboxMessage {
        id: Uuid::now_v7(),
        kind: "mail".into(),
        payload: vec![1, 2, 3],
        created_at: now(),
    }
}

async fn user(store: &Shared) -> UserId {
    let id = UserId::new();
    store
        .insert_user(
            &NewUser {
                id,
                email: Email::parse(&format!("{}@example.com", id.0.simple())).unwrap(),
                name: None,
                password_hash: None,
                email_verified: true,
                roles: vec![],
                created_at: now(),
            },
            None,
        )
        .await
        .unwrap();
    id
}

fn factor(user_id: UserId, kind: FactorKind) -> MfaFactor {
    MfaFactor {
        id: Uuid::now_v7(),
        user_id,
        kind,
        label: Some("phone".into()),
        sealed_secret: vec![7; 40],
        created_at: now(),
        activated_at: None,
        last_used_step: None,
        last_used_at: None,
        lookup_hash: (kind == FactorKind::Sms).then(|| hash("+33612345678")),
    }
}

async fn active_factor(store: &Shared, user_id: UserId, kind: FactorKind) -> MfaFactor {
    let f = factor(user_id, kind);
    store.insert_pending_factor(&f).await.unwrap();
    assert!(
        store
            .activate_factor(
                user_id,
                f.id,
                100,
                &[hash("code-a"), hash("code-b")],
                &notice(),
                now()
            )
            .await
            .unwrap()
    );
    f
}

fn session(user_id: UserId) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user_id,
        created_at: now(),
        expires_at: now() + Duration::days(1),
        client: ClientInfo::default(),
        amr: vec!["pwd".into()],
        aal: "aal1".into(),
    }
}

async fn totp_steps_only_move_forward_and_concurrent_uses_succeed_once(store: Shared) {
    let u = user(&store).await;
    let f = active_factor(&store, u, FactorKind::Totp).await;
    assert!(
        !store.use_totp_step(f.id, 100, now()).await.unwrap(),
        "the activation step is spent"
    );
    assert!(!store.use_totp_step(f.id, 99, now()).await.unwrap());
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.use_totp_step(f.id, 101, now()).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    let stored = store.factors_of(u).await.unwrap();
    assert_eq!(stored[0].last_used_step, Some(101));
    assert_eq!(stored[0].last_used_at, Some(now().trunc_subsecs(6)));
    assert_eq!(stored[0].sealed_secret, vec![7; 40]);
    // A pending factor accepts no step.
    let pending = factor(u, FactorKind::Sms);
    store.insert_pending_factor(&pending).await.unwrap();
    assert!(!store.use_totp_step(pending.id, 500, now()).await.unwrap());
}

async fn one_active_factor_of_a_kind_per_user(store: Shared) {
    let u = user(&store).await;
    let a = active_factor(&store, u, FactorKind::Totp).await;
    let b = factor(u, FactorKind::Totp);
    store.insert_pending_factor(&b).await.unwrap();
    assert!(
        !store
            .activate_factor(u, b.id, 5, &[], &notice(), now())
            .await
            .unwrap()
    );
    // Enrolling again replaces the pending factor, never the active one.
    let c = factor(u, FactorKind::Totp);
    store.insert_pending_factor(&c).await.unwrap();
    let ids: Vec<Uuid> = store
        .factors_of(u)
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, vec![a.id, c.id]);
    // Someone else's factor cannot be activated.
    let other = user(&store).await;
    assert!(
        !store
            .activate_factor(other, c.id, 5, &[], &notice(), now())
            .await
            .unwrap()
    );
    // SMS factors are found by number once active.
    let sms = active_factor(&store, u, FactorKind::Sms).await;
    let found = store
        .active_factor_by_lookup(FactorKind::Sms, &hash("+33612345678"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, sms.id);
    assert!(
        store
            .active_factor_by_lookup(FactorKind::Sms, &hash("+33600000000"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn recovery_codes_are_consumed_once_and_go_with_the_last_factor(store: Shared) {
    let u = user(&store).await;
    let f = active_factor(&store, u, FactorKind::Totp).await;
    assert_eq!(store.remaining_recovery_codes(u).await.unwrap(), 2);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move {
                s.consume_recovery_code(u, &hash("code-a"), &notice(), now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(store.remaining_recovery_codes(u).await.unwrap(), 1);
    let other = user(&store).await;
    assert!(
        !store
            .consume_recovery_code(other, &hash("code-b"), &notice(), now())
            .await
            .unwrap()
    );
    store
        .replace_recovery_codes(u, &[hash("x"), hash("y"), hash("z")], now())
        .await
        .unwrap();
    assert_eq!(store.remaining_recovery_codes(u).await.unwrap(), 3);
    assert!(
        !store
            .consume_recovery_code(u, &hash("code-b"), &notice(), now())
            .await
            .unwrap()
    );
    assert!(
        store
            .remove_factor(u, f.id, Some(&notice()), now())
            .await
            .unwrap()
    );
    assert!(!store.remove_factor(u, f.id, None, now()).await.unwrap());
    assert_eq!(store.remaining_recovery_codes(u).await.unwrap(), 0);
    assert!(store.factors_of(u).await.unwrap().is_empty());
}

async fn challenges_die_at_max_failures_and_complete_once(store: Shared) {
    let u = user(&store).await;
    let challenge = |token: &str| NewMfaChallenge {
        token_hash: hash(token),
        user_id: u,
        amr: vec!["pwd".into()],
        created_at: now(),
        expires_at: now() + Duration::minutes(5),
    };
    store
        .insert_challenge(&challenge("dying"), &[])
        .await
        .unwrap();
    for expected in 1..=5 {
        let count = store
            .record_challenge_failure(&hash("dying"), 5, now())
            .await
            .unwrap();
        assert_eq!(count, expected);
    }
    let dead = store.challenge(&hash("dying")).await.unwrap().unwrap();
    assert!(dead.used_at.is_some());
    assert!(
        store
            .complete_challenge(&hash("dying"), 5, &session(u), &hash("r0"), now(), &[])
            .await
            .unwrap()
            .is_none()
    );

    store
        .insert_challenge(&challenge("live"), &[])
        .await
        .unwrap();
    let stored = store.challenge(&hash("live")).await.unwrap().unwrap();
    assert_eq!(stored.amr, vec!["pwd"]);
    assert_eq!(
        stored.expires_at,
        (now() + Duration::minutes(5)).trunc_subsecs(6)
    );
    let late = now() + Duration::minutes(5);
    assert!(
        store
            .complete_challenge(&hash("live"), 5, &session(u), &hash("r1"), late, &[])
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                let mut new = session(u);
                new.aal = "aal2".into();
                s.complete_challenge(&hash("live"), 5, &new, &hash(&format!("t{i}")), now(), &[])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut opened = Vec::new();
    for t in tasks {
        opened.extend(t.await.unwrap());
    }
    assert_eq!(opened.len(), 1);
    let live = store.session(opened[0].id).await.unwrap().unwrap();
    assert_eq!(live.aal, "aal2");
    assert_eq!(
        store
            .purge_challenges_before(now() + Duration::hours(1))
            .await
            .unwrap(),
        2
    );
    assert!(store.challenge(&hash("live")).await.unwrap().is_none());
}

async fn step_up_raises_a_live_session_only(store: Shared) {
    let u = user(&store).await;
    let s = store
        .create_session(&session(u), &hash("refresh"), &[])
        .await
        .unwrap();
    let up = store
        .step_up_session(s.id, "otp", now(), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (up.aal.as_str(), up.amr.clone()),
        ("aal2", vec!["pwd".to_owned(), "otp".to_owned()])
    );
    let again = store
        .step_up_session(s.id, "otp", now(), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.amr, vec!["pwd", "otp"]);
    let stored = store.session(s.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.aal, stored.amr),
        ("aal2".to_owned(), vec!["pwd".to_owned(), "otp".to_owned()])
    );
    store.revoke_session(s.id, now(), &[]).await.unwrap();
    assert!(
        store
            .step_up_session(s.id, "sms", now(), &[])
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .step_up_session(SessionId::new(), "otp", now(), &[])
            .await
            .unwrap()
            .is_none()
    );
}

async fn passkey_counters_only_move_forward_and_ceremonies_are_taken_once(store: Shared) {
    let u = user(&store).await;
    let passkey = StoredPasskey {
        id: Uuid::now_v7(),
        user_id: u,
        credential_id: vec![1, 2, 3, 250],
        credential: "{\"cred\":1}".into(),
        counter: 0,
        name: Some("laptop".into()),
        created_at: now(),
        last_used_at: None,
    };
    store.insert_passkey(&passkey, &notice()).await.unwrap();
    let mut twin = passkey.clone();
    twin.id = Uuid::now_v7();
    assert!(matches!(
        store.insert_passkey(&twin, &notice()).await,
        Err(AuthError::PasskeyTaken)
    ));
    let found = store
        .passkey_by_credential_id(&[1, 2, 3, 250])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found,
        StoredPasskey {
            created_at: now().trunc_subsecs(6),
            ..passkey.clone()
        }
    );
    assert!(
        store
            .record_passkey_use(passkey.id, 5, "{\"cred\":5}", now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_passkey_use(passkey.id, 5, "x", now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_passkey_use(passkey.id, 3, "x", now())
            .await
            .unwrap()
    );
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move {
                s.record_passkey_use(passkey.id, 6, "{\"cred\":6}", now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    let stored = store.passkeys_of(u).await.unwrap();
    assert_eq!(
        (stored[0].counter, stored[0].credential.as_str()),
        (6, "{\"cred\":6}")
    );

    let ceremony = PasskeyCeremony {
        token_hash: hash("ceremony"),
        kind: CeremonyKind::Authentication,
        user_id: None,
        sealed_state: vec![9; 64],
        created_at: now(),
        expires_at: now() + Duration::minutes(5),
    };
    store.insert_ceremony(&ceremony).await.unwrap();
    assert!(
        store
            .take_ceremony(&hash("ceremony"), CeremonyKind::Registration, now())
            .await
            .unwrap()
            .is_none(),
        "wrong kind"
    );
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move {
                s.take_ceremony(&hash("ceremony"), CeremonyKind::Authentication, now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut taken = Vec::new();
    for t in tasks {
        taken.extend(t.await.unwrap());
    }
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].sealed_state, vec![9; 64]);
    assert!(
        store
            .delete_passkey(u, passkey.id, &notice())
            .await
            .unwrap()
    );
    assert!(store.passkeys_of(u).await.unwrap().is_empty());
}
