//! Opaque secret tokens (refresh tokens and the like): generation, hashing, sealing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::model::TokenHash;
use crate::random::{RandomSource, random_bytes};

/// Bytes of entropy in an opaque token (256 bits).
pub const TOKEN_BYTES: usize = 32;

/// A fresh opaque token: 256 random bits, base64url without padding (43 characters).
pub fn generate(rng: &dyn RandomSource) -> SecretString {
    SecretString::from(URL_SAFE_NO_PAD.encode(random_bytes::<TOKEN_BYTES>(rng)))
}

/// The stored form of a token: hex SHA-256.
pub fn hash(token: &str) -> TokenHash {
    TokenHash(hex::encode(Sha256::digest(token.as_bytes())))
}

/// Whether `token` has the shape of a token we issue (cheap filter before any look-up).
pub fn is_well_formed(token: &str) -> bool {
    token.len() == 43
        && URL_SAFE_NO_PAD
            .decode(token)
            .is_ok_and(|b| b.len() == TOKEN_BYTES)
}

fn sealing_pad(predecessor: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"auth-core/refresh-successor/v1\0");
    h.update(predecessor.as_bytes());
    h.finalize().into()
}

/// Seal `successor` so that only a holder of `predecessor` can recover it.
///
/// The pad is a hash of the predecessor under a domain separator (distinct from the lookup
/// hash) and each predecessor seals exactly one successor, so the one-time pad is never
/// reused. The database then holds no usable token, yet a client that presents a just-rotated
/// token within the grace window can be handed the current one.
pub fn seal_successor(predecessor: &SecretString, successor: &SecretString) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(successor.expose_secret()).ok()?;
    let pad = sealing_pad(predecessor.expose_secret());
    if raw.len() != pad.len() {
        return None;
    }
    Some(hex::encode(
        raw.iter().zip(pad).map(|(a, b)| a ^ b).collect::<Vec<u8>>(),
    ))
}

/// Inverse of [`seal_successor`].
pub fn unseal_successor(predecessor: &str, sealed: &str) -> Option<SecretString> {
    let raw = hex::decode(sealed).ok()?;
    let pad = sealing_pad(predecessor);
    if raw.len() != pad.len() {
        return None;
    }
    let plain: Vec<u8> = raw.iter().zip(pad).map(|(a, b)| a ^ b).collect();
    Some(SecretString::from(URL_SAFE_NO_PAD.encode(plain)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn tokens_are_256_bit_and_hashed_with_sha256() {
        let t = generate(&OsRandom);
        assert!(is_well_formed(t.expose_secret()));
        assert_eq!(URL_SAFE_NO_PAD.decode(t.expose_secret()).unwrap().len(), 32);
        let h = hash(t.expose_secret());
        assert_eq!(h.0.len(), 64);
        assert_ne!(h.0, t.expose_secret().to_string());
        assert_ne!(generate(&OsRandom).expose_secret(), t.expose_secret());
    }

    #[test]
    fn sealed_successor_opens_only_with_its_predecessor() {
        let (a, b, c) = (
            generate(&OsRandom),
            generate(&OsRandom),
            generate(&OsRandom),
        );
        let sealed = seal_successor(&a, &b).unwrap();
        assert!(!sealed.contains(b.expose_secret()));
        assert_eq!(
            unseal_successor(a.expose_secret(), &sealed)
                .unwrap()
                .expose_secret(),
            b.expose_secret()
        );
        assert_ne!(
            unseal_successor(c.expose_secret(), &sealed)
                .unwrap()
                .expose_secret(),
            b.expose_secret()
        );
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("not-a-token"));
        assert!(!is_well_formed(&"!".repeat(43)));
    }
}
