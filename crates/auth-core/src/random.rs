//! Randomness as a port.

/// Source of cryptographically secure random bytes.
pub trait RandomSource: Send + Sync {
    /// Fill `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // The OS generator failing is unrecoverable: continuing would mint guessable tokens.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("operating system random source failed");
    }
}

/// `N` random bytes from `rng`.
pub fn random_bytes<const N: usize>(rng: &dyn RandomSource) -> [u8; N] {
    let mut buf = [0u8; N];
    rng.fill(&mut buf);
    buf
}
