//! Everything a user does through their mailbox: email verification, password reset and
//! change, magic links and one-time codes.
//!
//! Requests that must not reveal whether an account exists (forgot password, magic link,
//! code) do the same work for every address: they write one outbox job. The outbox worker
//! ([`crate::worker`]) then looks the account up and, if there is one, issues the token and
//! its mail together.

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::email::Email;
use crate::error::{AuthError, AuthResult};
use crate::events::EventKind;
use crate::guard::{LimitGroup, lockout_identifier};

use crate::mail::MailTemplate;
use crate::model::normalise_name;
use crate::model::{
    ClientInfo, MailboxProof, NewOneTimeToken, NewSession, NewUser, OneTimeTokenKind, SessionId,
    TokenHash, User, UserId,
};
use crate::opaque;
use crate::outbox::{NewOutboxMessage, OutboxJob, TokenPlacement, minutes};
use crate::sign_in::IssuedTokens;

/// Input of [`MailboxFlows::signup`].
pub struct SignupRequest {
    /// Email address as typed.
    pub email: String,
    /// Chosen password.
    pub password: SecretString,
    /// Display name.
    pub name: Option<String>,
    /// CAPTCHA response, when the server asks for one.
    pub captcha_token: Option<String>,
}

/// Whether sign-in waits for the email address to be confirmed (`auth.email_confirmation`:
/// `optional` or `required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailConfirmation {
    /// Sign-up returns tokens; `email_verified` stays false until the link is followed.
    #[default]
    Optional,
    /// Sign-up answers "verification sent"; sign-in is refused until the link is followed.
    Required,
}

/// Rules of the mailbox flows.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// Confirmation policy.
    pub confirmation: EmailConfirmation,
    /// Whether a magic link or code may create an account.
    pub passwordless_signup: bool,
    /// Lifetime of email verification links.
    pub verification_ttl: Duration,
    /// Lifetime of password reset links.
    pub reset_ttl: Duration,
    /// Lifetime of magic links.
    pub magic_link_ttl: Duration,
    /// Lifetime of email codes.
    pub otp_ttl: Duration,
    /// Wrong codes allowed before a code dies.
    pub otp_max_attempts: i32,
    /// Public URL of the app that handles links (no trailing slash).
    pub app_url: String,
    /// Name of the product, for mails.
    pub app_name: String,
    /// Path of the email verification page of the app.
    pub verify_path: String,
    /// Path of the password reset page of the app.
    pub reset_path: String,
    /// Path of the magic link page of the app.
    pub magic_link_path: String,
    /// Query or fragment.
    pub token_placement: TokenPlacement,
    /// URLs whose origin a magic link may lead to after sign-in.
    pub redirect_allow_list: Vec<String>,
    /// Delivery retries: first delay, doubled each attempt up to `retry_max_delay`.
    pub retry_base_delay: Duration,
    /// Longest delay between two delivery attempts.
    pub retry_max_delay: Duration,
    /// An entry older than this is given up (dead letter).
    pub give_up_after: Duration,
    /// How long a claimed entry is reserved for its worker.
    pub lease: Duration,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            confirmation: EmailConfirmation::Optional,
            passwordless_signup: true,
            verification_ttl: Duration::hours(24),
            reset_ttl: Duration::minutes(30),
            magic_link_ttl: Duration::minutes(15),
            otp_ttl: Duration::minutes(10),
            otp_max_attempts: 5,
            app_url: "http://127.0.0.1:8080".into(),
            app_name: "Auth".into(),
            verify_path: "/verify-email".into(),
            reset_path: "/reset-password".into(),
            magic_link_path: "/magic-link".into(),
            token_placement: TokenPlacement::Query,
            redirect_allow_list: Vec::new(),
            retry_base_delay: Duration::seconds(5),
            retry_max_delay: Duration::minutes(5),
            give_up_after: Duration::hours(24),
            lease: Duration::minutes(2),
        }
    }
}

/// The scheme, host and port of a URL, lowercased; `None` when it is not http(s).
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty()
        || authority.contains('@')
        || authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// What a sign-up produced.
#[derive(Debug)]
pub enum SignupOutcome {
    /// Signed in at once (confirmation optional).
    SignedIn(Box<IssuedTokens>),
    /// A confirmation link was sent (or, for a taken address, a notice to its owner).
    VerificationSent,
}

/// Tokens from a magic link, with where the app should go next.
#[derive(Debug)]
pub struct MagicLinkSignIn {
    /// The new session's tokens, or the second factor still required.
    pub outcome: crate::sign_in::SignInOutcome,
    /// The `redirect_to` given when the link was asked for.
    pub redirect_to: Option<String>,
}

pub(crate) fn code_hash(canonical_email: &str, code: &str) -> TokenHash {
    let mut h = Sha256::new();
    h.update(b"auth-core/email-otp/v1\0");
    h.update(canonical_email.as_bytes());
    h.update(b"\0");
    h.update(code.as_bytes());
    TokenHash(hex::encode(h.finalize()))
}

/// The mailbox use cases: sign-up, email verification, password reset and change, magic links and one-time email codes.
#[derive(Clone)]
pub struct MailboxFlows {
    pub(crate) clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub(crate) hasher: std::sync::Arc<dyn crate::password::PasswordHasher>,
    pub(crate) one_time: std::sync::Arc<dyn crate::ports::OneTimeTokenStore>,
    pub(crate) outbox: std::sync::Arc<dyn crate::ports::OutboxStore>,
    pub(crate) rng: std::sync::Arc<dyn crate::random::RandomSource>,
    pub(crate) users: std::sync::Arc<dyn crate::ports::UserStore>,
    pub(crate) guard: crate::guard::Guard,
    pub(crate) outgoing: crate::outbox::Outgoing,
    pub(crate) recorder: crate::record::Recorder,
    pub(crate) sign_in: crate::sign_in::SignIn,
    pub(crate) default_roles: Vec<String>,
    pub(crate) email: crate::flows::EmailSettings,
    pub(crate) guard_settings: crate::guard::GuardSettings,
    pub(crate) policy: crate::sign_in::SessionPolicy,
}

impl std::fmt::Debug for MailboxFlows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxFlows").finish_non_exhaustive()
    }
}

impl MailboxFlows {
    pub(crate) fn email_settings(&self) -> &EmailSettings {
        &self.email
    }

    /// A verification token for `user` and the mail that carries it.
    fn verification(
        &self,
        user_id: UserId,
        email: &str,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> AuthResult<(NewOneTimeToken, NewOutboxMessage)> {
        let s = self.email_settings();
        let token = opaque::generate(self.rng.as_ref());
        let record = NewOneTimeToken {
            token_hash: opaque::hash(token.expose_secret()),
            kind: OneTimeTokenKind::EmailVerification,
            user_id: Some(user_id),
            email: email.to_lowercase(),
            created_at: now,
            expires_at: now + s.verification_ttl,
            redirect_to: None,
        };
        let mail = self.outgoing.mail(
            email,
            MailTemplate::VerifyEmail,
            &[
                ("link", self.outgoing.link(&s.verify_path, &token)),
                ("name", name.unwrap_or_default().to_owned()),
                ("expires_in_minutes", minutes(s.verification_ttl)),
            ],
            now,
        )?;
        Ok((record, mail))
    }

    /// Create an account with a password. With confirmation optional the user is signed
    /// in at once; with confirmation required a link is sent and the answer is the same
    /// whether or not the address was already registered (its owner gets a notice).
    pub async fn signup(
        &self,
        req: SignupRequest,
        client: ClientInfo,
    ) -> AuthResult<SignupOutcome> {
        self.guard.limit(LimitGroup::Signup, &client, None).await?;
        self.guard
            .captcha(
                self.guard_settings.captcha.signup,
                req.captcha_token.as_deref(),
                &client,
            )
            .await?;
        let email = Email::parse(&req.email).map_err(AuthError::InvalidEmail)?;
        self.guard
            .check_new_password(&req.password, Some(&email))
            .await?;
        let name = normalise_name(req.name)?;
        let password_hash = self.hasher.hash(&req.password).await?;
        let now = self.clock.now();
        let id = UserId::new();
        let (token, mail) = self.verification(id, email.as_str(), name.as_deref(), now)?;
        let new_user = NewUser {
            id,
            email: email.clone(),
            name,
            password_hash: Some(password_hash),
            email_verified: false,
            roles: self.default_roles.clone(),
            created_at: now,
        };
        let required = self.email_settings().confirmation == EmailConfirmation::Required;
        match self
            .users
            .insert_user(&new_user, Some((&token, &mail)))
            .await
        {
            Ok(user) => {
                self.recorder
                    .emit(
                        EventKind::SignedUp,
                        Some(user.id),
                        None,
                        Some(&client),
                        None,
                    )
                    .await?;
                self.recorder
                    .emit(
                        EventKind::VerificationSent,
                        Some(user.id),
                        None,
                        Some(&client),
                        None,
                    )
                    .await?;
                if required {
                    return Ok(SignupOutcome::VerificationSent);
                }
                let tokens = self
                    .sign_in
                    .open_session(user, client, vec!["pwd".into()], "aal1", None, now)
                    .await?;
                Ok(SignupOutcome::SignedIn(Box::new(tokens)))
            }
            Err(AuthError::EmailTaken) if required => {
                // Tell the owner, at the address the account holds.
                let owner = self.users.credentials_by_email(&email.canonical()).await?;
                let to = owner.map_or_else(|| email.as_str().to_owned(), |c| c.user.email);
                let notice = self
                    .outgoing
                    .mail(&to, MailTemplate::SignupAttempted, &[], now)?;
                self.outbox.enqueue(&notice).await?;
                Ok(SignupOutcome::VerificationSent)
            }
            Err(e) => Err(e),
        }
    }

    /// Send a new verification link to the signed-in user (nothing when already verified).
    pub async fn send_verification(
        &self,
        caller: &crate::sign_in::Authenticated,
    ) -> AuthResult<()> {
        let user = self.sign_in.me(caller).await?;
        if user.email_verified {
            return Ok(());
        }
        let now = self.clock.now();
        let (token, mail) = self.verification(user.id, &user.email, user.name.as_deref(), now)?;
        self.one_time.issue_one_time_token(&token, &mail).await?;
        self.recorder
            .emit(
                EventKind::VerificationSent,
                Some(user.id),
                Some(caller.session_id),
                None,
                None,
            )
            .await?;
        Ok(())
    }

    /// Follow a verification link.
    pub async fn verify_email(&self, token: &SecretString) -> AuthResult<User> {
        let record = self
            .consume(token, OneTimeTokenKind::EmailVerification)
            .await?;
        let user_id = record.user_id.ok_or(AuthError::InvalidOneTimeToken)?;
        let now = self.clock.now();
        let proven = self
            .users
            .mark_email_verified(user_id, &record.email, MailboxProof::SignupLink, now)
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        self.recorder
            .emit(EventKind::EmailVerified, Some(user_id), None, None, None)
            .await?;
        Ok(proven.user)
    }

    async fn consume(
        &self,
        token: &SecretString,
        kind: OneTimeTokenKind,
    ) -> AuthResult<crate::model::OneTimeToken> {
        if !opaque::is_well_formed(token.expose_secret()) {
            return Err(AuthError::InvalidOneTimeToken);
        }
        let now = self.clock.now();
        self.one_time
            .consume_one_time_token(&opaque::hash(token.expose_secret()), kind, now)
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)
    }

    async fn enqueue_request(&self, job: OutboxJob) -> AuthResult<()> {
        let now = self.clock.now();
        let message = self.outgoing.seal(&job, now)?;
        self.outbox.enqueue(&message).await
    }

    /// The front of requests that answer "accepted" whatever the address: limits,
    /// CAPTCHA, address syntax, then one sealed job for the worker.
    async fn accept_request(
        &self,
        group: LimitGroup,
        captcha_required: bool,
        email: &str,
        client: &ClientInfo,
        captcha_token: Option<&str>,
        job: impl FnOnce(String) -> OutboxJob,
    ) -> AuthResult<()> {
        self.guard
            .limit(group, client, Some(&lockout_identifier(email)))
            .await?;
        self.guard
            .captcha(captcha_required, captcha_token, client)
            .await?;
        let email = Email::parse(email).map_err(AuthError::InvalidEmail)?;
        self.enqueue_request(job(email.canonical())).await
    }

    /// Ask for a password reset link. Same answer and same work for every address.
    pub async fn forgot_password(
        &self,
        email: &str,
        client: &ClientInfo,
        captcha_token: Option<&str>,
    ) -> AuthResult<()> {
        let required = self.guard_settings.captcha.password_reset;
        self.accept_request(
            LimitGroup::PasswordReset,
            required,
            email,
            client,
            captcha_token,
            |email| OutboxJob::PasswordResetRequested { email },
        )
        .await?;
        // No user id: whether the account exists is the worker's business, not the log's.
        self.recorder
            .emit(EventKind::PasswordResetRequested, None, None, None, None)
            .await?;
        Ok(())
    }

    /// Set a new password with a reset token: every session of the user ends.
    pub async fn reset_password(
        &self,
        token: &SecretString,
        password: &SecretString,
        client: &ClientInfo,
    ) -> AuthResult<()> {
        self.guard
            .limit(LimitGroup::PasswordReset, client, None)
            .await?;
        if !opaque::is_well_formed(token.expose_secret()) {
            return Err(AuthError::InvalidOneTimeToken);
        }
        let hash = opaque::hash(token.expose_secret());
        let now = self.clock.now();
        let record = self.one_time.one_time_token(&hash).await?;
        let Some((record, user_id)) = record
            .filter(|t| {
                t.kind == OneTimeTokenKind::PasswordReset
                    && t.used_at.is_none()
                    && now < t.expires_at
            })
            .and_then(|t| t.user_id.map(|u| (t, u)))
        else {
            return Err(AuthError::InvalidOneTimeToken);
        };
        let user = self
            .users
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        let email = Email::parse(&user.email).ok();
        self.guard
            .check_new_password(password, email.as_ref())
            .await?;
        let password_hash = self.hasher.hash(password).await?;
        let notice = self.outgoing.mail(
            &user.email,
            MailTemplate::PasswordWasReset,
            &[("name", user.name.clone().unwrap_or_default())],
            now,
        )?;
        if !self
            .one_time
            .redeem_password_reset(&record.token_hash, user_id, &password_hash, &notice, now)
            .await?
        {
            return Err(AuthError::InvalidOneTimeToken);
        }
        self.recorder
            .emit(EventKind::PasswordReset, Some(user_id), None, None, None)
            .await?;
        Ok(())
    }

    /// Change the password of the signed-in user: every session ends, including the
    /// caller's, and a new session is opened for the caller.
    pub async fn change_password(
        &self,
        caller: &crate::sign_in::Authenticated,
        current: &SecretString,
        new: &SecretString,
        client: ClientInfo,
    ) -> AuthResult<IssuedTokens> {
        let user = self.sign_in.me(caller).await?;
        let creds = self
            .users
            .credentials_by_email(&user.email.to_lowercase())
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let stored = creds.password_hash.ok_or(AuthError::InvalidCredentials)?;
        if current.expose_secret().len() > 4096 {
            return Err(AuthError::InvalidCredentials);
        }
        if !matches!(
            self.hasher.verify(current, &stored).await?,
            crate::password::PasswordMatch::Match { .. }
        ) {
            return Err(AuthError::InvalidCredentials);
        }
        let email = Email::parse(&user.email).ok();
        self.guard.check_new_password(new, email.as_ref()).await?;
        let password_hash = self.hasher.hash(new).await?;
        let now = self.clock.now();
        let refresh = opaque::generate(self.rng.as_ref());
        let new_session = NewSession {
            id: SessionId::new(),
            user_id: user.id,
            created_at: now,
            expires_at: now + self.policy.absolute_ttl,
            client,
            amr: vec!["pwd".into()],
            aal: "aal1".into(),
        };
        let notice = self.outgoing.mail(
            &user.email,
            MailTemplate::PasswordChanged,
            &[("name", user.name.clone().unwrap_or_default())],
            now,
        )?;
        let session = self
            .one_time
            .change_password(
                user.id,
                &password_hash,
                &new_session,
                &opaque::hash(refresh.expose_secret()),
                &notice,
            )
            .await?;
        let (uid, sid) = (Some(user.id), Some(session.id));
        self.recorder
            .emit(
                EventKind::PasswordChanged,
                uid,
                sid,
                Some(&session.client),
                None,
            )
            .await?;
        self.sign_in.issue(user, &session, refresh, now)
    }

    /// Check a `redirect_to` against the allow-list: exact origin match.
    fn allowed_redirect(&self, redirect_to: Option<String>) -> AuthResult<Option<String>> {
        let Some(url) = redirect_to.filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let invalid = || AuthError::InvalidField {
            field: "redirect_to",
            reason: "is not an allowed redirect URL",
        };
        let origin = origin_of(&url).ok_or_else(invalid)?;
        let s = self.email_settings();
        let allowed = std::iter::once(&s.app_url)
            .chain(&s.redirect_allow_list)
            .any(|a| origin_of(a).as_deref() == Some(origin.as_str()));
        if allowed {
            Ok(Some(url))
        } else {
            Err(invalid())
        }
    }

    /// Ask for a magic link. Same answer and same work for every address.
    pub async fn request_magic_link(
        &self,
        email: &str,
        redirect_to: Option<String>,
        client: &ClientInfo,
        captcha_token: Option<&str>,
    ) -> AuthResult<()> {
        let redirect_to = self.allowed_redirect(redirect_to)?;
        let required = self.guard_settings.captcha.passwordless;
        self.accept_request(
            LimitGroup::Passwordless,
            required,
            email,
            client,
            captcha_token,
            |email| OutboxJob::MagicLinkRequested { email, redirect_to },
        )
        .await
    }

    /// Sign in with a magic link; signs up when allowed and the address is new. The
    /// address counts as verified.
    pub async fn verify_magic_link(
        &self,
        token: &SecretString,
        client: ClientInfo,
    ) -> AuthResult<MagicLinkSignIn> {
        self.guard
            .limit(LimitGroup::Passwordless, &client, None)
            .await?;
        let record = self.consume(token, OneTimeTokenKind::MagicLink).await?;
        let user = self
            .passwordless_user(record.user_id, &record.email)
            .await?;
        let now = self.clock.now();
        let outcome = self
            .sign_in
            .finish_first_factor(
                user,
                client.clone(),
                "email",
                (EventKind::MagicLinkSignIn, None),
                now,
            )
            .await?;
        Ok(MagicLinkSignIn {
            outcome,
            redirect_to: record.redirect_to,
        })
    }

    /// Ask for a one-time code by mail. Same answer and same work for every address.
    pub async fn send_email_code(
        &self,
        email: &str,
        client: &ClientInfo,
        captcha_token: Option<&str>,
    ) -> AuthResult<()> {
        let required = self.guard_settings.captcha.passwordless;
        self.accept_request(
            LimitGroup::Passwordless,
            required,
            email,
            client,
            captcha_token,
            |email| OutboxJob::EmailOtpRequested { email },
        )
        .await
    }

    /// Sign in with a code sent by mail. At most `otp_max_attempts` wrong codes per code.
    pub async fn verify_email_code(
        &self,
        email: &str,
        code: &str,
        client: ClientInfo,
    ) -> AuthResult<crate::sign_in::SignInOutcome> {
        self.guard
            .limit(
                LimitGroup::Passwordless,
                &client,
                Some(&lockout_identifier(email)),
            )
            .await?;
        let email = Email::parse(email)
            .map_err(|_| AuthError::InvalidCode)?
            .canonical();
        let now = self.clock.now();
        let current = self
            .one_time
            .current_one_time_token(OneTimeTokenKind::EmailOtp, &email, now)
            .await?;
        self.guard.refuse_if_codes_capped(&email).await?;
        let Some(current) = current else {
            return Err(AuthError::InvalidCode);
        };
        let presented = code_hash(&email, code.trim());
        if !bool::from(
            presented
                .0
                .as_bytes()
                .ct_eq(current.token_hash.0.as_bytes()),
        ) {
            self.guard.count_code_failure(&email).await?;
            let max = self.email_settings().otp_max_attempts;
            let failures = self
                .one_time
                .record_failed_attempt(&current.token_hash, max, now)
                .await?;
            let detail = Some(format!("failures={failures}"));
            self.recorder
                .emit(
                    EventKind::EmailCodeFailed,
                    current.user_id,
                    None,
                    Some(&client),
                    detail,
                )
                .await?;
            return Err(AuthError::InvalidCode);
        }
        let record = self
            .one_time
            .consume_one_time_token(&presented, OneTimeTokenKind::EmailOtp, now)
            .await?
            .ok_or(AuthError::InvalidCode)?;
        let user = self
            .passwordless_user(record.user_id, &record.email)
            .await?;
        let outcome = self
            .sign_in
            .finish_first_factor(
                user,
                client.clone(),
                "otp",
                (EventKind::EmailCodeSignIn, None),
                now,
            )
            .await?;
        Ok(outcome)
    }

    /// The account a passwordless sign-in acts on: the known user (now verified), or a
    /// new one when the token was issued for a sign-up. The mailbox owner adopts an
    /// account that was still unverified ([`MailboxProof::Adoption`]).
    async fn passwordless_user(
        &self,
        user_id: Option<UserId>,
        canonical_email: &str,
    ) -> AuthResult<User> {
        if let Some(id) = user_id {
            return self.adopt(id, canonical_email).await;
        }
        let now = self.clock.now();
        let email = Email::parse(canonical_email).map_err(|_| AuthError::InvalidOneTimeToken)?;
        let new_user = NewUser {
            id: UserId::new(),
            email: email.clone(),
            name: None,
            password_hash: None,
            email_verified: true,
            roles: self.default_roles.clone(),
            created_at: now,
        };
        match self.users.insert_user(&new_user, None).await {
            Ok(user) => {
                self.recorder
                    .emit(
                        EventKind::SignedUp,
                        Some(user.id),
                        None,
                        None,
                        Some("passwordless".into()),
                    )
                    .await?;
                Ok(user)
            }
            // Signed up some other way since the link was sent: the link proves the address.
            Err(AuthError::EmailTaken) => {
                let existing = self
                    .users
                    .credentials_by_email(&email.canonical())
                    .await?
                    .ok_or(AuthError::InvalidOneTimeToken)?;
                self.adopt(existing.user.id, &email.canonical()).await
            }
            Err(e) => Err(e),
        }
    }

    /// Verify `id`'s address for someone who just proved they read its mailbox; an
    /// unverified account is adopted (see [`MailboxProof::Adoption`]) and the audit trail
    /// says so.
    async fn adopt(&self, id: UserId, canonical_email: &str) -> AuthResult<User> {
        let now = self.clock.now();
        let proven = self
            .users
            .mark_email_verified(id, canonical_email, MailboxProof::Adoption, now)
            .await?
            .ok_or(AuthError::InvalidOneTimeToken)?;
        if proven.adopted {
            let detail = Some("adopted".into());
            self.recorder
                .emit(EventKind::EmailVerified, Some(id), None, None, detail)
                .await?;
        }
        Ok(proven.user)
    }
}
