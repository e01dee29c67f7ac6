//! Encryption at rest for recoverable secrets (pending outbound messages that carry a link,
//! and later TOTP secrets): XChaCha20-Poly1305 with key ids, so keys can rotate.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::error::ConfigError;
use crate::error::{AuthError, AuthResult};
use crate::random::{RandomSource, random_bytes};

const VERSION: u8 = 1;

/// Seals and opens small secrets. The first key encrypts; every key decrypts.
pub struct SecretBox {
    keys: Vec<(u8, XChaCha20Poly1305)>,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SecretBox {
    /// Keys as `(id, 32 bytes)`; the first one encrypts. Ids must be distinct.
    pub fn new(keys: &[(u8, [u8; 32])]) -> Result<Self, ConfigError> {
        if keys.is_empty() {
            return Err("at least one encryption key is required".into());
        }
        let mut seen = std::collections::HashSet::new();
        if !keys.iter().all(|(id, _)| seen.insert(*id)) {
            return Err("encryption key ids must be distinct".into());
        }
        Ok(Self {
            keys: keys
                .iter()
                .map(|(id, k)| (*id, XChaCha20Poly1305::new(Key::from_slice(k))))
                .collect(),
        })
    }

    /// Encrypt `plaintext`, bound to `context` (e.g. the table and purpose) so a
    /// ciphertext cannot be moved to another place.
    pub fn seal(
        &self,
        rng: &dyn RandomSource,
        context: &[u8],
        plaintext: &[u8],
    ) -> AuthResult<Vec<u8>> {
        let (id, cipher) = &self.keys[0];
        let nonce = random_bytes::<24>(rng);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| AuthError::internal("encryption failed"))?;
        let mut out = Vec::with_capacity(2 + nonce.len() + sealed.len());
        out.extend_from_slice(&[VERSION, *id]);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypt what [`SecretBox::seal`] produced with the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> AuthResult<Vec<u8>> {
        let bad =
            || AuthError::internal("sealed value is corrupt or was sealed with an unknown key");
        if sealed.len() < 2 + 24 + 16 || sealed[0] != VERSION {
            return Err(bad());
        }
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed[1])
            .ok_or_else(bad)?;
        cipher
            .decrypt(
                XNonce::from_slice(&sealed[2..26]),
                Payload {
                    msg: &sealed[26..],
                    aad: context,
                },
            )
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn seals_opens_and_rotates() {
        let old = SecretBox::new(&[(1, [1; 32])]).unwrap();
        let sealed = old.seal(&OsRandom, b"outbox", b"hello").unwrap();
        assert_eq!(old.open(b"outbox", &sealed).unwrap(), b"hello");
        assert!(old.open(b"elsewhere", &sealed).is_err(), "context is bound");
        let rotated = SecretBox::new(&[(2, [2; 32]), (1, [1; 32])]).unwrap();
        assert_eq!(rotated.open(b"outbox", &sealed).unwrap(), b"hello");
        let new = rotated.seal(&OsRandom, b"outbox", b"again").unwrap();
        assert!(old.open(b"outbox", &new).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(old.open(b"outbox", &tampered).is_err());
        assert!(SecretBox::new(&[]).is_err());
        assert!(SecretBox::new(&[(1, [0; 32]), (1, [1; 32])]).is_err());
    }
}
