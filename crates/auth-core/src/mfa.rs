//! Multi-factor authentication: TOTP authenticator apps (RFC 6238) and recovery codes, the
//! challenge that a first factor opens when the user has an active factor, and the step-up
//! of a signed-in session from `aal1` to `aal2`.
//!
//! Rules:
//! - Every first factor (password, magic link, email code, social sign-in) ends in
//!   `SignIn::finish_first_factor` (in [`crate::sign_in`]): without an active factor it opens an `aal1`
//!   session, otherwise it answers [`SignInOutcome::MfaRequired`] with an opaque
//!   `mfa_token` (stored hashed, 5 minutes, single use, dead after 5 wrong codes).
//! - A TOTP code is accepted once: the last accepted time step is stored and only a later
//!   step is accepted, by one conditional update (replay refused, even concurrently).
//! - Recovery codes: 10 per activation, 80 random bits each, shown once, stored as SHA-256,
//!   single use.
//! - Removing a factor or regenerating recovery codes needs a fresh second factor: the
//!   request carries a current code (TOTP or recovery code), checked like a sign-in.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};

use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{AuthError, AuthResult};
use crate::events::EventKind;
use crate::guard::LimitGroup;
use crate::mail::MailTemplate;
use crate::model::{ClientInfo, NewSession, SessionId, TokenHash, User, UserId};
use crate::opaque;
use crate::random::random_bytes;
use crate::sign_in::{Authenticated, IssuedTokens};

mod sms;

pub use sms::SmsEnrollment;

// ---- TOTP (RFC 6238) over HOTP (RFC 4226) -------------------------------------------------

/// Length of a TOTP time step.
pub const TOTP_PERIOD_SECS: i64 = 30;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: u32 = 6;
/// Bytes of a generated TOTP secret (160 bits, the size RFC 4226 recommends for SHA-1).
pub const TOTP_SECRET_BYTES: usize = 20;

/// The HOTP value (RFC 4226, HMAC-SHA-1, dynamic truncation) of `counter`, `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    let modulus = 10u64.pow(digits);
    format!(
        "{:0width$}",
        u64::from(bin) % modulus,
        width = digits as usize
    )
}

/// The TOTP time step (RFC 6238, T0 = 0, X = 30 s) of `at`.
pub fn time_step(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(TOTP_PERIOD_SECS)
}

/// The 6-digit TOTP code of `secret` for time step `step`.
pub fn totp_code(secret: &[u8], step: i64) -> String {
    hotp(secret, u64::try_from(step).unwrap_or(0), TOTP_DIGITS)
}

/// RFC 4648 base32 without padding: how authenticator apps take a secret.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(char::from(ALPHABET[((buffer >> (bits - 5)) & 31) as usize]));
            bits -= 5;
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Inverse of [`base32`] (case-insensitive, padding and spaces ignored); `None` when a
/// character is outside the alphabet.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            out.push(((buffer >> (bits - 8)) & 0xff) as u8);
            bits -= 8;
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://` URI (Key URI Format) that authenticator apps read from a QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer_enc = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer_enc}:{}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_PERIOD_SECS}",
        percent_encode(account),
        base32(secret),
    )
}

fn normalise_totp(code: &str) -> Option<String> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == TOTP_DIGITS as usize && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

// ---- recovery codes -------------------------------------------------------------------------

/// Recovery codes handed out at activation and regeneration.
pub const RECOVERY_CODE_COUNT: usize = 10;
const RECOVERY_CODE_BYTES: usize = 10; // 80 bits, 16 base32 characters

fn generate_recovery_code(rng: &dyn crate::random::RandomSource) -> SecretString {
    let raw = base32(&random_bytes::<RECOVERY_CODE_BYTES>(rng)).to_lowercase();
    // xxxx-xxxx-xxxx-xxxx: easier to copy from paper.
    let groups: Vec<&str> = (0..4).map(|i| &raw[i * 4..i * 4 + 4]).collect();
    SecretString::from(groups.join("-"))
}

/// The stored form of a recovery code: SHA-256 over a domain separator, the user and the
/// code without dashes, spaces or case.
pub fn recovery_code_hash(user_id: UserId, code: &str) -> TokenHash {
    let code: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut h = Sha256::new();
    h.update(b"auth-core/recovery-code/v1\0");
    h.update(user_id.to_string().as_bytes());
    h.update(b"\0");
    h.update(code.as_bytes());
    TokenHash(hex::encode(h.finalize()))
}

pub use crate::factors::{
    FactorKind, MfaChallenge, MfaFactor, MfaStore, NewMfaChallenge, SecondFactor,
};
pub use crate::sign_in::{MfaRequired, SignInOutcome};

// ---- settings and outcomes ------------------------------------------------------------------

/// Rules of multi-factor authentication.
#[derive(Debug, Clone)]
pub struct MfaSettings {
    /// Name shown by authenticator apps (the `issuer` of the `otpauth://` URI).
    pub issuer: String,
    /// Lifetime of an `mfa_token`.
    pub challenge_ttl: Duration,
    /// Wrong codes that kill an `mfa_token`.
    pub max_attempts: i32,
    /// Whether an SMS factor's number may also sign in without a password.
    pub sms_passwordless: bool,
    /// Time steps of clock skew accepted either side of now.
    pub totp_skew_steps: i64,
    /// How long an enrolment may wait for its first code.
    pub enrollment_ttl: Duration,
    /// Lifetime of an SMS code.
    pub sms_code_ttl: Duration,
}

impl Default for MfaSettings {
    fn default() -> Self {
        Self {
            issuer: "Auth".into(),
            challenge_ttl: Duration::minutes(5),
            max_attempts: 5,
            sms_passwordless: false,
            totp_skew_steps: 1,
            enrollment_ttl: Duration::minutes(15),
            sms_code_ttl: Duration::minutes(5),
        }
    }
}

/// A TOTP enrolment in progress: show the secret (or the QR code of the URI) once.
pub struct TotpEnrollment {
    /// The pending factor, to activate with a first code.
    pub factor_id: Uuid,
    /// The secret in base32.
    pub secret: SecretString,
    /// The `otpauth://` URI.
    pub otpauth_uri: SecretString,
    /// Activation must happen before this.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrollment")
            .field("factor_id", &self.factor_id)
            .finish_non_exhaustive()
    }
}

/// Recovery codes, shown once.
pub struct RecoveryCodes(pub Vec<SecretString>);

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryCodes({} codes)", self.0.len())
    }
}

/// An active factor as listed to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorView {
    /// Identifier.
    pub id: Uuid,
    /// What it is.
    pub kind: FactorKind,
    /// The user's name for it.
    pub label: Option<String>,
    /// When it was activated.
    pub activated_at: DateTime<Utc>,
    /// When a code of it was last accepted.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The MFA state of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaStatus {
    /// Whether sign-in asks for a second factor.
    pub enabled: bool,
    /// Active factors.
    pub factors: Vec<FactorView>,
    /// Unused recovery codes.
    pub recovery_codes_remaining: u64,
}

/// An access token for a session just stepped up; the session's refresh token stays the
/// same (its next refresh carries the new level too).
pub struct SteppedUp {
    /// Signed access token with `aal2`.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// Its expiry, seconds since the epoch.
    pub expires_at: i64,
    /// The session.
    pub session_id: SessionId,
    /// The user.
    pub user: User,
}

impl fmt::Debug for SteppedUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SteppedUp")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

const MAX_LABEL_CHARS: usize = 100;

fn totp_context(factor_id: Uuid) -> Vec<u8> {
    format!("auth-core/mfa-totp/v1/{factor_id}").into_bytes()
}

// ---- use cases ------------------------------------------------------------------------------

/// The multi-factor use cases: TOTP and SMS factors, recovery codes, the challenge and the step-up.
#[derive(Clone)]
pub struct MfaService {
    pub(crate) clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub(crate) mfa: std::sync::Arc<dyn crate::mfa::MfaStore>,
    pub(crate) one_time: std::sync::Arc<dyn crate::ports::OneTimeTokenStore>,
    pub(crate) outbox: std::sync::Arc<dyn crate::ports::OutboxStore>,
    pub(crate) rng: std::sync::Arc<dyn crate::random::RandomSource>,
    pub(crate) sealer: std::sync::Arc<crate::secret_box::SecretBox>,
    pub(crate) sms: Option<std::sync::Arc<dyn crate::sms::SmsSender>>,
    pub(crate) users: std::sync::Arc<dyn crate::ports::UserStore>,
    pub(crate) guard: crate::guard::Guard,
    pub(crate) outgoing: crate::outbox::Outgoing,
    pub(crate) recorder: crate::record::Recorder,
    pub(crate) sign_in: crate::sign_in::SignIn,
    pub(crate) email: crate::flows::EmailSettings,
    pub(crate) guard_settings: crate::guard::GuardSettings,
    pub(crate) mfa_settings: crate::mfa::MfaSettings,
    pub(crate) policy: crate::sign_in::SessionPolicy,
}

impl std::fmt::Debug for MfaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaService").finish_non_exhaustive()
    }
}

impl MfaService {
    fn mfa_store(&self) -> &dyn MfaStore {
        self.mfa.as_ref()
    }

    /// Check a second factor of `user`. `Some(amr)` when it is right (and now spent: the
    /// TOTP step is recorded, the recovery code consumed), `None` when it is wrong or
    /// replayed.
    /// The 6-digit codes also count against the account's daily cap of wrong codes
    /// (refused once it is reached, before the code is looked at); recovery codes (long, and
    /// the owner's way back in) do not.
    async fn check_second_factor(
        &self,
        user: &User,
        factor: SecondFactor,
        code: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<&'static str>> {
        let capped = (factor != SecondFactor::RecoveryCode)
            .then(|| crate::guard::lockout_identifier(&user.email));
        if let Some(identifier) = &capped {
            self.guard.refuse_if_codes_capped(identifier).await?;
        }
        let checked = self.match_second_factor(user, factor, code, now).await?;
        if let (None, Some(identifier)) = (checked, &capped) {
            self.guard.count_code_failure(identifier).await?;
        }
        Ok(checked)
    }

    async fn match_second_factor(
        &self,
        user: &User,
        factor: SecondFactor,
        code: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<&'static str>> {
        match factor {
            SecondFactor::Totp => {
                let Some(code) = normalise_totp(code) else {
                    return Ok(None);
                };
                for f in self.sign_in.active_factors(user.id).await? {
                    if f.kind != FactorKind::Totp {
                        continue;
                    }
                    if let Some(step) = self.matching_step(&f, &code, now)? {
                        // Replay (same or earlier step already used) is refused here.
                        if self.mfa_store().use_totp_step(f.id, step, now).await? {
                            return Ok(Some(factor.amr()));
                        }
                        return Ok(None);
                    }
                }
                Ok(None)
            }
            SecondFactor::Sms => {
                let factors = self.sign_in.active_factors(user.id).await?;
                Ok(self
                    .check_sms_code(user, &factors, code, now)
                    .await?
                    .then_some(factor.amr()))
            }
            SecondFactor::RecoveryCode => {
                let hash = recovery_code_hash(user.id, code);
                let remaining = self.mfa_store().remaining_recovery_codes(user.id).await?;
                let notice = self.outgoing.mail(
                    &user.email,
                    MailTemplate::RecoveryCodeUsed,
                    &[
                        ("name", user.name.clone().unwrap_or_default()),
                        ("remaining", remaining.saturating_sub(1).to_string()),
                    ],
                    now,
                )?;
                if self
                    .mfa_store()
                    .consume_recovery_code(user.id, &hash, &notice, now)
                    .await?
                {
                    let detail = Some(format!("remaining={}", remaining.saturating_sub(1)));
                    self.recorder
                        .emit(
                            EventKind::RecoveryCodeUsed,
                            Some(user.id),
                            None,
                            None,
                            detail,
                        )
                        .await?;
                    return Ok(Some(factor.amr()));
                }
                Ok(None)
            }
        }
    }

    /// The time step within the allowed skew whose code is `code`, if any.
    fn matching_step(
        &self,
        factor: &MfaFactor,
        code: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<i64>> {
        let secret = self
            .sealer
            .open(&totp_context(factor.id), &factor.sealed_secret)?;
        let current = time_step(now);
        let skew = self.mfa_settings.totp_skew_steps.max(0);
        let mut found = None;
        // Every candidate is computed and compared in constant time.
        for step in (current - skew)..=(current + skew) {
            let expected = totp_code(&secret, step);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                found = Some(step);
            }
        }
        Ok(found)
    }

    async fn user_of(&self, caller: &Authenticated) -> AuthResult<User> {
        self.sign_in.me(caller).await
    }

    fn recovery_codes(&self, user_id: UserId) -> (RecoveryCodes, Vec<TokenHash>) {
        let codes: Vec<SecretString> = (0..RECOVERY_CODE_COUNT)
            .map(|_| generate_recovery_code(self.rng.as_ref()))
            .collect();
        let hashes = codes
            .iter()
            .map(|c| recovery_code_hash(user_id, c.expose_secret()))
            .collect();
        (RecoveryCodes(codes), hashes)
    }

    /// Start enrolling an authenticator app: a pending factor with a fresh secret. It
    /// becomes active with [`MfaService::activate_totp`].
    pub async fn enroll_totp(
        &self,
        caller: &Authenticated,
        label: Option<String>,
    ) -> AuthResult<TotpEnrollment> {
        let label = match label.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()) {
            Some(l) if l.chars().count() > MAX_LABEL_CHARS || l.chars().any(char::is_control) => {
                return Err(AuthError::InvalidField {
                    field: "label",
                    reason: "must be at most 100 printable characters",
                });
            }
            other => other,
        };
        let user = self.user_of(caller).await?;
        if self
            .sign_in
            .active_factors(user.id)
            .await?
            .iter()
            .any(|f| f.kind == FactorKind::Totp)
        {
            return Err(AuthError::MfaAlreadyEnrolled);
        }
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let secret = random_bytes::<TOTP_SECRET_BYTES>(self.rng.as_ref());
        let sealed_secret = self
            .sealer
            .seal(self.rng.as_ref(), &totp_context(id), &secret)?;
        self.mfa_store()
            .insert_pending_factor(&MfaFactor {
                id,
                user_id: user.id,
                kind: FactorKind::Totp,
                label,
                sealed_secret,
                created_at: now,
                activated_at: None,
                last_used_step: None,
                last_used_at: None,
                lookup_hash: None,
            })
            .await?;
        Ok(TotpEnrollment {
            factor_id: id,
            secret: SecretString::from(base32(&secret)),
            otpauth_uri: SecretString::from(otpauth_uri(
                &self.mfa_settings.issuer,
                &user.email,
                &secret,
            )),
            expires_at: now + self.mfa_settings.enrollment_ttl,
        })
    }

    /// Finish enrolment with a first valid code: the factor becomes active and the user
    /// gets [`RECOVERY_CODE_COUNT`] new recovery codes (any older ones are replaced).
    pub async fn activate_totp(
        &self,
        caller: &Authenticated,
        factor_id: Uuid,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<RecoveryCodes> {
        let user = self.user_of(caller).await?;
        self.guard
            .limit(LimitGroup::MfaVerify, client, Some(&user.id.to_string()))
            .await?;
        let now = self.clock.now();
        let factor = self
            .mfa_store()
            .factors_of(user.id)
            .await?
            .into_iter()
            .find(|f| {
                f.id == factor_id
                    && f.kind == FactorKind::Totp
                    && f.activated_at.is_none()
                    && now < f.created_at + self.mfa_settings.enrollment_ttl
            })
            .ok_or(AuthError::NotFound)?;
        let step = match normalise_totp(code) {
            Some(code) => self.matching_step(&factor, &code, now)?,
            None => None,
        };
        let Some(step) = step else {
            self.recorder
                .emit(
                    EventKind::MfaFailed,
                    Some(user.id),
                    Some(caller.session_id),
                    Some(client),
                    Some("factor=totp,activation".into()),
                )
                .await?;
            return Err(AuthError::InvalidCode);
        };
        let (codes, hashes) = self.recovery_codes(user.id);
        let notice = self.outgoing.mail(
            &user.email,
            MailTemplate::MfaFactorAdded,
            &[
                ("name", user.name.clone().unwrap_or_default()),
                ("factor", FactorKind::Totp.label().into()),
            ],
            now,
        )?;
        if !self
            .mfa_store()
            .activate_factor(user.id, factor_id, step, &hashes, &notice, now)
            .await?
        {
            return Err(AuthError::MfaAlreadyEnrolled);
        }
        self.recorder
            .emit(
                EventKind::MfaFactorAdded,
                Some(user.id),
                Some(caller.session_id),
                Some(client),
                Some("factor=totp".into()),
            )
            .await?;
        Ok(codes)
    }

    /// The caller's active factors and remaining recovery codes.
    pub async fn mfa_status(&self, caller: &Authenticated) -> AuthResult<MfaStatus> {
        let factors: Vec<FactorView> = self
            .sign_in
            .active_factors(caller.user_id)
            .await?
            .into_iter()
            .filter_map(|f| {
                Some(FactorView {
                    id: f.id,
                    kind: f.kind,
                    label: f.label,
                    activated_at: f.activated_at?,
                    last_used_at: f.last_used_at,
                })
            })
            .collect();
        let remaining = self
            .mfa_store()
            .remaining_recovery_codes(caller.user_id)
            .await?;
        Ok(MfaStatus {
            enabled: !factors.is_empty(),
            factors,
            recovery_codes_remaining: remaining,
        })
    }

    /// The caller's enrolment of `kind` still waiting for its first code (unexpired), if
    /// any: for clients that activate with a code alone, without keeping the `factor_id`
    /// of their enrolment. A user has at most one (enrolling again replaces it).
    pub async fn pending_factor(
        &self,
        caller: &Authenticated,
        kind: FactorKind,
    ) -> AuthResult<Option<Uuid>> {
        let now = self.clock.now();
        Ok(self
            .mfa_store()
            .factors_of(caller.user_id)
            .await?
            .into_iter()
            .rev()
            .find(|f| {
                f.kind == kind
                    && f.activated_at.is_none()
                    && now < f.created_at + self.mfa_settings.enrollment_ttl
            })
            .map(|f| f.id))
    }

    /// Finish a sign-in that answered [`SignInOutcome::MfaRequired`]: with the right code
    /// the challenge is spent and an `aal2` session opens. A wrong code counts against the
    /// `mfa_token`, which dies at the configured maximum.
    pub async fn verify_mfa(
        &self,
        mfa_token: &SecretString,
        factor: SecondFactor,
        code: &str,
        client: ClientInfo,
    ) -> AuthResult<IssuedTokens> {
        self.guard
            .limit(LimitGroup::MfaVerify, &client, None)
            .await?;
        let now = self.clock.now();
        let max = self.mfa_settings.max_attempts;
        let challenge = self.live_challenge(mfa_token, now).await?;
        // Per user too: each sign-in opens a new mfa_token, the account's limit bounds them all.
        self.guard
            .limit(
                LimitGroup::MfaVerify,
                &client,
                Some(&challenge.user_id.to_string()),
            )
            .await?;
        let hash = challenge.token_hash.clone();
        let user = self
            .users
            .user_by_id(challenge.user_id)
            .await?
            .ok_or(AuthError::InvalidMfaToken)?;
        // After a sign-in by SMS code, an SMS code is not a second factor.
        let reused = factor == SecondFactor::Sms && challenge.amr.iter().any(|m| m == "sms");
        let checked = if reused {
            None
        } else {
            self.check_second_factor(&user, factor, code, now).await?
        };
        let Some(method) = checked else {
            let failures = self
                .mfa_store()
                .record_challenge_failure(&hash, max, now)
                .await?;
            let detail = Some(format!("factor={},failures={failures}", factor.as_str()));
            self.recorder
                .emit(
                    EventKind::MfaFailed,
                    Some(user.id),
                    None,
                    Some(&client),
                    detail,
                )
                .await?;
            return Err(AuthError::InvalidCode);
        };
        let mut amr = challenge.amr.clone();
        if !amr.iter().any(|m| m == method) {
            amr.push(method.to_owned());
        }
        let refresh_token = opaque::generate(self.rng.as_ref());
        let id = SessionId::new();
        let detail = Some(format!("factor={}", factor.as_str()));
        let event = self.recorder.event(
            EventKind::MfaVerified,
            Some(user.id),
            Some(id),
            Some(&client),
            detail,
        );
        let records = [self.recorder.recorded(event).await?];
        let session = self
            .mfa_store()
            .complete_challenge(
                &hash,
                max,
                &NewSession {
                    id,
                    user_id: user.id,
                    created_at: now,
                    expires_at: now + self.policy.absolute_ttl,
                    client: client.clone(),
                    amr,
                    aal: "aal2".into(),
                },
                &opaque::hash(refresh_token.expose_secret()),
                now,
                &records,
            )
            .await?
            .ok_or(AuthError::InvalidMfaToken)?;
        self.recorder.committed(records).await;
        self.sign_in.issue(user, &session, refresh_token, now)
    }

    /// The challenge of a live `mfa_token` (unused, unexpired, not dead).
    async fn live_challenge(
        &self,
        mfa_token: &SecretString,
        now: DateTime<Utc>,
    ) -> AuthResult<MfaChallenge> {
        let token = mfa_token.expose_secret();
        if !opaque::is_well_formed(token) {
            return Err(AuthError::InvalidMfaToken);
        }
        let max = self.mfa_settings.max_attempts;
        self.mfa_store()
            .challenge(&opaque::hash(token))
            .await?
            .filter(|c| c.used_at.is_none() && now < c.expires_at && c.failed_attempts < max)
            .ok_or(AuthError::InvalidMfaToken)
    }

    /// Raise the caller's session to `aal2` with a second factor. The answer is a new
    /// access token for the same session; its refresh token keeps working and carries the
    /// new level.
    pub async fn step_up(
        &self,
        caller: &Authenticated,
        factor: SecondFactor,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<SteppedUp> {
        let user = self.user_of(caller).await?;
        self.require_second_factor(&user, caller.session_id, factor, code, client)
            .await?;
        let now = self.clock.now();
        let method = factor.amr();
        let detail = Some(format!("factor={},step_up", factor.as_str()));
        let event = self.recorder.event(
            EventKind::MfaVerified,
            Some(user.id),
            Some(caller.session_id),
            Some(client),
            detail,
        );
        let records = [self.recorder.recorded(event).await?];
        let session = self
            .mfa_store()
            .step_up_session(caller.session_id, method, now, &records)
            .await?
            .ok_or(AuthError::InvalidToken("session revoked or expired"))?;
        self.recorder.committed(records).await;
        // The refresh token of the session is not known here (stored hashed) and is not
        // handed out again: a placeholder fills the slot and is dropped.
        let issued = self
            .sign_in
            .issue(user, &session, SecretString::from(String::new()), now)?;
        Ok(SteppedUp {
            access_token: issued.access_token,
            expires_in: issued.expires_in,
            expires_at: issued.expires_at,
            session_id: issued.session_id,
            user: issued.user,
        })
    }

    /// A fresh second factor from a signed-in user (step-up, removing a factor,
    /// regenerating codes): rate limited per user, failures recorded.
    async fn require_second_factor(
        &self,
        user: &User,
        session_id: SessionId,
        factor: SecondFactor,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<&'static str> {
        self.guard
            .limit(LimitGroup::MfaVerify, client, Some(&user.id.to_string()))
            .await?;
        if self.sign_in.active_factors(user.id).await?.is_empty() {
            return Err(AuthError::MfaNotEnrolled);
        }
        let now = self.clock.now();
        match self.check_second_factor(user, factor, code, now).await? {
            Some(method) => Ok(method),
            None => {
                self.recorder
                    .emit(
                        EventKind::MfaFailed,
                        Some(user.id),
                        Some(session_id),
                        Some(client),
                        Some(format!("factor={}", factor.as_str())),
                    )
                    .await?;
                Err(AuthError::InvalidCode)
            }
        }
    }

    /// Remove one of the caller's factors. An active factor needs a fresh second factor
    /// (`proof`); a pending one (enrolment never finished) does not. Removing the last
    /// active factor turns MFA off and deletes the recovery codes.
    pub async fn remove_mfa_factor(
        &self,
        caller: &Authenticated,
        factor_id: Uuid,
        proof: Option<(SecondFactor, &str)>,
        client: &ClientInfo,
    ) -> AuthResult<()> {
        let user = self.user_of(caller).await?;
        let factor = self
            .mfa_store()
            .factors_of(user.id)
            .await?
            .into_iter()
            .find(|f| f.id == factor_id)
            .ok_or(AuthError::NotFound)?;
        let now = self.clock.now();
        let notice = if factor.activated_at.is_some() {
            let (kind, code) = proof.ok_or(AuthError::InvalidCode)?;
            self.require_second_factor(&user, caller.session_id, kind, code, client)
                .await?;
            Some(self.outgoing.mail(
                &user.email,
                MailTemplate::MfaFactorRemoved,
                &[
                    ("name", user.name.clone().unwrap_or_default()),
                    ("factor", factor.kind.label().into()),
                ],
                now,
            )?)
        } else {
            None
        };
        if !self
            .mfa_store()
            .remove_factor(user.id, factor_id, notice.as_ref(), now)
            .await?
        {
            return Err(AuthError::NotFound);
        }
        if factor.activated_at.is_some() {
            self.recorder
                .emit(
                    EventKind::MfaFactorRemoved,
                    Some(user.id),
                    Some(caller.session_id),
                    Some(client),
                    Some(format!("factor={}", factor.kind.as_str())),
                )
                .await?;
        }
        Ok(())
    }

    /// Replace the caller's recovery codes with new ones, given a fresh second factor.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Authenticated,
        proof: (SecondFactor, &str),
        client: &ClientInfo,
    ) -> AuthResult<RecoveryCodes> {
        let user = self.user_of(caller).await?;
        self.require_second_factor(&user, caller.session_id, proof.0, proof.1, client)
            .await?;
        let now = self.clock.now();
        let (codes, hashes) = self.recovery_codes(user.id);
        self.mfa_store()
            .replace_recovery_codes(user.id, &hashes, now)
            .await?;
        self.recorder
            .emit(
                EventKind::RecoveryCodesRegenerated,
                Some(user.id),
                Some(caller.session_id),
                Some(client),
                None,
            )
            .await?;
        Ok(codes)
    }

    /// Delete MFA challenges that expired more than `retention` ago (housekeeping).
    pub async fn purge_mfa_challenges(&self, retention: Duration) -> AuthResult<u64> {
        let cutoff = self.clock.now() - retention;
        self.mfa_store().purge_challenges_before(cutoff).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        for sample in [&b""[..], b"f", b"foob", b"foobar", &[0xff; 20]] {
            assert_eq!(base32_decode(&base32(sample)).unwrap(), sample);
        }
        assert_eq!(base32_decode("mzxw6ytboi======").unwrap(), b"foobar");
        assert!(base32_decode("MZ1").is_none());
    }

    #[test]
    fn hotp_matches_rfc_4226_appendix_d() {
        let secret = b"12345678901234567890";
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(secret, counter as u64, 6), *code);
        }
    }

    #[test]
    fn recovery_codes_normalise_and_bind_to_the_user() {
        let (a, b) = (UserId::new(), UserId::new());
        assert_eq!(
            recovery_code_hash(a, "abcd-efgh-ijkl-mnop"),
            recovery_code_hash(a, " ABCD EFGH IJKL MNOP ")
        );
        assert_ne!(
            recovery_code_hash(a, "abcd-efgh-ijkl-mnop"),
            recovery_code_hash(b, "abcd-efgh-ijkl-mnop")
        );
        let code = generate_recovery_code(&crate::random::OsRandom);
        assert_eq!(code.expose_secret().len(), 19);
    }

    #[test]
    fn otpauth_uri_carries_issuer_account_and_secret() {
        let uri = otpauth_uri("My App", "ada@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/My%20App:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=My%20App&algorithm=SHA1&digits=6&period=30"
        );
    }
}
