//! Passkeys (WebAuthn): registration while signed in, passwordless sign-in with
//! discoverable credentials, listing and deletion.
//!
//! The ceremonies themselves (challenges, attestation and assertion checks) are a port,
//! [`PasskeyCeremonies`], implemented by the `auth-passkeys` adapter over webauthn-rs. The
//! core keeps the rules: ceremony state stored server side (sealed, single use, short
//! lived), credentials bound to their user, sign counters that must move forward, and the
//! assurance level (`aal2` when the authenticator verified the user).

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{AuthError, AuthResult};
use crate::events::EventKind;
use crate::guard::LimitGroup;
use crate::mail::MailTemplate;
use crate::model::{ClientInfo, TokenHash, User, UserId};
use crate::opaque;
use crate::outbox::NewOutboxMessage;
use crate::sign_in::Authenticated;
use crate::sign_in::SignInOutcome;

/// Lifetime of a ceremony between its start and its finish.
pub const CEREMONY_TTL_SECS: i64 = 300;
const MAX_NAME_CHARS: usize = 100;
const CEREMONY_CONTEXT: &[u8] = b"auth-core/passkey-ceremony/v1";

/// What the adapter hands back when a registration succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredCredential {
    /// The credential id chosen by the authenticator.
    pub credential_id: Vec<u8>,
    /// The credential (public key, counter, flags) in the adapter's own serialised form.
    pub credential: String,
    /// Its sign counter at registration.
    pub counter: u32,
}

/// What the adapter hands back when an assertion verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The sign counter the authenticator reported.
    pub counter: u32,
    /// Whether the authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
    /// The credential updated with the new counter and flags.
    pub credential: String,
}

/// The user handle and credential id a discoverable assertion names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionIdentity {
    /// The user handle (our user id) stored by the authenticator.
    pub user_handle: Uuid,
    /// The credential used.
    pub credential_id: Vec<u8>,
}

/// Port: WebAuthn ceremonies. Options and responses are the JSON the browser API takes
/// and gives; states are opaque bytes the core stores between start and finish.
pub trait PasskeyCeremonies: Send + Sync {
    /// Options for `navigator.credentials.create()` and the state to keep.
    fn start_registration(&self, user: &User, exclude: &[Vec<u8>]) -> AuthResult<(Value, Vec<u8>)>;
    /// Verify the authenticator's attestation response against the kept state.
    fn finish_registration(
        &self,
        response: &Value,
        state: &[u8],
    ) -> AuthResult<RegisteredCredential>;
    /// Options for a discoverable `navigator.credentials.get()` and the state to keep.
    fn start_authentication(&self) -> AuthResult<(Value, Vec<u8>)>;
    /// Read the user handle and credential id out of an assertion (before verifying it).
    fn identify(&self, response: &Value) -> AuthResult<AssertionIdentity>;
    /// Verify an assertion against the kept state and the stored credential: challenge,
    /// origin, relying party, signature, user verification.
    fn finish_authentication(
        &self,
        response: &Value,
        state: &[u8],
        credential: &str,
    ) -> AuthResult<VerifiedAssertion>;
}

/// A stored passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// Identifier.
    pub id: Uuid,
    /// Whose.
    pub user_id: UserId,
    /// The credential id (unique across users).
    pub credential_id: Vec<u8>,
    /// The adapter's serialised credential (public key, counter; nothing secret).
    pub credential: String,
    /// The last sign counter accepted.
    pub counter: u32,
    /// A name the user gave it.
    pub name: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last signed in.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a passkey for a signed-in user.
    Registration,
    /// Signing in.
    Authentication,
}

impl CeremonyKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Authentication => "authentication",
        }
    }
}

/// A ceremony in progress, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCeremony {
    /// SHA-256 of the ceremony id handed to the client.
    pub token_hash: TokenHash,
    /// What it is for.
    pub kind: CeremonyKind,
    /// The registering user (registration only).
    pub user_id: Option<UserId>,
    /// The adapter's state, sealed.
    pub sealed_state: Vec<u8>,
    /// Start time.
    pub created_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
}

/// Port: storage of passkeys and of ceremonies in progress.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Store a ceremony.
    async fn insert_ceremony(&self, ceremony: &PasskeyCeremony) -> AuthResult<()>;
    /// Remove and return an unexpired ceremony of `kind`: of two concurrent calls only one
    /// gets it.
    async fn take_ceremony(
        &self,
        hash: &TokenHash,
        kind: CeremonyKind,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<PasskeyCeremony>>;
    /// Store a passkey and write `notice`; [`AuthError::PasskeyTaken`] when the credential
    /// id is already registered (to anyone).
    async fn insert_passkey(
        &self,
        passkey: &StoredPasskey,
        notice: &NewOutboxMessage,
    ) -> AuthResult<()>;
    /// The user's passkeys, oldest first.
    async fn passkeys_of(&self, user_id: UserId) -> AuthResult<Vec<StoredPasskey>>;
    /// A passkey by credential id.
    async fn passkey_by_credential_id(
        &self,
        credential_id: &[u8],
    ) -> AuthResult<Option<StoredPasskey>>;
    /// Record a sign-in: store `counter` and `credential`, only if `counter` is greater
    /// than the stored counter, or both are 0 (authenticators without a counter). `false`
    /// (nothing changed) otherwise: a regression, the sign of a cloned authenticator.
    async fn record_passkey_use(
        &self,
        id: Uuid,
        counter: u32,
        credential: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<bool>;
    /// Delete a passkey of the user and write `notice`; `false` when there is none.
    async fn delete_passkey(
        &self,
        user_id: UserId,
        id: Uuid,
        notice: &NewOutboxMessage,
    ) -> AuthResult<bool>;
    /// Delete ceremonies that expired before `cutoff`.
    async fn purge_ceremonies_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64>;
}

/// A ceremony started: the id to send back with the response, and the options for the
/// browser.
pub struct CeremonyStart {
    /// Opaque, single use; sent back to finish.
    pub ceremony_id: SecretString,
    /// `publicKey` options for the WebAuthn browser API.
    pub options: Value,
}

impl fmt::Debug for CeremonyStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CeremonyStart").finish_non_exhaustive()
    }
}

/// The passkey use cases: registration, sign-in, listing and removal.
#[derive(Clone)]
pub struct PasskeyService {
    pub(crate) clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub(crate) passkey_ceremonies: Option<std::sync::Arc<dyn crate::passkeys::PasskeyCeremonies>>,
    pub(crate) passkeys: std::sync::Arc<dyn crate::passkeys::PasskeyStore>,
    pub(crate) rng: std::sync::Arc<dyn crate::random::RandomSource>,
    pub(crate) sealer: std::sync::Arc<crate::secret_box::SecretBox>,
    pub(crate) users: std::sync::Arc<dyn crate::ports::UserStore>,
    pub(crate) guard: crate::guard::Guard,
    pub(crate) outgoing: crate::outbox::Outgoing,
    pub(crate) recorder: crate::record::Recorder,
    pub(crate) sign_in: crate::sign_in::SignIn,
}

impl std::fmt::Debug for PasskeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyService").finish_non_exhaustive()
    }
}

impl PasskeyService {
    fn ceremonies(&self) -> AuthResult<&dyn PasskeyCeremonies> {
        self.passkey_ceremonies
            .as_deref()
            .ok_or(AuthError::NotEnabled("sign-in with passkeys"))
    }

    async fn start_ceremony(
        &self,
        kind: CeremonyKind,
        user_id: Option<UserId>,
        options: Value,
        state: Vec<u8>,
    ) -> AuthResult<CeremonyStart> {
        let now = self.clock.now();
        let token = opaque::generate(self.rng.as_ref());
        let sealed_state = self
            .sealer
            .seal(self.rng.as_ref(), CEREMONY_CONTEXT, &state)?;
        self.passkeys
            .insert_ceremony(&PasskeyCeremony {
                token_hash: opaque::hash(token.expose_secret()),
                kind,
                user_id,
                sealed_state,
                created_at: now,
                expires_at: now + Duration::seconds(CEREMONY_TTL_SECS),
            })
            .await?;
        Ok(CeremonyStart {
            ceremony_id: token,
            options,
        })
    }

    async fn take_ceremony(
        &self,
        ceremony_id: &SecretString,
        kind: CeremonyKind,
    ) -> AuthResult<(PasskeyCeremony, Vec<u8>)> {
        let token = ceremony_id.expose_secret();
        if !opaque::is_well_formed(token) {
            return Err(AuthError::InvalidPasskey);
        }
        let now = self.clock.now();
        let ceremony = self
            .passkeys
            .take_ceremony(&opaque::hash(token), kind, now)
            .await?
            .ok_or(AuthError::InvalidPasskey)?;
        let state = self.sealer.open(CEREMONY_CONTEXT, &ceremony.sealed_state)?;
        Ok((ceremony, state))
    }

    /// Adding a passkey to an account with a second factor needs an `aal2` session: a
    /// session that never passed the factor (one opened before it was added, a stolen
    /// `aal1` token) must not plant a passkey, which would then sign in at `aal2` by itself.
    async fn require_aal2_with_factors(&self, caller: &Authenticated) -> AuthResult<()> {
        if caller.claims.aal != "aal2"
            && !self
                .sign_in
                .active_factors(caller.user_id)
                .await?
                .is_empty()
        {
            return Err(AuthError::StepUpRequired);
        }
        Ok(())
    }

    /// Start registering a passkey for the signed-in caller. Needs `aal2` when the user
    /// has a second factor.
    pub async fn passkey_registration_start(
        &self,
        caller: &Authenticated,
    ) -> AuthResult<CeremonyStart> {
        let ceremonies = self.ceremonies()?;
        let user = self.sign_in.me(caller).await?;
        let existing: Vec<Vec<u8>> = self
            .passkeys
            .passkeys_of(user.id)
            .await?
            .into_iter()
            .map(|p| p.credential_id)
            .collect();
        self.require_aal2_with_factors(caller).await?;
        let (options, state) = ceremonies.start_registration(&user, &existing)?;
        self.start_ceremony(CeremonyKind::Registration, Some(user.id), options, state)
            .await
    }

    /// Finish a registration with the authenticator's response.
    pub async fn passkey_registration_finish(
        &self,
        caller: &Authenticated,
        ceremony_id: &SecretString,
        response: &Value,
        name: Option<String>,
        client: &ClientInfo,
    ) -> AuthResult<StoredPasskey> {
        let ceremonies = self.ceremonies()?;
        let name = match name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
            Some(n) if n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) => {
                return Err(AuthError::InvalidField {
                    field: "name",
                    reason: "must be at most 100 printable characters",
                });
            }
            other => other,
        };
        let user = self.sign_in.me(caller).await?;
        self.require_aal2_with_factors(caller).await?;
        let (ceremony, state) = self
            .take_ceremony(ceremony_id, CeremonyKind::Registration)
            .await?;
        if ceremony.user_id != Some(user.id) {
            return Err(AuthError::InvalidPasskey);
        }
        let registered = match ceremonies.finish_registration(response, &state) {
            Ok(r) => r,
            Err(e) => {
                self.recorder
                    .emit(
                        EventKind::PasskeyFailed,
                        Some(user.id),
                        Some(caller.session_id),
                        Some(client),
                        Some("registration".into()),
                    )
                    .await?;
                return Err(e);
            }
        };
        let now = self.clock.now();
        let passkey = StoredPasskey {
            id: Uuid::now_v7(),
            user_id: user.id,
            credential_id: registered.credential_id,
            credential: registered.credential,
            counter: registered.counter,
            name,
            created_at: now,
            last_used_at: None,
        };
        let notice = self.outgoing.mail(
            &user.email,
            MailTemplate::MfaFactorAdded,
            &[
                ("name", user.name.clone().unwrap_or_default()),
                ("factor", "A passkey".into()),
            ],
            now,
        )?;
        self.passkeys.insert_passkey(&passkey, &notice).await?;
        self.recorder
            .emit(
                EventKind::PasskeyAdded,
                Some(user.id),
                Some(caller.session_id),
                Some(client),
                None,
            )
            .await?;
        Ok(passkey)
    }

    /// Start a passwordless sign-in with a discoverable passkey.
    pub async fn passkey_login_start(&self, client: &ClientInfo) -> AuthResult<CeremonyStart> {
        let ceremonies = self.ceremonies()?;
        self.guard.limit(LimitGroup::Login, client, None).await?;
        let (options, state) = ceremonies.start_authentication()?;
        self.start_ceremony(CeremonyKind::Authentication, None, options, state)
            .await
    }

    /// Finish a passkey sign-in. When the authenticator verified the user the session is
    /// `aal2` (`amr` `["hwk", "user"]`); without user verification the passkey is one
    /// factor and goes through the same second-factor step as a password
    /// (`SignIn::finish_first_factor`: `mfa_required` for a user with a factor, else
    /// `["hwk"]` at `aal1`). A sign counter that does not move forward is refused.
    pub async fn passkey_login_finish(
        &self,
        ceremony_id: &SecretString,
        response: &Value,
        client: ClientInfo,
    ) -> AuthResult<SignInOutcome> {
        let ceremonies = self.ceremonies()?;
        self.guard.limit(LimitGroup::Login, &client, None).await?;
        let (_, state) = self
            .take_ceremony(ceremony_id, CeremonyKind::Authentication)
            .await?;
        let identity = ceremonies.identify(response)?;
        let passkey = self
            .passkeys
            .passkey_by_credential_id(&identity.credential_id)
            .await?
            .filter(|p| p.user_id.0 == identity.user_handle)
            .ok_or(AuthError::InvalidPasskey)?;
        let verified = match ceremonies.finish_authentication(response, &state, &passkey.credential)
        {
            Ok(v) => v,
            Err(e) => {
                self.recorder
                    .emit(
                        EventKind::PasskeyFailed,
                        Some(passkey.user_id),
                        None,
                        Some(&client),
                        Some("assertion".into()),
                    )
                    .await?;
                return Err(e);
            }
        };
        let now = self.clock.now();
        if !self
            .passkeys
            .record_passkey_use(passkey.id, verified.counter, &verified.credential, now)
            .await?
        {
            let detail = Some(format!(
                "counter_regression,stored={},presented={}",
                passkey.counter, verified.counter
            ));
            self.recorder
                .emit(
                    EventKind::PasskeyFailed,
                    Some(passkey.user_id),
                    None,
                    Some(&client),
                    detail,
                )
                .await?;
            return Err(AuthError::InvalidPasskey);
        }
        let user = self
            .users
            .user_by_id(passkey.user_id)
            .await?
            .ok_or(AuthError::InvalidPasskey)?;
        if !verified.user_verified {
            // Possession alone is one factor, like a password: the same second-factor step.
            let outcome = self
                .sign_in
                .finish_first_factor(
                    user,
                    client.clone(),
                    "hwk",
                    (EventKind::PasskeySignIn, None),
                    now,
                )
                .await?;
            return Ok(outcome);
        }
        // The authenticator verified the user (PIN or biometric) besides proving possession:
        // two factors, `aal2`.
        let amr = vec!["hwk".to_owned(), "user".to_owned()];
        let signed_in = Some((EventKind::PasskeySignIn, None));
        let tokens = self
            .sign_in
            .open_session(user, client, amr, "aal2", signed_in, now)
            .await?;
        Ok(SignInOutcome::SignedIn(Box::new(tokens)))
    }

    /// The caller's passkeys.
    pub async fn passkeys(&self, caller: &Authenticated) -> AuthResult<Vec<StoredPasskey>> {
        self.passkeys.passkeys_of(caller.user_id).await
    }

    /// Delete one of the caller's passkeys. Needs an `aal2` session (signed in with a
    /// second factor, a verified passkey, or stepped up).
    pub async fn delete_passkey(
        &self,
        caller: &Authenticated,
        id: Uuid,
        client: &ClientInfo,
    ) -> AuthResult<()> {
        if caller.claims.aal != "aal2" {
            return Err(AuthError::StepUpRequired);
        }
        let user = self.sign_in.me(caller).await?;
        let now = self.clock.now();
        let notice = self.outgoing.mail(
            &user.email,
            MailTemplate::MfaFactorRemoved,
            &[
                ("name", user.name.clone().unwrap_or_default()),
                ("factor", "A passkey".into()),
            ],
            now,
        )?;
        if !self.passkeys.delete_passkey(user.id, id, &notice).await? {
            return Err(AuthError::NotFound);
        }
        self.recorder
            .emit(
                EventKind::PasskeyRemoved,
                Some(user.id),
                Some(caller.session_id),
                Some(client),
                None,
            )
            .await?;
        Ok(())
    }

    /// Delete passkey ceremonies that expired more than `retention` ago (housekeeping).
    pub async fn purge_passkey_ceremonies(&self, retention: Duration) -> AuthResult<u64> {
        let cutoff = self.clock.now() - retention;
        self.passkeys.purge_ceremonies_before(cutoff).await
    }
}
