//! Signing keys from configuration: PEM files, an HS256 secret, or a generated Ed25519 key
//! kept where the data lives (a file beside SQLite; the database on PostgreSQL, so every
//! node shares it).

use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;

use auth_core::clock::{Clock, SystemClock};
use auth_core::jwt::{KeySet, SigningAlgorithm, generate_ed25519_pem};
use auth_core::model::StoredSigningKey;
use auth_core::ports::SigningKeyStore;
use auth_core::random::OsRandom;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::settings::Settings;

/// Where a generated key is kept.
pub enum GeneratedKeyHome<'a> {
    /// A file under the data directory (single node, SQLite).
    DataDir,
    /// The shared database (PostgreSQL).
    Database(&'a dyn SigningKeyStore),
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

/// The signing keys, and a key for sealing secrets at rest derived from the signing secret
/// (used when no `secrets.encryption_key` is configured).
pub struct LoadedKeys {
    /// Signing and verification keys.
    pub keys: KeySet,
    /// 32 bytes derived from the private signing material.
    pub derived_sealing_key: [u8; 32],
}

fn derive_sealing_key(private_material: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"auth-http/derived-sealing-key/v1\0");
    h.update(private_material);
    h.finalize().into()
}

/// Build the key set described by the settings.
pub async fn load_key_set(
    settings: &Settings,
    home: GeneratedKeyHome<'_>,
) -> Result<LoadedKeys, String> {
    let tokens = &settings.tokens;
    let algorithm = settings.signing_algorithm()?;
    let (mut keys, derived_sealing_key) = match (algorithm, &tokens.private_key_path) {
        (SigningAlgorithm::HS256, _) => {
            let secret = tokens
                .hs256_secret
                .as_ref()
                .ok_or("tokens.hs256_secret is required for HS256")?;
            let bytes = secret.expose_secret().as_bytes();
            let keys = KeySet::from_hs256_secret(bytes)
                .map_err(|e| format!("tokens.hs256_secret: {e}"))?;
            (keys, derive_sealing_key(bytes))
        }
        (_, Some(private)) => {
            let public = tokens
                .public_key_path
                .as_deref()
                .map(|p| read(p, "tokens.public_key_path"))
                .transpose()?;
            let private = read(private, "tokens.private_key_path")?;
            let keys = KeySet::from_private_pem(algorithm, &private, public.as_deref())
                .map_err(|e| format!("tokens.private_key_path: {e}"))?;
            (keys, derive_sealing_key(&private))
        }
        (SigningAlgorithm::EdDSA, None) => {
            let pem = match home {
                GeneratedKeyHome::DataDir => generated_key_file(&settings.data_dir)?,
                GeneratedKeyHome::Database(store) => generated_key_in_database(store).await?,
            };
            let bytes = pem.expose_secret().as_bytes();
            let keys = KeySet::from_private_pem(SigningAlgorithm::EdDSA, bytes, None)
                .map_err(|e| format!("generated signing key: {e}"))?;
            (keys, derive_sealing_key(bytes))
        }
        (_, None) => {
            return Err(format!(
                "tokens.private_key_path is required for {}",
                algorithm.as_str()
            ));
        }
    };
    for (i, extra) in tokens.verification_keys.iter().enumerate() {
        let name = format!("tokens.verification_keys[{i}]");
        let alg = SigningAlgorithm::from_str(&extra.algorithm)
            .map_err(|e| format!("{name}.algorithm: {e}"))?;
        keys.add_verification_key(alg, &read(&extra.path, &name)?)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(LoadedKeys {
        keys,
        derived_sealing_key,
    })
}

/// The sealing keys: configured ones (the first encrypts), else the derived one.
pub fn sealing_keys(settings: &Settings, derived: [u8; 32]) -> Result<Vec<(u8, [u8; 32])>, String> {
    let s = &settings.secrets;
    if s.encryption_key.is_empty() {
        return Ok(vec![(0, derived)]);
    }
    let mut out = Vec::new();
    let configured = std::iter::once(s.encryption_key.as_str())
        .chain(s.previous_encryption_keys.iter().map(String::as_str));
    for (i, value) in configured.enumerate() {
        let key = crate::settings::decode_key(value, &format!("secrets key #{i}"))?;
        // Key ids come from the key itself, so a rotation needs no bookkeeping; 0 is the
        // derived key, still accepted for what was sealed before a key was configured.
        let id = 1 + Sha256::digest(key)[0] % 255;
        if out.iter().any(|(other, _)| *other == id) {
            return Err("secrets: two encryption keys share an id; generate a new key".into());
        }
        out.push((id, key));
    }
    out.push((0, derived));
    Ok(out)
}

/// `data_dir/keys/ed25519.pem`, created once (atomically, mode 0600) and reused after.
fn generated_key_file(data_dir: &Path) -> Result<SecretString, String> {
    let dir = data_dir.join("keys");
    let path = dir.join("ed25519.pem");
    if let Ok(pem) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(pem));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("data_dir: cannot create {}: {e}", dir.display()))?;
    let pem = generate_ed25519_pem(&OsRandom)?;
    // Write to a temporary file, then link it into place: a concurrent start-up either
    // wins or reads the winner's key, and nobody ever reads a half-written file.
    let tmp = dir.join(format!("ed25519.pem.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .map_err(|e| format!("data_dir: cannot write {}: {e}", tmp.display()))?;
    file.write_all(pem.expose_secret().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("data_dir: cannot write {}: {e}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new Ed25519 signing key");
            Ok(pem)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(&path)
            .map(SecretString::from)
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        Err(e) => Err(format!("data_dir: cannot create {}: {e}", path.display())),
    }
}

async fn generated_key_in_database(store: &dyn SigningKeyStore) -> Result<SecretString, String> {
    let candidate = StoredSigningKey {
        algorithm: SigningAlgorithm::EdDSA.as_str().to_owned(),
        private_pem: generate_ed25519_pem(&OsRandom)?,
        created_at: SystemClock.now(),
    };
    let stored = store
        .load_or_store(&candidate)
        .await
        .map_err(|e| format!("signing key store: {e}"))?;
    if stored.algorithm != SigningAlgorithm::EdDSA.as_str() {
        return Err(format!(
            "the stored signing key is {}, expected EdDSA",
            stored.algorithm
        ));
    }
    Ok(stored.private_pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_key_file_survives_restarts_and_is_private() {
        let dir = std::env::temp_dir().join(format!("auth-keys-{}", uuid::Uuid::new_v4().simple()));
        let first = generated_key_file(&dir).unwrap();
        let second = generated_key_file(&dir).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("keys/ed25519.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(dir.join("keys")).unwrap().count(),
            1,
            "temporary files left behind"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
