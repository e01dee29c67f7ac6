//! Contract tests of the storage ports: every scenario is written once and runs against the
//! in-memory reference store (`auth_core::memory`), SQLite and PostgreSQL. Each checks the
//! state left behind, not only the answers.
//!
//! PostgreSQL: see `auth_db::testing` (`AUTH_TEST_POSTGRES_URL`, `AUTH_TEST_SKIP_POSTGRES`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::AuthError;
use auth_core::email::Email;
use auth_core::memory::MemoryStore;
use auth_core::model::{
    ClientInfo, NewSession, NewUser, ProfileUpdate, RotateOutcome, Session, SessionId,
    StoredSigningKey, TokenHash, User, UserId,
};
use auth_core::ports::{HealthCheck, SessionStore, SigningKeyStore, UserStore};
use auth_db::testing::TestDatabase;
use auth_db::{Backend, Database, DatabaseOptions, DbError};
use chrono::{DateTime, Duration as Span, SubsecRound, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// Every storage port, as the contract scenarios use them.
trait Store: UserStore + SessionStore + SigningKeyStore + HealthCheck + 'static {}
impl<T: UserStore + SessionStore + SigningKeyStore + HealthCheck + 'static> Store for T {}

type Shared = Arc<dyn Store>;

/// Instantiates every scenario for the three backends.
macro_rules! contract {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(Arc::new(MemoryStore::new())).await;
                }
            )*
        }

        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let db = TestDatabase::sqlite();
                    super::$scenario(Arc::new(db.database().await)).await;
                }
            )*
        }

        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(db) = TestDatabase::postgres() else { return };
                    super::$scenario(Arc::new(db.database().await)).await;
                }
            )*
        }
    };
}

contract!(
    insert_and_fetch_user,
    duplicate_canonical_email_is_taken,
    update_profile_sets_and_clears_fields,
    set_password_hash_replaces_the_hash,
    create_session_stores_its_first_refresh_token,
    create_session_for_an_unknown_user_is_not_found,
    rotate_retires_the_token_and_stores_its_successor,
    rotating_a_retired_token_changes_nothing,
    rotating_a_token_of_a_revoked_session_changes_nothing,
    concurrent_rotations_of_one_token_rotate_once,
    revoke_session_answers_whether_it_revoked,
    revoke_sessions_of_keeps_the_given_session,
    unrevoked_sessions_are_newest_first,
    purge_removes_ended_sessions_and_their_tokens,
    purge_compares_at_microsecond_precision,
    load_or_store_keeps_the_first_key,
    load_or_store_under_concurrency_agrees_on_one_key,
    timestamps_round_trip_at_microsecond_precision,
    ping_answers,
);

// ---- fixtures ---------------------------------------------------------------------------

/// A fixed instant with microseconds, and `secs` seconds after it.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
        + Span::microseconds(123_456)
        + Span::seconds(secs)
}

fn random_hash() -> TokenHash {
    TokenHash(format!(
        "{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    ))
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        name: Some("Alice".to_owned()),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        email_verified: false,
        roles: vec!["user".to_owned(), "admin".to_owned()],
        created_at: at(0),
    }
}

async fn insert_user(store: &Shared) -> User {
    store
        .insert_user(
            &new_user(&format!("user-{}@example.com", Uuid::new_v4().simple())),
            None,
        )
        .await
        .unwrap()
}

fn new_session(user_id: UserId, created_at: DateTime<Utc>) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user_id,
        created_at,
        expires_at: created_at + Span::days(30),
        client: ClientInfo {
            ip: Some("192.0.2.7".to_owned()),
            user_agent: Some("contract-test/1.0".to_owned()),
        },
        amr: vec!["pwd".to_owned(), "otp".to_owned()],
        aal: "aal2".to_owned(),
    }
}

/// A session of a new user, and its first refresh token.
async fn session_with_token(store: &Shared) -> (Session, TokenHash) {
    let user = insert_user(store).await;
    let first = random_hash();
    let session = store
        .create_session(&new_session(user.id, at(0)), &first)
        .await
        .unwrap();
    (session, first)
}

fn key(algorithm: &str, pem: &str, created_at: DateTime<Utc>) -> StoredSigningKey {
    StoredSigningKey {
        algorithm: algorithm.to_owned(),
        private_pem: SecretString::from(pem.to_owned()),
        created_at,
    }
}

// ---- users ------------------------------------------------------------------------------

async fn insert_and_fetch_user(store: Shared) {
    let new = new_user("Alice.Smith@Example.COM");
    let user = store.insert_user(&new, None).await.unwrap();
    assert_eq!(user.id, new.id);
    assert_eq!(user.email, "Alice.Smith@example.com");
    assert!(!user.email_verified);
    assert_eq!(user.name.as_deref(), Some("Alice"));
    assert_eq!(user.avatar_url, None);
    assert_eq!(user.roles, ["user", "admin"]);
    assert_eq!((user.created_at, user.updated_at), (at(0), at(0)));

    assert_eq!(store.user_by_id(new.id).await.unwrap(), Some(user.clone()));
    let creds = store
        .credentials_by_email("alice.smith@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user, user);
    assert_eq!(creds.password_hash, new.password_hash);

    assert_eq!(store.user_by_id(UserId::new()).await.unwrap(), None);
    assert!(
        store
            .credentials_by_email("bob@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // Look-ups take the canonical (lowercased) form, as documented.
    assert!(
        store
            .credentials_by_email("Alice.Smith@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

async fn duplicate_canonical_email_is_taken(store: Shared) {
    let first = store
        .insert_user(&new_user("alice@example.com"), None)
        .await
        .unwrap();
    for email in ["alice@example.com", "ALICE@Example.com"] {
        let again = new_user(email);
        let err = store.insert_user(&again, None).await.unwrap_err();
        assert!(matches!(err, AuthError::EmailTaken), "{email}: {err:?}");
        assert_eq!(store.user_by_id(again.id).await.unwrap(), None);
    }
    assert_eq!(
        store
            .credentials_by_email("alice@example.com")
            .await
            .unwrap()
            .unwrap()
            .user,
        first
    );
}

async fn update_profile_sets_and_clears_fields(store: Shared) {
    let user = insert_user(&store).await;
    let set = ProfileUpdate {
        name: Some(Some("Alice Liddell".to_owned())),
        avatar_url: Some(Some("https://example.com/a.png".to_owned())),
    };
    let updated = store
        .update_profile(user.id, &set, at(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(
        updated.avatar_url.as_deref(),
        Some("https://example.com/a.png")
    );
    assert_eq!((updated.created_at, updated.updated_at), (at(0), at(10)));
    assert_eq!(
        store.user_by_id(user.id).await.unwrap(),
        Some(updated.clone())
    );

    // Clear the name, leave the avatar alone.
    let clear = ProfileUpdate {
        name: Some(None),
        avatar_url: None,
    };
    let cleared = store
        .update_profile(user.id, &clear, at(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        cleared,
        User {
            name: None,
            updated_at: at(20),
            ..updated
        }
    );
    assert_eq!(store.user_by_id(user.id).await.unwrap(), Some(cleared));

    assert_eq!(
        store
            .update_profile(UserId::new(), &set, at(30))
            .await
            .unwrap(),
        None
    );
}

async fn set_password_hash_replaces_the_hash(store: Shared) {
    let user = insert_user(&store).await;
    store
        .set_password_hash(user.id, "$argon2id$new", at(5))
        .await
        .unwrap();
    let creds = store
        .credentials_by_email(&user.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.password_hash.as_deref(), Some("$argon2id$new"));
    assert_eq!(
        creds.user,
        User {
            updated_at: at(5),
            ..user
        }
    );

    let err = store
        .set_password_hash(UserId::new(), "$argon2id$x", at(5))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::NotFound), "{err:?}");
}

// ---- sessions and refresh tokens --------------------------------------------------------

async fn create_session_stores_its_first_refresh_token(store: Shared) {
    let user = insert_user(&store).await;
    let new = new_session(user.id, at(1));
    let first = random_hash();
    let session = store.create_session(&new, &first).await.unwrap();
    let expected = Session {
        id: new.id,
        user_id: user.id,
        created_at: at(1),
        last_used_at: at(1),
        expires_at: at(1) + Span::days(30),
        revoked_at: None,
        client: new.client.clone(),
        amr: new.amr.clone(),
        aal: "aal2".to_owned(),
    };
    assert_eq!(session, expected);
    assert_eq!(store.session(new.id).await.unwrap(), Some(expected));

    let record = store.refresh_token(&first).await.unwrap().unwrap();
    assert_eq!(record.token_hash, first);
    assert_eq!(record.session_id, new.id);
    assert_eq!(record.created_at, at(1));
    assert_eq!((record.rotated_at, record.sealed_successor), (None, None));

    assert_eq!(store.session(SessionId::new()).await.unwrap(), None);
    assert_eq!(store.refresh_token(&random_hash()).await.unwrap(), None);
}

async fn create_session_for_an_unknown_user_is_not_found(store: Shared) {
    let new = new_session(UserId::new(), at(0));
    let first = random_hash();
    let err = store.create_session(&new, &first).await.unwrap_err();
    assert!(matches!(err, AuthError::NotFound), "{err:?}");
    assert_eq!(store.session(new.id).await.unwrap(), None);
    assert_eq!(store.refresh_token(&first).await.unwrap(), None);
}

async fn rotate_retires_the_token_and_stores_its_successor(store: Shared) {
    let (session, first) = session_with_token(&store).await;
    let second = random_hash();
    let outcome = store
        .rotate_refresh_token(&first, &second, "sealed-2", at(60))
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::Rotated);

    let old = store.refresh_token(&first).await.unwrap().unwrap();
    assert_eq!(old.rotated_at, Some(at(60)));
    assert_eq!(old.sealed_successor.as_deref(), Some("sealed-2"));
    assert_eq!(old.created_at, at(0));
    let new = store.refresh_token(&second).await.unwrap().unwrap();
    assert_eq!((new.session_id, new.created_at), (session.id, at(60)));
    assert_eq!((new.rotated_at, new.sealed_successor), (None, None));
    let after = store.session(session.id).await.unwrap().unwrap();
    assert_eq!(
        after,
        Session {
            last_used_at: at(60),
            ..session.clone()
        }
    );

    // The successor is now the current token.
    let third = random_hash();
    assert_eq!(
        store
            .rotate_refresh_token(&second, &third, "sealed-3", at(120))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
    assert_eq!(
        store
            .session(session.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        at(120)
    );
}

async fn rotating_a_retired_token_changes_nothing(store: Shared) {
    let (session, first) = session_with_token(&store).await;
    let second = random_hash();
    store
        .rotate_refresh_token(&first, &second, "sealed-2", at(60))
        .await
        .unwrap();
    let retired = store.refresh_token(&first).await.unwrap();

    let other = random_hash();
    let outcome = store
        .rotate_refresh_token(&first, &other, "sealed-x", at(90))
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::NotCurrent);
    assert_eq!(store.refresh_token(&other).await.unwrap(), None);
    assert_eq!(store.refresh_token(&first).await.unwrap(), retired);
    assert_eq!(
        store
            .refresh_token(&second)
            .await
            .unwrap()
            .unwrap()
            .rotated_at,
        None
    );
    assert_eq!(
        store
            .session(session.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        at(60)
    );

    // An unknown token is not current either.
    let unknown = random_hash();
    assert_eq!(
        store
            .rotate_refresh_token(&unknown, &other, "s", at(90))
            .await
            .unwrap(),
        RotateOutcome::NotCurrent
    );
    assert_eq!(store.refresh_token(&other).await.unwrap(), None);
}

async fn rotating_a_token_of_a_revoked_session_changes_nothing(store: Shared) {
    let (session, first) = session_with_token(&store).await;
    assert!(store.revoke_session(session.id, at(30)).await.unwrap());
    let before = store.refresh_token(&first).await.unwrap();

    let second = random_hash();
    let outcome = store
        .rotate_refresh_token(&first, &second, "sealed-2", at(60))
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::NotCurrent);
    assert_eq!(store.refresh_token(&first).await.unwrap(), before);
    assert_eq!(store.refresh_token(&second).await.unwrap(), None);
    let after = store.session(session.id).await.unwrap().unwrap();
    assert_eq!(
        after,
        Session {
            revoked_at: Some(at(30)),
            ..session
        }
    );
}

async fn concurrent_rotations_of_one_token_rotate_once(store: Shared) {
    let (session, first) = session_with_token(&store).await;
    let successors: Vec<TokenHash> = (0..32).map(|_| random_hash()).collect();
    let tasks: Vec<_> = successors
        .iter()
        .cloned()
        .map(|successor| {
            let (store, first) = (store.clone(), first.clone());
            tokio::spawn(async move {
                store
                    .rotate_refresh_token(&first, &successor, "sealed", at(60))
                    .await
            })
        })
        .collect();
    let mut rotated = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(RotateOutcome::Rotated) => rotated += 1,
            Ok(RotateOutcome::NotCurrent) => {}
            Err(e) => panic!("a concurrent rotation failed: {e:?}"),
        }
    }
    assert_eq!(rotated, 1);

    let mut stored = Vec::new();
    for successor in &successors {
        if let Some(record) = store.refresh_token(successor).await.unwrap() {
            stored.push(record);
        }
    }
    assert_eq!(
        stored.len(),
        1,
        "exactly one successor, so two token rows for the session"
    );
    assert_eq!(
        (stored[0].session_id, stored[0].rotated_at),
        (session.id, None)
    );
    let old = store.refresh_token(&first).await.unwrap().unwrap();
    assert_eq!(old.rotated_at, Some(at(60)));
}

async fn revoke_session_answers_whether_it_revoked(store: Shared) {
    let (session, _) = session_with_token(&store).await;
    assert!(store.revoke_session(session.id, at(10)).await.unwrap());
    assert!(!store.revoke_session(session.id, at(20)).await.unwrap());
    assert_eq!(
        store.session(session.id).await.unwrap().unwrap().revoked_at,
        Some(at(10))
    );
    assert!(
        store
            .unrevoked_sessions_of(session.user_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .revoke_session(SessionId::new(), at(20))
            .await
            .unwrap()
    );
}

async fn revoke_sessions_of_keeps_the_given_session(store: Shared) {
    let alice = insert_user(&store).await;
    let bob = insert_user(&store).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            store
                .create_session(&new_session(alice.id, at(i)), &random_hash())
                .await
                .unwrap()
                .id,
        );
    }
    let bobs = store
        .create_session(&new_session(bob.id, at(0)), &random_hash())
        .await
        .unwrap()
        .id;
    assert!(store.revoke_session(ids[3], at(5)).await.unwrap());

    assert_eq!(
        store
            .revoke_sessions_of(alice.id, Some(ids[0]), at(10))
            .await
            .unwrap(),
        2
    );
    let revoked_at = |id| {
        let store = store.clone();
        async move { store.session(id).await.unwrap().unwrap().revoked_at }
    };
    assert_eq!(revoked_at(ids[0]).await, None);
    assert_eq!(revoked_at(ids[1]).await, Some(at(10)));
    assert_eq!(revoked_at(ids[2]).await, Some(at(10)));
    assert_eq!(
        revoked_at(ids[3]).await,
        Some(at(5)),
        "an earlier revocation is kept"
    );
    assert_eq!(revoked_at(bobs).await, None);

    assert_eq!(
        store
            .revoke_sessions_of(alice.id, None, at(20))
            .await
            .unwrap(),
        1
    );
    assert_eq!(revoked_at(ids[0]).await, Some(at(20)));
    assert_eq!(
        store
            .revoke_sessions_of(alice.id, None, at(30))
            .await
            .unwrap(),
        0
    );
    assert_eq!(revoked_at(bobs).await, None);
}

async fn unrevoked_sessions_are_newest_first(store: Shared) {
    let alice = insert_user(&store).await;
    let bob = insert_user(&store).await;
    let mut sessions = Vec::new();
    for created in [0, 20, 10, 30] {
        sessions.push(
            store
                .create_session(&new_session(alice.id, at(created)), &random_hash())
                .await
                .unwrap(),
        );
    }
    store
        .create_session(&new_session(bob.id, at(40)), &random_hash())
        .await
        .unwrap();
    store.revoke_session(sessions[3].id, at(50)).await.unwrap();

    let listed = store.unrevoked_sessions_of(alice.id).await.unwrap();
    assert_eq!(
        listed,
        [
            sessions[1].clone(),
            sessions[2].clone(),
            sessions[0].clone()
        ]
    );
    assert!(
        store
            .unrevoked_sessions_of(UserId::new())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn purge_removes_ended_sessions_and_their_tokens(store: Shared) {
    let user = insert_user(&store).await;
    let cutoff = at(1000);
    let create = async |expires_at: DateTime<Utc>| {
        let mut new = new_session(user.id, at(0));
        new.expires_at = expires_at;
        let first = random_hash();
        let session = store.create_session(&new, &first).await.unwrap();
        let second = random_hash();
        store
            .rotate_refresh_token(&first, &second, "sealed", at(1))
            .await
            .unwrap();
        (session.id, [first, second])
    };
    let expired = create(at(999)).await;
    let revoked_early = create(at(5000)).await;
    let revoked_late = create(at(5000)).await;
    let live = create(at(5000)).await;
    let ends_at_cutoff = create(cutoff).await;
    store
        .revoke_session(revoked_early.0, at(999))
        .await
        .unwrap();
    store
        .revoke_session(revoked_late.0, at(1000))
        .await
        .unwrap();

    assert_eq!(store.purge_sessions_ended_before(cutoff).await.unwrap(), 2);
    for (id, tokens) in [&expired, &revoked_early] {
        assert_eq!(store.session(*id).await.unwrap(), None);
        for token in tokens {
            assert_eq!(
                store.refresh_token(token).await.unwrap(),
                None,
                "tokens of a purged session are gone"
            );
        }
    }
    for (id, tokens) in [&revoked_late, &live, &ends_at_cutoff] {
        assert!(store.session(*id).await.unwrap().is_some());
        for token in tokens {
            assert!(store.refresh_token(token).await.unwrap().is_some());
        }
    }
    assert_eq!(store.purge_sessions_ended_before(cutoff).await.unwrap(), 0);
}

async fn purge_compares_at_microsecond_precision(store: Shared) {
    // SQLite compares timestamps as text: a whole second must sort before the same second
    // plus one microsecond, and `.1` before `.100001`.
    let user = insert_user(&store).await;
    let whole = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
    let mut ids = Vec::new();
    for expires_at in [
        whole,
        whole + Span::milliseconds(100),
        whole + Span::microseconds(100_001),
    ] {
        let mut new = new_session(user.id, whole - Span::days(1));
        new.expires_at = expires_at;
        ids.push(store.create_session(&new, &random_hash()).await.unwrap().id);
    }
    assert_eq!(
        store
            .purge_sessions_ended_before(whole + Span::microseconds(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.session(ids[0]).await.unwrap(), None);
    assert_eq!(
        store
            .purge_sessions_ended_before(whole + Span::microseconds(100_001))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.session(ids[1]).await.unwrap(), None);
    assert!(store.session(ids[2]).await.unwrap().is_some());
}

// ---- signing keys, time, health ---------------------------------------------------------

async fn load_or_store_keeps_the_first_key(store: Shared) {
    let first = key(
        "EdDSA",
        "-----BEGIN PRIVATE KEY-----\nfirst\n-----END PRIVATE KEY-----\n",
        at(0),
    );
    let stored = store.load_or_store(&first).await.unwrap();
    assert_eq!(
        stored.private_pem.expose_secret(),
        first.private_pem.expose_secret()
    );
    assert_eq!(
        (stored.algorithm.as_str(), stored.created_at),
        ("EdDSA", at(0))
    );

    let second = key("ES256", "second", at(100));
    let again = store.load_or_store(&second).await.unwrap();
    assert_eq!(
        again.private_pem.expose_secret(),
        first.private_pem.expose_secret()
    );
    assert_eq!(
        (again.algorithm.as_str(), again.created_at),
        ("EdDSA", at(0))
    );
}

async fn load_or_store_under_concurrency_agrees_on_one_key(store: Shared) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .load_or_store(&key("EdDSA", &format!("pem-{i}"), at(i)))
                    .await
            })
        })
        .collect();
    let mut pems = Vec::new();
    for task in tasks {
        pems.push(
            task.await
                .unwrap()
                .unwrap()
                .private_pem
                .expose_secret()
                .to_owned(),
        );
    }
    assert!(pems.iter().all(|pem| *pem == pems[0]), "{pems:?}");
    assert!(pems[0].starts_with("pem-"));
}

async fn timestamps_round_trip_at_microsecond_precision(store: Shared) {
    let odd = [
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
        Utc::now().trunc_subsecs(6),
        Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap() + Span::microseconds(999_999),
        Utc.with_ymd_and_hms(2038, 1, 19, 3, 14, 8).unwrap() + Span::microseconds(1),
    ];
    for t in odd {
        let mut new = new_user(&format!("t-{}@example.com", Uuid::new_v4().simple()));
        new.created_at = t;
        let user = store.insert_user(&new, None).await.unwrap();
        assert_eq!(
            store.user_by_id(user.id).await.unwrap().unwrap().created_at,
            t
        );

        let mut session = new_session(user.id, t);
        session.expires_at = t + Span::microseconds(1);
        let first = random_hash();
        store.create_session(&session, &first).await.unwrap();
        let stored = store.session(session.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.created_at, stored.expires_at),
            (t, t + Span::microseconds(1))
        );
        store
            .revoke_session(session.id, t + Span::microseconds(2))
            .await
            .unwrap();
        assert_eq!(
            store.session(session.id).await.unwrap().unwrap().revoked_at,
            Some(t + Span::microseconds(2))
        );
        assert_eq!(
            store
                .refresh_token(&first)
                .await
                .unwrap()
                .unwrap()
                .created_at,
            t
        );
    }
}

async fn ping_answers(store: Shared) {
    store.ping().await.unwrap();
}

// ---- the SQL adapter beyond the ports ---------------------------------------------------

async fn migrate_twice_is_a_no_op(db: &TestDatabase, backend: Backend) {
    let database = db.database().await;
    assert_eq!(database.backend(), backend);
    let user = database
        .insert_user(&new_user("keep@example.com"), None)
        .await
        .unwrap();
    database.migrate().await.unwrap();
    let again = Database::connect(db.url(), &DatabaseOptions::default()).unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.user_by_id(user.id).await.unwrap(), Some(user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrate_twice_is_a_no_op() {
    migrate_twice_is_a_no_op(&TestDatabase::sqlite(), Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrate_twice_is_a_no_op() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    migrate_twice_is_a_no_op(&db, Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_migrating_together_do_not_race() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let node = Database::connect(db.url(), &DatabaseOptions::default()).unwrap();
            tokio::spawn(async move { node.migrate().await })
        })
        .collect();
    for node in nodes {
        node.await.unwrap().unwrap();
    }
    db.database().await.ping().await.unwrap();
}

#[test]
fn connect_refuses_unknown_schemes() {
    let opts = DatabaseOptions::default();
    for url in [
        "mysql://root:secret@localhost/auth",
        "auth.db",
        "sqlite:auth.db",
        "",
    ] {
        let err = Database::connect(url, &opts).unwrap_err();
        assert!(
            matches!(err, DbError::UnsupportedScheme(_)),
            "{url}: {err:?}"
        );
        assert!(
            !err.to_string().contains("secret"),
            "the URL is not echoed: {err}"
        );
    }
    for url in ["sqlite://", "sqlite://:memory:"] {
        let err = Database::connect(url, &opts).unwrap_err();
        assert!(matches!(err, DbError::InvalidUrl(_)), "{url}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connect_creates_the_directory() {
    let db = TestDatabase::sqlite();
    let dir = std::path::Path::new(db.url().strip_prefix("sqlite://").unwrap())
        .parent()
        .unwrap()
        .to_owned();
    let url = format!("sqlite://{}", dir.join("nested/deeper/auth.db").display());
    let database = Database::connect(&url, &DatabaseOptions::default()).unwrap();
    database.migrate().await.unwrap();
    database.ping().await.unwrap();
    assert!(dir.join("nested/deeper/auth.db").is_file());
    database
        .insert_user(&new_user("wal@example.com"), None)
        .await
        .unwrap();
    assert!(
        dir.join("nested/deeper/auth.db-wal").is_file(),
        "connections run in WAL mode"
    );
}

/// `connect` is lazy: it succeeds, and then every call answers `Unavailable` in bounded time.
async fn assert_unavailable(url: &str) {
    let opts = DatabaseOptions {
        max_connections: Some(2),
        connect_timeout: Duration::from_millis(500),
        acquire_timeout: Duration::from_millis(500),
    };
    let db = Database::connect(url, &opts).unwrap();
    let started = Instant::now();
    let err = db.user_by_id(UserId::new()).await.unwrap_err();
    assert!(matches!(err, AuthError::Unavailable(_)), "{err:?}");
    let err = db.ping().await.unwrap_err();
    assert!(matches!(err, AuthError::Unavailable(_)), "{err:?}");
    let err = db.migrate().await.unwrap_err();
    assert!(
        matches!(err, DbError::Connect(AuthError::Unavailable(_))),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_connections_is_unavailable() {
    assert_unavailable("postgres://postgres@127.0.0.1:1/x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_that_never_answers_is_unavailable_after_the_connect_timeout() {
    // Accepts TCP connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    assert_unavailable(&format!("postgres://postgres@127.0.0.1:{port}/x")).await;
    silent.abort();
}

/// Callers that give up halfway (a client that disconnects) must neither panic the
/// single-threaded runtimes of actix-web workers nor leave half a rotation behind.
#[tokio::test]
async fn sqlite_calls_abandoned_on_a_current_thread_runtime_complete_whole() {
    let test_db = TestDatabase::sqlite();
    let db = test_db.database().await;
    let store: Shared = Arc::new(db);
    let (session, first) = session_with_token(&store).await;
    let mut hashes = vec![first];
    for i in 0..40 {
        let successor = random_hash();
        let presented = hashes.last().unwrap().clone();
        let call = store.rotate_refresh_token(&presented, &successor, "sealed", at(i));
        let _ = tokio::time::timeout(Duration::from_micros(i as u64 * 50), call).await;
        hashes.push(successor);
    }
    // Let the abandoned calls finish, then check the chain: exactly one current token.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut current = 0;
    for hash in &hashes {
        if let Some(record) = store.refresh_token(hash).await.unwrap() {
            assert_eq!(record.session_id, session.id);
            match record.rotated_at {
                None => current += 1,
                Some(_) => assert!(record.sealed_successor.is_some()),
            }
        }
    }
    assert_eq!(current, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_recovers_when_the_server_drops_its_connections() {
    let Some(test_db) = TestDatabase::postgres() else {
        return;
    };
    let db = test_db.database().await;
    let user = db
        .insert_user(&new_user("drop@example.com"), None)
        .await
        .unwrap();

    let (admin, connection) = tokio_postgres::connect(test_db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let killed = admin.query(terminate, &[]).await.unwrap().len();
    assert!(killed >= 1);

    // A call on a connection that died under it may fail, as `Unavailable`; then the pool
    // replaces the connection.
    if let Err(e) = db.user_by_id(user.id).await {
        assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
    }
    assert_eq!(db.user_by_id(user.id).await.unwrap(), Some(user));
}
