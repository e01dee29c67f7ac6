//! Contract scenarios of the operator ports (roles, account administration, the audit
//! trail, webhook endpoints), on memory, SQLite and PostgreSQL.

use auth_core::audit::{AuditQuery, AuditRecord, AuditStore, Recorded};
use auth_core::events::{EventKind, SecurityEvent};
use auth_core::identity::{Identity, IdentityId, IdentityStore};
use auth_core::mfa::{FactorKind, MfaFactor, MfaStore, NewMfaChallenge};
use auth_core::model::MailboxProof;
use auth_core::operators::{
    AccountUpdate, OperatorStore, Role, RoleChange, RoleDeletion, UserQuery,
};
use auth_core::passkeys::{PasskeyStore, StoredPasskey};
use auth_core::webhooks::{DeliveryAttempt, WebhookEndpoint, WebhookStore};

use super::*;

trait Ops:
    Store + OperatorStore + AuditStore + WebhookStore + MfaStore + IdentityStore + PasskeyStore
{
}
impl<T> Ops for T where
    T: Store + OperatorStore + AuditStore + WebhookStore + MfaStore + IdentityStore + PasskeyStore
{
}

type Op = Arc<dyn Ops>;

auth_db::on_every_store!(
    session_changes_write_their_event_and_deliveries_with_them_or_not_at_all,
    roles_are_created_changed_and_deleted_only_when_unused,
    disabling_revokes_sessions_and_refuses_new_ones,
    an_address_change_ends_the_sessions_and_tells_the_old_address,
    an_account_update_changes_every_field_with_its_audit_rows_or_nothing,
    adopting_an_unverified_account_removes_what_its_creator_set_up,
    a_reset_adopts_an_unverified_account,
    deleting_a_user_strips_addresses_from_its_audit_rows,
    users_are_listed_by_search_and_cursor,
    audit_rows_filter_page_and_prune,
    delivery_attempts_track_the_failure_streak,
);

fn row(kind: EventKind, user: Option<UserId>, at: DateTime<Utc>) -> Recorded {
    Recorded::unpublished(SecurityEvent {
        kind,
        at,
        user_id: user,
        session_id: None,
        client: Some(ClientInfo {
            ip: Some("192.0.2.9".into()),
            user_agent: Some("contract/1".into()),
        }),
        detail: Some("{\"k\":\"v\"}".into()),
        actor: None,
    })
}

async fn all_rows(store: &Op) -> Vec<AuditRecord> {
    store
        .query(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

async fn user_in(store: &Op, email: &str) -> User {
    let mut new = new_user(email);
    new.roles = Vec::new();
    store.insert_user(&new, None).await.unwrap()
}

fn role(name: &str, caps: &[&str]) -> Role {
    Role {
        name: name.into(),
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        description: None,
        built_in: false,
        created_at: at(0),
        updated_at: at(0),
    }
}

async fn roles_are_created_changed_and_deleted_only_when_unused(store: Op) {
    let roles = store.roles().await.unwrap();
    let admin = roles.iter().find(|r| r.name == "admin").unwrap();
    assert!(admin.built_in && admin.grants("anything:at-all"));
    let audit = || row(EventKind::RoleCreated, None, at(1));
    store
        .insert_role(&role("support", &["users:read"]), &audit())
        .await
        .unwrap();
    let again = store.insert_role(&role("support", &[]), &audit()).await;
    assert!(
        matches!(again, Err(AuthError::Conflict("role_exists"))),
        "{again:?}"
    );
    assert!(
        !store
            .update_role(&role("admin", &[]), &audit())
            .await
            .unwrap()
    );
    let mut changed = role("support", &["audit:read"]);
    changed.description = Some("Helpdesk".into());
    assert!(store.update_role(&changed, &audit()).await.unwrap());
    let support = store
        .roles()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "support")
        .unwrap();
    assert_eq!(support.capabilities, ["audit:read"]);
    assert_eq!(support.description.as_deref(), Some("Helpdesk"));

    let u = user_in(&store, "ada@example.com").await;
    let change = store
        .change_user_role(u.id, "nope", true, at(2), &audit())
        .await
        .unwrap();
    assert_eq!(change, RoleChange::UnknownRole);
    let ghost = store
        .change_user_role(UserId::new(), "support", true, at(2), &audit())
        .await
        .unwrap();
    assert_eq!(ghost, RoleChange::UnknownUser);
    let RoleChange::Changed(m) = store
        .change_user_role(u.id, "support", true, at(2), &audit())
        .await
        .unwrap()
    else {
        panic!("assigned")
    };
    assert_eq!(m.user.roles, ["support"]);
    // Assigning twice keeps one.
    store
        .change_user_role(u.id, "support", true, at(2), &audit())
        .await
        .unwrap();
    assert_eq!(
        store.user_by_id(u.id).await.unwrap().unwrap().roles,
        ["support"]
    );
    // `_` in a name is no LIKE wildcard: a holder of `supportx` does not hold `support`.
    store
        .insert_role(&role("sup_ort", &[]), &audit())
        .await
        .unwrap();
    assert_eq!(
        store.delete_role("sup_ort", &audit()).await.unwrap(),
        RoleDeletion::Deleted
    );
    assert_eq!(
        store.delete_role("support", &audit()).await.unwrap(),
        RoleDeletion::InUse
    );
    assert_eq!(
        store.delete_role("admin", &audit()).await.unwrap(),
        RoleDeletion::NotFound
    );
    store
        .change_user_role(u.id, "support", false, at(3), &audit())
        .await
        .unwrap();
    assert_eq!(
        store.delete_role("support", &audit()).await.unwrap(),
        RoleDeletion::Deleted
    );
    assert_eq!(
        store.delete_role("support", &audit()).await.unwrap(),
        RoleDeletion::NotFound
    );
    // Every successful write appended its row, in the same call.
    let writes = all_rows(&store).await.len();
    assert_eq!(
        writes, 8,
        "insert, update, assign x2, insert, delete, remove, delete"
    );
}

/// `row` with one webhook delivery, as the core's recorder builds it.
fn published(kind: EventKind, user: Option<UserId>, at: DateTime<Utc>) -> Recorded {
    let mut record = row(kind, user, at);
    record.deliveries.push(NewOutboxMessage {
        id: Uuid::now_v7(),
        kind: "webhook".into(),
        payload: vec![7; 16],
        created_at: at,
    });
    record
}

/// The outbox rule: an event is written with the change that causes it (audit row and
/// webhook deliveries in its transaction), by every session-opening operation; a refused
/// change writes none of it.
async fn session_changes_write_their_event_and_deliveries_with_them_or_not_at_all(store: Op) {
    let u = user_in(&store, "ada@example.com").await;
    let backlog = store.backlog().await.unwrap();
    let signed_in = published(EventKind::LoginSucceeded, Some(u.id), at(1));
    let session = store
        .create_session(
            &new_session(u.id, at(1)),
            &random_hash(),
            std::slice::from_ref(&signed_in),
        )
        .await
        .unwrap();
    let challenged = published(EventKind::LoginSucceeded, Some(u.id), at(2));
    store
        .insert_challenge(
            &challenge(u.id, "mfa", at(2)),
            std::slice::from_ref(&challenged),
        )
        .await
        .unwrap();
    let rows = all_rows(&store).await;
    assert!(rows.contains(&signed_in.row) && rows.contains(&challenged.row));
    assert_eq!(store.backlog().await.unwrap(), backlog + 2);

    // A revocation writes its event only when it revokes something.
    let logged_out = published(EventKind::LoggedOut, Some(u.id), at(2));
    let again = published(EventKind::LoggedOut, Some(u.id), at(2));
    assert!(
        store
            .revoke_session(session.id, at(2), std::slice::from_ref(&logged_out))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_session(session.id, at(2), std::slice::from_ref(&again))
            .await
            .unwrap()
    );
    let rows = all_rows(&store).await;
    assert!(rows.contains(&logged_out.row) && !rows.contains(&again.row));
    assert_eq!(store.backlog().await.unwrap(), backlog + 3);

    store
        .set_disabled(
            u.id,
            Some(at(3)),
            at(3),
            &row(EventKind::UserDisabled, Some(u.id), at(3)),
        )
        .await
        .unwrap();
    let refused = published(EventKind::LoginSucceeded, Some(u.id), at(4));
    let opened = store
        .create_session(
            &new_session(u.id, at(4)),
            &random_hash(),
            std::slice::from_ref(&refused),
        )
        .await;
    assert!(
        matches!(opened, Err(AuthError::AccountDisabled)),
        "{opened:?}"
    );
    let challenge_refused = store
        .insert_challenge(
            &challenge(u.id, "mfa-late", at(4)),
            std::slice::from_ref(&refused),
        )
        .await;
    assert!(
        matches!(challenge_refused, Err(AuthError::AccountDisabled)),
        "{challenge_refused:?}"
    );
    assert!(!all_rows(&store).await.contains(&refused.row));
    assert_eq!(store.backlog().await.unwrap(), backlog + 3);
}

async fn disabling_revokes_sessions_and_refuses_new_ones(store: Op) {
    let u = user_in(&store, "ada@example.com").await;
    store
        .create_session(&new_session(u.id, at(0)), &random_hash(), &[])
        .await
        .unwrap();
    store
        .create_session(&new_session(u.id, at(1)), &random_hash(), &[])
        .await
        .unwrap();
    // A sign-in waiting for its second factor when the account is disabled.
    store
        .insert_challenge(&challenge(u.id, "before-disable", at(1)), &[])
        .await
        .unwrap();
    let audit = || row(EventKind::UserDisabled, Some(u.id), at(2));
    assert_eq!(
        store
            .set_disabled(u.id, Some(at(2)), at(2), &audit())
            .await
            .unwrap(),
        Some(2)
    );
    assert!(store.unrevoked_sessions_of(u.id).await.unwrap().is_empty());
    let refused = store
        .create_session(&new_session(u.id, at(3)), &random_hash(), &[])
        .await;
    assert!(
        matches!(refused, Err(AuthError::AccountDisabled)),
        "{refused:?}"
    );
    assert!(store.unrevoked_sessions_of(u.id).await.unwrap().is_empty());
    disabled_account_opens_nothing(&store, u.id).await;
    let m = store.managed_user(u.id).await.unwrap().unwrap();
    assert_eq!(m.disabled_at, Some(at(2)));
    assert_eq!(
        store
            .set_disabled(u.id, None, at(4), &audit())
            .await
            .unwrap(),
        Some(0)
    );
    store
        .create_session(&new_session(u.id, at(5)), &random_hash(), &[])
        .await
        .unwrap();
    assert_eq!(
        store
            .set_disabled(UserId::new(), Some(at(5)), at(5), &audit())
            .await
            .unwrap(),
        None
    );
    let unknown = store
        .create_session(&new_session(UserId::new(), at(5)), &random_hash(), &[])
        .await;
    assert!(matches!(unknown, Err(AuthError::NotFound)));
}

/// An unverified account as someone who does not own its address leaves it: a password, a
/// live session, an identity, a passkey, an active TOTP factor, recovery codes and a
/// sign-in waiting for its second factor.
/// Replacing an account's address revokes every session and queues the notice to the old
/// address in the same transaction; a refused change (the address is taken) and an update
/// that keeps the address touch neither.
async fn an_address_change_ends_the_sessions_and_tells_the_old_address(store: Op) {
    let u = user_in(&store, "ada@example.com").await;
    user_in(&store, "taken@example.com").await;
    for i in 0..2 {
        store
            .create_session(&new_session(u.id, at(i)), &random_hash(), &[])
            .await
            .unwrap();
    }
    let audit = || row(EventKind::UserUpdated, Some(u.id), at(3));
    let to = |email: &str| AccountUpdate {
        email: Some(Email::parse(email).unwrap()),
        old_address_notice: Some(message("mail", at(3))),
        ..AccountUpdate::default()
    };
    let backlog = store.backlog().await.unwrap();
    let taken = store
        .update_user(u.id, &to("taken@example.com"), at(3), &[audit()])
        .await;
    assert!(matches!(taken, Err(AuthError::EmailTaken)));
    // The same address in other letters is no change.
    store
        .update_user(u.id, &to("ADA@example.com"), at(3), &[audit()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.unrevoked_sessions_of(u.id).await.unwrap().len(), 2);
    assert_eq!(store.backlog().await.unwrap(), backlog);

    let m = store
        .update_user(u.id, &to("ada@new.example"), at(3), &[audit()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.user.email, "ada@new.example");
    assert!(store.unrevoked_sessions_of(u.id).await.unwrap().is_empty());
    assert_eq!(store.backlog().await.unwrap(), backlog + 1);
    let due = store.claim_due(at(4), at(5), 10).await.unwrap();
    assert_eq!(due.len(), 1);
}

/// `update_user` is one transaction: address, name, avatar, roles and every audit row
/// together; a role of the new set that does not exist changes nothing at all.
async fn an_account_update_changes_every_field_with_its_audit_rows_or_nothing(store: Op) {
    let u = user_in(&store, "ada@example.com").await;
    store
        .insert_role(
            &role("support", &["users:read"]),
            &row(EventKind::RoleCreated, None, at(0)),
        )
        .await
        .unwrap();
    let rows = all_rows(&store).await.len();
    let backlog = store.backlog().await.unwrap();
    let update = |roles: &[&str]| AccountUpdate {
        email: Some(Email::parse("ada@new.example").unwrap()),
        name: Some(Some("Ada".into())),
        avatar_url: Some(Some("https://img.example/ada.png".into())),
        roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
        old_address_notice: Some(message("mail", at(1))),
        ..AccountUpdate::default()
    };
    let audit = [
        row(EventKind::UserUpdated, Some(u.id), at(1)),
        row(EventKind::RoleAssigned, Some(u.id), at(1)),
    ];
    let refused = store
        .update_user(u.id, &update(&["support", "no-such-role"]), at(1), &audit)
        .await;
    assert!(matches!(refused, Err(AuthError::NotFound)), "{refused:?}");
    let same = store.managed_user(u.id).await.unwrap().unwrap();
    assert_eq!(same.user.email, "ada@example.com");
    assert_eq!(same.user.name, u.name);
    assert_eq!(same.user.avatar_url, None);
    assert!(same.user.roles.is_empty());
    assert_eq!(all_rows(&store).await.len(), rows, "no audit row");
    assert_eq!(store.backlog().await.unwrap(), backlog, "no notice");

    let m = store
        .update_user(u.id, &update(&["support"]), at(1), &audit)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.user.email, "ada@new.example");
    assert_eq!(m.user.name.as_deref(), Some("Ada"));
    assert_eq!(
        m.user.avatar_url.as_deref(),
        Some("https://img.example/ada.png")
    );
    assert_eq!(m.user.roles, vec!["support".to_owned()]);
    assert_eq!(store.managed_user(u.id).await.unwrap().unwrap(), m);
    assert_eq!(all_rows(&store).await.len(), rows + 2, "both audit rows");
    assert_eq!(store.backlog().await.unwrap(), backlog + 1);
    // The role is now held: it cannot be deleted.
    let deletion = store
        .delete_role("support", &row(EventKind::RoleDeleted, None, at(2)))
        .await
        .unwrap();
    assert_eq!(deletion, RoleDeletion::InUse);
    // Taking every role away.
    let m = store
        .update_user(
            u.id,
            &AccountUpdate {
                roles: Some(Vec::new()),
                ..AccountUpdate::default()
            },
            at(2),
            &[row(EventKind::RoleRemoved, Some(u.id), at(2))],
        )
        .await
        .unwrap()
        .unwrap();
    assert!(m.user.roles.is_empty());
}

async fn pre_hijacked(store: &Op, email: &str) -> User {
    let mut new = new_user(email);
    new.roles = Vec::new();
    new.email_verified = false;
    new.password_hash = Some("$argon2id$creator".into());
    let u = store.insert_user(&new, None).await.unwrap();
    store
        .create_session(&new_session(u.id, at(0)), &random_hash(), &[])
        .await
        .unwrap();
    store
        .link_identity(&Identity {
            id: IdentityId::new(),
            user_id: u.id,
            provider: "google".into(),
            subject: format!("creator-of-{email}"),
            email: None,
            created_at: at(0),
        })
        .await
        .unwrap();
    store
        .insert_passkey(
            &StoredPasskey {
                id: Uuid::now_v7(),
                user_id: u.id,
                credential_id: email.as_bytes().to_vec(),
                credential: "{}".into(),
                counter: 0,
                name: None,
                created_at: at(0),
                last_used_at: None,
            },
            &message("passkey-added", at(0)),
        )
        .await
        .unwrap();
    let factor = MfaFactor {
        id: Uuid::now_v7(),
        user_id: u.id,
        kind: FactorKind::Totp,
        label: None,
        sealed_secret: vec![1, 2, 3],
        created_at: at(0),
        activated_at: None,
        last_used_step: None,
        last_used_at: None,
        lookup_hash: None,
    };
    store.insert_pending_factor(&factor).await.unwrap();
    let codes = [random_hash(), random_hash()];
    let notice = message("factor-added", at(0));
    let activated = store.activate_factor(u.id, factor.id, 1, &codes, &notice, at(0));
    assert!(activated.await.unwrap());
    store
        .insert_challenge(&challenge(u.id, &format!("pending-{email}"), at(0)), &[])
        .await
        .unwrap();
    u
}

/// What `pre_hijacked` left is there (`kept`) or gone.
async fn assert_creators_setup(store: &Op, u: &User, kept: bool) {
    let n = usize::from(kept);
    assert_eq!(store.unrevoked_sessions_of(u.id).await.unwrap().len(), n);
    assert_eq!(store.identities_of(u.id).await.unwrap().len(), n);
    assert_eq!(store.passkeys_of(u.id).await.unwrap().len(), n);
    assert_eq!(store.factors_of(u.id).await.unwrap().len(), n);
    assert_eq!(
        store.remaining_recovery_codes(u.id).await.unwrap(),
        2 * n as u64
    );
    let pending = TokenHash(format!("pending-{}", u.email));
    assert_eq!(store.challenge(&pending).await.unwrap().is_some(), kept);
}

/// The first proof of the mailbox by a flow its creator did not complete adopts the
/// account in one transaction; the sign-up link, a second proof or a stale address does
/// not.
async fn adopting_an_unverified_account_removes_what_its_creator_set_up(store: Op) {
    // The creator's own sign-up link keeps everything.
    let kept = pre_hijacked(&store, "kept@example.com").await;
    let proven = store
        .mark_email_verified(kept.id, "kept@example.com", MailboxProof::SignupLink, at(1))
        .await
        .unwrap()
        .unwrap();
    assert!(!proven.adopted && proven.user.email_verified);
    assert_creators_setup(&store, &kept, true).await;
    let creds = store
        .credentials_by_email("kept@example.com")
        .await
        .unwrap();
    assert_eq!(
        creds.unwrap().password_hash.as_deref(),
        Some("$argon2id$creator")
    );
    // Verified now: a later mailbox sign-in adopts nothing.
    let again = store
        .mark_email_verified(kept.id, "kept@example.com", MailboxProof::Adoption, at(2))
        .await
        .unwrap()
        .unwrap();
    assert!(!again.adopted);
    assert_creators_setup(&store, &kept, true).await;

    let u = pre_hijacked(&store, "ada@example.com").await;
    // An address the account no longer has proves nothing and changes nothing.
    assert!(
        store
            .mark_email_verified(u.id, "old@example.com", MailboxProof::Adoption, at(1))
            .await
            .unwrap()
            .is_none()
    );
    assert_creators_setup(&store, &u, true).await;
    let proven = store
        .mark_email_verified(u.id, "ada@example.com", MailboxProof::Adoption, at(3))
        .await
        .unwrap()
        .unwrap();
    assert!(proven.adopted && proven.user.email_verified);
    assert_eq!(proven.user.updated_at, at(3));
    assert_creators_setup(&store, &u, false).await;
    let creds = store.credentials_by_email("ada@example.com").await.unwrap();
    assert_eq!(creds.unwrap().password_hash, None);
    assert!(
        store
            .mark_email_verified(
                UserId::new(),
                "ada@example.com",
                MailboxProof::Adoption,
                at(3)
            )
            .await
            .unwrap()
            .is_none()
    );
}

/// A password reset proves the mailbox too: the unverified account is verified and loses
/// its creator's identities, passkeys and factors with the reset's own changes.
async fn a_reset_adopts_an_unverified_account(store: Op) {
    let u = pre_hijacked(&store, "ada@example.com").await;
    let reset = one_time(
        OneTimeTokenKind::PasswordReset,
        "ada@example.com",
        Some(u.id),
        at(1),
    );
    store
        .issue_one_time_token(&reset, &message("mail", at(1)))
        .await
        .unwrap();
    assert!(
        store
            .redeem_password_reset(
                &reset.token_hash,
                u.id,
                "$argon2id$owner",
                &message("notice", at(2)),
                at(2)
            )
            .await
            .unwrap()
    );
    assert_creators_setup(&store, &u, false).await;
    let creds = store
        .credentials_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(creds.user.email_verified);
    assert_eq!(creds.password_hash.as_deref(), Some("$argon2id$owner"));
}

fn challenge(user_id: UserId, token: &str, created_at: DateTime<Utc>) -> NewMfaChallenge {
    NewMfaChallenge {
        token_hash: TokenHash(token.into()),
        user_id,
        amr: vec!["pwd".into()],
        created_at,
        expires_at: created_at + Span::minutes(5),
    }
}

/// Every other store operation that signs someone in refuses the disabled account too, and
/// leaves nothing behind: no MFA challenge (so no `mfa_token`), no session from a
/// challenge issued before the account was disabled, no session or new password from a
/// password change.
async fn disabled_account_opens_nothing(store: &Op, user_id: UserId) {
    let refused = store
        .insert_challenge(&challenge(user_id, "after-disable", at(3)), &[])
        .await;
    assert!(
        matches!(refused, Err(AuthError::AccountDisabled)),
        "{refused:?}"
    );
    assert!(
        store
            .challenge(&TokenHash("after-disable".into()))
            .await
            .unwrap()
            .is_none()
    );
    let refused = store
        .complete_challenge(
            &TokenHash("before-disable".into()),
            5,
            &new_session(user_id, at(3)),
            &random_hash(),
            at(3),
            &[],
        )
        .await;
    assert!(
        matches!(refused, Err(AuthError::AccountDisabled)),
        "{refused:?}"
    );
    let before = store
        .challenge(&TokenHash("before-disable".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.used_at, None);
    let hash_before = store
        .credentials_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    let backlog = store.backlog().await.unwrap();
    let refused = store
        .change_password(
            user_id,
            "$argon2id$new",
            &new_session(user_id, at(3)),
            &random_hash(),
            &message("mail", at(3)),
        )
        .await;
    assert!(
        matches!(refused, Err(AuthError::AccountDisabled)),
        "{refused:?}"
    );
    let after = store
        .credentials_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.password_hash, hash_before);
    assert_eq!(store.backlog().await.unwrap(), backlog, "no notice queued");
    assert!(
        store
            .unrevoked_sessions_of(user_id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deleting_a_user_strips_addresses_from_its_audit_rows(store: Op) {
    let u = user_in(&store, "ada@example.com").await;
    let other = user_in(&store, "bob@example.com").await;
    store
        .create_session(&new_session(u.id, at(0)), &random_hash(), &[])
        .await
        .unwrap();
    store
        .append(&row(EventKind::LoginSucceeded, Some(u.id), at(1)))
        .await
        .unwrap();
    store
        .append(&row(EventKind::LoginSucceeded, Some(other.id), at(1)))
        .await
        .unwrap();
    let mut deletion = row(EventKind::UserDeleted, Some(u.id), at(2));
    deletion.row.ip = None;
    deletion.row.user_agent = None;
    assert!(store.delete_user(u.id, &deletion).await.unwrap());
    assert!(!store.delete_user(u.id, &deletion).await.unwrap());
    assert!(store.user_by_id(u.id).await.unwrap().is_none());
    assert!(
        store
            .credentials_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.unrevoked_sessions_of(u.id).await.unwrap().is_empty());
    let rows = all_rows(&store).await;
    let theirs: Vec<_> = rows.iter().filter(|r| r.user_id == Some(u.id)).collect();
    assert_eq!(theirs.len(), 2);
    assert!(
        theirs
            .iter()
            .all(|r| r.ip.is_none() && r.user_agent.is_none())
    );
    let bobs = rows.iter().find(|r| r.user_id == Some(other.id)).unwrap();
    assert_eq!(bobs.ip.as_deref(), Some("192.0.2.9"));
    // The address can be registered again.
    user_in(&store, "ada@example.com").await;
}

async fn users_are_listed_by_search_and_cursor(store: Op) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(user_in(&store, &format!("u{i}@list.test")).await.id);
    }
    user_in(&store, "other@example.com").await;
    let page = |after, limit| UserQuery {
        email_contains: Some("list.test".into()),
        after,
        limit,
    };
    let first = store.list_users(&page(None, 3)).await.unwrap();
    assert_eq!(
        first.iter().map(|m| m.user.id).collect::<Vec<_>>(),
        ids[..3]
    );
    let rest = store
        .list_users(&page(Some(first[2].user.id), 3))
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|m| m.user.id).collect::<Vec<_>>(), ids[3..]);
    let none = store
        .list_users(&UserQuery {
            email_contains: Some("u_@".into()),
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(none.is_empty(), "`_` is literal");
    let audit = || row(EventKind::UserUpdated, Some(ids[0]), at(1));
    let update = AccountUpdate {
        email: Some(Email::parse("u1@list.test").unwrap()),
        ..AccountUpdate::default()
    };
    let taken = store.update_user(ids[0], &update, at(1), &[audit()]).await;
    assert!(matches!(taken, Err(AuthError::EmailTaken)));
    let update = AccountUpdate {
        email: Some(Email::parse("renamed@list.test").unwrap()),
        name: Some(None),
        email_verified: Some(true),
        ..AccountUpdate::default()
    };
    let m = store
        .update_user(ids[0], &update, at(1), &[audit()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.user.email, "renamed@list.test");
    assert_eq!(m.user.name, None);
    assert!(m.user.email_verified);
    assert!(
        store
            .credentials_by_email("renamed@list.test")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .credentials_by_email("u0@list.test")
            .await
            .unwrap()
            .is_none()
    );
}

async fn audit_rows_filter_page_and_prune(store: Op) {
    let u = UserId::new();
    for i in 0..5 {
        store
            .append(&row(EventKind::LoginFailed, Some(u), at(i)))
            .await
            .unwrap();
    }
    store
        .append(&row(EventKind::LoggedOut, Some(u), at(2)))
        .await
        .unwrap();
    store
        .append(&row(EventKind::LoginFailed, None, at(3)))
        .await
        .unwrap();
    let q = |before, limit| AuditQuery {
        user_id: Some(u),
        event_type: Some("login_failed".into()),
        from: Some(at(1)),
        until: Some(at(4)),
        before,
        limit,
    };
    let page1 = store.query(&q(None, 2)).await.unwrap();
    assert_eq!(
        page1.iter().map(|r| r.at).collect::<Vec<_>>(),
        [at(3), at(2)]
    );
    let last = page1.last().unwrap();
    let page2 = store.query(&q(Some((last.at, last.id)), 2)).await.unwrap();
    assert_eq!(page2.iter().map(|r| r.at).collect::<Vec<_>>(), [at(1)]);
    assert_eq!(page1[0].detail, Some(serde_json::json!({"k": "v"})));
    assert_eq!(page1[0].event_type, "login_failed");
    assert_eq!(store.prune_before(at(2)).await.unwrap(), 2);
    assert_eq!(all_rows(&store).await.len(), 5);
}

fn endpoint() -> WebhookEndpoint {
    WebhookEndpoint {
        id: Uuid::now_v7(),
        url: "https://hooks.example.com/in".into(),
        description: None,
        event_types: vec!["*".into()],
        enabled: true,
        secret_sealed: "00ff".into(),
        previous_secret_sealed: None,
        previous_secret_expires_at: None,
        failing_since: None,
        disabled_reason: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn attempt(e: &WebhookEndpoint, n: i32, t: DateTime<Utc>, ok: bool) -> DeliveryAttempt {
    DeliveryAttempt {
        id: Uuid::now_v7(),
        endpoint_id: e.id,
        message_id: Uuid::nil(),
        event_type: "login_failed".into(),
        attempt: n,
        attempted_at: t,
        status_code: Some(if ok { 204 } else { 500 }),
        error: (!ok).then(|| "HTTP status 500".to_owned()),
        succeeded: ok,
    }
}

async fn delivery_attempts_track_the_failure_streak(store: Op) {
    let e = endpoint();
    let audit = || row(EventKind::WebhookCreated, None, at(0));
    store.insert_endpoint(&e, &audit()).await.unwrap();
    assert_eq!(
        store
            .record_attempt(&attempt(&e, 1, at(1), false))
            .await
            .unwrap(),
        Some(at(1))
    );
    assert_eq!(
        store
            .record_attempt(&attempt(&e, 2, at(2), false))
            .await
            .unwrap(),
        Some(at(1))
    );
    assert_eq!(
        store
            .record_attempt(&attempt(&e, 3, at(3), true))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .record_attempt(&attempt(&e, 1, at(4), false))
            .await
            .unwrap(),
        Some(at(4))
    );
    let list = store.attempts(e.id, 10).await.unwrap();
    assert_eq!(
        list.iter().map(|a| a.attempted_at).collect::<Vec<_>>(),
        [at(4), at(3), at(2), at(1)]
    );
    assert_eq!(list[1].status_code, Some(204));
    assert!(
        store
            .disable_endpoint(e.id, "failing", at(5), &audit())
            .await
            .unwrap()
    );
    assert!(
        !store
            .disable_endpoint(e.id, "failing", at(5), &audit())
            .await
            .unwrap()
    );
    let stored = store.endpoint(e.id).await.unwrap().unwrap();
    assert!(!stored.enabled);
    assert_eq!(stored.disabled_reason.as_deref(), Some("failing"));
    assert!(store.delete_endpoint(e.id, &audit()).await.unwrap());
    assert!(store.attempts(e.id, 10).await.unwrap().is_empty());
    // An attempt for a deleted endpoint is dropped.
    assert_eq!(
        store
            .record_attempt(&attempt(&e, 2, at(6), false))
            .await
            .unwrap(),
        None
    );
    assert!(store.endpoints().await.unwrap().is_empty());
}
