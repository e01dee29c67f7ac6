//! Contract tests of the storage ports: every scenario is written once and runs against the
//! in-memory reference store (`auth_core::memory`), SQLite and PostgreSQL. Each checks the
//! state left behind, not only the answers.
//!
//! PostgreSQL: see `auth_db::testing` (`AUTH_TEST_POSTGRES_URL`, `AUTH_TEST_SKIP_POSTGRES`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use auth_core::AuthError;
use auth_core::email::Email;
use auth_core::guard::{LockoutState, LockoutStore, RateLimitStore};
use auth_core::memory::MemoryStore;
use auth_core::model::{
    ClientInfo, NewOneTimeToken, NewSession, NewUser, OneTimeToken, OneTimeTokenKind,
    ProfileUpdate, RotateOutcome, Session, SessionId, StoredSigningKey, TokenHash, User, UserId,
};
use auth_core::outbox::{NewOutboxMessage, OutboxMessage};
use auth_core::ports::{
    HealthCheck, OneTimeTokenStore, OutboxStore, SessionStore, SigningKeyStore, UserStore,
};
use auth_db::testing::TestDatabase;
use auth_db::{Backend, Database, DatabaseOptions, DbError, OutboxEntryView};
use chrono::{DateTime, Duration as Span, SubsecRound, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// Every storage port, as the contract scenarios use them, and a look at the outbox.
trait Store:
    UserStore
    + SessionStore
    + OneTimeTokenStore
    + OutboxStore
    + SigningKeyStore
    + HealthCheck
    + RateLimitStore
    + LockoutStore
    + Inspect
    + 'static
{
}
impl<
    T: UserStore
        + SessionStore
        + OneTimeTokenStore
        + OutboxStore
        + SigningKeyStore
        + HealthCheck
        + RateLimitStore
        + LockoutStore
        + Inspect
        + 'static,
> Store for T
{
}

type Shared = Arc<dyn Store>;

// Roles, account administration, the audit trail and webhooks: tests/contract/operators.rs.
#[path = "contract/operators.rs"]
mod operators;

/// What the scenarios check of the outbox beyond its port.
#[async_trait]
trait Inspect: Send + Sync {
    /// Kinds of the entries neither done nor dead, oldest first.
    async fn pending_kinds(&self) -> Vec<String>;
    /// Every entry with its delivery state, where the store shows it: the SQL stores do;
    /// the memory store shows only its pending kinds.
    async fn outbox_view(&self) -> Option<Vec<OutboxEntryView>>;
}

#[async_trait]
impl Inspect for MemoryStore {
    async fn pending_kinds(&self) -> Vec<String> {
        self.pending_outbox_kinds()
    }

    async fn outbox_view(&self) -> Option<Vec<OutboxEntryView>> {
        None
    }
}

#[async_trait]
impl Inspect for Database {
    async fn pending_kinds(&self) -> Vec<String> {
        let entries = self.outbox_entries().await.unwrap();
        entries
            .into_iter()
            .filter(|e| e.done_at.is_none() && e.dead_at.is_none())
            .map(|e| e.kind)
            .collect()
    }

    async fn outbox_view(&self) -> Option<Vec<OutboxEntryView>> {
        Some(self.outbox_entries().await.unwrap())
    }
}

auth_db::on_every_store!(
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
    insert_user_with_verification_writes_user_token_and_mail,
    insert_user_with_verification_for_a_taken_email_writes_nothing,
    issue_retires_older_unused_tokens_of_the_same_kind_and_email,
    consume_takes_a_usable_token_of_its_kind_once,
    concurrent_consumes_of_one_token_succeed_once,
    current_one_time_token_is_the_newest_usable_one,
    record_failed_attempt_counts_and_retires_at_max,
    concurrent_failed_attempts_are_all_counted,
    redeem_password_reset_changes_the_password_and_ends_every_session,
    redeem_password_reset_with_an_unusable_token_changes_nothing,
    change_password_ends_every_session_and_opens_a_new_one,
    change_password_of_an_unknown_user_is_not_found,
    outbox_leases_retries_and_completes,
    outbox_gives_up_and_erases_the_payload,
    outbox_claims_due_entries_oldest_first_up_to_the_limit,
    concurrent_claimers_get_disjoint_entries,
    backlog_counts_entries_neither_done_nor_dead,
    hits_count_per_key_and_window,
    concurrent_hits_on_one_key_are_all_counted,
    purge_windows_removes_only_older_windows,
    failures_count_and_lock_at_the_threshold,
    clear_all_forgets_an_identifier_and_everything_under_it,
    an_expired_window_restarts_the_count_and_keeps_the_lock,
    clear_forgets_failures_and_the_lock,
    concurrent_failures_are_all_counted,
    concurrent_failures_lock_once_per_threshold,
);

/// Scenarios of what only the SQL stores have, or of several pools on one database.
macro_rules! sql {
    ($($scenario:ident),* $(,)?) => {
        mod sql {
            mod sqlite {
                use super::super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $scenario() {
                        super::super::$scenario(&TestDatabase::sqlite()).await;
                    }
                )*
            }

            mod postgres {
                use super::super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $scenario() {
                        let Some(db) = TestDatabase::postgres() else { return };
                        super::super::$scenario(&db).await;
                    }
                )*
            }
        }
    };
}

sql!(
    purge_outbox_removes_only_entries_finished_before_the_cutoff,
    claims_follow_due_time_not_insertion_order,
    claimers_on_two_nodes_get_disjoint_entries,
    two_nodes_share_rate_limits_and_lockouts,
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
        .create_session(&new_session(user.id, at(0)), &first, &[])
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
    let session = store.create_session(&new, &first, &[]).await.unwrap();
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
    let err = store.create_session(&new, &first, &[]).await.unwrap_err();
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
    assert!(store.revoke_session(session.id, at(30), &[]).await.unwrap());
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
    assert!(store.revoke_session(session.id, at(10), &[]).await.unwrap());
    assert!(!store.revoke_session(session.id, at(20), &[]).await.unwrap());
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
            .revoke_session(SessionId::new(), at(20), &[])
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
                .create_session(&new_session(alice.id, at(i)), &random_hash(), &[])
                .await
                .unwrap()
                .id,
        );
    }
    let bobs = store
        .create_session(&new_session(bob.id, at(0)), &random_hash(), &[])
        .await
        .unwrap()
        .id;
    assert!(store.revoke_session(ids[3], at(5), &[]).await.unwrap());

    assert_eq!(
        store
            .revoke_sessions_of(alice.id, Some(ids[0]), at(10), &[])
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
            .revoke_sessions_of(alice.id, None, at(20), &[])
            .await
            .unwrap(),
        1
    );
    assert_eq!(revoked_at(ids[0]).await, Some(at(20)));
    assert_eq!(
        store
            .revoke_sessions_of(alice.id, None, at(30), &[])
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
                .create_session(&new_session(alice.id, at(created)), &random_hash(), &[])
                .await
                .unwrap(),
        );
    }
    store
        .create_session(&new_session(bob.id, at(40)), &random_hash(), &[])
        .await
        .unwrap();
    store
        .revoke_session(sessions[3].id, at(50), &[])
        .await
        .unwrap();

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
        let session = store.create_session(&new, &first, &[]).await.unwrap();
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
        .revoke_session(revoked_early.0, at(999), &[])
        .await
        .unwrap();
    store
        .revoke_session(revoked_late.0, at(1000), &[])
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
        ids.push(
            store
                .create_session(&new, &random_hash(), &[])
                .await
                .unwrap()
                .id,
        );
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
        store.create_session(&session, &first, &[]).await.unwrap();
        let stored = store.session(session.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.created_at, stored.expires_at),
            (t, t + Span::microseconds(1))
        );
        store
            .revoke_session(session.id, t + Span::microseconds(2), &[])
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

// ---- one-time tokens --------------------------------------------------------------------

/// A token of `kind` for `email`, issued at `created_at`, valid ten minutes.
fn one_time(
    kind: OneTimeTokenKind,
    email: &str,
    user_id: Option<UserId>,
    created_at: DateTime<Utc>,
) -> NewOneTimeToken {
    NewOneTimeToken {
        token_hash: random_hash(),
        kind,
        user_id,
        email: email.to_owned(),
        created_at,
        expires_at: created_at + Span::minutes(10),
        redirect_to: (kind == OneTimeTokenKind::MagicLink)
            .then(|| "https://app.example.com/welcome".to_owned()),
    }
}

/// `new` as stored, unused.
fn stored(new: &NewOneTimeToken) -> OneTimeToken {
    OneTimeToken {
        token_hash: new.token_hash.clone(),
        kind: new.kind,
        user_id: new.user_id,
        email: new.email.clone(),
        created_at: new.created_at,
        expires_at: new.expires_at,
        used_at: None,
        failed_attempts: 0,
        redirect_to: new.redirect_to.clone(),
    }
}

/// An outbox entry of `kind` written at `created_at`.
fn message(kind: &str, created_at: DateTime<Utc>) -> NewOutboxMessage {
    let id = Uuid::now_v7();
    NewOutboxMessage {
        id,
        kind: kind.to_owned(),
        payload: format!("sealed {kind} {id}").into_bytes(),
        created_at,
    }
}

/// `new` as a claim returns it.
fn claimed(new: &NewOutboxMessage, attempts: i32) -> OutboxMessage {
    OutboxMessage {
        id: new.id,
        kind: new.kind.clone(),
        payload: new.payload.clone(),
        attempts,
        created_at: new.created_at,
    }
}

async fn issue(store: &Shared, token: &NewOneTimeToken) {
    store
        .issue_one_time_token(token, &message("mail", token.created_at))
        .await
        .unwrap();
}

async fn token_state(store: &Shared, token: &NewOneTimeToken) -> OneTimeToken {
    store
        .one_time_token(&token.token_hash)
        .await
        .unwrap()
        .unwrap()
}

async fn used_at(store: &Shared, token: &NewOneTimeToken) -> Option<DateTime<Utc>> {
    token_state(store, token).await.used_at
}

async fn insert_user_with_verification_writes_user_token_and_mail(store: Shared) {
    let new = new_user("Verify@Example.com");
    let token = one_time(
        OneTimeTokenKind::EmailVerification,
        "verify@example.com",
        Some(new.id),
        at(0),
    );
    let mail = message("mail", at(0));
    let user = store
        .insert_user(&new, Some((&token, &mail)))
        .await
        .unwrap();
    assert_eq!(user.id, new.id);
    assert_eq!(store.user_by_id(new.id).await.unwrap(), Some(user));
    assert_eq!(
        store.one_time_token(&token.token_hash).await.unwrap(),
        Some(stored(&token))
    );
    assert_eq!(store.pending_kinds().await, ["mail"]);
    assert_eq!(
        store.claim_due(at(0), at(60), 10).await.unwrap(),
        [claimed(&mail, 1)]
    );
}

async fn insert_user_with_verification_for_a_taken_email_writes_nothing(store: Shared) {
    let first = store
        .insert_user(&new_user("taken@example.com"), None)
        .await
        .unwrap();
    let again = new_user("TAKEN@example.com");
    let token = one_time(
        OneTimeTokenKind::EmailVerification,
        "taken@example.com",
        Some(again.id),
        at(5),
    );
    let mail = message("mail", at(5));
    let err = store
        .insert_user(&again, Some((&token, &mail)))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::EmailTaken), "{err:?}");

    assert_eq!(store.user_by_id(again.id).await.unwrap(), None);
    assert_eq!(store.user_by_id(first.id).await.unwrap(), Some(first));
    assert_eq!(store.one_time_token(&token.token_hash).await.unwrap(), None);
    assert_eq!(store.backlog().await.unwrap(), 0);
    assert!(store.pending_kinds().await.is_empty());
    assert!(store.claim_due(at(5), at(60), 10).await.unwrap().is_empty());
}

async fn issue_retires_older_unused_tokens_of_the_same_kind_and_email(store: Shared) {
    use OneTimeTokenKind::{MagicLink, PasswordReset};
    let user = insert_user(&store).await;
    let email = user.email.clone();

    let used = one_time(PasswordReset, &email, Some(user.id), at(0));
    issue(&store, &used).await;
    assert!(
        store
            .consume_one_time_token(&used.token_hash, PasswordReset, at(1))
            .await
            .unwrap()
            .is_some()
    );
    let older = one_time(PasswordReset, &email, Some(user.id), at(2));
    let link = one_time(MagicLink, &email, Some(user.id), at(3));
    let elsewhere = one_time(PasswordReset, "someone-else@example.com", None, at(4));
    for token in [&older, &link, &elsewhere] {
        issue(&store, token).await;
    }

    let newer = one_time(PasswordReset, &email, Some(user.id), at(10));
    let mail = message("mail", at(10));
    store.issue_one_time_token(&newer, &mail).await.unwrap();

    assert_eq!(
        token_state(&store, &older).await,
        OneTimeToken {
            used_at: Some(at(10)),
            ..stored(&older)
        },
        "retired when the newer one was issued"
    );
    assert_eq!(used_at(&store, &used).await, Some(at(1)), "kept as it was");
    assert_eq!(token_state(&store, &link).await, stored(&link));
    assert_eq!(token_state(&store, &elsewhere).await, stored(&elsewhere));
    assert_eq!(token_state(&store, &newer).await, stored(&newer));
    assert_eq!(
        store
            .current_one_time_token(PasswordReset, &email, at(10))
            .await
            .unwrap(),
        Some(stored(&newer))
    );
    assert_eq!(store.pending_kinds().await, ["mail"; 5]);
}

async fn consume_takes_a_usable_token_of_its_kind_once(store: Shared) {
    use OneTimeTokenKind::{EmailOtp, MagicLink, PasswordReset};
    let user = insert_user(&store).await;
    let link = one_time(MagicLink, &user.email, Some(user.id), at(0));
    issue(&store, &link).await;

    for wrong in [PasswordReset, EmailOtp] {
        assert_eq!(
            store
                .consume_one_time_token(&link.token_hash, wrong, at(1))
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        used_at(&store, &link).await,
        None,
        "the wrong kind uses nothing"
    );

    let expected = OneTimeToken {
        used_at: Some(at(1)),
        ..stored(&link)
    };
    assert_eq!(
        store
            .consume_one_time_token(&link.token_hash, MagicLink, at(1))
            .await
            .unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store
            .consume_one_time_token(&link.token_hash, MagicLink, at(2))
            .await
            .unwrap(),
        None,
        "single use"
    );
    assert_eq!(token_state(&store, &link).await, expected);

    // Valid up to, not including, its expiry instant.
    let code = one_time(EmailOtp, "code@example.com", None, at(0));
    let late = one_time(EmailOtp, "late@example.com", None, at(0));
    issue(&store, &code).await;
    issue(&store, &late).await;
    assert_eq!(
        store
            .consume_one_time_token(&late.token_hash, EmailOtp, late.expires_at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(used_at(&store, &late).await, None);
    let just_in_time = code.expires_at - Span::microseconds(1);
    assert_eq!(
        store
            .consume_one_time_token(&code.token_hash, EmailOtp, just_in_time)
            .await
            .unwrap()
            .and_then(|t| t.used_at),
        Some(just_in_time)
    );

    assert_eq!(
        store
            .consume_one_time_token(&random_hash(), MagicLink, at(1))
            .await
            .unwrap(),
        None
    );
}

async fn concurrent_consumes_of_one_token_succeed_once(store: Shared) {
    let token = one_time(OneTimeTokenKind::MagicLink, "race@example.com", None, at(0));
    issue(&store, &token).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, hash) = (store.clone(), token.token_hash.clone());
            tokio::spawn(async move {
                store
                    .consume_one_time_token(&hash, OneTimeTokenKind::MagicLink, at(10 + i))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(Some(t)) => winners.push(t),
            Ok(None) => {}
            Err(e) => panic!("a concurrent consume failed: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        used_at(&store, &token).await,
        winners[0].used_at,
        "the winner's use is the one stored"
    );
}

async fn current_one_time_token_is_the_newest_usable_one(store: Shared) {
    use OneTimeTokenKind::{EmailOtp, MagicLink};
    let email = "current@example.com";
    assert_eq!(
        store
            .current_one_time_token(EmailOtp, email, at(0))
            .await
            .unwrap(),
        None
    );
    let first = one_time(EmailOtp, email, None, at(0));
    let second = one_time(EmailOtp, email, None, at(10));
    issue(&store, &first).await;
    issue(&store, &second).await;
    let link = one_time(MagicLink, email, None, at(20));
    issue(&store, &link).await;
    let current = |kind, email: &'static str, now| {
        let store = store.clone();
        async move {
            store
                .current_one_time_token(kind, email, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        current(EmailOtp, email, at(30)).await,
        Some(stored(&second))
    );
    assert_eq!(current(MagicLink, email, at(30)).await, Some(stored(&link)));
    assert_eq!(current(EmailOtp, "other@example.com", at(30)).await, None);
    // Expired at its expiry instant.
    assert_eq!(current(EmailOtp, email, second.expires_at).await, None);

    store
        .consume_one_time_token(&second.token_hash, EmailOtp, at(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        current(EmailOtp, email, at(41)).await,
        None,
        "the first was retired, the second used"
    );
}

async fn record_failed_attempt_counts_and_retires_at_max(store: Shared) {
    let code = one_time(OneTimeTokenKind::EmailOtp, "otp@example.com", None, at(0));
    issue(&store, &code).await;
    for (n, now) in [(1, at(1)), (2, at(2))] {
        assert_eq!(
            store
                .record_failed_attempt(&code.token_hash, 3, now)
                .await
                .unwrap(),
            n
        );
        assert_eq!(
            token_state(&store, &code).await,
            OneTimeToken {
                failed_attempts: n,
                ..stored(&code)
            }
        );
    }
    assert_eq!(
        store
            .record_failed_attempt(&code.token_hash, 3, at(3))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        token_state(&store, &code).await,
        OneTimeToken {
            failed_attempts: 3,
            used_at: Some(at(3)),
            ..stored(&code)
        },
        "retired at the maximum"
    );
    assert_eq!(
        store
            .consume_one_time_token(&code.token_hash, OneTimeTokenKind::EmailOtp, at(4))
            .await
            .unwrap(),
        None
    );
    // Still counted, first retirement kept.
    assert_eq!(
        store
            .record_failed_attempt(&code.token_hash, 3, at(5))
            .await
            .unwrap(),
        4
    );
    assert_eq!(used_at(&store, &code).await, Some(at(3)));

    let err = store
        .record_failed_attempt(&random_hash(), 3, at(5))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::NotFound), "{err:?}");
}

async fn concurrent_failed_attempts_are_all_counted(store: Shared) {
    let code = one_time(OneTimeTokenKind::EmailOtp, "guess@example.com", None, at(0));
    issue(&store, &code).await;
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (store, hash) = (store.clone(), code.token_hash.clone());
            tokio::spawn(async move { store.record_failed_attempt(&hash, 5, at(1)).await })
        })
        .collect();
    let mut counts = BTreeSet::new();
    for task in tasks {
        counts.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(counts, (1..=12).collect(), "each call saw its own count");
    let state = token_state(&store, &code).await;
    assert_eq!((state.failed_attempts, state.used_at), (12, Some(at(1))));
}

/// A user with two live sessions and one revoked earlier, and another user with a session.
struct Household {
    alice: User,
    live: [Session; 2],
    revoked: Session,
    bobs: Session,
}

async fn household(store: &Shared) -> Household {
    let alice = insert_user(store).await;
    let bob = insert_user(store).await;
    let open = async |user: &User, created| {
        store
            .create_session(&new_session(user.id, at(created)), &random_hash(), &[])
            .await
            .unwrap()
    };
    let live = [open(&alice, 0).await, open(&alice, 1).await];
    let revoked = open(&alice, 2).await;
    assert!(store.revoke_session(revoked.id, at(5), &[]).await.unwrap());
    let revoked = store.session(revoked.id).await.unwrap().unwrap();
    let bobs = open(&bob, 3).await;
    Household {
        alice,
        live,
        revoked,
        bobs,
    }
}

async fn password_hash_of(store: &Shared, user: &User) -> (Option<String>, DateTime<Utc>) {
    let creds = store
        .credentials_by_email(&user.email)
        .await
        .unwrap()
        .unwrap();
    (creds.password_hash, creds.user.updated_at)
}

async fn redeem_password_reset_changes_the_password_and_ends_every_session(store: Shared) {
    use OneTimeTokenKind::{MagicLink, PasswordReset};
    let h = household(&store).await;
    let alice = &h.alice;
    let reset = one_time(PasswordReset, &alice.email, Some(alice.id), at(10));
    // Another reset token of hers, sent to the address she had before.
    let other = one_time(PasswordReset, "old@example.com", Some(alice.id), at(11));
    let link = one_time(MagicLink, &alice.email, Some(alice.id), at(12));
    for token in [&reset, &other, &link] {
        issue(&store, token).await;
    }
    let notice = message("notice", at(30));

    assert!(
        store
            .redeem_password_reset(
                &reset.token_hash,
                alice.id,
                "$argon2id$reset",
                &notice,
                at(30)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        password_hash_of(&store, alice).await,
        (Some("$argon2id$reset".to_owned()), at(30))
    );
    assert_eq!(used_at(&store, &reset).await, Some(at(30)));
    assert_eq!(used_at(&store, &other).await, Some(at(30)));
    assert_eq!(token_state(&store, &link).await, stored(&link));
    for live in &h.live {
        assert_eq!(
            store.session(live.id).await.unwrap(),
            Some(Session {
                revoked_at: Some(at(30)),
                ..live.clone()
            })
        );
    }
    assert_eq!(
        store.session(h.revoked.id).await.unwrap(),
        Some(h.revoked.clone()),
        "an earlier revocation is kept"
    );
    assert_eq!(
        store.session(h.bobs.id).await.unwrap(),
        Some(h.bobs.clone())
    );
    assert_eq!(
        store.pending_kinds().await,
        ["mail", "mail", "mail", "notice"]
    );

    // Once only.
    let again = message("notice", at(31));
    assert!(
        !store
            .redeem_password_reset(
                &reset.token_hash,
                alice.id,
                "$argon2id$again",
                &again,
                at(31)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        password_hash_of(&store, alice).await,
        (Some("$argon2id$reset".to_owned()), at(30))
    );
    assert_eq!(store.backlog().await.unwrap(), 4);
}

async fn redeem_password_reset_with_an_unusable_token_changes_nothing(store: Shared) {
    use OneTimeTokenKind::{MagicLink, PasswordReset};
    let h = household(&store).await;
    let alice = &h.alice;
    let bob_id = h.bobs.user_id;
    let reset = one_time(PasswordReset, &alice.email, Some(alice.id), at(10));
    let bobs_reset = one_time(PasswordReset, "bob@example.com", Some(bob_id), at(10));
    let link = one_time(MagicLink, &alice.email, Some(alice.id), at(10));
    let used = one_time(PasswordReset, "alt@example.com", Some(alice.id), at(10));
    for token in [&reset, &bobs_reset, &link, &used] {
        issue(&store, token).await;
    }
    store
        .consume_one_time_token(&used.token_hash, PasswordReset, at(11))
        .await
        .unwrap()
        .unwrap();
    let before_password = password_hash_of(&store, alice).await;
    let before_backlog = store.backlog().await.unwrap();

    let unknown = random_hash();
    let attempts = [
        (
            &bobs_reset.token_hash,
            alice.id,
            at(20),
            "another user's token",
        ),
        (
            &reset.token_hash,
            bob_id,
            at(20),
            "her token, for another user",
        ),
        (&link.token_hash, alice.id, at(20), "not a reset token"),
        (&used.token_hash, alice.id, at(20), "used"),
        (&reset.token_hash, alice.id, reset.expires_at, "expired"),
        (&unknown, alice.id, at(20), "unknown"),
    ];
    for (hash, user_id, now, why) in attempts {
        let notice = message("notice", now);
        assert!(
            !store
                .redeem_password_reset(hash, user_id, "$argon2id$evil", &notice, now)
                .await
                .unwrap(),
            "{why}"
        );
    }

    assert_eq!(password_hash_of(&store, alice).await, before_password);
    assert_eq!(store.backlog().await.unwrap(), before_backlog);
    assert!(!store.pending_kinds().await.contains(&"notice".to_owned()));
    for session in h.live.iter().chain([&h.revoked, &h.bobs]) {
        assert_eq!(
            store.session(session.id).await.unwrap().as_ref(),
            Some(session)
        );
    }
    for token in [&reset, &bobs_reset, &link] {
        assert_eq!(token_state(&store, token).await, stored(token));
    }
    assert_eq!(used_at(&store, &used).await, Some(at(11)));

    // The right token still works: nothing was consumed.
    assert!(
        store
            .redeem_password_reset(
                &reset.token_hash,
                alice.id,
                "$argon2id$ok",
                &message("notice", at(40)),
                at(40)
            )
            .await
            .unwrap()
    );
}

async fn change_password_ends_every_session_and_opens_a_new_one(store: Shared) {
    let h = household(&store).await;
    let alice = &h.alice;
    let reset = one_time(
        OneTimeTokenKind::PasswordReset,
        &alice.email,
        Some(alice.id),
        at(10),
    );
    issue(&store, &reset).await;
    let new = new_session(alice.id, at(40));
    let first = random_hash();
    let notice = message("notice", at(40));

    let session = store
        .change_password(alice.id, "$argon2id$changed", &new, &first, &notice)
        .await
        .unwrap();
    let expected = Session {
        id: new.id,
        user_id: alice.id,
        created_at: at(40),
        last_used_at: at(40),
        expires_at: new.expires_at,
        revoked_at: None,
        client: new.client.clone(),
        amr: new.amr.clone(),
        aal: new.aal.clone(),
    };
    assert_eq!(session, expected);
    assert_eq!(
        password_hash_of(&store, alice).await,
        (Some("$argon2id$changed".to_owned()), at(40))
    );
    for live in &h.live {
        assert_eq!(
            store.session(live.id).await.unwrap().unwrap().revoked_at,
            Some(at(40))
        );
    }
    assert_eq!(
        store.session(h.revoked.id).await.unwrap(),
        Some(h.revoked.clone())
    );
    assert_eq!(
        store.session(h.bobs.id).await.unwrap(),
        Some(h.bobs.clone())
    );
    assert_eq!(
        store.unrevoked_sessions_of(alice.id).await.unwrap(),
        [expected]
    );
    let record = store.refresh_token(&first).await.unwrap().unwrap();
    assert_eq!(
        (record.session_id, record.created_at, record.rotated_at),
        (new.id, at(40), None)
    );
    assert_eq!(used_at(&store, &reset).await, Some(at(40)));
    assert_eq!(store.pending_kinds().await, ["mail", "notice"]);
    // The new session is live: its refresh token rotates.
    assert_eq!(
        store
            .rotate_refresh_token(&first, &random_hash(), "sealed", at(50))
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
}

async fn change_password_of_an_unknown_user_is_not_found(store: Shared) {
    let nobody = UserId::new();
    let new = new_session(nobody, at(40));
    let first = random_hash();
    let err = store
        .change_password(
            nobody,
            "$argon2id$x",
            &new,
            &first,
            &message("notice", at(40)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::NotFound), "{err:?}");
    assert_eq!(store.session(new.id).await.unwrap(), None);
    assert_eq!(store.refresh_token(&first).await.unwrap(), None);
    assert_eq!(store.backlog().await.unwrap(), 0);
}

// ---- the outbox -------------------------------------------------------------------------

/// The entry `id` as the store shows it (SQL stores only).
async fn entry(store: &Shared, id: Uuid) -> Option<OutboxEntryView> {
    let view = store.outbox_view().await?;
    Some(view.into_iter().find(|e| e.id == id).unwrap())
}

async fn outbox_leases_retries_and_completes(store: Shared) {
    let mail = message("mail", at(0));
    store.enqueue(&mail).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 1);
    let claim = |now, lease| {
        let store = store.clone();
        async move { store.claim_due(now, lease, 10).await.unwrap() }
    };
    assert_eq!(claim(at(-1), at(60)).await, [], "not due yet");
    if let Some(e) = entry(&store, mail.id).await {
        assert_eq!(
            e,
            OutboxEntryView {
                id: mail.id,
                kind: "mail".to_owned(),
                attempts: 0,
                created_at: at(0),
                due_at: at(0),
                leased_until: None,
                done_at: None,
                dead_at: None,
                last_error: None,
                has_payload: true,
            }
        );
    }

    assert_eq!(claim(at(0), at(60)).await, [claimed(&mail, 1)]);
    assert_eq!(claim(at(59), at(120)).await, [], "leased");
    assert_eq!(
        claim(at(60), at(120)).await,
        [claimed(&mail, 2)],
        "free again when the lease ends"
    );

    store
        .mark_failed(mail.id, "smtp: connection refused", Some(at(300)), at(61))
        .await
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 1);
    if let Some(e) = entry(&store, mail.id).await {
        assert_eq!(
            (
                e.attempts,
                e.due_at,
                e.leased_until,
                e.last_error.as_deref()
            ),
            (2, at(300), None, Some("smtp: connection refused"))
        );
        assert!(e.has_payload && e.done_at.is_none() && e.dead_at.is_none());
    }
    assert_eq!(
        claim(at(299), at(400)).await,
        [],
        "not due before the retry"
    );
    assert_eq!(claim(at(300), at(400)).await, [claimed(&mail, 3)]);

    store.mark_done(mail.id, at(301)).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
    assert!(store.pending_kinds().await.is_empty());
    assert_eq!(claim(at(100_000), at(100_060)).await, []);
    if let Some(e) = entry(&store, mail.id).await {
        assert_eq!(
            e,
            OutboxEntryView {
                id: mail.id,
                kind: "mail".to_owned(),
                attempts: 3,
                created_at: at(0),
                due_at: at(300),
                leased_until: None,
                done_at: Some(at(301)),
                dead_at: None,
                last_error: Some("smtp: connection refused".to_owned()),
                has_payload: false,
            }
        );
    }
}

async fn outbox_gives_up_and_erases_the_payload(store: Shared) {
    let mail = message("mail", at(0));
    let other = message("webhook", at(1));
    store.enqueue(&mail).await.unwrap();
    store.enqueue(&other).await.unwrap();
    assert_eq!(
        store.claim_due(at(1), at(60), 10).await.unwrap(),
        [claimed(&mail, 1), claimed(&other, 1)]
    );
    store
        .mark_failed(mail.id, "550 mailbox unavailable", None, at(5))
        .await
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 1);
    assert_eq!(store.pending_kinds().await, ["webhook"]);
    assert_eq!(
        store.claim_due(at(100), at(160), 10).await.unwrap(),
        [claimed(&other, 2)],
        "a dead letter is never claimed again"
    );
    if let Some(e) = entry(&store, mail.id).await {
        assert_eq!(
            (e.dead_at, e.done_at, e.leased_until, e.has_payload),
            (Some(at(5)), None, None, false)
        );
        assert_eq!(e.last_error.as_deref(), Some("550 mailbox unavailable"));
    }
    // Unknown identifiers are ignored.
    store.mark_done(Uuid::now_v7(), at(6)).await.unwrap();
    store
        .mark_failed(Uuid::now_v7(), "x", None, at(6))
        .await
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 1);
}

async fn outbox_claims_due_entries_oldest_first_up_to_the_limit(store: Shared) {
    let entries: Vec<_> = (0..5).map(|i| message("mail", at(i))).collect();
    for e in &entries {
        store.enqueue(e).await.unwrap();
    }
    assert_eq!(
        store.claim_due(at(2), at(100), 10).await.unwrap(),
        [
            claimed(&entries[0], 1),
            claimed(&entries[1], 1),
            claimed(&entries[2], 1)
        ],
        "the due ones only"
    );
    assert_eq!(
        store.claim_due(at(10), at(100), 1).await.unwrap(),
        [claimed(&entries[3], 1)]
    );
    assert_eq!(store.claim_due(at(10), at(100), 0).await.unwrap(), []);
    assert_eq!(
        store.claim_due(at(10), at(100), 10).await.unwrap(),
        [claimed(&entries[4], 1)]
    );
    assert_eq!(store.backlog().await.unwrap(), 5);
}

/// Claims from `stores` concurrently (two tasks per store, `limit` each) and checks that no
/// entry went to two claimers; returns every claimed id.
async fn claim_concurrently(stores: &[Shared], now: DateTime<Utc>, limit: usize) -> Vec<Uuid> {
    let tasks: Vec<_> = stores
        .iter()
        .chain(stores)
        .map(|store| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_due(now, now + Span::seconds(60), limit).await })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let got = task.await.unwrap().unwrap();
        assert!(got.len() <= limit);
        all.extend(got.into_iter().map(|m| m.id));
    }
    let distinct: BTreeSet<_> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "an entry was claimed twice: {all:?}"
    );
    all
}

async fn concurrent_claimers_get_disjoint_entries(store: Shared) {
    let entries: Vec<_> = (0..20).map(|i| message("mail", at(i))).collect();
    for e in &entries {
        store.enqueue(e).await.unwrap();
    }
    // Four claimers of 5 for 20 entries.
    let claimed = claim_concurrently(&[store.clone(), store.clone()], at(100), 5).await;
    let claimed: BTreeSet<_> = claimed.into_iter().collect();
    assert_eq!(claimed, entries.iter().map(|e| e.id).collect());
    assert!(
        store
            .claim_due(at(100), at(160), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // And two claimers of 10 each, on the entries again once the leases ended.
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_due(at(200), at(260), 10).await })
        })
        .collect();
    let mut sets = Vec::new();
    for task in tasks {
        let got = task.await.unwrap().unwrap();
        assert!(got.iter().all(|m| m.attempts == 2));
        sets.push(got.into_iter().map(|m| m.id).collect::<BTreeSet<_>>());
    }
    assert!(sets[0].is_disjoint(&sets[1]), "{sets:?}");
    assert_eq!(
        sets[0].union(&sets[1]).copied().collect::<BTreeSet<_>>(),
        claimed
    );
}

async fn backlog_counts_entries_neither_done_nor_dead(store: Shared) {
    assert_eq!(store.backlog().await.unwrap(), 0);
    let [done, dead, leased, pending, future] = [0, 1, 2, 3, 1000].map(|i| message("mail", at(i)));
    for e in [&done, &dead, &leased, &pending, &future] {
        store.enqueue(e).await.unwrap();
    }
    assert_eq!(store.backlog().await.unwrap(), 5);
    assert_eq!(store.claim_due(at(2), at(60), 3).await.unwrap().len(), 3);
    store.mark_done(done.id, at(10)).await.unwrap();
    store
        .mark_failed(dead.id, "gone", None, at(10))
        .await
        .unwrap();
    assert_eq!(
        store.backlog().await.unwrap(),
        3,
        "leased, pending and not yet due are all backlog"
    );
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

// ---- the SQL stores beyond the ports ----------------------------------------------------

async fn purge_outbox_removes_only_entries_finished_before_the_cutoff(db: &TestDatabase) {
    let db = db.database().await;
    let [
        done_early,
        done_at_cutoff,
        dead_early,
        dead_late,
        pending,
        leased,
    ] = [0, 1, 2, 3, 4, 5].map(|i| message("mail", at(i)));
    for e in [
        &done_early,
        &done_at_cutoff,
        &dead_early,
        &dead_late,
        &pending,
        &leased,
    ] {
        db.enqueue(e).await.unwrap();
    }
    assert_eq!(db.claim_due(at(5), at(10_000), 6).await.unwrap().len(), 6);
    db.mark_done(done_early.id, at(99)).await.unwrap();
    db.mark_done(done_at_cutoff.id, at(100)).await.unwrap();
    db.mark_failed(dead_early.id, "gone", None, at(50))
        .await
        .unwrap();
    db.mark_failed(dead_late.id, "gone", None, at(101))
        .await
        .unwrap();
    // `pending` fails and waits for its retry; `leased` stays leased.
    db.mark_failed(pending.id, "later", Some(at(5000)), at(60))
        .await
        .unwrap();

    assert_eq!(db.purge_outbox_finished_before(at(100)).await.unwrap(), 2);
    let left: BTreeSet<_> = db
        .outbox_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        left,
        [done_at_cutoff.id, dead_late.id, pending.id, leased.id].into()
    );
    assert_eq!(db.backlog().await.unwrap(), 2);
    assert_eq!(db.purge_outbox_finished_before(at(100)).await.unwrap(), 0);
    // Pending entries stay, however old.
    assert_eq!(
        db.purge_outbox_finished_before(at(1_000_000))
            .await
            .unwrap(),
        2
    );
    let left: Vec<_> = db
        .outbox_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, [pending.id, leased.id]);
}

async fn claims_follow_due_time_not_insertion_order(db: &TestDatabase) {
    let db = db.database().await;
    let [first, second, third] = [0, 1, 2].map(|i| message("mail", at(i)));
    for e in [&first, &second, &third] {
        db.enqueue(e).await.unwrap();
    }
    assert_eq!(
        db.claim_due(at(0), at(1), 10).await.unwrap(),
        [claimed(&first, 1)]
    );
    db.mark_failed(first.id, "busy", Some(at(5)), at(1))
        .await
        .unwrap();
    assert_eq!(
        db.claim_due(at(10), at(20), 10).await.unwrap(),
        [claimed(&second, 1), claimed(&third, 1), claimed(&first, 2)]
    );
}

/// Two nodes (two pools on one database), each with two claiming tasks, over several
/// rounds: no entry ever goes to two claimers, and every round claims every entry.
async fn claimers_on_two_nodes_get_disjoint_entries(db: &TestDatabase) {
    let nodes: [Shared; 2] = [Arc::new(db.database().await), Arc::new(db.database().await)];
    let entries: BTreeSet<Uuid> = {
        let mut ids = BTreeSet::new();
        for i in 0..40 {
            let e = message("mail", at(i));
            nodes[(i % 2) as usize].enqueue(&e).await.unwrap();
            ids.insert(e.id);
        }
        ids
    };
    for round in 0..5 {
        // Leases last 60 s: each round starts after the previous leases ended.
        let now = at(100 + round * 100);
        let claimed = claim_concurrently(&nodes, now, 10).await;
        assert_eq!(
            claimed.into_iter().collect::<BTreeSet<_>>(),
            entries,
            "round {round}"
        );
    }
    let view = db.database().await.outbox_entries().await.unwrap();
    assert!(view.iter().all(|e| e.attempts == 5), "{view:?}");
}

// ---- rate limits and lockouts -----------------------------------------------------------

async fn hits_count_per_key_and_window(store: Shared) {
    for expected in 1..=3 {
        assert_eq!(
            store.hit("login:ip:192.0.2.7", at(0)).await.unwrap(),
            expected
        );
    }
    // Another key, another window: counted apart.
    assert_eq!(store.hit("login:ip:192.0.2.8", at(0)).await.unwrap(), 1);
    assert_eq!(store.hit("login:ip:192.0.2.7", at(60)).await.unwrap(), 1);
    // A window one microsecond later is another window.
    assert_eq!(
        store
            .hit("login:ip:192.0.2.7", at(0) + Span::microseconds(1))
            .await
            .unwrap(),
        1
    );
    // And the counts so far were kept.
    assert_eq!(store.hit("login:ip:192.0.2.7", at(0)).await.unwrap(), 4);
    assert_eq!(store.hit("login:ip:192.0.2.8", at(0)).await.unwrap(), 2);
    assert_eq!(store.hit("login:ip:192.0.2.7", at(60)).await.unwrap(), 2);
}

/// `tasks` concurrent hits of one key and window from `stores` in turn; every count is
/// answered once.
async fn hit_concurrently(stores: &[Shared], key: &str, tasks: u32) {
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let (store, key) = (stores[i as usize % stores.len()].clone(), key.to_owned());
            tokio::spawn(async move { store.hit(&key, at(0)).await })
        })
        .collect();
    let mut counts = BTreeSet::new();
    for handle in handles {
        assert!(counts.insert(handle.await.unwrap().unwrap()));
    }
    assert_eq!(counts, (1..=tasks).collect());
}

async fn concurrent_hits_on_one_key_are_all_counted(store: Shared) {
    hit_concurrently(std::slice::from_ref(&store), "signup:ip:192.0.2.7", 20).await;
    assert_eq!(store.hit("signup:ip:192.0.2.7", at(0)).await.unwrap(), 21);
}

async fn purge_windows_removes_only_older_windows(store: Shared) {
    for (key, start) in [("a", at(0)), ("b", at(0)), ("a", at(60)), ("a", at(120))] {
        store.hit(key, start).await.unwrap();
        store.hit(key, start).await.unwrap();
    }
    assert_eq!(store.purge_windows_before(at(0)).await.unwrap(), 0);
    // Microseconds count: a window starting 1 µs before the cutoff goes.
    assert_eq!(store.purge_windows_before(at(60)).await.unwrap(), 2);
    assert_eq!(store.purge_windows_before(at(60)).await.unwrap(), 0);
    // The purged windows start over; the kept ones continue.
    assert_eq!(store.hit("a", at(0)).await.unwrap(), 1);
    assert_eq!(store.hit("b", at(0)).await.unwrap(), 1);
    assert_eq!(store.hit("a", at(60)).await.unwrap(), 3);
    assert_eq!(store.hit("a", at(120)).await.unwrap(), 3);
    assert_eq!(
        store
            .purge_windows_before(at(120) + Span::microseconds(1))
            .await
            .unwrap(),
        4
    );
    assert_eq!(store.hit("a", at(120)).await.unwrap(), 1);
}

const WINDOW: i64 = 900;
const FREEZE: i64 = 300;

async fn fail(store: &Shared, who: &str, now: DateTime<Utc>, threshold: u32) -> LockoutState {
    store
        .register_failure(
            who,
            now,
            Span::seconds(WINDOW),
            threshold,
            Span::seconds(FREEZE),
        )
        .await
        .unwrap()
}

fn state(failures: u32, locked_until: Option<DateTime<Utc>>) -> LockoutState {
    LockoutState {
        failures,
        locked_until,
    }
}

async fn failures_count_and_lock_at_the_threshold(store: Shared) {
    let who = "alice@example.com";
    assert_eq!(store.locked_until(who, at(0)).await.unwrap(), None);
    for n in 1..=2 {
        assert_eq!(fail(&store, who, at(n.into()), 3).await, state(n, None));
        assert_eq!(store.locked_until(who, at(n.into())).await.unwrap(), None);
    }
    // Another identifier is counted apart.
    assert_eq!(
        fail(&store, "bob@example.com", at(2), 3).await,
        state(1, None)
    );

    let until = at(3 + FREEZE);
    assert_eq!(fail(&store, who, at(3), 3).await, state(3, Some(until)));
    assert_eq!(store.locked_until(who, at(3)).await.unwrap(), Some(until));
    assert_eq!(
        store
            .locked_until(who, until - Span::microseconds(1))
            .await
            .unwrap(),
        Some(until)
    );
    assert_eq!(store.locked_until(who, until).await.unwrap(), None);
    assert_eq!(
        store.locked_until("bob@example.com", at(3)).await.unwrap(),
        None
    );

    // The count restarted at the lock; failures while locked report the lock and count on.
    assert_eq!(fail(&store, who, at(4), 3).await, state(1, Some(until)));
    assert_eq!(fail(&store, who, at(5), 3).await, state(2, Some(until)));
    // Reaching the threshold again extends the lock.
    let later = at(6 + FREEZE);
    assert_eq!(fail(&store, who, at(6), 3).await, state(3, Some(later)));
    assert_eq!(store.locked_until(who, until).await.unwrap(), Some(later));
    // Once the lock has passed, failures report no lock.
    assert_eq!(fail(&store, who, later, 3).await, state(1, None));
    assert_eq!(store.locked_until(who, later).await.unwrap(), None);
}

async fn clear_all_forgets_an_identifier_and_everything_under_it(store: Shared) {
    // An address with the pattern characters of LIKE, which must match only themselves.
    let who = "a_b%c@example.com";
    let keys = [
        who.to_owned(),
        format!("{who}#api#198.51.100.7"),
        format!("{who}#sails_jwt#-"),
    ];
    let others = [
        "a_b%c@example.comx".to_owned(),
        "axb%c@example.com#api#198.51.100.7".to_owned(),
        "a_bxc@example.com#api#-".to_owned(),
        "ba_b%c@example.com#api#-".to_owned(),
    ];
    for key in keys.iter().chain(&others) {
        fail(&store, key, at(0), 1).await;
        assert!(
            store.locked_until(key, at(1)).await.unwrap().is_some(),
            "{key}"
        );
    }
    // `clear` forgets exactly one identifier.
    store.clear(&keys[1]).await.unwrap();
    assert_eq!(store.locked_until(&keys[1], at(1)).await.unwrap(), None);
    assert!(store.locked_until(&keys[0], at(1)).await.unwrap().is_some());
    fail(&store, &keys[1], at(0), 1).await;
    store.clear_all(who).await.unwrap();
    for key in &keys {
        assert_eq!(store.locked_until(key, at(1)).await.unwrap(), None, "{key}");
    }
    for key in &others {
        assert!(
            store.locked_until(key, at(1)).await.unwrap().is_some(),
            "{key}"
        );
    }
}

async fn an_expired_window_restarts_the_count_and_keeps_the_lock(store: Shared) {
    let who = "carol@example.com";
    assert_eq!(fail(&store, who, at(0), 5).await, state(1, None));
    assert_eq!(fail(&store, who, at(1), 5).await, state(2, None));
    // Still the window that started at 0, 1 µs before it ends.
    let end = at(WINDOW);
    assert_eq!(
        fail(&store, who, end - Span::microseconds(1), 5).await,
        state(3, None)
    );
    // A window of exactly `WINDOW` is over: the count restarts, the window from `end`.
    assert_eq!(fail(&store, who, end, 5).await, state(1, None));
    assert_eq!(
        fail(&store, who, end + Span::seconds(WINDOW - 1), 5).await,
        state(2, None)
    );

    // A lock outlives the window that caused it (here the freeze is longer than the window).
    let dave = "dave@example.com";
    let freeze = Span::seconds(3 * WINDOW);
    let lock = |now| {
        let store = store.clone();
        async move {
            store
                .register_failure(dave, now, Span::seconds(WINDOW), 2, freeze)
                .await
                .unwrap()
        }
    };
    assert_eq!(lock(at(0)).await, state(1, None));
    assert_eq!(lock(at(1)).await, state(2, Some(at(1) + freeze)));
    assert_eq!(
        lock(at(1 + 2 * WINDOW)).await,
        state(1, Some(at(1) + freeze))
    );
    assert_eq!(
        store.locked_until(dave, at(1 + 2 * WINDOW)).await.unwrap(),
        Some(at(1) + freeze)
    );
}

async fn clear_forgets_failures_and_the_lock(store: Shared) {
    let who = "erin@example.com";
    store.clear(who).await.unwrap();
    fail(&store, who, at(0), 2).await;
    assert_eq!(
        fail(&store, who, at(1), 2).await,
        state(2, Some(at(1 + FREEZE)))
    );
    fail(&store, who, at(2), 2).await;
    fail(&store, "frank@example.com", at(2), 2).await;

    store.clear(who).await.unwrap();
    assert_eq!(store.locked_until(who, at(3)).await.unwrap(), None);
    // The count starts over, without a lock.
    assert_eq!(fail(&store, who, at(3), 2).await, state(1, None));
    // Others are untouched.
    assert_eq!(
        fail(&store, "frank@example.com", at(3), 2).await,
        state(2, Some(at(3 + FREEZE)))
    );
}

/// `tasks` concurrent failures of one identifier at `now` from `stores` in turn.
async fn fail_concurrently(
    stores: &[Shared],
    who: &str,
    now: DateTime<Utc>,
    threshold: u32,
    tasks: usize,
) -> Vec<LockoutState> {
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let (store, who) = (stores[i % stores.len()].clone(), who.to_owned());
            tokio::spawn(async move { fail(&store, &who, now, threshold).await })
        })
        .collect();
    let mut states = Vec::new();
    for handle in handles {
        states.push(handle.await.unwrap());
    }
    states
}

async fn concurrent_failures_are_all_counted(store: Shared) {
    let who = "grace@example.com";
    let states = fail_concurrently(std::slice::from_ref(&store), who, at(0), 100, 20).await;
    assert!(
        states.iter().all(|s| s.locked_until.is_none()),
        "{states:?}"
    );
    let counts: BTreeSet<_> = states.iter().map(|s| s.failures).collect();
    assert_eq!(counts.len(), 20, "a count was answered twice: {states:?}");
    assert_eq!(counts, (1..=20).collect());
    // No lost update: the next failure is the 21st.
    assert_eq!(fail(&store, who, at(1), 100).await, state(21, None));
}

async fn concurrent_failures_lock_once_per_threshold(store: Shared) {
    let who = "heidi@example.com";
    let until = at(FREEZE);
    let states = fail_concurrently(std::slice::from_ref(&store), who, at(0), 5, 10).await;
    let mut counts: Vec<_> = states.iter().map(|s| s.failures).collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5], "{states:?}");
    // Exactly two lock events (the two that reached 5); the five failures after the first
    // lock report it, those before it do not.
    let locks = states.iter().filter(|s| s.failures == 5).count();
    assert_eq!(locks, 2, "{states:?}");
    assert!(
        states
            .iter()
            .filter(|s| s.failures == 5)
            .all(|s| s.locked_until == Some(until)),
        "{states:?}"
    );
    let reporting = states.iter().filter(|s| s.locked_until.is_some()).count();
    assert_eq!(reporting, 6, "{states:?}");
    assert_eq!(
        states
            .iter()
            .filter(|s| s.locked_until.is_none())
            .map(|s| s.failures)
            .collect::<BTreeSet<_>>(),
        (1..=4).collect(),
        "{states:?}"
    );
    assert_eq!(store.locked_until(who, at(0)).await.unwrap(), Some(until));
    // Ten failures, two locks: the count is back at 0.
    assert_eq!(fail(&store, who, at(1), 5).await, state(1, Some(until)));
}

/// Two nodes (two pools on one database) count the same hits and failures.
async fn two_nodes_share_rate_limits_and_lockouts(db: &TestDatabase) {
    let nodes: [Shared; 2] = [Arc::new(db.database().await), Arc::new(db.database().await)];
    hit_concurrently(&nodes, "login:ip:198.51.100.1", 20).await;
    assert_eq!(
        nodes[1].hit("login:ip:198.51.100.1", at(0)).await.unwrap(),
        21
    );
    assert_eq!(
        nodes[0].hit("login:ip:198.51.100.1", at(0)).await.unwrap(),
        22
    );

    let who = "ivan@example.com";
    let states = fail_concurrently(&nodes, who, at(0), 100, 20).await;
    let counts: BTreeSet<_> = states.iter().map(|s| s.failures).collect();
    assert_eq!(counts, (1..=20).collect(), "{states:?}");
    assert_eq!(fail(&nodes[0], who, at(1), 22).await, state(21, None));
    // Node B locks; node A sees the lock, and node B sees node A clear it.
    assert_eq!(
        fail(&nodes[1], who, at(2), 22).await,
        state(22, Some(at(2 + FREEZE)))
    );
    assert_eq!(
        nodes[0].locked_until(who, at(3)).await.unwrap(),
        Some(at(2 + FREEZE))
    );
    nodes[0].clear(who).await.unwrap();
    assert_eq!(nodes[1].locked_until(who, at(3)).await.unwrap(), None);

    // The two nodes also purge the same windows.
    assert_eq!(nodes[1].purge_windows_before(at(1)).await.unwrap(), 1);
    assert_eq!(
        nodes[0].hit("login:ip:198.51.100.1", at(0)).await.unwrap(),
        1
    );
}

// ---- identities (social sign-in) ----------------------------------------------------------

mod identities {
    use auth_core::identity::{
        Identity, IdentityId, IdentityStore, OAuthRecord, OAuthRecordKind, UnlinkOutcome,
    };
    use auth_core::passkeys::{PasskeyStore, StoredPasskey};

    use super::*;

    trait IdentityContract: UserStore + IdentityStore + PasskeyStore + 'static {}
    impl<T: UserStore + IdentityStore + PasskeyStore + 'static> IdentityContract for T {}
    type Ids = Arc<dyn IdentityContract>;

    auth_db::on_every_store!(
        insert_user_with_identity_writes_both_or_nothing,
        an_identity_links_to_one_user_only,
        unlink_keeps_the_last_way_to_sign_in,
        a_passkey_is_a_way_to_sign_in,
        concurrent_unlinks_keep_the_last_identity,
        oauth_records_are_taken_once_before_they_expire,
        concurrent_takes_of_a_record_succeed_once,
        purge_removes_only_expired_records,
    );

    fn identity(user_id: UserId, provider: &str, subject: &str, secs: i64) -> Identity {
        Identity {
            id: IdentityId::new(),
            user_id,
            provider: provider.to_owned(),
            subject: subject.to_owned(),
            email: Some(format!("{subject}@example.com")),
            created_at: at(secs),
        }
    }

    fn passwordless(email: &str) -> NewUser {
        NewUser {
            password_hash: None,
            email_verified: true,
            ..new_user(email)
        }
    }

    async fn insert_user_with_identity_writes_both_or_nothing(store: Ids) {
        let new = passwordless("ada@example.com");
        let first = identity(new.id, "google", "g-1", 0);
        let user = store.insert_user_with_identity(&new, &first).await.unwrap();
        assert_eq!(user.id, new.id);
        assert!(user.email_verified);
        assert_eq!(
            store.identity_by_subject("google", "g-1").await.unwrap(),
            Some(first.clone())
        );
        let creds = store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert!(creds.password_hash.is_none());

        // The email is taken: no identity is written.
        let again = passwordless("ADA@example.com");
        let err = store
            .insert_user_with_identity(&again, &identity(again.id, "google", "g-2", 1))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::EmailTaken), "{err:?}");
        assert!(
            store
                .identity_by_subject("google", "g-2")
                .await
                .unwrap()
                .is_none()
        );

        // The identity is taken: no user is written.
        let other = passwordless("bob@example.com");
        let err = store
            .insert_user_with_identity(&other, &identity(other.id, "google", "g-1", 1))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::IdentityExists), "{err:?}");
        assert!(store.user_by_id(other.id).await.unwrap().is_none());
        assert!(
            store
                .credentials_by_email("bob@example.com")
                .await
                .unwrap()
                .is_none()
        );
    }

    async fn an_identity_links_to_one_user_only(store: Ids) {
        let a = store
            .insert_user(&new_user("a@example.com"), None)
            .await
            .unwrap();
        let b = store
            .insert_user(&new_user("b@example.com"), None)
            .await
            .unwrap();
        let github = identity(a.id, "github", "42", 5);
        store.link_identity(&github).await.unwrap();
        let err = store
            .link_identity(&identity(b.id, "github", "42", 6))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::IdentityExists), "{err:?}");
        // The same subject at another provider is another identity.
        let gitlab = identity(b.id, "gitlab", "42", 6);
        store.link_identity(&gitlab).await.unwrap();
        let older = identity(a.id, "google", "g", 1);
        store.link_identity(&older).await.unwrap();
        assert_eq!(
            store.identities_of(a.id).await.unwrap(),
            vec![older, github]
        );
        assert_eq!(store.identities_of(b.id).await.unwrap(), vec![gitlab]);
        let err = store
            .link_identity(&identity(UserId::new(), "google", "nobody", 1))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::NotFound), "{err:?}");
    }

    async fn unlink_keeps_the_last_way_to_sign_in(store: Ids) {
        let new = passwordless("social@example.com");
        let first = identity(new.id, "google", "s-1", 0);
        store.insert_user_with_identity(&new, &first).await.unwrap();
        let second = identity(new.id, "github", "s-2", 1);
        store.link_identity(&second).await.unwrap();
        let stranger = store
            .insert_user(&new_user("x@example.com"), None)
            .await
            .unwrap();

        assert_eq!(
            store
                .unlink_identity(stranger.id, first.id, at(2))
                .await
                .unwrap(),
            UnlinkOutcome::NotFound
        );
        assert_eq!(
            store
                .unlink_identity(new.id, first.id, at(2))
                .await
                .unwrap(),
            UnlinkOutcome::Removed
        );
        assert_eq!(
            store
                .unlink_identity(new.id, first.id, at(2))
                .await
                .unwrap(),
            UnlinkOutcome::NotFound
        );
        assert_eq!(
            store
                .unlink_identity(new.id, second.id, at(3))
                .await
                .unwrap(),
            UnlinkOutcome::LastSignInMethod
        );
        assert_eq!(store.identities_of(new.id).await.unwrap(), vec![second]);

        // With a password, the only identity may go.
        let only = identity(stranger.id, "google", "x-1", 0);
        store.link_identity(&only).await.unwrap();
        assert_eq!(
            store
                .unlink_identity(stranger.id, only.id, at(4))
                .await
                .unwrap(),
            UnlinkOutcome::Removed
        );
        assert!(store.identities_of(stranger.id).await.unwrap().is_empty());
    }

    async fn a_passkey_is_a_way_to_sign_in(store: Ids) {
        let new = passwordless("keyed@example.com");
        let only = identity(new.id, "google", "k-1", 0);
        store.insert_user_with_identity(&new, &only).await.unwrap();
        let passkey = StoredPasskey {
            id: uuid::Uuid::now_v7(),
            user_id: new.id,
            credential_id: vec![7; 16],
            credential: "{}".into(),
            counter: 0,
            name: None,
            created_at: at(1),
            last_used_at: None,
        };
        store
            .insert_passkey(&passkey, &message("mail", at(1)))
            .await
            .unwrap();
        assert_eq!(
            store.unlink_identity(new.id, only.id, at(2)).await.unwrap(),
            UnlinkOutcome::Removed
        );
        assert!(store.identities_of(new.id).await.unwrap().is_empty());
    }

    async fn concurrent_unlinks_keep_the_last_identity(store: Ids) {
        for round in 0..5 {
            let new = passwordless(&format!("race-{round}@example.com"));
            let a = identity(new.id, "google", &format!("r{round}-a"), 0);
            let b = identity(new.id, "github", &format!("r{round}-b"), 1);
            store.insert_user_with_identity(&new, &a).await.unwrap();
            store.link_identity(&b).await.unwrap();
            let (s1, s2) = (store.clone(), store.clone());
            let (r1, r2) = tokio::join!(
                tokio::spawn(async move { s1.unlink_identity(new.id, a.id, at(2)).await }),
                tokio::spawn(async move { s2.unlink_identity(new.id, b.id, at(2)).await }),
            );
            let mut outcomes = vec![r1.unwrap().unwrap(), r2.unwrap().unwrap()];
            outcomes.sort_by_key(|o| format!("{o:?}"));
            assert_eq!(
                outcomes,
                vec![UnlinkOutcome::LastSignInMethod, UnlinkOutcome::Removed]
            );
            assert_eq!(store.identities_of(new.id).await.unwrap().len(), 1);
        }
    }

    fn record(kind: OAuthRecordKind, expires_in: i64) -> OAuthRecord {
        OAuthRecord {
            token_hash: random_hash(),
            kind,
            payload: "sealed".to_owned(),
            created_at: at(0),
            expires_at: at(expires_in),
        }
    }

    async fn oauth_records_are_taken_once_before_they_expire(store: Ids) {
        let state = record(OAuthRecordKind::State, 600);
        store.put_oauth_record(&state).await.unwrap();
        let take = |kind, secs| {
            let (store, hash) = (store.clone(), state.token_hash.clone());
            async move {
                store
                    .take_oauth_record(&hash, kind, at(secs))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(take(OAuthRecordKind::Code, 1).await, None, "another kind");
        assert_eq!(take(OAuthRecordKind::State, 600).await, None, "expired");
        assert_eq!(take(OAuthRecordKind::State, 1).await, Some(state.clone()));
        assert_eq!(take(OAuthRecordKind::State, 1).await, None, "single use");
    }

    async fn concurrent_takes_of_a_record_succeed_once(store: Ids) {
        let code = record(OAuthRecordKind::Code, 60);
        store.put_oauth_record(&code).await.unwrap();
        let takers: Vec<_> = (0..8)
            .map(|_| {
                let (store, hash) = (store.clone(), code.token_hash.clone());
                tokio::spawn(async move {
                    store
                        .take_oauth_record(&hash, OAuthRecordKind::Code, at(1))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut got = 0;
        for t in takers {
            got += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(got, 1);
    }

    async fn purge_removes_only_expired_records(store: Ids) {
        let old = record(OAuthRecordKind::State, 10);
        let live = record(OAuthRecordKind::State, 100);
        store.put_oauth_record(&old).await.unwrap();
        store.put_oauth_record(&live).await.unwrap();
        assert_eq!(store.purge_expired_oauth_records(at(50)).await.unwrap(), 1);
        let kind = OAuthRecordKind::State;
        assert!(
            store
                .take_oauth_record(&live.token_hash, kind, at(60))
                .await
                .unwrap()
                .is_some()
        );
    }
}
