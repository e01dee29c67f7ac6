//! SMS codes as a second factor: enrolment of a phone number proven by a first code, codes
//! sent on demand during a sign-in (or a step-up), 6 digits, 5 minutes, 5 wrong tries.
//!
//! Codes are one-time tokens (kind [`OneTimeTokenKind::SmsOtp`]) keyed by the factor,
//! stored as SHA-256; the text message goes through the outbox in the same transaction.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::MfaService;
use super::{FactorKind, MfaFactor, RecoveryCodes};
use crate::error::{AuthError, AuthResult};
use crate::events::EventKind;
use crate::guard::LimitGroup;
use crate::mail::MailTemplate;
use crate::model::{ClientInfo, NewOneTimeToken, OneTimeTokenKind, TokenHash, User};
use crate::outbox::OutboxJob;
use crate::random::random_bytes;
use crate::sign_in::Authenticated;
use crate::sms::PhoneNumber;

fn phone_context(factor_id: Uuid) -> Vec<u8> {
    format!("auth-core/mfa-sms/v1/{factor_id}").into_bytes()
}

fn code_key(factor_id: Uuid) -> String {
    format!("sms-factor:{factor_id}")
}

fn sms_code_hash(key: &str, code: &str) -> TokenHash {
    let mut h = Sha256::new();
    h.update(b"auth-core/sms-otp/v1\0");
    h.update(key.as_bytes());
    h.update(b"\0");
    h.update(code.as_bytes());
    TokenHash(hex::encode(h.finalize()))
}

/// An SMS enrolment in progress: a code was sent to the number.
#[derive(Debug, Clone)]
pub struct SmsEnrollment {
    /// The pending factor, to activate with the code.
    pub factor_id: Uuid,
    /// The number, masked.
    pub phone: String,
}

impl MfaService {
    fn require_sms(&self) -> AuthResult<()> {
        if self.sms.is_none() {
            return Err(AuthError::NotEnabled("SMS codes"));
        }
        Ok(())
    }

    /// Issue a code for `factor` and queue the text message that carries it.
    async fn send_factor_code(
        &self,
        user: &User,
        factor: &MfaFactor,
        now: DateTime<Utc>,
    ) -> AuthResult<()> {
        let phone = self
            .sealer
            .open(&phone_context(factor.id), &factor.sealed_secret)?;
        let phone = String::from_utf8(phone).map_err(AuthError::internal)?;
        let n = u32::from_be_bytes(random_bytes::<4>(self.rng.as_ref())) % 1_000_000;
        let code = format!("{n:06}");
        let key = code_key(factor.id);
        let ttl = self.mfa_settings.sms_code_ttl;
        let record = NewOneTimeToken {
            token_hash: sms_code_hash(&key, &code),
            kind: OneTimeTokenKind::SmsOtp,
            user_id: Some(user.id),
            email: key,
            created_at: now,
            expires_at: now + ttl,
            redirect_to: None,
        };
        let body = format!(
            "{code} is your {} verification code. It expires in {} minutes.",
            self.mfa_settings.issuer,
            ttl.num_minutes().max(1)
        );
        let message = self
            .outgoing
            .seal(&OutboxJob::Sms { to: phone, body }, now)?;
        self.one_time.issue_one_time_token(&record, &message).await
    }

    /// Check an SMS code against the current code of each active SMS factor of the user;
    /// a wrong code counts against that code (dead after `otp_max_attempts`).
    pub(super) async fn check_sms_code(
        &self,
        user: &User,
        factors: &[MfaFactor],
        code: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<bool> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        for factor in factors.iter().filter(|f| f.kind == FactorKind::Sms) {
            let key = code_key(factor.id);
            let Some(current) = self
                .one_time
                .current_one_time_token(OneTimeTokenKind::SmsOtp, &key, now)
                .await?
            else {
                continue;
            };
            if current.user_id != Some(user.id) {
                continue;
            }
            let presented = sms_code_hash(&key, &code);
            if bool::from(
                presented
                    .0
                    .as_bytes()
                    .ct_eq(current.token_hash.0.as_bytes()),
            ) {
                return Ok(self
                    .one_time
                    .consume_one_time_token(&presented, OneTimeTokenKind::SmsOtp, now)
                    .await?
                    .is_some());
            }
            let max = self.email.otp_max_attempts;
            self.one_time
                .record_failed_attempt(&current.token_hash, max, now)
                .await?;
        }
        Ok(false)
    }

    /// Start enrolling a phone number: a pending SMS factor, and a code sent to it.
    pub async fn enroll_sms(
        &self,
        caller: &Authenticated,
        phone: &str,
        client: &ClientInfo,
    ) -> AuthResult<SmsEnrollment> {
        self.require_sms()?;
        let phone = PhoneNumber::parse(phone)?;
        let user = self.sign_in.me(caller).await?;
        self.guard
            .limit(LimitGroup::MfaVerify, client, Some(&user.id.to_string()))
            .await?;
        if self
            .sign_in
            .active_factors(user.id)
            .await?
            .iter()
            .any(|f| f.kind == FactorKind::Sms)
        {
            return Err(AuthError::MfaAlreadyEnrolled);
        }
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let sealed_secret = self.sealer.seal(
            self.rng.as_ref(),
            &phone_context(id),
            phone.as_str().as_bytes(),
        )?;
        let factor = MfaFactor {
            id,
            user_id: user.id,
            kind: FactorKind::Sms,
            label: Some(phone.masked()),
            sealed_secret,
            created_at: now,
            activated_at: None,
            last_used_step: None,
            last_used_at: None,
            lookup_hash: Some(phone.lookup_hash()),
        };
        self.mfa_store().insert_pending_factor(&factor).await?;
        self.send_factor_code(&user, &factor, now).await?;
        Ok(SmsEnrollment {
            factor_id: id,
            phone: phone.masked(),
        })
    }

    /// Finish an SMS enrolment with the code sent to the number; answers new recovery codes.
    pub async fn activate_sms(
        &self,
        caller: &Authenticated,
        factor_id: Uuid,
        code: &str,
        client: &ClientInfo,
    ) -> AuthResult<RecoveryCodes> {
        self.require_sms()?;
        let user = self.sign_in.me(caller).await?;
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
                    && f.kind == FactorKind::Sms
                    && f.activated_at.is_none()
                    && now < f.created_at + self.mfa_settings.enrollment_ttl
            })
            .ok_or(AuthError::NotFound)?;
        if !self
            .check_sms_code(&user, std::slice::from_ref(&factor), code, now)
            .await?
        {
            self.recorder
                .emit(
                    EventKind::MfaFailed,
                    Some(user.id),
                    Some(caller.session_id),
                    Some(client),
                    Some("factor=sms,activation".into()),
                )
                .await?;
            return Err(AuthError::InvalidCode);
        }
        let (codes, hashes) = self.recovery_codes(user.id);
        let notice = self.outgoing.mail(
            &user.email,
            MailTemplate::MfaFactorAdded,
            &[
                ("name", user.name.clone().unwrap_or_default()),
                (
                    "factor",
                    format!(
                        "The phone number {}",
                        factor.label.clone().unwrap_or_default()
                    ),
                ),
            ],
            now,
        )?;
        if !self
            .mfa_store()
            .activate_factor(user.id, factor_id, 0, &hashes, &notice, now)
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
                Some("factor=sms".into()),
            )
            .await?;
        Ok(codes)
    }

    /// Send an SMS code to the user's active SMS factor: during a sign-in (`mfa_token`) or
    /// for a step-up (`caller`). Rate limited per user.
    pub async fn send_mfa_sms(
        &self,
        mfa_token: Option<&SecretString>,
        caller: Option<&Authenticated>,
        client: &ClientInfo,
    ) -> AuthResult<()> {
        self.require_sms()?;
        let now = self.clock.now();
        let user_id = match (mfa_token, caller) {
            (Some(token), _) => self.live_challenge(token, now).await?.user_id,
            (None, Some(caller)) => caller.user_id,
            (None, None) => {
                return Err(AuthError::InvalidRequest(
                    "mfa_token is required, or a bearer access token".into(),
                ));
            }
        };
        self.guard
            .limit(LimitGroup::MfaVerify, client, Some(&user_id.to_string()))
            .await?;
        let user = self
            .users
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidMfaToken)?;
        let factor = self
            .sign_in
            .active_factors(user.id)
            .await?
            .into_iter()
            .find(|f| f.kind == FactorKind::Sms)
            .ok_or(AuthError::MfaNotEnrolled)?;
        self.send_factor_code(&user, &factor, now).await
    }

    fn require_sms_sign_in(&self) -> AuthResult<()> {
        self.require_sms()?;
        if !self.mfa_settings.sms_passwordless {
            return Err(AuthError::NotEnabled("sign-in by SMS code"));
        }
        Ok(())
    }

    /// Ask for a sign-in code by SMS. The same answer and the same work whatever the
    /// number: one outbox job; the worker sends a code only to the verified number of an
    /// active SMS factor (no account is created by phone).
    pub async fn send_sms_sign_in_code(
        &self,
        phone: &str,
        client: &ClientInfo,
        captcha_token: Option<&str>,
    ) -> AuthResult<()> {
        self.require_sms_sign_in()?;
        self.guard
            .limit(LimitGroup::Passwordless, client, Some(phone.trim()))
            .await?;
        self.guard
            .captcha(
                self.guard_settings.captcha.passwordless,
                captcha_token,
                client,
            )
            .await?;
        let phone = PhoneNumber::parse(phone)?;
        let now = self.clock.now();
        let job = OutboxJob::SmsOtpRequested {
            phone: phone.as_str().to_owned(),
        };
        self.outbox.enqueue(&self.outgoing.seal(&job, now)?).await
    }

    /// The worker's half of [`MfaService::send_sms_sign_in_code`].
    pub(crate) async fn issue_sms_sign_in_code(&self, phone: &str) -> AuthResult<()> {
        let Ok(phone) = PhoneNumber::parse(phone) else {
            return Ok(());
        };
        let Some(factor) = self
            .mfa_store()
            .active_factor_by_lookup(FactorKind::Sms, &phone.lookup_hash())
            .await?
        else {
            return Ok(());
        };
        let Some(user) = self.users.user_by_id(factor.user_id).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        self.send_factor_code(&user, &factor, now).await
    }

    /// Sign in with a code sent by SMS to the verified number of an SMS factor. SMS is one
    /// factor: a user with another active factor (an authenticator app) is then asked for
    /// it ([`crate::mfa::SignInOutcome::MfaRequired`]).
    pub async fn verify_sms_sign_in(
        &self,
        phone: &str,
        code: &str,
        client: ClientInfo,
    ) -> AuthResult<super::SignInOutcome> {
        self.require_sms_sign_in()?;
        self.guard
            .limit(LimitGroup::Passwordless, &client, Some(phone.trim()))
            .await?;
        let phone = PhoneNumber::parse(phone).map_err(|_| AuthError::InvalidCode)?;
        let factor = self
            .mfa_store()
            .active_factor_by_lookup(FactorKind::Sms, &phone.lookup_hash())
            .await?
            .ok_or(AuthError::InvalidCode)?;
        let user = self
            .users
            .user_by_id(factor.user_id)
            .await?
            .ok_or(AuthError::InvalidCode)?;
        let now = self.clock.now();
        let identifier = crate::guard::lockout_identifier(&user.email);
        self.guard.refuse_if_codes_capped(&identifier).await?;
        if !self
            .check_sms_code(&user, std::slice::from_ref(&factor), code, now)
            .await?
        {
            self.guard.count_code_failure(&identifier).await?;
            self.recorder
                .emit(
                    EventKind::MfaFailed,
                    Some(user.id),
                    None,
                    Some(&client),
                    Some("factor=sms,sign_in".into()),
                )
                .await?;
            return Err(AuthError::InvalidCode);
        }
        let outcome = self
            .sign_in
            .finish_first_factor(
                user,
                client.clone(),
                "sms",
                (EventKind::SmsCodeSignIn, None),
                now,
            )
            .await?;
        Ok(outcome)
    }
}
