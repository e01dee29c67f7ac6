//! Password policy and password hashing (Argon2id behind the [`PasswordHasher`] port).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use argon2::password_hash::{Output, ParamsString};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::email::Email;
use crate::error::ConfigError;
use crate::error::{AuthError, AuthResult};
use crate::random::{OsRandom, random_bytes};

/// The shipped list of common passwords (Django's list, about 20,000 entries, lowercase).
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// A required character class: (enabled, name, membership test).
type CharClassRule = (bool, &'static str, fn(char) -> bool);

pub use crate::error::PasswordRejection;

/// The configurable password policy. No composition rules by default (NIST SP 800-63B).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Minimum length in characters (at least 8).
    pub min_length: usize,
    /// Maximum length in characters (24 to 1024).
    pub max_length: usize,
    /// Reject passwords from the shipped common-password list.
    pub reject_common: bool,
    /// Require a lowercase letter.
    pub require_lowercase: bool,
    /// Require an uppercase letter.
    pub require_uppercase: bool,
    /// Require a digit.
    pub require_digit: bool,
    /// Require a character that is neither a letter nor a digit.
    pub require_symbol: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 128,
            reject_common: true,
            require_lowercase: false,
            require_uppercase: false,
            require_digit: false,
            require_symbol: false,
        }
    }
}

impl PasswordPolicy {
    /// Check that the policy itself is sane; the message names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_length < 8 {
            return Err("password_policy.min_length must be at least 8".into());
        }
        if !(24..=1024).contains(&self.max_length) {
            return Err("password_policy.max_length must be between 24 and 1024".into());
        }
        if self.min_length > self.max_length {
            return Err("password_policy.min_length must not exceed max_length".into());
        }
        Ok(())
    }

    /// Check a candidate password, optionally against the account's email.
    pub fn check(&self, password: &str, email: Option<&Email>) -> Result<(), PasswordRejection> {
        let len = password.chars().count();
        if len < self.min_length {
            return Err(PasswordRejection::TooShort {
                min: self.min_length,
            });
        }
        if len > self.max_length {
            return Err(PasswordRejection::TooLong {
                max: self.max_length,
            });
        }
        let classes: [CharClassRule; 4] = [
            (self.require_lowercase, "lowercase", char::is_lowercase),
            (self.require_uppercase, "uppercase", char::is_uppercase),
            (self.require_digit, "digit", |c| c.is_ascii_digit()),
            (self.require_symbol, "symbol", |c| !c.is_alphanumeric()),
        ];
        for (required, name, test) in classes {
            if required && !password.chars().any(test) {
                return Err(PasswordRejection::MissingClass(name));
            }
        }
        let lowered = password.to_lowercase();
        if email.is_some_and(|e| e.canonical() == lowered) {
            return Err(PasswordRejection::SameAsEmail);
        }
        if self.reject_common && COMMON_PASSWORDS.contains(lowered.as_str()) {
            return Err(PasswordRejection::Common);
        }
        Ok(())
    }
}

/// Outcome of verifying a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordMatch {
    /// Wrong password.
    Mismatch,
    /// Right password; `needs_rehash` when the stored hash uses other parameters.
    Match {
        /// The stored hash should be replaced by one with the current parameters.
        needs_rehash: bool,
    },
}

/// Port: turns passwords into stored hashes and checks them.
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hash a password for storage (PHC string).
    async fn hash(&self, password: &SecretString) -> AuthResult<String>;
    /// Verify a password against a stored PHC string.
    async fn verify(&self, password: &SecretString, stored: &str) -> AuthResult<PasswordMatch>;
    /// Spend the same work as [`PasswordHasher::verify`] for an account that does not exist,
    /// so response time does not reveal which emails are registered.
    async fn verify_dummy(&self, password: &SecretString) -> AuthResult<()>;
}

/// Argon2id parameters.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashingConfig {
    /// Memory cost in KiB (OWASP: 19456).
    pub memory_kib: u32,
    /// Iterations (OWASP: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
    /// How many hashes may run at once; 0 means one per CPU core.
    pub max_concurrent: usize,
    /// How many hash requests may wait for a free hashing thread; one more is refused at
    /// once ([`AuthError::Overloaded`], 503 with `Retry-After`) instead of queueing.
    pub max_waiting: usize,
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 0,
            max_waiting: 64,
        }
    }
}

impl HashingConfig {
    fn params(&self) -> Result<Params, ConfigError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| format!("password_hashing: invalid Argon2 parameters: {e}").into())
    }

    /// Check the parameters; the message names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_waiting == 0 {
            return Err("password_hashing.max_waiting: must be at least 1".into());
        }
        self.params().map(|_| ())
    }
}

/// Argon2id on a bounded set of blocking threads, never on the async workers.
pub struct Argon2Hasher {
    argon2: Argon2<'static>,
    jobs: std::sync::mpsc::Sender<HashJob>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    threads: usize,
    dummy_hash: String,
    stats: Arc<HashCounters>,
}

/// Counters of the hashing threads, read by metrics at scrape time.
#[derive(Debug, Default)]
struct HashCounters {
    completed: AtomicU64,
    busy_nanos: AtomicU64,
    waited_nanos: AtomicU64,
    refused: AtomicU64,
    abandoned: AtomicU64,
}

/// What the hashing threads did so far (see [`Argon2Hasher::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingStats {
    /// Hash or verify requests waiting for a free hashing thread right now.
    pub queue_depth: usize,
    /// Hashes and verifications completed since start.
    pub completed: u64,
    /// Total time spent hashing, in nanoseconds.
    pub busy_nanos: u64,
    /// Total time requests waited in the queue, in nanoseconds.
    pub waited_nanos: u64,
    /// Requests refused because the queue was full.
    pub refused: u64,
    /// Queued requests dropped unhashed because their caller had gone away.
    pub abandoned: u64,
}

/// Work for a hashing thread: the hasher and the thread's own working memory.
type HashJob = Box<dyn FnOnce(&Argon2<'static>, &mut [Block]) + Send>;

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher")
            .field("params", self.argon2.params())
            .finish_non_exhaustive()
    }
}

impl Argon2Hasher {
    /// Build a hasher: a fixed set of hashing threads (one per core by default) fed by a
    /// queue, each owning `memory_kib` of Argon2 working memory allocated at its first hash. Memory then
    /// stays at `threads x memory_kib` whatever the load (allocating it per hash let the
    /// allocator's heaps grow to hundreds of MiB). The dummy hash is computed once with
    /// the same parameters.
    pub fn new(config: &HashingConfig) -> Result<Self, ConfigError> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, config.params()?);
        let slots = if config.max_concurrent == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            config.max_concurrent
        };
        let dummy_secret = hex::encode(random_bytes::<16>(&OsRandom));
        let dummy_hash = hash_with(&argon2, dummy_secret.as_bytes()).map_err(|e| e.to_string())?;
        let (jobs, queue) = std::sync::mpsc::channel::<HashJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        let waiting = Arc::new(AtomicUsize::new(0));
        for i in 0..slots {
            let (queue, waiting, argon2) = (queue.clone(), waiting.clone(), argon2.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    // Allocated at the first hash, then reused for every later one.
                    let mut memory: Vec<Block> = Vec::new();
                    loop {
                        // The lock is held only while taking the next job.
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = next else { break }; // the hasher was dropped
                        waiting.fetch_sub(1, Ordering::Relaxed);
                        if memory.is_empty() {
                            memory = vec![Block::default(); argon2.params().block_count()];
                        }
                        job(&argon2, &mut memory);
                    }
                })
                .map_err(|e| format!("cannot start a hashing thread: {e}"))?;
        }
        Ok(Self {
            argon2,
            jobs,
            waiting,
            max_waiting: config.max_waiting.max(1),
            threads: slots,
            dummy_hash,
            stats: Arc::default(),
        })
    }

    /// Queue depth now, and counters since start (cheap: atomic loads).
    pub fn stats(&self) -> HashingStats {
        HashingStats {
            queue_depth: self.queue_depth(),
            completed: self.stats.completed.load(Ordering::Relaxed),
            busy_nanos: self.stats.busy_nanos.load(Ordering::Relaxed),
            waited_nanos: self.stats.waited_nanos.load(Ordering::Relaxed),
            refused: self.stats.refused.load(Ordering::Relaxed),
            abandoned: self.stats.abandoned.load(Ordering::Relaxed),
        }
    }

    /// Hash requests waiting for a free hashing thread right now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Argon2<'static>, &mut [Block]) -> T + Send + 'static,
    ) -> AuthResult<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let stats = self.stats.clone();
        let queued_at = std::time::Instant::now();
        let ahead = self.waiting.fetch_add(1, Ordering::Relaxed);
        if ahead >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                waiting = ahead,
                "password hashing queue full; request refused"
            );
            return Err(AuthError::Overloaded {
                retry_after_secs: self.drain_secs(ahead),
            });
        }
        let queued = self.jobs.send(Box::new(
            move |argon2: &Argon2<'static>, memory: &mut [Block]| {
                // Whoever asked stopped waiting (the client went away and its request
                // was dropped): no hash for nobody.
                if done.is_closed() {
                    stats.abandoned.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let _entered = span.enter();
                let started = std::time::Instant::now();
                let nanos =
                    |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                stats
                    .waited_nanos
                    .fetch_add(nanos(started - queued_at), Ordering::Relaxed);
                let out = job(argon2, memory);
                stats
                    .busy_nanos
                    .fetch_add(nanos(started.elapsed()), Ordering::Relaxed);
                stats.completed.fetch_add(1, Ordering::Relaxed);
                // The caller may have gone away; then the result is simply dropped.
                let _ = done.send(out);
            },
        ));
        if queued.is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(AuthError::internal("hashing threads are gone"));
        }
        result
            .await
            .map_err(|_| AuthError::internal("a hashing thread failed"))
    }

    /// About how long the hashing threads need for `waiting` queued requests (at the
    /// average hash time so far), in whole seconds from 1 to 60: the `Retry-After` of a
    /// refusal.
    fn drain_secs(&self, waiting: usize) -> u64 {
        let completed = self.stats.completed.load(Ordering::Relaxed);
        let busy = self.stats.busy_nanos.load(Ordering::Relaxed);
        // Before any hash completed: a tenth of a second, about one hash at the defaults.
        let per_hash = busy.checked_div(completed).unwrap_or(100_000_000);
        let queued = u64::try_from(waiting).unwrap_or(u64::MAX);
        let threads = u64::try_from(self.threads).unwrap_or(1).max(1);
        let nanos = queued.saturating_mul(per_hash) / threads;
        nanos.div_ceil(1_000_000_000).clamp(1, 60)
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&random_bytes::<16>(&OsRandom))?;
    Ok(argon2.hash_password(password, &salt)?.to_string())
}

/// Like [`hash_with`], in the caller's working memory.
fn hash_in(
    argon2: &Argon2<'_>,
    memory: &mut [Block],
    password: &[u8],
) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&random_bytes::<16>(&OsRandom))?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let params = argon2.params();
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    argon2.hash_password_into_with_memory(password, salt_bytes, &mut out, memory)?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// A bcrypt hash (`$2a$`, `$2b$`, `$2x$` or `$2y$`), as other backends store them.
fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

/// Check that a password hash brought from another backend is one this server verifies:
/// an Argon2 PHC string or a bcrypt hash. Such hashes are replaced by an Argon2id hash
/// with the current parameters at the account's first password sign-in.
pub fn check_imported_hash(stored: &str) -> Result<(), ConfigError> {
    if is_bcrypt(stored) {
        // `$2b$10$` + 22 characters of salt + 31 of hash.
        let cost = stored.get(4..6).and_then(|c| c.parse::<u32>().ok());
        let well_formed = stored.len() == 60
            && stored.as_bytes()[6] == b'$'
            && cost.is_some_and(|c| (4..=31).contains(&c))
            && stored[7..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/');
        return if well_formed {
            Ok(())
        } else {
            Err("is not a well-formed bcrypt hash".into())
        };
    }
    let parsed = PasswordHash::new(stored)
        .map_err(|_| "is neither a bcrypt hash nor an Argon2 PHC string".to_owned())?;
    Algorithm::try_from(parsed.algorithm)
        .map_err(|_| "names an unsupported algorithm".to_owned())?;
    Params::try_from(&parsed).map_err(|e| format!("has bad Argon2 parameters: {e}"))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("has no salt or no hash".into());
    }
    Ok(())
}

fn verify_with(
    argon2: &Argon2<'_>,
    memory: &mut [Block],
    password: &[u8],
    stored: &str,
) -> Result<PasswordMatch, String> {
    if is_bcrypt(stored) {
        // Imported from another backend: verified as bcrypt (which reads only the first
        // 72 bytes), then upgraded to Argon2id by the caller.
        return match bcrypt::verify(password, stored) {
            Ok(true) => Ok(PasswordMatch::Match { needs_rehash: true }),
            Ok(false) => Ok(PasswordMatch::Mismatch),
            Err(e) => Err(format!("stored bcrypt hash does not parse: {e}")),
        };
    }
    let parsed =
        PasswordHash::new(stored).map_err(|e| format!("stored hash does not parse: {e}"))?;
    // Verify with the parameters recorded in the hash, whatever the current ones are.
    let stored_params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| e.to_string())?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let verifier = Argon2::new(algorithm, version, stored_params.clone());
    let matches = match (&parsed.salt, &parsed.hash) {
        // The usual case: same memory size as ours, so hash in the thread's own memory.
        (Some(salt), Some(expected)) if stored_params.block_count() == memory.len() => {
            let mut salt_bytes = [0u8; 64];
            let salt_bytes = salt
                .decode_b64(&mut salt_bytes)
                .map_err(|e| e.to_string())?;
            let mut out = vec![0u8; expected.len()];
            verifier
                .hash_password_into_with_memory(password, salt_bytes, &mut out, &mut *memory)
                .map_err(|e| e.to_string())?;
            bool::from(subtle::ConstantTimeEq::ct_eq(
                out.as_slice(),
                expected.as_bytes(),
            ))
        }
        _ => verifier.verify_password(password, &parsed).is_ok(),
    };
    if !matches {
        return Ok(PasswordMatch::Mismatch);
    }
    let current = argon2.params();
    let needs_rehash = algorithm != Algorithm::Argon2id
        || version != Version::V0x13
        || stored_params.m_cost() != current.m_cost()
        || stored_params.t_cost() != current.t_cost()
        || stored_params.p_cost() != current.p_cost();
    Ok(PasswordMatch::Match { needs_rehash })
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &SecretString) -> AuthResult<String> {
        let password = SecretString::from(password.expose_secret());
        self.run(move |a, memory| hash_in(a, memory, password.expose_secret().as_bytes()))
            .await?
            .map_err(AuthError::internal)
    }

    async fn verify(&self, password: &SecretString, stored: &str) -> AuthResult<PasswordMatch> {
        let password = SecretString::from(password.expose_secret());
        let stored = stored.to_owned();
        self.run(move |a, memory| {
            verify_with(a, memory, password.expose_secret().as_bytes(), &stored)
        })
        .await?
        .map_err(AuthError::Internal)
    }

    async fn verify_dummy(&self, password: &SecretString) -> AuthResult<()> {
        let dummy = self.dummy_hash.clone();
        self.verify(password, &dummy).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> HashingConfig {
        HashingConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
            max_waiting: 64,
        }
    }

    #[test]
    fn an_empty_queue_bound_is_refused() {
        let none = HashingConfig {
            max_waiting: 0,
            ..fast()
        };
        let e = none.validate().unwrap_err();
        assert!(e.message().contains("password_hashing.max_waiting"), "{e}");
    }

    #[test]
    fn default_policy_accepts_a_plain_long_password() {
        assert_eq!(
            PasswordPolicy::default().check("correct horse battery", None),
            Ok(())
        );
    }

    #[test]
    fn default_policy_enforces_length_in_characters_not_bytes() {
        let p = PasswordPolicy::default();
        assert_eq!(
            p.check("short", None),
            Err(PasswordRejection::TooShort { min: 8 })
        );
        // Eight multi-byte characters are eight characters.
        assert_eq!(p.check("ééééééé€", None), Ok(()));
        assert_eq!(
            p.check(&"x".repeat(129), None),
            Err(PasswordRejection::TooLong { max: 128 })
        );
        assert_eq!(p.check(&"xq".repeat(64), None), Ok(()));
    }

    #[test]
    fn common_passwords_are_rejected_case_insensitively() {
        let p = PasswordPolicy::default();
        assert_eq!(p.check("password1", None), Err(PasswordRejection::Common));
        assert_eq!(p.check("Password1", None), Err(PasswordRejection::Common));
        assert_eq!(p.check("qwertyuiop", None), Err(PasswordRejection::Common));
        assert!(COMMON_PASSWORDS.len() >= 10_000);
    }

    #[test]
    fn password_equal_to_email_is_rejected() {
        let email = Email::parse("Someone@Example.com").unwrap();
        assert_eq!(
            PasswordPolicy::default().check("someone@example.com", Some(&email)),
            Err(PasswordRejection::SameAsEmail)
        );
    }

    #[test]
    fn optional_composition_rules_apply_when_enabled() {
        let p = PasswordPolicy {
            require_lowercase: true,
            require_uppercase: true,
            require_digit: true,
            require_symbol: true,
            max_length: 24,
            ..PasswordPolicy::default()
        };
        assert!(p.validate().is_ok());
        assert_eq!(
            p.check("ALLUPPERCASE1!", None),
            Err(PasswordRejection::MissingClass("lowercase"))
        );
        assert_eq!(
            p.check("alllowercase1!", None),
            Err(PasswordRejection::MissingClass("uppercase"))
        );
        assert_eq!(
            p.check("NoDigitsHere!", None),
            Err(PasswordRejection::MissingClass("digit"))
        );
        assert_eq!(
            p.check("NoSymbols123", None),
            Err(PasswordRejection::MissingClass("symbol"))
        );
        assert_eq!(p.check("Tr1cky-Horse", None), Ok(()));
        assert_eq!(
            p.check(&"Aa1!".repeat(7), None),
            Err(PasswordRejection::TooLong { max: 24 })
        );
    }

    #[test]
    fn policy_validation_names_the_key() {
        let p = PasswordPolicy {
            max_length: 16,
            ..PasswordPolicy::default()
        };
        assert!(p.validate().unwrap_err().message().contains("max_length"));
        let p = PasswordPolicy {
            min_length: 4,
            ..PasswordPolicy::default()
        };
        assert!(p.validate().unwrap_err().message().contains("min_length"));
    }

    #[test]
    fn owasp_parameters_are_the_default() {
        let c = HashingConfig::default();
        assert_eq!((c.memory_kib, c.iterations, c.parallelism), (19456, 2, 1));
    }

    #[tokio::test]
    async fn hash_then_verify_round_trips_and_detects_old_parameters() {
        let hasher = Argon2Hasher::new(&fast()).unwrap();
        let pw = SecretString::from("correct horse battery");
        let stored = hasher.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(
            hasher.verify(&pw, &stored).await.unwrap(),
            PasswordMatch::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify(&SecretString::from("wrong"), &stored)
                .await
                .unwrap(),
            PasswordMatch::Mismatch
        );

        let stronger = Argon2Hasher::new(&HashingConfig {
            memory_kib: 2048,
            ..fast()
        })
        .unwrap();
        assert_eq!(
            stronger.verify(&pw, &stored).await.unwrap(),
            PasswordMatch::Match { needs_rehash: true }
        );
        hasher.verify_dummy(&pw).await.unwrap();
    }

    #[tokio::test]
    async fn bcrypt_hashes_of_other_backends_verify_and_ask_for_an_upgrade() {
        let hasher = Argon2Hasher::new(&fast()).unwrap();
        // The first vector of Openwall's crypt_blowfish test suite.
        let vector = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        let upgrade = PasswordMatch::Match { needs_rehash: true };
        assert_eq!(
            hasher
                .verify(&SecretString::from("U*U"), vector)
                .await
                .unwrap(),
            upgrade
        );
        assert_eq!(
            hasher
                .verify(&SecretString::from("U*V"), vector)
                .await
                .unwrap(),
            PasswordMatch::Mismatch
        );
        // $2b$ (bcrypt, node bcrypt) and $2y$ (PHP) are the same algorithm.
        let b = bcrypt::hash("correct horse battery", 4).unwrap();
        assert!(b.starts_with("$2b$04$"));
        let y = b.replacen("$2b$", "$2y$", 1);
        for stored in [&b, &y] {
            check_imported_hash(stored).unwrap();
            let pw = SecretString::from("correct horse battery");
            assert_eq!(hasher.verify(&pw, stored).await.unwrap(), upgrade);
        }
        check_imported_hash(vector).unwrap();
        check_imported_hash(&hasher.hash(&SecretString::from("x")).await.unwrap()).unwrap();
    }

    #[test]
    fn imported_hashes_must_be_verifiable() {
        for bad in [
            "",
            "plain-text-password",
            "$2b$04$short",
            "$2b$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$pbkdf2-sha256$29000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ",
        ] {
            assert!(check_imported_hash(bad).is_err(), "{bad}");
        }
    }
}
