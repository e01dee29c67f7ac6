//! Operators: roles and capabilities, the administration of accounts, sessions and roles,
//! and reading the audit trail.
//!
//! Capabilities are checked against the roles in the caller's current user record (not the
//! roles copied into the access token), so taking a role away takes effect at once. Every
//! administrative write carries its audit row into the store call, which writes both in
//! one transaction.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::marker::PhantomData;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{AuditQuery, AuditRecord, Recorded};
use crate::email::Email;
use crate::error::{AuthError, AuthResult};
use crate::events::{EventKind, SecurityEvent};
use crate::mail::MailTemplate;
use crate::model::normalise_name;
use crate::model::{ClientInfo, NewUser, Session, SessionId, User, UserId};
use crate::outbox::NewOutboxMessage;
use crate::sign_in::Authenticated;

/// The capabilities the server itself checks. Roles may also hold application-defined ones.
pub mod capability {
    /// List and read accounts.
    pub const USERS_READ: &str = "users:read";
    /// Create, change, disable, lock and delete accounts.
    pub const USERS_WRITE: &str = "users:write";
    /// List and revoke other users' sessions.
    pub const SESSIONS_REVOKE: &str = "sessions:revoke";
    /// Create, change and delete roles; assign them to users.
    pub const ROLES_MANAGE: &str = "roles:manage";
    /// Read the audit trail.
    pub const AUDIT_READ: &str = "audit:read";
    /// Manage webhook endpoints.
    pub const WEBHOOKS_MANAGE: &str = "webhooks:manage";
    /// Every capability the server checks.
    pub const ALL: [&str; 6] = [
        USERS_READ,
        USERS_WRITE,
        SESSIONS_REVOKE,
        ROLES_MANAGE,
        AUDIT_READ,
        WEBHOOKS_MANAGE,
    ];

    /// A capability as a type: the proof an [`Operator`](super::Operator) carries. An
    /// embedder checks an application-defined capability by declaring its own type.
    pub trait Capability: Send + Sync + 'static {
        /// Its name (`users:read`).
        const NAME: &'static str;
    }

    /// Accounts can be read with this proof (`users:read`, and `users:write`, which
    /// reads the account it changes).
    pub trait ReadsAccounts: Capability {}

    macro_rules! capability_types {
        ($($(#[$doc:meta])* $ty:ident = $name:expr;)+) => {$(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $ty;

            impl Capability for $ty {
                const NAME: &'static str = $name;
            }
        )+};
    }

    capability_types! {
        /// `users:read`
        UsersRead = USERS_READ;
        /// `users:write`
        UsersWrite = USERS_WRITE;
        /// `sessions:revoke`
        SessionsRevoke = SESSIONS_REVOKE;
        /// `roles:manage`
        RolesManage = ROLES_MANAGE;
        /// `audit:read`
        AuditRead = AUDIT_READ;
        /// `webhooks:manage`
        WebhooksManage = WEBHOOKS_MANAGE;
    }

    impl ReadsAccounts for UsersRead {}
    impl ReadsAccounts for UsersWrite {}
}

use capability::{Capability, ReadsAccounts, RolesManage, SessionsRevoke, UsersWrite};

/// The built-in role that holds every capability. It cannot be deleted or changed.
pub const ADMIN_ROLE: &str = "admin";

const MAX_NAME_LEN: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_CAPABILITIES: usize = 100;
/// Largest page of users or audit rows.
pub const MAX_PAGE: usize = 200;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: usize = 50;

/// A named set of capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Unique name (`support`, `billing-admin`).
    pub name: String,
    /// Capabilities (`users:read` ...). The built-in `admin` holds every one, listed or not.
    pub capabilities: Vec<String>,
    /// What the role is for.
    pub description: Option<String>,
    /// Built in (`admin`): cannot be deleted or changed.
    pub built_in: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Role {
    /// The built-in administrator role as the migrations create it.
    pub fn admin(now: DateTime<Utc>) -> Self {
        Self {
            name: ADMIN_ROLE.to_owned(),
            capabilities: capability::ALL.iter().map(|c| (*c).to_owned()).collect(),
            description: Some("Every capability".to_owned()),
            built_in: true,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether the role grants `capability`.
    pub fn grants(&self, capability: &str) -> bool {
        self.grants_every() || self.capabilities.iter().any(|c| c == capability)
    }

    /// Whether the role grants every capability (the built-in `admin`).
    pub fn grants_every(&self) -> bool {
        self.built_in && self.name == ADMIN_ROLE
    }

    /// What the role grants, as [`Grants`].
    pub fn grant_set(&self) -> Grants {
        if self.grants_every() {
            Grants::Every
        } else {
            Grants::Listed(self.capabilities.iter().cloned().collect())
        }
    }
}

/// The capabilities a set of roles grants: every one (the built-in `admin` role), or
/// those listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grants {
    /// Every capability, application-defined ones included.
    Every,
    /// Exactly these.
    Listed(BTreeSet<String>),
}

impl Grants {
    /// What the roles named in `held` grant, looked up in `roles` (unknown names grant
    /// nothing).
    pub fn of(roles: &[Role], held: &[String]) -> Self {
        let mut listed = BTreeSet::new();
        for role in roles.iter().filter(|r| held.contains(&r.name)) {
            if role.grants_every() {
                return Self::Every;
            }
            listed.extend(role.capabilities.iter().cloned());
        }
        Self::Listed(listed)
    }

    /// Whether `capability` is granted.
    pub fn contains(&self, capability: &str) -> bool {
        match self {
            Self::Every => true,
            Self::Listed(caps) => caps.contains(capability),
        }
    }

    /// Whether everything `other` grants is granted here too.
    pub fn covers(&self, other: &Grants) -> bool {
        match (self, other) {
            (Self::Every, _) => true,
            (Self::Listed(_), Self::Every) => false,
            (Self::Listed(mine), Self::Listed(theirs)) => theirs.is_subset(mine),
        }
    }
}

/// An account as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedUser {
    /// The account.
    pub user: User,
    /// Set while the account is disabled.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A page query over accounts, in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Only accounts whose canonical email contains this (lowercase) text.
    pub email_contains: Option<String>,
    /// Continue after this account.
    pub after: Option<UserId>,
    /// Page size.
    pub limit: usize,
}

/// An administrator's change to an account, applied by [`OperatorStore::update_user`] in
/// one transaction. `None` leaves a field as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    /// New email address.
    pub email: Option<Email>,
    /// New display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New verified flag.
    pub email_verified: Option<bool>,
    /// New avatar URL (`Some(None)` clears it).
    pub avatar_url: Option<Option<String>>,
    /// The account's whole new set of roles. Each must exist when the transaction runs
    /// (checked and locked in it, like [`OperatorStore::change_user_role`]).
    pub roles: Option<Vec<String>>,
    /// Queued, in the same transaction, when the address really changes: the notice to the
    /// old address. Every session of the account is revoked then too.
    pub old_address_notice: Option<NewOutboxMessage>,
}

/// What an administrator asks to change on an account ([`OperatorService::admin_update_user`]).
/// `None` leaves a field as is.
#[derive(Debug, Clone, Default)]
pub struct AccountEdit<'a> {
    /// New email address.
    pub email: Option<String>,
    /// New display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New verified flag (a new address is unverified unless this says otherwise).
    pub email_verified: Option<bool>,
    /// New avatar URL (`Some(None)` clears it).
    pub avatar_url: Option<Option<String>>,
    /// The whole new set of roles, with the proof that the operator manages roles.
    pub roles: Option<(&'a Operator<RolesManage>, Vec<String>)>,
}

/// Outcome of [`OperatorStore::change_user_role`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// Done (or nothing to do); the account afterwards.
    Changed(ManagedUser),
    /// No such account.
    UnknownUser,
    /// No such role (when assigning).
    UnknownRole,
}

/// Outcome of [`OperatorStore::delete_role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleDeletion {
    /// Deleted.
    Deleted,
    /// No such role (or it is built in).
    NotFound,
    /// Some user still holds it.
    InUse,
}

/// Storage of roles and of the administrative changes to accounts. Each write is one
/// transaction that also writes its event's `record` (audit row and webhook deliveries).
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Every role, by name.
    async fn roles(&self) -> AuthResult<Vec<Role>>;
    /// Insert a role; [`AuthError::Conflict`] `role_exists` when the name is taken.
    async fn insert_role(&self, role: &Role, record: &Recorded) -> AuthResult<()>;
    /// Replace a role's capabilities and description; `false` when there is no such role
    /// that is not built in.
    async fn update_role(&self, role: &Role, record: &Recorded) -> AuthResult<bool>;
    /// Delete a role that is not built in and that no user holds.
    async fn delete_role(&self, name: &str, record: &Recorded) -> AuthResult<RoleDeletion>;
    /// An account and its state.
    async fn managed_user(&self, id: UserId) -> AuthResult<Option<ManagedUser>>;
    /// A page of accounts in creation order (identifiers are time ordered).
    async fn list_users(&self, query: &UserQuery) -> AuthResult<Vec<ManagedUser>>;
    /// Insert an account; [`AuthError::EmailTaken`] when the canonical email is registered.
    async fn insert_managed_user(&self, user: &NewUser, record: &Recorded) -> AuthResult<User>;
    /// Apply `update` and write `records`, all in one transaction; `None` when there is no
    /// such account, [`AuthError::EmailTaken`] when the new address belongs to another,
    /// [`AuthError::NotFound`] when a role of the new set does not exist (nothing changed).
    async fn update_user(
        &self,
        id: UserId,
        update: &AccountUpdate,
        now: DateTime<Utc>,
        records: &[Recorded],
    ) -> AuthResult<Option<ManagedUser>>;
    /// Give (`assign`) or take away a role. Assigning checks, in the same transaction,
    /// that the role exists.
    async fn change_user_role(
        &self,
        id: UserId,
        role: &str,
        assign: bool,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<RoleChange>;
    /// Disable (`Some(time)`) or enable (`None`) an account. Disabling revokes every
    /// session of the account in the same transaction. `None` when there is no such
    /// account, else how many sessions were revoked.
    async fn set_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<Option<u64>>;
    /// Delete an account with its sessions and one-time tokens, and strip the addresses
    /// from its audit rows (they keep the user id only). `false` when there is no such
    /// account.
    async fn delete_user(&self, id: UserId, record: &Recorded) -> AuthResult<bool>;
    /// Revoke one session of the account (`only`) or all of them; returns how many.
    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        only: Option<SessionId>,
        now: DateTime<Utc>,
        record: &Recorded,
    ) -> AuthResult<u64>;
}

/// Settings of the operator features.
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// Audit rows older than this are pruned.
    pub audit_retention: Duration,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        Self {
            audit_retention: Duration::days(90),
        }
    }
}

/// An administrator whose current roles were checked to grant `C`, with everything those
/// roles grant and where the request came from. Only [`OperatorService::authorize`] makes
/// one, so holding an `Operator<UsersWrite>` proves `users:write`; each administrative
/// operation names the proof it needs in its signature.
#[derive(Debug, Clone)]
pub struct Operator<C: Capability> {
    caller: Authenticated,
    client: ClientInfo,
    grants: Grants,
    _proof: PhantomData<fn() -> C>,
}

impl<C: Capability> Operator<C> {
    /// The administrator's session.
    pub fn caller(&self) -> &Authenticated {
        &self.caller
    }

    /// The request's origin, for the audit trail.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Everything the administrator's roles granted when the proof was made.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    fn actor(&self) -> Actor<'_> {
        Actor {
            user_id: self.caller.user_id,
            client: &self.client,
        }
    }

    /// The rule on the accounts an operator may act on: an account whose roles grant a
    /// capability this operator lacks (an administrator, for an operator who is not one)
    /// is refused with [`AuthError::InsufficientCapability`]. Every administrative change
    /// to an account goes through [`OperatorService::target_account`], which applies it.
    pub fn may_act_on(&self, target: &Grants) -> AuthResult<()> {
        if self.grants.covers(target) {
            Ok(())
        } else {
            Err(AuthError::InsufficientCapability)
        }
    }

    /// The rule on giving roles: it needs `roles:manage`, and every capability of every
    /// role given must be one this operator holds. Account creation with roles and role
    /// assignment both apply it (through [`OperatorService::may_grant_roles`]), and so do
    /// role creation and change (a role's new capabilities reach every holder).
    pub fn may_grant(&self, grants: &Grants) -> AuthResult<()> {
        if !self.grants.contains(capability::ROLES_MANAGE) {
            return Err(AuthError::Forbidden);
        }
        self.may_act_on(grants)
    }
}

impl Operator<RolesManage> {
    /// An administrator cannot take the built-in role from themselves (there would be no
    /// one left to give it back).
    fn may_remove_own_role(&self, id: UserId, role: &str, assign: bool) -> AuthResult<()> {
        if !assign && role == ADMIN_ROLE && id == self.caller.user_id {
            return Err(AuthError::Conflict("cannot_target_self"));
        }
        Ok(())
    }
}

/// Who did an administrative action, for its audit row.
#[derive(Clone, Copy)]
struct Actor<'a> {
    user_id: UserId,
    client: &'a ClientInfo,
}

/// A new account created by an administrator.
pub struct NewAccount {
    /// Email address as typed.
    pub email: String,
    /// Initial password; `None` for an account that signs in by link, code or provider.
    pub password: Option<SecretString>,
    /// Display name.
    pub name: Option<String>,
    /// Whether the address counts as proven.
    pub email_verified: bool,
    /// Roles (each must exist); the configured default roles when empty.
    pub roles: Vec<String>,
}

/// An account brought from another backend (`users import`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedAccount {
    /// Email address.
    pub email: String,
    /// The other backend's password hash (bcrypt or Argon2); none for an account that
    /// signs in by link, code or provider.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the other backend had proven the address.
    #[serde(default)]
    pub email_verified: bool,
    /// Roles (each must exist); the configured default roles when empty.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl fmt::Debug for ImportedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedAccount")
            .field("email", &self.email)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// A new role, or the new state of one.
#[derive(Debug, Clone)]
pub struct RoleInput {
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Description.
    pub description: Option<String>,
}

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

fn valid_name(s: &str, allow_colon_star: bool) -> bool {
    let mut chars = s.chars();
    s.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '_' | '-' | '.')
                || (allow_colon_star && matches!(c, ':' | '*'))
        })
}

/// Check a role name: lowercase ASCII letter first, then letters, digits, `_`, `-`, `.`; at
/// most 64 bytes.
pub fn validate_role_name(name: &str) -> AuthResult<()> {
    if valid_name(name, false) {
        Ok(())
    } else {
        Err(AuthError::InvalidField {
            field: "name",
            reason: "must be 1 to 64 of a-z, 0-9, _, -, . starting with a letter",
        })
    }
}

fn normalise_capabilities(caps: Vec<String>) -> AuthResult<Vec<String>> {
    if caps.len() > MAX_CAPABILITIES {
        return Err(AuthError::InvalidField {
            field: "capabilities",
            reason: "must hold at most 100 entries",
        });
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for c in caps {
        if !valid_name(&c, true) {
            return Err(AuthError::InvalidField {
                field: "capabilities",
                reason: "each must be 1 to 64 of a-z, 0-9, _, -, ., :, * starting with a letter",
            });
        }
        if seen.insert(c.clone()) {
            out.push(c);
        }
    }
    Ok(out)
}

fn normalise_description(d: Option<String>) -> AuthResult<Option<String>> {
    let Some(d) = d.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if d.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control) {
        return Err(AuthError::InvalidField {
            field: "description",
            reason: "must be at most 500 characters without control characters",
        });
    }
    Ok(Some(d))
}

/// Page size from what the client asked (`0` means the default).
pub fn page_size(asked: Option<usize>) -> usize {
    asked.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// Encode an audit cursor (time and id of the last row).
fn audit_cursor(row: &AuditRecord) -> String {
    format!("{}_{}", row.at.timestamp_micros(), row.id.simple())
}

/// Decode an audit cursor.
pub fn parse_audit_cursor(s: &str) -> AuthResult<(DateTime<Utc>, Uuid)> {
    let bad = || AuthError::InvalidRequest("malformed cursor".into());
    let (micros, id) = s.split_once('_').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// The operator use cases: capability checks, account administration, roles and the audit trail.
#[derive(Clone)]
pub struct OperatorService {
    pub(crate) sign_in: crate::sign_in::SignIn,
    pub(crate) audit: std::sync::Arc<dyn crate::audit::AuditStore>,
    pub(crate) clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub(crate) hasher: std::sync::Arc<dyn crate::password::PasswordHasher>,
    pub(crate) lockouts: std::sync::Arc<dyn crate::guard::LockoutStore>,
    pub(crate) operators: std::sync::Arc<dyn crate::operators::OperatorStore>,
    pub(crate) sessions: std::sync::Arc<dyn crate::ports::SessionStore>,
    pub(crate) guard: crate::guard::Guard,
    pub(crate) outgoing: crate::outbox::Outgoing,
    pub(crate) recorder: crate::record::Recorder,
    pub(crate) default_roles: Vec<String>,
    pub(crate) guard_settings: crate::guard::GuardSettings,
    pub(crate) operator_settings: crate::operators::OperatorSettings,
    pub(crate) policy: crate::sign_in::SessionPolicy,
}

impl std::fmt::Debug for OperatorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorService").finish_non_exhaustive()
    }
}

impl OperatorService {
    /// Authenticate an access token and check that the caller's current roles grant
    /// `C`: [`AuthError::InvalidToken`] without a live session, [`AuthError::Forbidden`]
    /// without the capability. The only way to make an [`Operator`].
    pub async fn authorize<C: Capability>(
        &self,
        access_token: &str,
        client: ClientInfo,
    ) -> AuthResult<Operator<C>> {
        let caller = self.sign_in.authenticate(access_token).await?;
        let account = self
            .operators
            .managed_user(caller.user_id)
            .await?
            .ok_or(AuthError::InvalidToken("user no longer exists"))?;
        if account.disabled_at.is_some() {
            return Err(AuthError::InvalidToken("account disabled"));
        }
        let roles = self.operators.roles().await?;
        let grants = Grants::of(&roles, &account.user.roles);
        if !grants.contains(C::NAME) {
            return Err(AuthError::Forbidden);
        }
        Ok(Operator {
            caller,
            client,
            grants,
            _proof: PhantomData,
        })
    }

    /// The chokepoint of every administrative change to an account (update, disable,
    /// enable, delete, lock, unlock, session revocation, role change): the account, if it
    /// exists ([`AuthError::NotFound`]) and its roles grant nothing `operator` lacks
    /// ([`Operator::may_act_on`]).
    pub async fn target_account<C: Capability>(
        &self,
        operator: &Operator<C>,
        id: UserId,
    ) -> AuthResult<ManagedUser> {
        let account = self.managed(id).await?;
        let roles = self.operators.roles().await?;
        operator.may_act_on(&Grants::of(&roles, &account.user.roles))?;
        Ok(account)
    }

    /// The chokepoint of giving roles (account creation with roles, role assignment):
    /// each named role must exist ([`AuthError::NotFound`] otherwise) and be one
    /// `operator` may give ([`Operator::may_grant`]).
    pub async fn may_grant_roles<C: Capability>(
        &self,
        operator: &Operator<C>,
        names: &[String],
    ) -> AuthResult<()> {
        let roles = self.operators.roles().await?;
        for name in names {
            let role = roles
                .iter()
                .find(|r| &r.name == name)
                .ok_or(AuthError::NotFound)?;
            operator.may_grant(&role.grant_set())?;
        }
        Ok(())
    }

    /// Whether `operator` may give (`assign`) or take away `role` on account `id`, before
    /// anything changes: the account must be one they may act on
    /// ([`OperatorService::target_account`]), a role given one they may give
    /// ([`OperatorService::may_grant_roles`]), and an administrator cannot take the built-in
    /// role from themselves.
    pub async fn may_change_role(
        &self,
        operator: &Operator<RolesManage>,
        id: UserId,
        role: &str,
        assign: bool,
    ) -> AuthResult<()> {
        operator.may_remove_own_role(id, role, assign)?;
        self.target_account(operator, id).await?;
        if assign {
            self.may_grant_roles(operator, &[role.to_owned()]).await?;
        }
        Ok(())
    }

    async fn managed(&self, id: UserId) -> AuthResult<ManagedUser> {
        self.operators
            .managed_user(id)
            .await?
            .ok_or(AuthError::NotFound)
    }

    /// The audit row of an administrative action, and its log line.
    async fn admin_event(
        &self,
        operator: Option<Actor<'_>>,
        kind: EventKind,
        user_id: Option<UserId>,
        session_id: Option<SessionId>,
        detail: Option<serde_json::Value>,
    ) -> AuthResult<Recorded> {
        let event = SecurityEvent {
            kind,
            at: self.clock.now(),
            user_id,
            session_id,
            client: operator.map(|o| o.client.clone()),
            detail: detail.map(|d| d.to_string()),
            actor: operator.map(|o| o.user_id),
        };
        self.recorder.recorded(event).await
    }

    /// The record of giving (`assign`) or taking away `role`.
    async fn role_event(
        &self,
        operator: Actor<'_>,
        id: UserId,
        role: &str,
        assign: bool,
    ) -> AuthResult<Recorded> {
        let kind = if assign {
            EventKind::RoleAssigned
        } else {
            EventKind::RoleRemoved
        };
        let detail = Some(json!({ "role": role }));
        self.admin_event(Some(operator), kind, Some(id), None, detail)
            .await
    }

    async fn known_roles(&self, names: &[String]) -> AuthResult<()> {
        let roles = self.operators.roles().await?;
        for name in names {
            if !roles.iter().any(|r| &r.name == name) {
                return Err(AuthError::InvalidField {
                    field: "roles",
                    reason: "names a role that does not exist",
                });
            }
        }
        Ok(())
    }

    async fn create_account(
        &self,
        operator: Option<Actor<'_>>,
        account: NewAccount,
        extra_roles: &[&str],
    ) -> AuthResult<User> {
        let email = Email::parse(&account.email).map_err(AuthError::InvalidEmail)?;
        let name = normalise_name(account.name)?;
        let roles = self.account_roles(account.roles, extra_roles).await?;
        let password_hash = match &account.password {
            Some(p) => {
                self.guard.check_new_password(p, Some(&email)).await?;
                Some(self.hasher.hash(p).await?)
            }
            None => None,
        };
        let by = if operator.is_some() { "admin" } else { "cli" };
        let new_user = NewUser {
            id: UserId::new(),
            email,
            name,
            password_hash,
            email_verified: account.email_verified,
            roles,
            created_at: self.clock.now(),
        };
        self.insert_account(operator, new_user, by).await
    }

    /// The roles of a new account: those named (each must exist), else the configured
    /// defaults as sign-up gives them; plus `extra_roles`, without repeats.
    async fn account_roles(
        &self,
        named: Vec<String>,
        extra_roles: &[&str],
    ) -> AuthResult<Vec<String>> {
        self.known_roles(&named).await?;
        let mut roles = if named.is_empty() {
            self.default_roles.clone()
        } else {
            named
        };
        for r in extra_roles {
            if !roles.iter().any(|x| x == r) {
                roles.push((*r).to_owned());
            }
        }
        let mut unique = HashSet::new();
        roles.retain(|r| unique.insert(r.clone()));
        Ok(roles)
    }

    /// Insert a new account with its `user_created` audit row in one transaction.
    async fn insert_account(
        &self,
        operator: Option<Actor<'_>>,
        new_user: NewUser,
        by: &str,
    ) -> AuthResult<User> {
        let detail = json!({ "roles": new_user.roles, "by": by });
        let record = self
            .admin_event(
                operator,
                EventKind::UserCreated,
                Some(new_user.id),
                None,
                Some(detail),
            )
            .await?;
        let user = self
            .operators
            .insert_managed_user(&new_user, &record)
            .await?;
        self.recorder.committed([record]).await;
        Ok(user)
    }

    /// Bring over an account from another backend with its password hash (the
    /// `users import` command): bcrypt or Argon2 hashes are kept as they are and replaced
    /// by an Argon2id hash at the first password sign-in. Not reachable over HTTP.
    pub async fn import_account(&self, account: ImportedAccount) -> AuthResult<User> {
        let email = Email::parse(&account.email).map_err(AuthError::InvalidEmail)?;
        let name = normalise_name(account.name)?;
        if let Some(hash) = &account.password_hash {
            crate::password::check_imported_hash(hash)
                .map_err(|reason| AuthError::InvalidRequest(format!("password_hash {reason}")))?;
        }
        let roles = self.account_roles(account.roles, &[]).await?;
        let new_user = NewUser {
            id: UserId::new(),
            email,
            name,
            password_hash: account.password_hash,
            email_verified: account.email_verified,
            roles,
            created_at: self.clock.now(),
        };
        self.insert_account(None, new_user, "import").await
    }

    /// Create an administrator (the `users create-admin` command): a verified account
    /// holding the built-in `admin` role. Not reachable over HTTP.
    pub async fn create_admin(&self, email: &str, password: SecretString) -> AuthResult<User> {
        let account = NewAccount {
            email: email.to_owned(),
            password: Some(password),
            name: None,
            email_verified: true,
            roles: Vec::new(),
        };
        self.create_account(None, account, &[ADMIN_ROLE]).await
    }

    /// A page of accounts, optionally those whose email contains `search`.
    pub async fn admin_list_users(
        &self,
        _operator: &Operator<impl ReadsAccounts>,
        search: Option<String>,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> AuthResult<Page<ManagedUser>> {
        let after = cursor
            .map(|c| {
                c.parse::<UserId>()
                    .map_err(|_| AuthError::InvalidRequest("malformed cursor".into()))
            })
            .transpose()?;
        let limit = page_size(limit);
        let query = UserQuery {
            email_contains: search
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty()),
            after,
            limit: limit + 1,
        };
        let mut items = self.operators.list_users(&query).await?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|u| u.user.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// One account.
    pub async fn admin_get_user(
        &self,
        _operator: &Operator<impl ReadsAccounts>,
        id: UserId,
    ) -> AuthResult<ManagedUser> {
        self.managed(id).await
    }

    /// Create an account. Naming roles needs `roles:manage` and only roles the operator
    /// may give ([`OperatorService::may_grant_roles`]); without any, the configured default
    /// roles are given as sign-up gives them.
    pub async fn admin_create_user(
        &self,
        operator: &Operator<UsersWrite>,
        account: NewAccount,
    ) -> AuthResult<ManagedUser> {
        self.known_roles(&account.roles).await?;
        self.may_grant_roles(operator, &account.roles).await?;
        let user = self
            .create_account(Some(operator.actor()), account, &[])
            .await?;
        Ok(ManagedUser {
            user,
            disabled_at: None,
        })
    }

    /// Change an account: address, name, verified flag, avatar and roles in one
    /// transaction, with their audit rows; every rule is checked before anything changes.
    /// The account must be one the operator may act on; a role given must be one they may
    /// give and a role taken away not their own built-in one. A new address revokes every
    /// session of the account and notifies the old address, in the same transaction.
    pub async fn admin_update_user(
        &self,
        operator: &Operator<UsersWrite>,
        id: UserId,
        edit: AccountEdit<'_>,
    ) -> AuthResult<ManagedUser> {
        let email = edit
            .email
            .map(|e| Email::parse(&e).map_err(AuthError::InvalidEmail))
            .transpose()?;
        let name = edit.name.map(normalise_name).transpose()?;
        let avatar_url = edit
            .avatar_url
            .map(|url| {
                crate::model::ProfileUpdate {
                    name: None,
                    avatar_url: Some(url),
                }
                .normalised()
                .map(|p| p.avatar_url.flatten())
            })
            .transpose()?;
        let target = self.target_account(operator, id).await?.user;
        let role_changes = match &edit.roles {
            Some((roles_operator, wanted)) => {
                self.known_roles(wanted).await?;
                let changes = role_changes(&target.roles, wanted);
                for (role, assign) in &changes {
                    self.may_change_role(roles_operator, id, role, *assign)
                        .await?;
                }
                changes
            }
            None => Vec::new(),
        };
        let now = self.clock.now();
        let changes_email = email.as_ref().is_some_and(|e| {
            Email::parse(&target.email).map_or(true, |old| old.canonical() != e.canonical())
        });
        let old_address_notice = match changes_email {
            true => Some(self.outgoing.mail(
                &target.email,
                MailTemplate::EmailChanged,
                &[("name", target.name.clone().unwrap_or_default())],
                now,
            )?),
            false => None,
        };
        let update = AccountUpdate {
            email_verified: match (changes_email, edit.email_verified) {
                (true, None) => Some(false),
                (_, flag) => flag,
            },
            email,
            name,
            avatar_url,
            roles: edit.roles.map(|(_, wanted)| dedup(wanted)),
            old_address_notice,
        };
        let fields: Vec<&str> = [
            update.email.as_ref().map(|_| "email"),
            update.name.as_ref().map(|_| "name"),
            update.email_verified.map(|_| "email_verified"),
            update.avatar_url.as_ref().map(|_| "avatar_url"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut audit = Vec::new();
        if !fields.is_empty() {
            let record = self
                .admin_event(
                    Some(operator.actor()),
                    EventKind::UserUpdated,
                    Some(id),
                    None,
                    Some(json!({ "fields": fields, "email_changed": changes_email })),
                )
                .await?;
            audit.push(record);
        }
        for (role, assign) in &role_changes {
            audit.push(self.role_event(operator.actor(), id, role, *assign).await?);
        }
        let user = self
            .operators
            .update_user(id, &update, now, &audit)
            .await?
            .ok_or(AuthError::NotFound)?;
        self.recorder.committed(audit).await;
        Ok(user)
    }

    /// Disable or enable an account. Disabling revokes its sessions at once; a disabled
    /// account cannot sign in by any means.
    pub async fn admin_set_disabled(
        &self,
        operator: &Operator<UsersWrite>,
        id: UserId,
        disabled: bool,
    ) -> AuthResult<ManagedUser> {
        if disabled && id == operator.caller.user_id {
            return Err(AuthError::Conflict("cannot_target_self"));
        }
        self.target_account(operator, id).await?;
        let kind = if disabled {
            EventKind::UserDisabled
        } else {
            EventKind::UserEnabled
        };
        let now = self.clock.now();
        // The count is known only inside the transaction; the row says what was asked.
        let detail = disabled.then(|| json!({ "sessions_revoked": "all" }));
        let record = self
            .admin_event(Some(operator.actor()), kind, Some(id), None, detail)
            .await?;
        self.operators
            .set_disabled(id, disabled.then_some(now), now, &record)
            .await?
            .ok_or(AuthError::NotFound)?;
        self.recorder.committed([record]).await;
        self.managed(id).await
    }

    /// Delete an account: its personal data goes; the audit trail keeps its id only.
    pub async fn admin_delete_user(
        &self,
        operator: &Operator<UsersWrite>,
        id: UserId,
    ) -> AuthResult<()> {
        if id == operator.caller.user_id {
            return Err(AuthError::Conflict("cannot_target_self"));
        }
        let account = self.target_account(operator, id).await?;
        let record = self
            .admin_event(
                Some(operator.actor()),
                EventKind::UserDeleted,
                Some(id),
                None,
                None,
            )
            .await?;
        if !self.operators.delete_user(id, &record).await? {
            return Err(AuthError::NotFound);
        }
        // Failed sign-ins are counted by address: forget them too.
        self.lockouts
            .clear_all(&crate::guard::lockout_identifier(&account.user.email))
            .await?;
        self.recorder.committed([record]).await;
        Ok(())
    }

    /// Lock an account's password sign-in for `duration` (the configured lockout freeze by
    /// default); answers when the lock ends.
    pub async fn admin_lock_user(
        &self,
        operator: &Operator<UsersWrite>,
        id: UserId,
        duration: Option<Duration>,
    ) -> AuthResult<DateTime<Utc>> {
        if !self.guard_settings.lockout.enabled {
            return Err(AuthError::NotEnabled("lockout"));
        }
        let account = self.target_account(operator, id).await?;
        let freeze = duration.unwrap_or(self.guard_settings.lockout.freeze);
        if freeze <= Duration::zero() || freeze > Duration::days(366) {
            return Err(AuthError::InvalidField {
                field: "duration_secs",
                reason: "must be between 1 second and 366 days",
            });
        }
        let now = self.clock.now();
        let identifier = crate::guard::lockout_identifier(&account.user.email);
        // One failure against a threshold of one: the store's own atomic lock.
        let state = self
            .lockouts
            .register_failure(&identifier, now, freeze, 1, freeze)
            .await?;
        let until = state.locked_until.unwrap_or(now + freeze);
        let record = self
            .admin_event(
                Some(operator.actor()),
                EventKind::UserLocked,
                Some(id),
                None,
                Some(json!({ "locked_until": until.to_rfc3339() })),
            )
            .await?;
        self.audit.append(&record).await?;
        self.recorder.committed([record]).await;
        Ok(until)
    }

    /// Lift an account's sign-in lock and forget its failed attempts.
    pub async fn admin_unlock_user(
        &self,
        operator: &Operator<UsersWrite>,
        id: UserId,
    ) -> AuthResult<()> {
        let account = self.target_account(operator, id).await?;
        self.guard.unlock(&account.user.email).await?;
        let record = self
            .admin_event(
                Some(operator.actor()),
                EventKind::UserUnlocked,
                Some(id),
                None,
                None,
            )
            .await?;
        self.audit.append(&record).await?;
        self.recorder.committed([record]).await;
        Ok(())
    }

    /// An account's live sessions, newest first.
    pub async fn admin_user_sessions(
        &self,
        operator: &Operator<impl ReadsAccounts>,
        id: UserId,
    ) -> AuthResult<Vec<Session>> {
        self.admin_get_user(operator, id).await?;
        let now = self.clock.now();
        let idle = self.policy.idle_ttl;
        Ok(self
            .sessions
            .unrevoked_sessions_of(id)
            .await?
            .into_iter()
            .filter(|s| s.is_active(now, idle))
            .collect())
    }

    /// Revoke one session of an account, or all of them; answers how many.
    pub async fn admin_revoke_sessions(
        &self,
        operator: &Operator<SessionsRevoke>,
        id: UserId,
        only: Option<SessionId>,
    ) -> AuthResult<u64> {
        self.target_account(operator, id).await?;
        if let Some(sid) = only {
            match self.sessions.session(sid).await? {
                Some(s) if s.user_id == id && s.revoked_at.is_none() => {}
                _ => return Err(AuthError::NotFound),
            }
        }
        let scope = if only.is_some() { "session" } else { "all" };
        let record = self
            .admin_event(
                Some(operator.actor()),
                EventKind::SessionRevoked,
                Some(id),
                only,
                Some(json!({ "reason": "by_admin", "scope": scope })),
            )
            .await?;
        let now = self.clock.now();
        let n = self
            .operators
            .revoke_user_sessions(id, only, now, &record)
            .await?;
        self.recorder.committed([record]).await;
        Ok(n)
    }

    /// Every role.
    pub async fn list_roles(&self, _operator: &Operator<RolesManage>) -> AuthResult<Vec<Role>> {
        self.operators.roles().await
    }

    /// Create a role. Its capabilities must be ones the operator holds
    /// ([`Operator::may_grant`]): a role is how capabilities are given.
    pub async fn create_role(
        &self,
        operator: &Operator<RolesManage>,
        name: String,
        input: RoleInput,
    ) -> AuthResult<Role> {
        validate_role_name(&name)?;
        let now = self.clock.now();
        let role = Role {
            name,
            capabilities: normalise_capabilities(input.capabilities)?,
            description: normalise_description(input.description)?,
            built_in: false,
            created_at: now,
            updated_at: now,
        };
        operator.may_grant(&role.grant_set())?;
        let record = self
            .admin_event(
                Some(operator.actor()),
                EventKind::RoleCreated,
                None,
                None,
                Some(json!({ "role": role.name, "capabilities": role.capabilities })),
            )
            .await?;
        self.operators.insert_role(&role, &record).await?;
        self.recorder.committed([record]).await;
        Ok(role)
    }

    async fn role_named(&self, name: &str) -> AuthResult<Role> {
        self.operators
            .roles()
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or(AuthError::NotFound)
    }

    /// Change a role's capabilities (replaced as a whole) and description; `None` leaves
    /// a field as is. The built-in role cannot change; the new capabilities must be ones
    /// the operator holds ([`Operator::may_grant`]), since every holder gets them.
    pub async fn update_role(
        &self,
        operator: &Operator<RolesManage>,
        name: &str,
        capabilities: Option<Vec<String>>,
        description: Option<Option<String>>,
    ) -> AuthResult<Role> {
        let current = self.role_named(name).await?;
        if current.built_in {
            return Err(AuthError::Conflict("built_in_role"));
        }
        let role = Role {
            capabilities: match capabilities {
                Some(c) => normalise_capabilities(c)?,
                None => current.capabilities.clone(),
            },
            description: match description {
                Some(d) => normalise_description(d)?,
                None => current.description.clone(),
            },
            updated_at: self.clock.now(),
            ..current
        };
        operator.may_grant(&role.grant_set())?;
        let record = self
            .admin_event(
                Some(operator.actor()),
                EventKind::RoleUpdated,
                None,
                None,
                Some(json!({ "role": role.name, "capabilities": role.capabilities })),
            )
            .await?;
        if !self.operators.update_role(&role, &record).await? {
            return Err(AuthError::NotFound);
        }
        self.recorder.committed([record]).await;
        Ok(role)
    }

    /// Delete a role no user holds. The built-in role cannot be deleted.
    pub async fn delete_role(
        &self,
        operator: &Operator<RolesManage>,
        name: &str,
    ) -> AuthResult<()> {
        if self.role_named(name).await?.built_in {
            return Err(AuthError::Conflict("built_in_role"));
        }
        let record = self
            .admin_event(
                Some(operator.actor()),
                EventKind::RoleDeleted,
                None,
                None,
                Some(json!({ "role": name })),
            )
            .await?;
        match self.operators.delete_role(name, &record).await? {
            RoleDeletion::Deleted => {
                self.recorder.committed([record]).await;
                Ok(())
            }
            RoleDeletion::NotFound => Err(AuthError::NotFound),
            RoleDeletion::InUse => Err(AuthError::Conflict("role_in_use")),
        }
    }

    /// Give a role to an account, or take it away, as [`OperatorService::may_change_role`]
    /// allows.
    pub async fn change_user_role(
        &self,
        operator: &Operator<RolesManage>,
        id: UserId,
        role: &str,
        assign: bool,
    ) -> AuthResult<ManagedUser> {
        self.may_change_role(operator, id, role, assign).await?;
        let record = self.role_event(operator.actor(), id, role, assign).await?;
        let now = self.clock.now();
        match self
            .operators
            .change_user_role(id, role, assign, now, &record)
            .await?
        {
            RoleChange::Changed(user) => {
                self.recorder.committed([record]).await;
                Ok(user)
            }
            RoleChange::UnknownUser | RoleChange::UnknownRole => Err(AuthError::NotFound),
        }
    }

    async fn audit_page(
        &self,
        mut query: AuditQuery,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> AuthResult<Page<AuditRecord>> {
        query.before = cursor.as_deref().map(parse_audit_cursor).transpose()?;
        let limit = page_size(limit);
        query.limit = limit + 1;
        let mut items = self.audit.query(&query).await?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(audit_cursor)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// The audit trail, newest first, filtered.
    pub async fn audit_log(
        &self,
        _operator: &Operator<capability::AuditRead>,
        query: AuditQuery,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> AuthResult<Page<AuditRecord>> {
        self.audit_page(query, cursor, limit).await
    }

    /// The signed-in user's own security events, newest first.
    pub async fn my_audit_log(
        &self,
        caller: &Authenticated,
        mut query: AuditQuery,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> AuthResult<Page<AuditRecord>> {
        query.user_id = Some(caller.user_id);
        let mut page = self.audit_page(query, cursor, limit).await?;
        // What an administrator did to the account is shown, not who did it or from where.
        for row in &mut page.items {
            if row.actor_id.is_some_and(|a| a != caller.user_id) {
                row.actor_id = None;
                row.ip = None;
                row.user_agent = None;
            }
        }
        Ok(page)
    }

    /// Delete audit rows older than the configured retention (housekeeping).
    pub async fn prune_audit_log(&self) -> AuthResult<u64> {
        let cutoff = self.clock.now() - self.operator_settings.audit_retention;
        self.audit.prune_before(cutoff).await
    }
}

/// The roles to give (`true`) and to take away (`false`) to go from `held` to `wanted`.
fn role_changes(held: &[String], wanted: &[String]) -> Vec<(String, bool)> {
    let mut changes: Vec<(String, bool)> = Vec::new();
    for w in wanted {
        if !held.contains(w) && !changes.iter().any(|(r, _)| r == w) {
            changes.push((w.clone(), true));
        }
    }
    changes.extend(
        held.iter()
            .filter(|h| !wanted.contains(h))
            .map(|h| (h.clone(), false)),
    );
    changes
}

/// `names` without repeats, in their first order.
fn dedup(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}
