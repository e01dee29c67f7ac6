use std::sync::Arc;

use auth_core::clock::ManualClock;
use auth_core::jwt::{JwtIssuer, KeySet, SigningAlgorithm};
use auth_core::memory::MemoryStore;
use auth_core::password::{Argon2Hasher, HashingConfig};
use auth_core::random::OsRandom;
use auth_core::service::{AuthService, AuthSettings, Ports};
use chrono::{TimeZone, Utc};

pub const ISSUER: &str = "https://auth.test";
pub const AUDIENCE: &str = "authenticated";

pub fn key_pem(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn ed25519_issuer() -> JwtIssuer {
    let keys = KeySet::from_private_pem(
        SigningAlgorithm::EdDSA,
        &key_pem("ed25519-private.pem"),
        None,
    )
    .unwrap();
    JwtIssuer::new(keys, ISSUER, AUDIENCE, 0)
}

/// Cheap Argon2 parameters: these tests are about rules, not hashing cost.
pub fn fast_hashing() -> HashingConfig {
    HashingConfig {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 4,
    }
}

pub struct Harness {
    pub service: AuthService,
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
}

pub fn harness_with(settings: AuthSettings, hashing: HashingConfig) -> Harness {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap(),
    ));
    let ports = Ports {
        users: store.clone(),
        sessions: store.clone(),
        hasher: Arc::new(Argon2Hasher::new(&hashing).unwrap()),
        tokens: Arc::new(ed25519_issuer()),
        clock: clock.clone(),
        rng: Arc::new(OsRandom),
    };
    Harness {
        service: AuthService::new(ports, settings),
        store,
        clock,
    }
}

pub fn harness() -> Harness {
    harness_with(AuthSettings::default(), fast_hashing())
}
