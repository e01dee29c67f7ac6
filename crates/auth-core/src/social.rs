//! Social and OpenID Connect sign-in: native sign-in with an ID token or provider access
//! token, the browser redirect flow (state, nonce, PKCE, one-time code), and the linking
//! rules of external identities.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthCore;
use crate::email::Email;
use crate::error::{AuthError, AuthResult};
use crate::events::EventKind;
use crate::identity::{
    AuthorizationRequest, CodeExchange, ExternalIdentity, Identity, IdentityId, IdentityProvider,
    IdentityStore, OAuthRecord, OAuthRecordKind, ProviderCredential, ProviderError, UnlinkOutcome,
};
use crate::model::normalise_name;
use crate::model::{ClientInfo, NewUser, ProfileUpdate, User, UserId};
use crate::opaque;
use crate::sign_in::Authenticated;
use crate::sign_in::SignInOutcome;

/// Whether a provider may create accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignupMode {
    /// The first sign-in of an unknown identity creates the account.
    #[default]
    Auto,
    /// Sign-in of an unknown identity fails with `signup_required`; the app calls sign-up
    /// (`intent: signup`) explicitly.
    Strict,
    /// This provider never creates accounts (sign-in and linking only).
    Disabled,
}

/// What the caller wants from a provider credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInIntent {
    /// Sign in (and sign up when the provider's mode allows it implicitly).
    #[default]
    Signin,
    /// Create the account; fails when the identity is already known.
    Signup,
}

/// One configured provider.
#[derive(Clone)]
pub struct ProviderEntry {
    /// The adapter.
    pub provider: Arc<dyn IdentityProvider>,
    /// Account creation rule.
    pub signup: SignupMode,
}

/// Settings of social sign-in.
#[derive(Debug, Clone)]
pub struct SocialSettings {
    /// Public base URL of this server; callbacks are `{base}/api/v1/auth/oauth/{id}/callback`.
    pub public_url: String,
    /// Where the browser flow may return (exact match).
    pub redirect_allow_list: Vec<String>,
    /// Lifetime of an authorization request's state.
    pub state_ttl: Duration,
    /// Lifetime of the one-time code handed to the app.
    pub code_ttl: Duration,
}

impl Default for SocialSettings {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            redirect_allow_list: Vec::new(),
            state_ttl: Duration::minutes(10),
            code_ttl: Duration::seconds(60),
        }
    }
}

/// The canonical callback path; `{provider}` stands for the provider id.
pub const CANONICAL_CALLBACK_PATH: &str = "/api/v1/auth/oauth/{provider}/callback";

/// Which browser flow a state belongs to; a callback redeems only its own flow's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BrowserFlow {
    /// The app gets a one-time code and exchanges it with its PKCE verifier.
    #[default]
    AppCode,
    /// The session opens at the callback (cookie-carried tokens set by the caller).
    Session,
}

/// A finished callback of the session flow ([`SocialService::callback_session`]).
#[derive(Debug)]
pub struct SessionCallback {
    /// The new session's tokens, or the second factor still required.
    pub outcome: SignInOutcome,
    /// The app's `redirect_to`, checked against the allow-list when the flow started.
    pub redirect_to: String,
}

/// A failed callback: where to send the browser back with the error, when known.
#[derive(Debug)]
pub struct CallbackFailure {
    /// The app's `redirect_to`, when the state was valid.
    pub redirect_to: Option<String>,
    /// What went wrong.
    pub error: AuthError,
}

#[derive(Serialize, Deserialize)]
struct StatePayload {
    provider: String,
    redirect_to: String,
    app_challenge: String,
    nonce: String,
    pkce_verifier: String,
    intent: SignInIntent,
    #[serde(default)]
    flow: BrowserFlow,
}

#[derive(Serialize, Deserialize)]
struct CodePayload {
    user_id: UserId,
    provider: String,
    app_challenge: String,
}

const STATE_CONTEXT: &[u8] = b"oauth_records.state";
const CODE_CONTEXT: &[u8] = b"oauth_records.code";

/// The social sign-in use cases.
pub struct SocialService {
    auth: Arc<AuthCore>,
    identities: Arc<dyn IdentityStore>,
    providers: HashMap<String, ProviderEntry>,
    settings: SocialSettings,
    callback_path: String,
}

impl fmt::Debug for SocialService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.providers.keys().collect();
        ids.sort();
        f.debug_struct("SocialService")
            .field("providers", &ids)
            .field("settings", &self.settings)
            .field("callback_path", &self.callback_path)
            .finish_non_exhaustive()
    }
}

/// Map an adapter failure into the domain error.
fn provider_error(e: ProviderError) -> AuthError {
    match e {
        ProviderError::InvalidIdToken(d) => AuthError::InvalidIdToken(d),
        ProviderError::Rejected(d) => AuthError::ProviderRejected(d),
        ProviderError::Unavailable(d) => AuthError::ProviderUnavailable(d),
        ProviderError::Unsupported(what) => {
            AuthError::InvalidRequest(format!("this provider does not support {what}"))
        }
        ProviderError::NonceRequired => AuthError::InvalidField {
            field: "nonce",
            reason: "required with an ID token: the nonce the app put in its ID token request",
        },
    }
}

/// PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl SocialService {
    /// Wire the service.
    pub fn new(
        auth: Arc<AuthCore>,
        identities: Arc<dyn IdentityStore>,
        providers: HashMap<String, ProviderEntry>,
        settings: SocialSettings,
    ) -> Self {
        Self {
            auth,
            identities,
            providers,
            settings,
            callback_path: CANONICAL_CALLBACK_PATH.to_owned(),
        }
    }

    /// The same providers and records over another view of the core (a compatibility
    /// profile's [`AuthCore::with_profile`]): sessions it opens carry that view's tokens.
    pub fn for_profile(&self, auth: Arc<AuthCore>) -> Self {
        Self {
            auth,
            identities: self.identities.clone(),
            providers: self.providers.clone(),
            settings: self.settings.clone(),
            callback_path: self.callback_path.clone(),
        }
    }

    /// The same service with the provider sending the browser back to `path` (under
    /// `public_url`; `{provider}` stands for the provider id) instead of
    /// [`CANONICAL_CALLBACK_PATH`]: a profile that serves its own callback route.
    pub fn with_callback_path(mut self, path: impl Into<String>) -> Self {
        self.callback_path = path.into();
        self
    }

    fn provider(&self, id: &str) -> AuthResult<&ProviderEntry> {
        self.providers.get(id).ok_or(AuthError::UnknownProvider)
    }

    fn callback_url(&self, provider: &str) -> String {
        format!(
            "{}{}",
            self.settings.public_url.trim_end_matches('/'),
            self.callback_path.replace("{provider}", provider)
        )
    }

    /// Delete abandoned browser-flow records (housekeeping).
    pub async fn purge_expired_oauth_records(&self) -> AuthResult<u64> {
        let now = self.auth.ports.clock.now();
        self.identities.purge_expired_oauth_records(now).await
    }

    /// The identities of a user, oldest first.
    pub async fn identities_of(&self, user_id: UserId) -> AuthResult<Vec<Identity>> {
        self.identities.identities_of(user_id).await
    }

    /// Sign in (or up) with a credential obtained by the client from `provider`.
    pub async fn sign_in(
        &self,
        provider: &str,
        credential: &ProviderCredential,
        intent: SignInIntent,
        name: Option<String>,
        client: ClientInfo,
    ) -> AuthResult<SignInOutcome> {
        let (signup, name, external) = self
            .verified_credential(provider, credential, name, &client)
            .await?;
        let user = self
            .resolve_user(signup, external, intent, name, &client)
            .await?;
        self.open_session(provider, user, client).await
    }

    /// [`sign_in`](Self::sign_in) for APIs whose provider sign-up and sign-in are separate
    /// calls whatever the provider's `signup` mode (a compatibility profile's
    /// `/signup/google` and `/auth/google`). The credential must carry an email address
    /// (`ProviderEmailMissing`). `Signup` fails with `IdentityExists` for a known identity
    /// and with `EmailTaken` when an account already has the (provider-verified) address;
    /// `Signin` signs a known account in (linking by verified email as usual) and fails with
    /// `SignupRequired` for an unknown one. A provider whose mode is `disabled` still never
    /// creates accounts.
    pub async fn sign_in_strict(
        &self,
        provider: &str,
        credential: &ProviderCredential,
        intent: SignInIntent,
        name: Option<String>,
        client: ClientInfo,
    ) -> AuthResult<SignInOutcome> {
        let (signup, name, external) = self
            .verified_credential(provider, credential, name, &client)
            .await?;
        let Some(address) = external.email.as_deref() else {
            return Err(AuthError::ProviderEmailMissing);
        };
        if intent == SignInIntent::Signup {
            if self
                .identities
                .identity_by_subject(&external.provider, &external.subject)
                .await?
                .is_some()
            {
                return Err(AuthError::IdentityExists);
            }
            if let Ok(email) = Email::parse(address)
                && self
                    .auth
                    .ports
                    .users
                    .credentials_by_email(&email.canonical())
                    .await?
                    .is_some()
            {
                // Only an address the provider vouches for says an account exists.
                return Err(if external.email_verified {
                    AuthError::EmailTaken
                } else {
                    AuthError::ProviderEmailUnverified
                });
            }
        }
        let mode = match signup {
            SignupMode::Disabled => SignupMode::Disabled,
            SignupMode::Auto | SignupMode::Strict => SignupMode::Strict,
        };
        let user = self
            .resolve_user(mode, external, intent, name, &client)
            .await?;
        self.open_session(provider, user, client).await
    }

    /// The steps every provider sign-in starts with: the provider is configured, the
    /// client is within its rate limit, the name is acceptable and the provider vouches
    /// for the credential. Returns the provider's sign-up mode, the name and the identity.
    async fn verified_credential(
        &self,
        provider: &str,
        credential: &ProviderCredential,
        name: Option<String>,
        client: &ClientInfo,
    ) -> AuthResult<(SignupMode, Option<String>, ExternalIdentity)> {
        let entry = self.provider(provider)?;
        self.auth
            .guard
            .limit(crate::guard::LimitGroup::Login, client, None)
            .await?;
        let name = normalise_name(name)?;
        let external = self
            .verify(provider, entry.provider.verify(credential).await, client)
            .await?;
        Ok((entry.signup, name, external))
    }

    async fn verify(
        &self,
        provider: &str,
        result: Result<ExternalIdentity, ProviderError>,
        client: &ClientInfo,
    ) -> AuthResult<ExternalIdentity> {
        match result {
            Ok(mut external) => {
                external.provider = provider.to_owned();
                if external.subject.is_empty() {
                    return Err(AuthError::ProviderRejected(
                        "the provider gave no subject".into(),
                    ));
                }
                Ok(external)
            }
            Err(e) => {
                let reason = match &e {
                    ProviderError::InvalidIdToken(_) => "invalid_id_token",
                    ProviderError::Rejected(_) => "provider_rejected",
                    ProviderError::Unavailable(_) => "provider_unavailable",
                    ProviderError::Unsupported(_) => "unsupported",
                    ProviderError::NonceRequired => "nonce_required",
                };
                tracing::info!(provider, error = %e, "provider credential refused");
                let detail = Some(format!("provider={provider},reason={reason}"));
                self.auth
                    .recorder
                    .emit(EventKind::LoginFailed, None, None, Some(client), detail)
                    .await?;
                Err(provider_error(e))
            }
        }
    }

    /// Find or create the user an external identity belongs to, by the linking rules:
    /// a known (provider, subject) signs its user in; an unknown one links to the account
    /// of the same email only when both sides have verified it; otherwise a new account is
    /// created when the provider's sign-up mode allows it.
    async fn resolve_user(
        &self,
        signup: SignupMode,
        external: ExternalIdentity,
        intent: SignInIntent,
        name: Option<String>,
        client: &ClientInfo,
    ) -> AuthResult<User> {
        let users = &self.auth.ports.users;
        if let Some(identity) = self
            .identities
            .identity_by_subject(&external.provider, &external.subject)
            .await?
        {
            if intent == SignInIntent::Signup {
                return Err(AuthError::IdentityExists);
            }
            let user = users
                .user_by_id(identity.user_id)
                .await?
                .ok_or(AuthError::IdentityExists)?;
            return self.keep_name(user, name).await;
        }
        let email = external.email.as_deref().map(Email::parse).transpose();
        let email = email.map_err(|_| {
            AuthError::ProviderRejected("the provider gave a malformed email address".into())
        })?;
        let now = self.auth.ports.clock.now();
        if let Some(email) = &email
            && let Some(existing) = users.credentials_by_email(&email.canonical()).await?
        {
            // An address the provider has not verified gets the same answer whether an
            // account has it or not: no probing for accounts with made-up addresses.
            if !external.email_verified {
                return Err(AuthError::ProviderEmailUnverified);
            }
            if !existing.user.email_verified {
                return Err(AuthError::LinkRequired);
            }
            let identity = self.new_identity(existing.user.id, &external, now);
            self.identities.link_identity(&identity).await?;
            self.auth
                .recorder
                .emit(
                    EventKind::IdentityLinked,
                    Some(existing.user.id),
                    None,
                    Some(client),
                    Some(format!("provider={},by=verified_email", external.provider)),
                )
                .await?;
            return self.keep_name(existing.user, name).await;
        }
        match (signup, intent) {
            (SignupMode::Disabled, _) => return Err(AuthError::SignupDisabled),
            (SignupMode::Strict, SignInIntent::Signin) => return Err(AuthError::SignupRequired),
            _ => {}
        }
        let email = email.ok_or(AuthError::ProviderEmailMissing)?;
        if !external.email_verified {
            return Err(AuthError::ProviderEmailUnverified);
        }
        let new = NewUser {
            id: UserId::new(),
            email,
            name: name.or(normalise_name(external.name.clone()).unwrap_or(None)),
            password_hash: None,
            email_verified: true,
            roles: self.auth.settings.default_roles.clone(),
            created_at: now,
        };
        let identity = self.new_identity(new.id, &external, now);
        let user = match self
            .identities
            .insert_user_with_identity(&new, &identity)
            .await
        {
            Ok(user) => user,
            // Someone registered the address meanwhile: same answer as when we saw it.
            Err(AuthError::EmailTaken) => return Err(AuthError::LinkRequired),
            Err(e) => return Err(e),
        };
        self.auth
            .recorder
            .emit(
                EventKind::SignedUp,
                Some(user.id),
                None,
                Some(client),
                Some(format!("provider={}", external.provider)),
            )
            .await?;
        Ok(user)
    }

    fn new_identity(
        &self,
        user_id: UserId,
        external: &ExternalIdentity,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Identity {
        Identity {
            id: IdentityId::new(),
            user_id,
            provider: external.provider.clone(),
            subject: external.subject.clone(),
            email: external.email.clone(),
            created_at: now,
        }
    }

    /// Apple sends the name only on the first sign-in: keep it when the account has none.
    async fn keep_name(&self, user: User, name: Option<String>) -> AuthResult<User> {
        match name {
            Some(name) if user.name.is_none() => {
                let now = self.auth.ports.clock.now();
                let update = ProfileUpdate {
                    name: Some(Some(name)),
                    avatar_url: None,
                };
                Ok(self
                    .auth
                    .ports
                    .users
                    .update_profile(user.id, &update, now)
                    .await?
                    .unwrap_or(user))
            }
            _ => Ok(user),
        }
    }

    /// The one place where a social sign-in opens a session.
    /// The identity checked out: a session, or the second-factor challenge when the user
    /// has one (a provider sign-in is one factor like a password).
    async fn open_session(
        &self,
        provider: &str,
        user: User,
        client: ClientInfo,
    ) -> AuthResult<SignInOutcome> {
        let now = self.auth.ports.clock.now();
        let signed_in = (
            EventKind::SocialSignIn,
            Some(format!("provider={provider}")),
        );
        self.auth
            .sign_in
            .finish_first_factor(user, client, "oauth", signed_in, now)
            .await
    }

    /// Link an identity to the signed-in user.
    pub async fn link(
        &self,
        caller: &Authenticated,
        provider: &str,
        credential: &ProviderCredential,
        client: ClientInfo,
    ) -> AuthResult<User> {
        let entry = self.provider(provider)?;
        if !self.auth.sign_in.me(caller).await?.email_verified {
            return Err(AuthError::LinkNeedsVerifiedEmail);
        }
        let external = self
            .verify(provider, entry.provider.verify(credential).await, &client)
            .await?;
        let now = self.auth.ports.clock.now();
        let identity = self.new_identity(caller.user_id, &external, now);
        if let Some(existing) = self
            .identities
            .identity_by_subject(&identity.provider, &identity.subject)
            .await?
        {
            if existing.user_id == caller.user_id {
                return self.auth.sign_in.me(caller).await;
            }
            return Err(AuthError::IdentityExists);
        }
        self.identities.link_identity(&identity).await?;
        self.auth
            .recorder
            .emit(
                EventKind::IdentityLinked,
                Some(caller.user_id),
                Some(caller.session_id),
                Some(&client),
                Some(format!("provider={provider},by=user")),
            )
            .await?;
        self.auth.sign_in.me(caller).await
    }

    /// Remove one of the caller's identities, unless it is their last way to sign in.
    pub async fn unlink(&self, caller: &Authenticated, id: IdentityId) -> AuthResult<()> {
        let now = self.auth.ports.clock.now();
        match self
            .identities
            .unlink_identity(caller.user_id, id, now)
            .await?
        {
            UnlinkOutcome::Removed => {
                self.auth
                    .recorder
                    .emit(
                        EventKind::IdentityUnlinked,
                        Some(caller.user_id),
                        Some(caller.session_id),
                        None,
                        Some(format!("identity={id}")),
                    )
                    .await?;
                Ok(())
            }
            UnlinkOutcome::NotFound => Err(AuthError::NotFound),
            UnlinkOutcome::LastSignInMethod => Err(AuthError::LastSignInMethod),
        }
    }

    /// Start the browser flow: check the app's return address and PKCE challenge, store the
    /// state, and answer the provider URL to redirect to.
    pub async fn authorize(
        &self,
        provider: &str,
        redirect_to: &str,
        code_challenge: &str,
        code_challenge_method: &str,
        intent: SignInIntent,
        client: &ClientInfo,
    ) -> AuthResult<String> {
        self.begin(
            provider,
            redirect_to,
            Some((code_challenge, code_challenge_method)),
            intent,
            client,
        )
        .await
    }

    /// Start the browser flow of a client that keeps its tokens in cookies set by this
    /// server: as [`Self::authorize`] without the app's PKCE pair, since no code goes
    /// through the app; [`Self::callback_session`] opens the session. The state, nonce and
    /// the provider's PKCE verifier are held server-side as in the app-code flow.
    pub async fn authorize_session(
        &self,
        provider: &str,
        redirect_to: &str,
        intent: SignInIntent,
        client: &ClientInfo,
    ) -> AuthResult<String> {
        self.begin(provider, redirect_to, None, intent, client)
            .await
    }

    /// Both browser flows' start; `app_pkce` is the app's (challenge, method) of the
    /// app-code flow, `None` for the session flow.
    async fn begin(
        &self,
        provider: &str,
        redirect_to: &str,
        app_pkce: Option<(&str, &str)>,
        intent: SignInIntent,
        client: &ClientInfo,
    ) -> AuthResult<String> {
        let entry = self.provider(provider)?;
        // Each call stores a state: counted like a sign-in attempt.
        self.auth
            .guard
            .limit(crate::guard::LimitGroup::Login, client, None)
            .await?;
        if !self
            .settings
            .redirect_allow_list
            .iter()
            .any(|allowed| allowed == redirect_to)
        {
            return Err(AuthError::InvalidField {
                field: "redirect_to",
                reason: "is not in the allow-list",
            });
        }
        let (app_challenge, flow) = match app_pkce {
            Some((code_challenge, code_challenge_method)) => {
                if code_challenge_method != "S256" {
                    return Err(AuthError::InvalidRequest(
                        "code_challenge_method must be S256".into(),
                    ));
                }
                let well_formed = URL_SAFE_NO_PAD
                    .decode(code_challenge)
                    .is_ok_and(|b| b.len() == 32);
                if !well_formed {
                    return Err(AuthError::InvalidRequest(
                        "code_challenge must be the base64url SHA-256 of the verifier".into(),
                    ));
                }
                (code_challenge.to_owned(), BrowserFlow::AppCode)
            }
            None => (String::new(), BrowserFlow::Session),
        };
        let rng = self.auth.ports.rng.as_ref();
        let state = opaque::generate(rng);
        let nonce = opaque::generate(rng);
        let pkce_verifier = opaque::generate(rng);
        let payload = StatePayload {
            provider: provider.to_owned(),
            redirect_to: redirect_to.to_owned(),
            app_challenge,
            nonce: nonce.expose_secret().to_owned(),
            pkce_verifier: pkce_verifier.expose_secret().to_owned(),
            intent,
            flow,
        };
        let now = self.auth.ports.clock.now();
        self.put_record(
            state.expose_secret(),
            OAuthRecordKind::State,
            STATE_CONTEXT,
            &payload,
            now + self.settings.state_ttl,
        )
        .await?;
        let request = AuthorizationRequest {
            redirect_uri: self.callback_url(provider),
            state: state.expose_secret().to_owned(),
            nonce: nonce.expose_secret().to_owned(),
            pkce_challenge: pkce_challenge(pkce_verifier.expose_secret()),
        };
        entry
            .provider
            .authorization_url(&request)
            .await
            .map_err(provider_error)
    }

    /// The provider sent the browser back: check the state, exchange the code, resolve the
    /// user and answer where to send the browser with a one-time code.
    pub async fn callback(
        &self,
        provider: &str,
        state: Option<&str>,
        code: Option<&str>,
        provider_error_code: Option<&str>,
        client: ClientInfo,
    ) -> Result<String, CallbackFailure> {
        let fail = |redirect_to: Option<String>, error| CallbackFailure { redirect_to, error };
        let (payload, user) = self
            .redeem(
                provider,
                state,
                code,
                provider_error_code,
                BrowserFlow::AppCode,
                &client,
            )
            .await?;
        let back = Some(payload.redirect_to.clone());
        let now = self.auth.ports.clock.now();
        let one_time = opaque::generate(self.auth.ports.rng.as_ref());
        let code_payload = CodePayload {
            user_id: user.id,
            provider: provider.to_owned(),
            app_challenge: payload.app_challenge,
        };
        self.put_record(
            one_time.expose_secret(),
            OAuthRecordKind::Code,
            CODE_CONTEXT,
            &code_payload,
            now + self.settings.code_ttl,
        )
        .await
        .map_err(|e| fail(back, e))?;
        let separator = if payload.redirect_to.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!(
            "{}{separator}code={}",
            payload.redirect_to,
            one_time.expose_secret()
        ))
    }

    /// The provider sent the browser back to a flow begun by [`Self::authorize_session`]:
    /// check the state, exchange the code, resolve the user and open the session (or the
    /// second-factor challenge, as every first factor). A state of the app-code flow is
    /// refused here, and this flow's states are refused by [`Self::callback`].
    pub async fn callback_session(
        &self,
        provider: &str,
        state: Option<&str>,
        code: Option<&str>,
        provider_error_code: Option<&str>,
        client: ClientInfo,
    ) -> Result<SessionCallback, CallbackFailure> {
        let (payload, user) = self
            .redeem(
                provider,
                state,
                code,
                provider_error_code,
                BrowserFlow::Session,
                &client,
            )
            .await?;
        match self.open_session(provider, user, client).await {
            Ok(outcome) => Ok(SessionCallback {
                outcome,
                redirect_to: payload.redirect_to,
            }),
            Err(error) => Err(CallbackFailure {
                redirect_to: Some(payload.redirect_to),
                error,
            }),
        }
    }

    /// The common part of both callbacks: consume the state (of `flow`), exchange the
    /// provider's code and resolve the user.
    async fn redeem(
        &self,
        provider: &str,
        state: Option<&str>,
        code: Option<&str>,
        provider_error_code: Option<&str>,
        flow: BrowserFlow,
        client: &ClientInfo,
    ) -> Result<(StatePayload, User), CallbackFailure> {
        let fail = |redirect_to: Option<String>, error| CallbackFailure { redirect_to, error };
        let entry = self.provider(provider).map_err(|e| fail(None, e))?;
        let state = state.ok_or_else(|| fail(None, AuthError::InvalidOAuthState))?;
        let now = self.auth.ports.clock.now();
        let payload: StatePayload = self
            .take_record(state, OAuthRecordKind::State, STATE_CONTEXT, now)
            .await
            .map_err(|e| fail(None, e))?
            .ok_or_else(|| fail(None, AuthError::InvalidOAuthState))?;
        let back = Some(payload.redirect_to.clone());
        if payload.provider != provider || payload.flow != flow {
            return Err(fail(back, AuthError::InvalidOAuthState));
        }
        if let Some(error) = provider_error_code {
            return Err(fail(
                back,
                AuthError::ProviderRejected(format!("the provider answered {error}")),
            ));
        }
        let code = code.ok_or_else(|| {
            fail(
                back.clone(),
                AuthError::InvalidRequest("the callback carries no code".into()),
            )
        })?;
        let exchange = CodeExchange {
            code: code.to_owned(),
            redirect_uri: self.callback_url(provider),
            pkce_verifier: SecretString::from(payload.pkce_verifier.clone()),
            nonce: payload.nonce.clone(),
        };
        let result = entry.provider.exchange_code(&exchange).await;
        let external = self
            .verify(provider, result, client)
            .await
            .map_err(|e| fail(back.clone(), e))?;
        let user = self
            .resolve_user(entry.signup, external, payload.intent, None, client)
            .await
            .map_err(|e| fail(back, e))?;
        Ok((payload, user))
    }

    /// Turn the one-time code of the browser flow and the app's PKCE verifier into tokens.
    pub async fn exchange(
        &self,
        code: &SecretString,
        code_verifier: &SecretString,
        client: ClientInfo,
    ) -> AuthResult<SignInOutcome> {
        self.auth
            .guard
            .limit(crate::guard::LimitGroup::Login, &client, None)
            .await?;
        let now = self.auth.ports.clock.now();
        if !opaque::is_well_formed(code.expose_secret()) {
            return Err(AuthError::InvalidCode);
        }
        // Consumed whatever follows: a wrong verifier burns the code.
        let payload: CodePayload = self
            .take_record(
                code.expose_secret(),
                OAuthRecordKind::Code,
                CODE_CONTEXT,
                now,
            )
            .await?
            .ok_or(AuthError::InvalidCode)?;
        let challenge = pkce_challenge(code_verifier.expose_secret());
        if !bool::from(challenge.as_bytes().ct_eq(payload.app_challenge.as_bytes())) {
            return Err(AuthError::InvalidCode);
        }
        let user = self
            .auth
            .ports
            .users
            .user_by_id(payload.user_id)
            .await?
            .ok_or(AuthError::InvalidCode)?;
        self.open_session(&payload.provider, user, client).await
    }

    async fn put_record<T: Serialize>(
        &self,
        handle: &str,
        kind: OAuthRecordKind,
        context: &[u8],
        payload: &T,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> AuthResult<()> {
        let json = serde_json::to_vec(payload).map_err(AuthError::internal)?;
        let sealed = self
            .auth
            .ports
            .sealer
            .seal(self.auth.ports.rng.as_ref(), context, &json)?;
        let record = OAuthRecord {
            token_hash: opaque::hash(handle),
            kind,
            payload: hex::encode(sealed),
            created_at: self.auth.ports.clock.now(),
            expires_at,
        };
        self.identities.put_oauth_record(&record).await
    }

    async fn take_record<T: for<'de> Deserialize<'de>>(
        &self,
        handle: &str,
        kind: OAuthRecordKind,
        context: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> AuthResult<Option<T>> {
        let Some(record) = self
            .identities
            .take_oauth_record(&opaque::hash(handle), kind, now)
            .await?
        else {
            return Ok(None);
        };
        let sealed = hex::decode(&record.payload).map_err(AuthError::internal)?;
        let json = self.auth.ports.sealer.open(context, &sealed)?;
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(AuthError::internal)
    }
}
