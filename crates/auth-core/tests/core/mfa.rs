//! Multi-factor authentication: TOTP (RFC 6238), recovery codes, the MFA challenge of a
//! sign-in and session step-up, on the in-memory store with a manual clock.

use auth_core::AuthError;
use auth_core::clock::{Clock, ManualClock};
use auth_core::events::EventKind;
use auth_core::flows::SignupOutcome;
use auth_core::mfa::{
    FactorKind, MfaRequired, MfaStore, SecondFactor, SignInOutcome, base32_decode, hotp, time_step,
    totp_code,
};
use auth_core::model::ClientInfo;
use auth_core::ports::SessionStore;
use auth_core::service::{Authenticated, IssuedTokens, SignupRequest};
use chrono::{Duration, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::support::{Harness, harness};

const PASSWORD: &str = "correct horse battery";
const EMAIL: &str = "ada@example.com";

fn s(v: &str) -> SecretString {
    SecretString::from(v)
}

async fn signed_up(h: &Harness) -> (Authenticated, IssuedTokens) {
    let req = SignupRequest {
        email: EMAIL.into(),
        password: s(PASSWORD),
        name: None,
        captcha_token: None,
    };
    let SignupOutcome::SignedIn(t) = h
        .service
        .mailbox()
        .signup(req, ClientInfo::default())
        .await
        .unwrap()
    else {
        panic!("expected to be signed in")
    };
    (
        h.service
            .sessions()
            .authenticate(&t.access_token)
            .await
            .unwrap(),
        *t,
    )
}

/// Enrol and activate TOTP; returns the raw secret and the recovery codes.
async fn with_totp(h: &Harness, caller: &Authenticated) -> (Vec<u8>, Vec<String>) {
    let enrollment = h
        .service
        .mfa()
        .enroll_totp(caller, Some("phone".into()))
        .await
        .unwrap();
    assert!(
        enrollment
            .otpauth_uri
            .expose_secret()
            .starts_with("otpauth://totp/Auth:ada%40example.com?secret=")
    );
    let secret = base32_decode(enrollment.secret.expose_secret()).unwrap();
    assert_eq!(secret.len(), 20);
    let code = totp_code(&secret, time_step(h.clock.now()));
    let codes = h
        .service
        .mfa()
        .activate_totp(caller, enrollment.factor_id, &code, &ClientInfo::default())
        .await
        .unwrap();
    let codes = codes
        .0
        .iter()
        .map(|c| c.expose_secret().to_owned())
        .collect();
    (secret, codes)
}

async fn login(h: &Harness) -> SignInOutcome {
    h.service
        .sessions()
        .login(EMAIL, &s(PASSWORD), ClientInfo::default(), None)
        .await
        .unwrap()
}

async fn mfa_required(h: &Harness) -> MfaRequired {
    login(h)
        .await
        .mfa_required()
        .expect("a second factor is required")
}

fn current_code(h: &Harness, secret: &[u8]) -> String {
    totp_code(secret, time_step(h.clock.now()))
}

async fn verify(
    h: &Harness,
    m: &MfaRequired,
    f: SecondFactor,
    code: &str,
) -> Result<IssuedTokens, AuthError> {
    h.service
        .mfa()
        .verify_mfa(&m.mfa_token, f, code, ClientInfo::default())
        .await
}

#[test]
fn totp_matches_the_rfc_6238_sha1_vectors_under_a_manual_clock() {
    // RFC 6238 appendix B, SHA-1 column (8 digits), and the 6-digit codes we issue.
    let secret = b"12345678901234567890";
    let vectors = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];
    let clock = ManualClock::new(Utc.timestamp_opt(0, 0).unwrap());
    let mut at = 0;
    for (t, expected) in vectors {
        clock.advance(Duration::seconds(t - at));
        at = t;
        let step = time_step(clock.now());
        assert_eq!(hotp(secret, step as u64, 8), expected, "T = {t}");
        assert_eq!(totp_code(secret, step), expected[2..], "T = {t}");
    }
}

#[tokio::test]
async fn a_user_without_factor_signs_in_at_aal1_and_enrolment_needs_a_valid_first_code() {
    let h = harness();
    let (caller, _) = signed_up(&h).await;
    let t = login(&h).await.tokens().expect("no second factor yet");
    let claims = h
        .service
        .sessions()
        .authenticate(&t.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(
        (claims.amr, claims.aal),
        (vec!["pwd".to_owned()], "aal1".to_owned())
    );

    let enrollment = h.service.mfa().enroll_totp(&caller, None).await.unwrap();
    let secret = base32_decode(enrollment.secret.expose_secret()).unwrap();
    let wrong = totp_code(&secret, time_step(h.clock.now()) + 5);
    assert!(matches!(
        h.service
            .mfa()
            .activate_totp(
                &caller,
                enrollment.factor_id,
                &wrong,
                &ClientInfo::default()
            )
            .await,
        Err(AuthError::InvalidCode)
    ));
    // A pending factor does not protect the account yet, and is not listed.
    assert!(login(&h).await.tokens().is_some());
    assert!(!h.service.mfa().mfa_status(&caller).await.unwrap().enabled);
    // The secret is stored sealed, never in clear.
    let stored = h.store.factors_of(caller.user_id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0]
            .sealed_secret
            .windows(secret.len())
            .any(|w| w == secret)
    );

    let code = current_code(&h, &secret);
    let codes = h
        .service
        .mfa()
        .activate_totp(&caller, enrollment.factor_id, &code, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(codes.0.len(), 10);
    let status = h.service.mfa().mfa_status(&caller).await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.factors.len(), 1);
    assert_eq!(status.factors[0].label, None);
    assert_eq!(status.recovery_codes_remaining, 10);
    assert!(h.events.kinds().contains(&EventKind::MfaFactorAdded));
    h.deliver().await;
    assert_eq!(h.mailer.to(EMAIL, "mfa_factor_added").len(), 1);
    // One TOTP factor at a time.
    assert!(matches!(
        h.service.mfa().enroll_totp(&caller, None).await,
        Err(AuthError::MfaAlreadyEnrolled)
    ));
}

#[tokio::test]
async fn login_with_totp_needs_the_mfa_token_and_a_fresh_code_and_gives_aal2() {
    let h = harness();
    let (caller, _) = signed_up(&h).await;
    let (secret, _) = with_totp(&h, &caller).await;

    let m = mfa_required(&h).await;
    assert_eq!(m.factors, vec!["totp", "recovery_code"]);
    assert_eq!(m.expires_at, h.clock.now() + Duration::minutes(5));
    // The code that activated the factor was spent: its replay is refused.
    let used = current_code(&h, &secret);
    assert!(matches!(
        verify(&h, &m, SecondFactor::Totp, &used).await,
        Err(AuthError::InvalidCode)
    ));

    h.clock.advance(Duration::seconds(30));
    let code = current_code(&h, &secret);
    let t = verify(&h, &m, SecondFactor::Totp, &code).await.unwrap();
    let claims = h
        .service
        .sessions()
        .authenticate(&t.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(claims.amr, vec!["pwd", "otp"]);
    assert_eq!(claims.aal, "aal2");
    // The refresh token keeps the level.
    let refreshed = h
        .service
        .sessions()
        .refresh(&t.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    let claims = h
        .service
        .sessions()
        .authenticate(&refreshed.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(claims.aal, "aal2");

    // The mfa_token is single use, and the same code cannot serve twice.
    assert!(matches!(
        verify(&h, &m, SecondFactor::Totp, &code).await,
        Err(AuthError::InvalidMfaToken)
    ));
    let again = mfa_required(&h).await;
    assert!(matches!(
        verify(&h, &again, SecondFactor::Totp, &code).await,
        Err(AuthError::InvalidCode)
    ));
    assert!(h.events.kinds().contains(&EventKind::MfaVerified));
    assert!(h.events.kinds().contains(&EventKind::MfaFailed));
}

#[tokio::test]
async fn one_step_of_clock_skew_is_accepted_either_side_and_no_more() {
    let h = harness();
    let (caller, _) = signed_up(&h).await;
    let (secret, _) = with_totp(&h, &caller).await;
    h.clock.advance(Duration::minutes(10));
    let now = time_step(h.clock.now());

    let m = mfa_required(&h).await;
    for far in [now - 2, now + 2] {
        assert!(matches!(
            verify(&h, &m, SecondFactor::Totp, &totp_code(&secret, far)).await,
            Err(AuthError::InvalidCode)
        ));
    }
    verify(&h, &m, SecondFactor::Totp, &totp_code(&secret, now - 1))
        .await
        .unwrap();
    let m = mfa_required(&h).await;
    verify(&h, &m, SecondFactor::Totp, &totp_code(&secret, now + 1))
        .await
        .unwrap();
    // Steps only move forward: the current step is now behind the last one used.
    let m = mfa_required(&h).await;
    assert!(matches!(
        verify(&h, &m, SecondFactor::Totp, &totp_code(&secret, now)).await,
        Err(AuthError::InvalidCode)
    ));
}

#[tokio::test]
async fn an_mfa_token_dies_after_five_wrong_codes_and_after_five_minutes() {
    let h = harness();
    let (caller, _) = signed_up(&h).await;
    let (secret, _) = with_totp(&h, &caller).await;
    h.clock.advance(Duration::seconds(30));

    let m = mfa_required(&h).await;
    for _ in 0..5 {
        assert!(matches!(
            verify(&h, &m, SecondFactor::Totp, "000000").await,
            Err(AuthError::InvalidCode)
        ));
    }
    let right = current_code(&h, &secret);
    assert!(matches!(
        verify(&h, &m, SecondFactor::Totp, &right).await,
        Err(AuthError::InvalidMfaToken)
    ));

    let m = mfa_required(&h).await;
    h.clock.advance(Duration::minutes(5));
    let right = current_code(&h, &secret);
    assert!(matches!(
        verify(&h, &m, SecondFactor::Totp, &right).await,
        Err(AuthError::InvalidMfaToken)
    ));
    assert!(matches!(
        h.service
            .mfa()
            .verify_mfa(
                &s("not-a-token"),
                SecondFactor::Totp,
                &right,
                ClientInfo::default()
            )
            .await,
        Err(AuthError::InvalidMfaToken)
    ));
    // No session was opened by any of this.
    let sessions = h.store.unrevoked_sessions_of(caller.user_id).await.unwrap();
    assert!(sessions.iter().all(|x| x.aal == "aal1"));
}

#[tokio::test]
async fn recovery_codes_work_once_each_and_the_owner_is_told() {
    let h = harness();
    let (caller, _) = signed_up(&h).await;
    let (_, codes) = with_totp(&h, &caller).await;
    assert_eq!(codes.len(), 10);
    assert_eq!(
        codes.iter().collect::<std::collections::HashSet<_>>().len(),
        10
    );

    let m = mfa_required(&h).await;
    let t = verify(&h, &m, SecondFactor::RecoveryCode, &codes[0].to_uppercase())
        .await
        .unwrap();
    let claims = h
        .service
        .sessions()
        .authenticate(&t.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(claims.amr, vec!["pwd", "recovery_code"]);
    assert_eq!(claims.aal, "aal2");
    assert_eq!(
        h.service
            .mfa()
            .mfa_status(&caller)
            .await
            .unwrap()
            .recovery_codes_remaining,
        9
    );

    let m = mfa_required(&h).await;
    assert!(matches!(
        verify(&h, &m, SecondFactor::RecoveryCode, &codes[0]).await,
        Err(AuthError::InvalidCode)
    ));
    assert!(h.events.kinds().contains(&EventKind::RecoveryCodeUsed));
    h.deliver().await;
    assert_eq!(
        h.mailer
            .value(EMAIL, "recovery_code_used", "remaining")
            .as_deref(),
        Some("9")
    );
}

#[tokio::test]
async fn an_aal1_session_steps_up_to_aal2_with_a_code() {
    let h = harness();
    let (caller, first) = signed_up(&h).await;
    let (secret, codes) = with_totp(&h, &caller).await;
    assert_eq!(caller.claims.aal, "aal1");

    assert!(matches!(
        h.service
            .mfa()
            .step_up(&caller, SecondFactor::Totp, "123", &ClientInfo::default())
            .await,
        Err(AuthError::InvalidCode)
    ));
    h.clock.advance(Duration::seconds(30));
    let code = current_code(&h, &secret);
    let stepped = h
        .service
        .mfa()
        .step_up(&caller, SecondFactor::Totp, &code, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(stepped.session_id, caller.session_id);
    let claims = h
        .service
        .sessions()
        .authenticate(&stepped.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(
        (claims.aal.as_str(), claims.amr.clone()),
        ("aal2", vec!["pwd".to_owned(), "otp".to_owned()])
    );
    // The session itself moved: its refresh token now gives aal2 tokens.
    let refreshed = h
        .service
        .sessions()
        .refresh(&first.refresh_token, &ClientInfo::default())
        .await
        .unwrap();
    let claims = h
        .service
        .sessions()
        .authenticate(&refreshed.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(claims.aal, "aal2");
    // A recovery code steps up too (and is spent).
    h.service
        .mfa()
        .step_up(
            &caller,
            SecondFactor::RecoveryCode,
            &codes[3],
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        h.service
            .mfa()
            .mfa_status(&caller)
            .await
            .unwrap()
            .recovery_codes_remaining,
        9
    );
}

#[tokio::test]
async fn removing_a_factor_or_regenerating_codes_needs_a_fresh_second_factor() {
    let h = harness();
    let (caller, _) = signed_up(&h).await;
    let (secret, codes) = with_totp(&h, &caller).await;
    let factor = h.service.mfa().mfa_status(&caller).await.unwrap().factors[0].id;
    let c = ClientInfo::default();

    assert!(matches!(
        h.service
            .mfa()
            .remove_mfa_factor(&caller, factor, None, &c)
            .await,
        Err(AuthError::InvalidCode)
    ));
    assert!(matches!(
        h.service
            .mfa()
            .remove_mfa_factor(&caller, factor, Some((SecondFactor::Totp, "000000")), &c)
            .await,
        Err(AuthError::InvalidCode)
    ));
    assert!(h.service.mfa().mfa_status(&caller).await.unwrap().enabled);

    // Regenerate with a recovery code: every old code dies, ten new ones work.
    let fresh = h
        .service
        .mfa()
        .regenerate_recovery_codes(&caller, (SecondFactor::RecoveryCode, &codes[0]), &c)
        .await
        .unwrap();
    assert_eq!(fresh.0.len(), 10);
    let m = mfa_required(&h).await;
    assert!(matches!(
        verify(&h, &m, SecondFactor::RecoveryCode, &codes[1]).await,
        Err(AuthError::InvalidCode)
    ));
    verify(
        &h,
        &m,
        SecondFactor::RecoveryCode,
        fresh.0[0].expose_secret(),
    )
    .await
    .unwrap();
    assert!(
        h.events
            .kinds()
            .contains(&EventKind::RecoveryCodesRegenerated)
    );

    h.clock.advance(Duration::seconds(30));
    let code = current_code(&h, &secret);
    h.service
        .mfa()
        .remove_mfa_factor(&caller, factor, Some((SecondFactor::Totp, &code)), &c)
        .await
        .unwrap();
    let status = h.service.mfa().mfa_status(&caller).await.unwrap();
    assert!(!status.enabled);
    assert_eq!(status.recovery_codes_remaining, 0);
    assert!(login(&h).await.tokens().is_some(), "MFA is off again");
    assert!(h.events.kinds().contains(&EventKind::MfaFactorRemoved));
    h.deliver().await;
    assert_eq!(h.mailer.to(EMAIL, "mfa_factor_removed").len(), 1);
    assert!(matches!(
        h.service
            .mfa()
            .remove_mfa_factor(&caller, factor, None, &c)
            .await,
        Err(AuthError::NotFound)
    ));
    assert!(matches!(
        h.service
            .mfa()
            .step_up(&caller, SecondFactor::Totp, &code, &c)
            .await,
        Err(AuthError::MfaNotEnrolled)
    ));
}

#[tokio::test]
async fn magic_links_and_email_codes_also_stop_at_the_second_factor() {
    let h = harness();
    let (caller, _) = signed_up(&h).await;
    h.verify_email(caller.user_id, EMAIL).await;
    let (secret, _) = with_totp(&h, &caller).await;
    let c = ClientInfo::default();

    h.service
        .mailbox()
        .request_magic_link(EMAIL, None, &c, None)
        .await
        .unwrap();
    h.deliver().await;
    let token = h.mailer.token(EMAIL, "magic_link").unwrap();
    let signed = h
        .service
        .mailbox()
        .verify_magic_link(&s(&token), c.clone())
        .await
        .unwrap();
    let m = signed
        .outcome
        .mfa_required()
        .expect("second factor required");
    h.clock.advance(Duration::seconds(30));
    let t = verify(&h, &m, SecondFactor::Totp, &current_code(&h, &secret))
        .await
        .unwrap();
    let claims = h
        .service
        .sessions()
        .authenticate(&t.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(claims.amr, vec!["email", "otp"]);

    h.service
        .mailbox()
        .send_email_code(EMAIL, &c, None)
        .await
        .unwrap();
    h.deliver().await;
    let code = h.mailer.value(EMAIL, "email_otp", "code").unwrap();
    let outcome = h
        .service
        .mailbox()
        .verify_email_code(EMAIL, &code, c)
        .await
        .unwrap();
    assert!(outcome.mfa_required().is_some());
}

#[tokio::test]
async fn sms_codes_enrol_a_number_and_serve_as_a_second_factor_once_each() {
    let h = harness();
    let (caller, _) = signed_up(&h).await;
    let c = ClientInfo::default();
    assert!(matches!(
        h.service.mfa().enroll_sms(&caller, "0612345678", &c).await,
        Err(AuthError::InvalidField { field: "phone", .. })
    ));
    let enrollment = h
        .service
        .mfa()
        .enroll_sms(&caller, "+33 6 12 34 56 78", &c)
        .await
        .unwrap();
    assert_eq!(enrollment.phone, "+•••••••••78");
    h.deliver().await;
    let code = h.sms.last_code("+33612345678").expect("an SMS with a code");
    // The pending number is no authenticator app: the TOTP activation does not know it.
    assert!(matches!(
        h.service
            .mfa()
            .activate_totp(&caller, enrollment.factor_id, &code, &c)
            .await,
        Err(AuthError::NotFound)
    ));
    h.service
        .mfa()
        .activate_sms(&caller, enrollment.factor_id, &code, &c)
        .await
        .unwrap();

    let m = mfa_required(&h).await;
    assert_eq!(m.factors, vec!["sms", "recovery_code"]);
    h.service
        .mfa()
        .send_mfa_sms(Some(&m.mfa_token), None, &c)
        .await
        .unwrap();
    h.deliver().await;
    let code = h.sms.last_code("+33612345678").unwrap();
    // The activation code is spent; five wrong codes kill the current one.
    for _ in 0..5 {
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(verify(&h, &m, SecondFactor::Sms, wrong).await.is_err());
    }
    let m = mfa_required(&h).await;
    assert!(matches!(
        verify(&h, &m, SecondFactor::Sms, &code).await,
        Err(AuthError::InvalidCode)
    ));
    // A new rate-limit window (the failures above count against the account too).
    h.clock.advance(Duration::minutes(5));
    let m = mfa_required(&h).await;
    h.service
        .mfa()
        .send_mfa_sms(Some(&m.mfa_token), None, &c)
        .await
        .unwrap();
    h.deliver().await;
    let code = h.sms.last_code("+33612345678").unwrap();
    let t = verify(&h, &m, SecondFactor::Sms, &code).await.unwrap();
    let claims = h
        .service
        .sessions()
        .authenticate(&t.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(
        (claims.amr, claims.aal),
        (vec!["pwd".to_owned(), "sms".to_owned()], "aal2".to_owned())
    );
    // Codes expire after five minutes.
    let m = mfa_required(&h).await;
    h.service
        .mfa()
        .send_mfa_sms(Some(&m.mfa_token), None, &c)
        .await
        .unwrap();
    h.deliver().await;
    let code = h.sms.last_code("+33612345678").unwrap();
    h.clock.advance(Duration::minutes(5));
    let m = mfa_required(&h).await;
    assert!(matches!(
        verify(&h, &m, SecondFactor::Sms, &code).await,
        Err(AuthError::InvalidCode)
    ));

    // Removed with a fresh code; the owner's mail names the factor removed.
    h.service
        .mfa()
        .send_mfa_sms(None, Some(&caller), &c)
        .await
        .unwrap();
    h.deliver().await;
    let code = h.sms.last_code("+33612345678").unwrap();
    h.service
        .mfa()
        .remove_mfa_factor(
            &caller,
            enrollment.factor_id,
            Some((SecondFactor::Sms, &code)),
            &c,
        )
        .await
        .unwrap();
    h.deliver().await;
    assert_eq!(
        h.mailer
            .value(EMAIL, "mfa_factor_removed", "factor")
            .as_deref(),
        Some("Text messages to your phone")
    );
}

#[tokio::test]
async fn the_pending_enrolment_of_a_kind_is_found_until_it_is_activated_or_expires() {
    let h = harness();
    let (caller, _) = signed_up(&h).await;
    assert_eq!(
        h.service
            .mfa()
            .pending_factor(&caller, FactorKind::Totp)
            .await
            .unwrap(),
        None
    );
    let first = h.service.mfa().enroll_totp(&caller, None).await.unwrap();
    // Enrolling again replaces the pending factor: the newer one is found.
    let second = h.service.mfa().enroll_totp(&caller, None).await.unwrap();
    assert_ne!(first.factor_id, second.factor_id);
    assert_eq!(
        h.service
            .mfa()
            .pending_factor(&caller, FactorKind::Totp)
            .await
            .unwrap(),
        Some(second.factor_id)
    );
    assert_eq!(
        h.service
            .mfa()
            .pending_factor(&caller, FactorKind::Sms)
            .await
            .unwrap(),
        None
    );
    // Expired enrolments are not offered.
    h.clock.advance(Duration::minutes(16));
    assert_eq!(
        h.service
            .mfa()
            .pending_factor(&caller, FactorKind::Totp)
            .await
            .unwrap(),
        None
    );
    // Once active, nothing is pending.
    let third = h.service.mfa().enroll_totp(&caller, None).await.unwrap();
    let secret = base32_decode(third.secret.expose_secret()).unwrap();
    h.service
        .mfa()
        .activate_totp(
            &caller,
            third.factor_id,
            &current_code(&h, &secret),
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        h.service
            .mfa()
            .pending_factor(&caller, FactorKind::Totp)
            .await
            .unwrap(),
        None
    );
}

/// An embedder's WebAuthn adapter whose assertions say whether the authenticator verified
/// the user: `{"user": <id>, "uv": bool, "counter": n}` (the signature checks are the
/// adapter's business; the rule tested here is the core's).
struct Ceremonies;

impl auth_core::passkeys::PasskeyCeremonies for Ceremonies {
    fn start_registration(
        &self,
        _: &auth_core::model::User,
        _: &[Vec<u8>],
    ) -> auth_core::error::AuthResult<(serde_json::Value, Vec<u8>)> {
        Ok((serde_json::json!({}), b"registration".to_vec()))
    }
    fn finish_registration(
        &self,
        _: &serde_json::Value,
        _: &[u8],
    ) -> auth_core::error::AuthResult<auth_core::passkeys::RegisteredCredential> {
        Ok(auth_core::passkeys::RegisteredCredential {
            credential_id: b"credential-1".to_vec(),
            credential: "credential".into(),
            counter: 0,
        })
    }
    fn start_authentication(&self) -> auth_core::error::AuthResult<(serde_json::Value, Vec<u8>)> {
        Ok((serde_json::json!({}), b"authentication".to_vec()))
    }
    fn identify(
        &self,
        response: &serde_json::Value,
    ) -> auth_core::error::AuthResult<auth_core::passkeys::AssertionIdentity> {
        Ok(auth_core::passkeys::AssertionIdentity {
            user_handle: response["user"].as_str().unwrap().parse().unwrap(),
            credential_id: b"credential-1".to_vec(),
        })
    }
    fn finish_authentication(
        &self,
        response: &serde_json::Value,
        _: &[u8],
        _: &str,
    ) -> auth_core::error::AuthResult<auth_core::passkeys::VerifiedAssertion> {
        Ok(auth_core::passkeys::VerifiedAssertion {
            counter: u32::try_from(response["counter"].as_u64().unwrap()).unwrap(),
            user_verified: response["uv"].as_bool().unwrap(),
            credential: "credential".into(),
        })
    }
}

/// Issue 14, hole 10: a passkey without user verification is one factor. A user with TOTP
/// who presents it is asked for the second factor, like after a password; with user
/// verification the passkey is two factors (`aal2`). Adding a passkey needs `aal2` once
/// the user has a factor.
#[tokio::test]
async fn a_passkey_without_user_verification_goes_through_the_second_factor() {
    let h = crate::support::harness_with_ceremonies(
        std::sync::Arc::new(auth_core::memory::MemoryStore::new()),
        auth_core::AuthSettings::default(),
        crate::support::fast_hashing(),
        Some(std::sync::Arc::new(Ceremonies)),
    );
    let (caller, _) = signed_up(&h).await;
    let (secret, _) = with_totp(&h, &caller).await;
    // The sign-up session (aal1, from before the factor) cannot plant a passkey.
    assert!(matches!(
        h.service
            .passkeys()
            .passkey_registration_start(&caller)
            .await,
        Err(AuthError::StepUpRequired)
    ));
    h.clock.advance(Duration::seconds(30));
    let stepped = h
        .service
        .mfa()
        .step_up(
            &caller,
            SecondFactor::Totp,
            &current_code(&h, &secret),
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let aal2 = h
        .service
        .sessions()
        .authenticate(&stepped.access_token)
        .await
        .unwrap();
    let start = h
        .service
        .passkeys()
        .passkey_registration_start(&aal2)
        .await
        .unwrap();
    // Started at aal2, finished with the aal1 token: refused as well.
    assert!(matches!(
        h.service
            .passkeys()
            .passkey_registration_finish(
                &caller,
                &start.ceremony_id,
                &serde_json::json!({}),
                None,
                &ClientInfo::default()
            )
            .await,
        Err(AuthError::StepUpRequired)
    ));
    let start = h
        .service
        .passkeys()
        .passkey_registration_start(&aal2)
        .await
        .unwrap();
    h.service
        .passkeys()
        .passkey_registration_finish(
            &aal2,
            &start.ceremony_id,
            &serde_json::json!({}),
            None,
            &ClientInfo::default(),
        )
        .await
        .unwrap();

    let user = caller.user_id.to_string();
    let sign_in = |uv: bool, counter: u32| {
        let user = user.clone();
        let h = &h;
        async move {
            let start = h
                .service
                .passkeys()
                .passkey_login_start(&ClientInfo::default())
                .await
                .unwrap();
            h.service
                .passkeys()
                .passkey_login_finish(
                    &start.ceremony_id,
                    &serde_json::json!({"user": user, "uv": uv, "counter": counter}),
                    ClientInfo::default(),
                )
                .await
                .unwrap()
        }
    };
    let SignInOutcome::MfaRequired(challenge) = sign_in(false, 1).await else {
        panic!("a passkey without user verification signed in past the second factor")
    };
    assert!(challenge.factors.contains(&"totp".to_owned()));
    h.clock.advance(Duration::seconds(30));
    let tokens = verify(
        &h,
        &challenge,
        SecondFactor::Totp,
        &current_code(&h, &secret),
    )
    .await
    .unwrap();
    let claims = h
        .service
        .sessions()
        .authenticate(&tokens.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(claims.aal, "aal2");
    assert_eq!(claims.amr, vec!["hwk".to_owned(), "otp".to_owned()]);

    let SignInOutcome::SignedIn(verified) = sign_in(true, 2).await else {
        panic!("a user-verifying passkey is two factors")
    };
    let claims = h
        .service
        .sessions()
        .authenticate(&verified.access_token)
        .await
        .unwrap()
        .claims;
    assert_eq!(claims.aal, "aal2");
    assert_eq!(claims.amr, vec!["hwk".to_owned(), "user".to_owned()]);
}
