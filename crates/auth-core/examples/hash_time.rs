//! How long one password hash takes with the default parameters (OWASP Argon2id,
//! m=19456 KiB, t=2, p=1), as the benchmark harness (`make bench`) needs it to compute the
//! login bound `cores / one-hash time`.
//!
//! Run with `cargo run --release -p auth-core --example hash_time [-- RUNS]` (default 20).
//! Prints `key=value` lines; the harness reads `hash_median_ms`.
//!
//! Three measurements:
//! - `direct`: `argon2` itself, one hash at a time on this thread (the pure cost);
//! - `hasher`: through [`Argon2Hasher`] on a tokio runtime (what the server pays: the
//!   hand-off to its hashing threads on top);
//! - `parallel`: one hashing thread per CPU, all at once, for the achievable hashes/s when
//!   every core hashes (memory bandwidth and SMT siblings can make it less than
//!   `cores / one-hash time`).

use std::io::Write as _;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use auth_core::password::{Argon2Hasher, HashingConfig, PasswordHasher as _};
use secrecy::SecretString;

type Error = Box<dyn std::error::Error + Send + Sync>;

const PASSWORD: &str = "bench-passphrase-7f3a9c";
const WARM_UP: usize = 2;

fn argon2_of(config: &HashingConfig) -> Result<Argon2<'static>, Error> {
    let params = Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        None,
    )
    .map_err(|e| e.to_string())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_once(argon2: &Argon2<'_>, n: usize) -> Result<Duration, Error> {
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&(n as u64).to_le_bytes());
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let hash = argon2
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    std::hint::black_box(hash);
    Ok(elapsed)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, min and max in milliseconds.
fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let n = samples.len();
    let median = if n % 2 == 1 {
        ms(samples[n / 2])
    } else {
        (ms(samples[n / 2 - 1]) + ms(samples[n / 2])) / 2.0
    };
    (median, ms(samples[0]), ms(samples[n - 1]))
}

fn main() -> Result<(), Error> {
    let runs: usize = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|e| format!("RUNS must be a positive number: {e}"))?,
        None => 20,
    };
    if runs == 0 {
        return Err("RUNS must be a positive number".into());
    }
    let config = HashingConfig::default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let argon2 = argon2_of(&config)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "hash_params=argon2id,m={},t={},p={}",
        config.memory_kib, config.iterations, config.parallelism
    )?;
    writeln!(out, "runs={runs}")?;
    writeln!(out, "cores={cores}")?;

    // 1. argon2 directly, sequentially.
    for i in 0..WARM_UP {
        hash_once(&argon2, i)?;
    }
    let direct = (0..runs)
        .map(|i| hash_once(&argon2, WARM_UP + i))
        .collect::<Result<Vec<_>, _>>()?;
    let (median, min, max) = summary(direct);
    writeln!(out, "direct_median_ms={median:.3}")?;
    writeln!(out, "direct_min_ms={min:.3}")?;
    writeln!(out, "direct_max_ms={max:.3}")?;

    // 2. Through the server's hasher on a tokio runtime, one at a time.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    let hasher_samples = runtime.block_on(async {
        let hasher = Argon2Hasher::new(&config)?;
        let password = SecretString::from(PASSWORD);
        let mut samples = Vec::with_capacity(runs);
        for i in 0..WARM_UP + runs {
            let start = Instant::now();
            let hash = hasher.hash(&password).await.map_err(|e| e.to_string())?;
            if i >= WARM_UP {
                samples.push(start.elapsed());
            }
            std::hint::black_box(hash);
        }
        Ok::<_, Error>(samples)
    })?;
    let (hasher_median, hasher_min, hasher_max) = summary(hasher_samples);
    writeln!(out, "hasher_median_ms={hasher_median:.3}")?;
    writeln!(out, "hasher_min_ms={hasher_min:.3}")?;
    writeln!(out, "hasher_max_ms={hasher_max:.3}")?;

    // 3. Every core hashing at once.
    let per_thread = runs.max(4);
    let start = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|t| {
            let argon2 = argon2.clone();
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|i| hash_once(&argon2, 1000 * (t + 1) + i))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    let mut parallel = Vec::new();
    for thread in threads {
        parallel.extend(thread.join().map_err(|_| "a hashing thread panicked")??);
    }
    let wall = start.elapsed();
    let (parallel_median, _, _) = summary(parallel);
    let throughput = (cores * per_thread) as f64 / wall.as_secs_f64();
    writeln!(out, "parallel_threads={cores}")?;
    writeln!(out, "parallel_median_ms={parallel_median:.3}")?;
    writeln!(out, "parallel_hashes_per_sec={throughput:.2}")?;

    // The figure the harness uses: the pure single-hash cost.
    writeln!(out, "hash_median_ms={median:.3}")?;
    writeln!(
        out,
        "login_bound_per_sec={:.2}",
        cores as f64 * 1000.0 / median
    )?;
    Ok(())
}
