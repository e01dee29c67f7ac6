//! Abuse protection: rate limits, account lockout, CAPTCHA and breached-password checks.
//! The rules live here; counters live behind [`RateLimitStore`] and [`LockoutStore`] so
//! several nodes on one database share them.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;

use crate::error::AuthResult;

/// Storage of rate-limit counters (fixed windows).
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Count one hit of `key` in the window that starts at `window_start`, atomically
    /// (one upsert), and return the count including this hit.
    async fn hit(&self, key: &str, window_start: DateTime<Utc>) -> AuthResult<u32>;
    /// Delete counters of windows that started before `cutoff`.
    async fn purge_windows_before(&self, cutoff: DateTime<Utc>) -> AuthResult<u64>;
}

/// Failed sign-ins and locks of an identifier (a canonical email, known or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutState {
    /// Failures counted in the current window.
    pub failures: u32,
    /// Locked until then, when locked.
    pub locked_until: Option<DateTime<Utc>>,
}

/// Storage of login failures and locks.
#[async_trait]
pub trait LockoutStore: Send + Sync {
    /// The lock of `identifier`, if it is locked at `now`.
    async fn locked_until(
        &self,
        identifier: &str,
        now: DateTime<Utc>,
    ) -> AuthResult<Option<DateTime<Utc>>>;
    /// Atomically count a failure: a window older than `window` restarts at 1; when the
    /// count reaches `threshold` the identifier is locked until `now + freeze` and the
    /// count restarts. Returns the state after this failure.
    async fn register_failure(
        &self,
        identifier: &str,
        now: DateTime<Utc>,
        window: Duration,
        threshold: u32,
        freeze: Duration,
    ) -> AuthResult<LockoutState>;
    /// Forget the failures and any lock of exactly `identifier` (a successful sign-in).
    async fn clear(&self, identifier: &str) -> AuthResult<()>;
    /// Forget `identifier` and every identifier under it (`identifier#...`): an account's
    /// lock and its failures from every client and surface (administrator unlock, deletion).
    async fn clear_all(&self, identifier: &str) -> AuthResult<()>;
}

/// Port: a CAPTCHA provider's siteverify API (hCaptcha, Turnstile, reCAPTCHA).
#[async_trait]
pub trait CaptchaVerifier: Send + Sync {
    /// Whether the provider accepts `token` (from `remote_ip`). `Err` when the provider
    /// cannot be asked.
    async fn verify(
        &self,
        token: &str,
        remote_ip: Option<&str>,
    ) -> Result<bool, crate::error::AdapterError>;
}

/// Port: a breached-password corpus (HIBP k-anonymity range API).
#[async_trait]
pub trait BreachedPasswords: Send + Sync {
    /// How often the password appears in known breaches (0: never). `Err` when the
    /// service cannot be asked.
    async fn breach_count(
        &self,
        password: &SecretString,
    ) -> Result<u64, crate::error::AdapterError>;
}

/// A limit: at most `max` hits per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Hits allowed per window.
    pub max: u32,
    /// Window length.
    pub window: Duration,
}

/// Route groups with their own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitGroup {
    /// Password sign-in.
    Login,
    /// Sign-up.
    Signup,
    /// Refresh-token exchange.
    Refresh,
    /// Forgot and reset password.
    PasswordReset,
    /// Magic links and email codes (sending and verifying).
    Passwordless,
    /// Second-factor verification.
    MfaVerify,
    /// Token introspection.
    Introspection,
}

impl LimitGroup {
    /// Name used in counter keys and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Signup => "signup",
            Self::Refresh => "refresh",
            Self::PasswordReset => "password_reset",
            Self::Passwordless => "passwordless",
            Self::MfaVerify => "mfa_verify",
            Self::Introspection => "introspection",
        }
    }
}

/// The limits of one group, by client IP and by account identifier (email).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupLimits {
    /// Per client IP.
    pub per_ip: Option<Limit>,
    /// Per normalised email (or phone).
    pub per_identifier: Option<Limit>,
}

/// Account lockout after repeated failed password sign-ins.
///
/// Failures are counted per account, per client (its address, an IPv6 client by its
/// network) and per surface (`scope`): a client that fails `threshold` times locks the
/// account for itself only, so nobody can lock an owner out from their own address, and
/// a compatibility profile's stricter lock does not lock the canonical API. Guessing from
/// many addresses is bounded by the per-account rate limit instead. An administrator's
/// lock holds for every client and surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Whether failures lock accounts.
    pub enabled: bool,
    /// The surface whose failures these are (`api` for the canonical API, a profile's
    /// name for its own rules).
    pub scope: &'static str,
    /// Failures that lock.
    pub threshold: u32,
    /// Within this window.
    pub window: Duration,
    /// For this long.
    pub freeze: Duration,
    /// Wrong one-time codes (the 6-digit email, SMS and authenticator codes) an account
    /// may get in 24 hours, from every client together; then codes are refused for the
    /// rest of the day whatever they are. 0 turns the cap off.
    pub code_failures_per_day: u32,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            scope: "api",
            threshold: 5,
            window: Duration::minutes(2),
            freeze: Duration::minutes(15),
            code_failures_per_day: 50,
        }
    }
}

/// Where a CAPTCHA is required (when a verifier is configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptchaSettings {
    /// On sign-up.
    pub signup: bool,
    /// On password sign-in.
    pub login: bool,
    /// On forgot-password.
    pub password_reset: bool,
    /// On magic-link and code sending.
    pub passwordless: bool,
}

/// All abuse-protection rules.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    /// Whether rate limits apply at all.
    pub rate_limits_enabled: bool,
    /// Limits per group.
    pub limits: std::collections::HashMap<LimitGroup, GroupLimits>,
    /// Lockout rules.
    pub lockout: LockoutSettings,
    /// CAPTCHA requirements.
    pub captcha: CaptchaSettings,
    /// Minimum zxcvbn score (0 to 4) of new passwords; 0 disables the check.
    pub min_password_score: u8,
    /// Per-IP limits count IPv6 clients by this prefix (64: one household or server gets
    /// a whole /64 and could otherwise rotate addresses inside it); 128 counts addresses.
    pub ipv6_prefix_len: u8,
}

/// The per-IP counter key of `ip`: IPv4 addresses (and IPv4-mapped IPv6) as they are, IPv6
/// addresses by their `prefix_len` network. What does not parse is counted as given.
pub fn ip_group(ip: &str, prefix_len: u8) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let prefix = u32::from(prefix_len.min(128));
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{network}/{prefix}")
        }
        Ok(std::net::IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(|| ip.to_owned(), |v4| v4.to_string()),
        _ => ip.to_owned(),
    }
}

fn limit(max: u32, secs: i64) -> Option<Limit> {
    Some(Limit {
        max,
        window: Duration::seconds(secs),
    })
}

impl Default for GuardSettings {
    fn default() -> Self {
        use LimitGroup as G;
        let limits = [
            (
                G::Login,
                GroupLimits {
                    per_ip: limit(30, 60),
                    per_identifier: limit(10, 60),
                },
            ),
            (
                G::Signup,
                GroupLimits {
                    per_ip: limit(20, 600),
                    per_identifier: None,
                },
            ),
            (
                G::Refresh,
                GroupLimits {
                    per_ip: limit(600, 60),
                    per_identifier: None,
                },
            ),
            (
                G::PasswordReset,
                GroupLimits {
                    per_ip: limit(20, 600),
                    per_identifier: limit(5, 3600),
                },
            ),
            (
                G::Passwordless,
                GroupLimits {
                    per_ip: limit(30, 600),
                    per_identifier: limit(10, 600),
                },
            ),
            (
                G::MfaVerify,
                GroupLimits {
                    per_ip: limit(30, 300),
                    per_identifier: limit(10, 300),
                },
            ),
            (
                G::Introspection,
                GroupLimits {
                    per_ip: limit(1200, 60),
                    per_identifier: None,
                },
            ),
        ]
        .into_iter()
        .collect();
        Self {
            rate_limits_enabled: true,
            limits,
            lockout: LockoutSettings::default(),
            captcha: CaptchaSettings::default(),
            min_password_score: 0,
            ipv6_prefix_len: 64,
        }
    }
}

/// The start of the fixed window of length `window` that contains `now`.
pub fn window_start(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    let len = window.num_milliseconds().max(1);
    let start = now.timestamp_millis().div_euclid(len) * len;
    DateTime::from_timestamp_millis(start).unwrap_or(now)
}

/// Seconds until `until`, at least 1 (for `Retry-After`).
pub fn seconds_until(until: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let ms = (until - now).num_milliseconds().max(0);
    u64::try_from(ms.div_euclid(1000) + i64::from(ms % 1000 != 0))
        .unwrap_or(1)
        .max(1)
}

/// A counter key that does not hold the email in clear.
pub fn identifier_key(group: LimitGroup, identifier: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(identifier.trim().to_lowercase().as_bytes());
    format!("{}:id:{}", group.as_str(), &hex::encode(digest)[..32])
}

/// The abuse guard every sign-in and mailbox flow passes: rate limits, lockout, CAPTCHA
/// and the rules of a new password.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) settings: GuardSettings,
    pub(crate) password_policy: crate::password::PasswordPolicy,
    pub(crate) clock: std::sync::Arc<dyn crate::clock::Clock>,
    pub(crate) rate_limits: std::sync::Arc<dyn RateLimitStore>,
    pub(crate) lockouts: std::sync::Arc<dyn LockoutStore>,
    pub(crate) captcha: Option<std::sync::Arc<dyn CaptchaVerifier>>,
    pub(crate) breached: Option<std::sync::Arc<dyn BreachedPasswords>>,
    pub(crate) outbox: std::sync::Arc<dyn crate::ports::OutboxStore>,
    pub(crate) outgoing: crate::outbox::Outgoing,
    pub(crate) recorder: crate::record::Recorder,
}

impl Guard {
    /// Count one request of `group` against its per-IP and per-identifier limits.
    pub(crate) async fn limit(
        &self,
        group: LimitGroup,
        client: &crate::model::ClientInfo,
        identifier: Option<&str>,
    ) -> AuthResult<()> {
        let guard = &self.settings;
        if !guard.rate_limits_enabled {
            return Ok(());
        }
        let Some(limits) = guard.limits.get(&group) else {
            return Ok(());
        };
        let now = self.clock.now();
        let keyed = [
            (
                limits.per_ip,
                client.ip.as_ref().map(|ip| {
                    format!(
                        "{}:ip:{}",
                        group.as_str(),
                        ip_group(ip, guard.ipv6_prefix_len)
                    )
                }),
            ),
            (
                limits.per_identifier,
                identifier.map(|id| identifier_key(group, id)),
            ),
        ];
        for (limit, key) in keyed {
            let (Some(limit), Some(key)) = (limit, key) else {
                continue;
            };
            let start = window_start(now, limit.window);
            let hits = self.rate_limits.hit(&key, start).await?;
            if hits > limit.max {
                let retry_after_secs = seconds_until(start + limit.window, now);
                tracing::info!(group = group.as_str(), retry_after_secs, "rate limited");
                return Err(crate::AuthError::RateLimited { retry_after_secs });
            }
        }
        Ok(())
    }

    /// Check a CAPTCHA token when `required` and a verifier is configured.
    pub(crate) async fn captcha(
        &self,
        required: bool,
        token: Option<&str>,
        client: &crate::model::ClientInfo,
    ) -> AuthResult<()> {
        let Some(verifier) = self.captcha.as_ref().filter(|_| required) else {
            return Ok(());
        };
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(crate::AuthError::CaptchaRequired)?;
        match verifier.verify(token, client.ip.as_deref()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(crate::AuthError::CaptchaFailed),
            Err(e) => Err(crate::AuthError::Unavailable(format!(
                "captcha provider: {e}"
            ))),
        }
    }

    /// Every rule for a new password: the policy, the zxcvbn score, known breaches. A
    /// breach service that cannot be asked lets the password through (with a log line).
    pub(crate) async fn check_new_password(
        &self,
        password: &SecretString,
        email: Option<&crate::email::Email>,
    ) -> AuthResult<()> {
        use crate::AuthError::WeakPassword;
        use crate::password::PasswordRejection;
        use secrecy::ExposeSecret;
        let plain = password.expose_secret();
        self.password_policy
            .check(plain, email)
            .map_err(WeakPassword)?;
        let min_score = self.settings.min_password_score;
        if min_score > 0 {
            let inputs: Vec<String> = email.map(|e| e.canonical()).into_iter().collect();
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let score = zxcvbn::zxcvbn(plain, &inputs).score() as u8;
            if score < min_score {
                return Err(WeakPassword(PasswordRejection::TooGuessable { min_score }));
            }
        }
        if let Some(breached) = &self.breached {
            match breached.breach_count(password).await {
                Ok(0) => {}
                Ok(_) => return Err(WeakPassword(PasswordRejection::Breached)),
                Err(e) => {
                    tracing::warn!(error = %e, "breached-password check unavailable; password accepted")
                }
            }
        }
        Ok(())
    }

    /// The counter of `identifier`'s failures from `client` on this surface.
    fn lockout_key(&self, identifier: &str, client: &crate::model::ClientInfo) -> String {
        let guard = &self.settings;
        let from = client
            .ip
            .as_deref()
            .map_or_else(|| "-".to_owned(), |ip| ip_group(ip, guard.ipv6_prefix_len));
        format!("{identifier}#{}#{from}", guard.lockout.scope)
    }

    /// Refuse a sign-in while `identifier` is locked for `client`: by its own failures on
    /// this surface, or by an administrator (for everyone).
    pub(crate) async fn refuse_if_locked(
        &self,
        identifier: &str,
        client: &crate::model::ClientInfo,
    ) -> AuthResult<()> {
        if !self.settings.lockout.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        for key in [identifier.to_owned(), self.lockout_key(identifier, client)] {
            if let Some(until) = self.lockouts.locked_until(&key, now).await? {
                return Err(crate::AuthError::AccountLocked {
                    retry_after_secs: seconds_until(until, now),
                });
            }
        }
        Ok(())
    }

    /// Forget `client`'s failures after it signed in.
    pub(crate) async fn clear_failures(
        &self,
        identifier: &str,
        client: &crate::model::ClientInfo,
    ) -> AuthResult<()> {
        if !self.settings.lockout.enabled {
            return Ok(());
        }
        let key = self.lockout_key(identifier, client);
        self.lockouts.clear(&key).await
    }

    /// Count a failed sign-in of `client`; when it locks an existing account, mail its
    /// owner (once per freeze period, however many clients lock themselves out).
    pub(crate) async fn count_failure(
        &self,
        identifier: &str,
        client: &crate::model::ClientInfo,
        account: Option<&crate::model::User>,
    ) -> AuthResult<()> {
        let lockout = self.settings.lockout;
        if !lockout.enabled {
            return Ok(());
        }
        let now = self.clock.now();
        let state = self
            .lockouts
            .register_failure(
                &self.lockout_key(identifier, client),
                now,
                lockout.window,
                lockout.threshold,
                lockout.freeze,
            )
            .await?;
        if state.failures >= lockout.threshold && state.locked_until.is_some() {
            let user_id = account.map(|u| u.id);
            self.recorder
                .emit(
                    crate::events::EventKind::AccountLocked,
                    user_id,
                    None,
                    Some(client),
                    None,
                )
                .await?;
            let Some(user) = account else {
                return Ok(());
            };
            let notice_key = format!(
                "lock_notice:{}",
                identifier_key(LimitGroup::Login, identifier)
            );
            let notices = self
                .rate_limits
                .hit(&notice_key, window_start(now, lockout.freeze))
                .await?;
            if notices == 1 {
                let minutes = lockout.freeze.num_minutes().max(1).to_string();
                let name = user.name.clone().unwrap_or_default();
                let values = [("locked_minutes", minutes), ("name", name)];
                let notice = self.outgoing.mail(
                    &user.email,
                    crate::mail::MailTemplate::AccountLocked,
                    &values,
                    now,
                )?;
                self.outbox.enqueue(&notice).await?;
            }
        }
        Ok(())
    }

    /// Refuse a one-time code for `identifier` (the account's lockout identifier) once it
    /// reached its daily cap of wrong codes, before the code is looked at (no oracle).
    pub(crate) async fn refuse_if_codes_capped(&self, identifier: &str) -> AuthResult<()> {
        let lockout = self.settings.lockout;
        if !lockout.enabled || lockout.code_failures_per_day == 0 {
            return Ok(());
        }
        let now = self.clock.now();
        let key = format!("{identifier}#codes");
        match self.lockouts.locked_until(&key, now).await? {
            Some(until) => {
                tracing::info!("one-time codes capped for the day");
                Err(crate::AuthError::RateLimited {
                    retry_after_secs: seconds_until(until, now),
                })
            }
            None => Ok(()),
        }
    }

    /// Count a wrong one-time code against the account's daily cap. A right code does not
    /// reset it: the owner's sign-ins give a guesser no fresh tries.
    pub(crate) async fn count_code_failure(&self, identifier: &str) -> AuthResult<()> {
        let lockout = self.settings.lockout;
        if !lockout.enabled || lockout.code_failures_per_day == 0 {
            return Ok(());
        }
        let day = Duration::days(1);
        let now = self.clock.now();
        let key = format!("{identifier}#codes");
        self.lockouts
            .register_failure(&key, now, day, lockout.code_failures_per_day, day)
            .await
            .map(drop)
    }

    /// Lift every lock of an account and forget its failures, from every client and
    /// surface (administrators).
    pub(crate) async fn unlock(&self, email: &str) -> AuthResult<()> {
        let identifier = lockout_identifier(email);
        self.lockouts.clear_all(&identifier).await
    }
}

/// The lockout identifier of what was typed as an email (known or not, valid or not).
pub fn lockout_identifier(email: &str) -> String {
    crate::email::Email::parse(email)
        .map(|e| e.canonical())
        .unwrap_or_else(|_| email.trim().to_lowercase())
}

#[cfg(test)]
mod ip_group_tests {
    use super::ip_group;

    #[test]
    fn ipv6_clients_count_by_their_network() {
        assert_eq!(ip_group("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(ip_group("2001:db8:1:2:ffff:1:2:3", 64), "2001:db8:1:2::/64");
        assert_eq!(ip_group("2001:db8:1:3::1", 64), "2001:db8:1:3::/64");
        assert_eq!(ip_group("2001:db8:1:2::1", 128), "2001:db8:1:2::1/128");
        assert_eq!(ip_group("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(ip_group("2001:db8::1", 0), "::/0");
        assert_eq!(ip_group("203.0.113.9", 64), "203.0.113.9");
        assert_eq!(ip_group("::ffff:203.0.113.9", 64), "203.0.113.9");
        assert_eq!(ip_group("not an ip", 64), "not an ip");
    }
}
