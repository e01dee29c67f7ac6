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
use auth_core::secret_box::SecretBox;
use auth_db::Database;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::settings::Settings;

/// Where a generated key is kept.
pub enum GeneratedKeyHome<'a> {
    /// A file under the data directory (single node, SQLite).
    DataDir,
    /// The shared database (PostgreSQL).
    Database(&'a Database),
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
            let ring = key_ring(settings, &home).await?;
            let chosen = choose(&ring, SystemClock.now(), &Timing::of(settings));
            let signer = chosen.signer;
            let mut keys = KeySet::from_private_pem(
                SigningAlgorithm::EdDSA,
                signer.pem.expose_secret().as_bytes(),
                None,
            )
            .map_err(|e| format!("generated signing key {}: {e}", signer.id))?;
            for k in chosen.verifiers {
                keys.add_verification_key(
                    SigningAlgorithm::EdDSA,
                    k.pem.expose_secret().as_bytes(),
                )
                .map_err(|e| format!("generated signing key {}: {e}", k.id))?;
            }
            // Sealing keys derive from the first key, which rotation never deletes: what
            // was sealed before a rotation stays readable.
            let first = ring.first().unwrap_or(signer);
            (
                keys,
                derive_sealing_key(first.pem.expose_secret().as_bytes()),
            )
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
    let mut keys = configured_keys(settings)?;
    // 0 is the derived key, still accepted for what was sealed before a key was configured.
    keys.push((0, derived));
    Ok(keys)
}

/// `secrets.encryption_key` then `secrets.previous_encryption_keys`, with their ids; empty
/// when no key is configured.
fn configured_keys(settings: &Settings) -> Result<Vec<(u8, [u8; 32])>, String> {
    let s = &settings.secrets;
    if s.encryption_key.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let configured = std::iter::once(s.encryption_key.as_str())
        .chain(s.previous_encryption_keys.iter().map(String::as_str));
    for (i, value) in configured.enumerate() {
        let key = crate::settings::decode_key(value, &format!("secrets key #{i}"))?;
        // Key ids come from the key itself, so a rotation needs no bookkeeping (0 is taken
        // by the derived key).
        let id = 1 + Sha256::digest(key)[0] % 255;
        if out.iter().any(|(other, _)| *other == id) {
            return Err("secrets: two encryption keys share an id; generate a new key".into());
        }
        out.push((id, key));
    }
    Ok(out)
}

/// How a generated private key sealed with `secrets.encryption_key` is stored (PostgreSQL):
/// this prefix, then the base64 of the sealed PEM. A stored value without it is a clear PEM
/// (written before a key was configured), sealed in place at the next start.
const SEALED_PEM: &str = "sealed:v1:";
/// What a sealed key is bound to: it cannot be moved into another sealed column.
const KEY_CONTEXT: &[u8] = b"signing_keys.private_pem";

/// Seals stored private keys with the configured encryption keys only (the derived key comes
/// from those private keys and cannot protect them).
struct KeySealer {
    sealer: SecretBox,
    /// Id of the key new seals use (`secrets.encryption_key`).
    current: u8,
}

impl KeySealer {
    /// `None` when no `secrets.encryption_key` is set.
    fn of(settings: &Settings) -> Result<Option<Self>, String> {
        let keys = configured_keys(settings)?;
        let Some((current, _)) = keys.first().copied() else {
            return Ok(None);
        };
        Ok(Some(Self {
            sealer: SecretBox::new(&keys)?,
            current,
        }))
    }
}

/// A private PEM as it is stored: sealed when an encryption key is configured.
fn stored_pem(sealer: Option<&KeySealer>, pem: &SecretString) -> Result<SecretString, String> {
    let Some(s) = sealer else {
        return Ok(pem.clone());
    };
    let sealed = s
        .sealer
        .seal(&OsRandom, KEY_CONTEXT, pem.expose_secret().as_bytes())
        .map_err(|e| format!("sealing the signing key: {e}"))?;
    Ok(SecretString::from(format!(
        "{SEALED_PEM}{}",
        B64.encode(sealed)
    )))
}

/// A stored private key in clear, and whether it should be sealed again (stored in clear, or
/// sealed under a previous encryption key).
fn clear_pem(
    sealer: Option<&KeySealer>,
    stored: &SecretString,
) -> Result<(SecretString, bool), String> {
    let Some(body) = stored.expose_secret().strip_prefix(SEALED_PEM) else {
        return Ok((stored.clone(), sealer.is_some()));
    };
    let Some(s) = sealer else {
        return Err("a stored signing key is sealed but secrets.encryption_key is not set".into());
    };
    let sealed = B64
        .decode(body)
        .map_err(|_| "a stored signing key is corrupt (bad base64)".to_owned())?;
    let pem = s.sealer.open(KEY_CONTEXT, &sealed).map_err(|_| {
        "a stored signing key cannot be opened: it was sealed with a key that is neither secrets.encryption_key nor in secrets.previous_encryption_keys".to_owned()
    })?;
    let pem = String::from_utf8(pem).map_err(|_| "a stored signing key is corrupt".to_owned())?;
    // A sealed value is [version, key id, nonce, ciphertext].
    Ok((SecretString::from(pem), sealed.get(1) != Some(&s.current)))
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

async fn generated_key_in_database(
    store: &dyn SigningKeyStore,
    sealer: Option<&KeySealer>,
) -> Result<SecretString, String> {
    let candidate = StoredSigningKey {
        algorithm: SigningAlgorithm::EdDSA.as_str().to_owned(),
        private_pem: stored_pem(sealer, &generate_ed25519_pem(&OsRandom)?)?,
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

/// One generated key of the ring.
#[derive(Clone)]
pub struct RingEntry {
    /// File name or database slot.
    pub id: String,
    /// PKCS#8 PEM.
    pub pem: SecretString,
    /// When it was added (the first key: the Unix epoch on the data directory).
    pub created_at: DateTime<Utc>,
    /// The first key (`ed25519.pem` / slot `generated`): kept for deriving the sealing key.
    pub first: bool,
}

/// Key timing of the rotation.
pub struct Timing {
    /// How long a retired key stays for verification: `access_ttl` plus leeway.
    pub keep: chrono::Duration,
    /// How long a new key is published before it signs.
    pub activation: chrono::Duration,
}

impl Timing {
    /// From the settings.
    pub fn of(settings: &Settings) -> Self {
        let secs = |n: u64| chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 2));
        Self {
            keep: secs(settings.tokens.access_ttl_secs) + secs(settings.tokens.leeway_secs),
            activation: secs(settings.keys.activation_delay_secs),
        }
    }
}

/// What a key ring means now.
pub struct Chosen<'a> {
    /// The newest active key.
    pub signer: &'a RingEntry,
    /// Keys to publish and accept: retired ones whose tokens may still be live, and
    /// pending ones not active yet.
    pub verifiers: Vec<&'a RingEntry>,
    /// Retired keys whose tokens have all expired.
    pub expired: Vec<&'a RingEntry>,
}

/// Pick the signer (the newest key active at `now`; the first key is always active) and
/// sort the others. `ring` is oldest first and not empty.
pub fn choose<'a>(ring: &'a [RingEntry], now: DateTime<Utc>, timing: &Timing) -> Chosen<'a> {
    let active = |k: &RingEntry| k.first || k.created_at + timing.activation <= now;
    let signer_index = ring.iter().rposition(active).unwrap_or(0);
    let mut verifiers = Vec::new();
    let mut expired = Vec::new();
    for (i, key) in ring.iter().enumerate() {
        if i == signer_index {
            continue;
        }
        if i > signer_index {
            verifiers.push(key); // pending
            continue;
        }
        // Retired when the next key became active.
        let successor = &ring[i + 1];
        let retired_at = if successor.first {
            successor.created_at
        } else {
            successor.created_at + timing.activation
        };
        if retired_at + timing.keep > now {
            verifiers.push(key);
        } else {
            expired.push(key);
        }
    }
    Chosen {
        signer: &ring[signer_index],
        verifiers,
        expired,
    }
}

const FIRST_KEY_FILE: &str = "ed25519.pem";

/// Every generated key, oldest first; creates the first one if there is none.
pub async fn key_ring(
    settings: &Settings,
    home: &GeneratedKeyHome<'_>,
) -> Result<Vec<RingEntry>, String> {
    match home {
        GeneratedKeyHome::DataDir => {
            let first = generated_key_file(&settings.data_dir)?;
            let mut ring = vec![RingEntry {
                id: FIRST_KEY_FILE.into(),
                pem: first,
                created_at: DateTime::<Utc>::UNIX_EPOCH,
                first: true,
            }];
            let dir = settings.data_dir.join("keys");
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| format!("data_dir: cannot list {}: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(millis) = name
                    .strip_prefix("ed25519-")
                    .and_then(|n| n.strip_suffix(".pem"))
                    .and_then(|n| n.parse::<i64>().ok())
                else {
                    continue;
                };
                let Some(created_at) = DateTime::<Utc>::from_timestamp_millis(millis) else {
                    continue;
                };
                let pem = std::fs::read_to_string(entry.path())
                    .map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
                ring.push(RingEntry {
                    id: name,
                    pem: SecretString::from(pem),
                    created_at,
                    first: false,
                });
            }
            ring.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(ring)
        }
        GeneratedKeyHome::Database(db) => {
            let sealer = KeySealer::of(settings)?;
            generated_key_in_database(*db, sealer.as_ref()).await?;
            let stored = db
                .signing_key_ring()
                .await
                .map_err(|e| format!("signing key store: {e}"))?;
            let mut ring = Vec::new();
            for k in stored {
                if k.key.algorithm != SigningAlgorithm::EdDSA.as_str() {
                    continue;
                }
                let (pem, reseal) = clear_pem(sealer.as_ref(), &k.key.private_pem)?;
                if reseal {
                    // Stored in clear (before a key was configured) or under a previous
                    // encryption key: sealed with the current one now.
                    let sealed = stored_pem(sealer.as_ref(), &pem)?;
                    db.reseal_signing_key(&k.slot, &k.key.private_pem, &sealed)
                        .await
                        .map_err(|e| format!("signing key store: {e}"))?;
                }
                ring.push(RingEntry {
                    first: k.slot == "generated",
                    id: k.slot,
                    pem,
                    created_at: k.key.created_at,
                });
            }
            // The first key is the oldest whatever its timestamp says.
            ring.sort_by_key(|k| (!k.first, k.created_at));
            Ok(ring)
        }
    }
}

/// What `keys rotate` did.
#[derive(Debug)]
pub struct Rotation {
    /// The `kid` of the new key.
    pub kid: String,
    /// When it starts signing.
    pub active_from: DateTime<Utc>,
    /// Retired keys deleted because every token they signed has expired.
    pub pruned: Vec<String>,
}

/// Add a new Ed25519 key to the generated-key ring and delete expired ones.
pub async fn rotate(settings: &Settings, home: &GeneratedKeyHome<'_>) -> Result<Rotation, String> {
    key_ring(settings, home).await?;
    let pem = generate_ed25519_pem(&OsRandom)?;
    let now = SystemClock.now();
    let kid = KeySet::from_private_pem(
        SigningAlgorithm::EdDSA,
        pem.expose_secret().as_bytes(),
        None,
    )?
    .signing_kid()
    .to_owned();
    match home {
        GeneratedKeyHome::DataDir => {
            let dir = settings.data_dir.join("keys");
            let name = format!("ed25519-{}.pem", now.timestamp_millis());
            write_private_file(&dir.join(name), pem.expose_secret().as_bytes())?;
        }
        GeneratedKeyHome::Database(db) => {
            db.add_signing_key(&StoredSigningKey {
                algorithm: SigningAlgorithm::EdDSA.as_str().to_owned(),
                private_pem: stored_pem(KeySealer::of(settings)?.as_ref(), &pem)?,
                created_at: now,
            })
            .await
            .map_err(|e| format!("signing key store: {e}"))?;
        }
    }
    let ring = key_ring(settings, home).await?;
    let chosen = choose(&ring, now, &Timing::of(settings));
    let mut pruned = Vec::new();
    for key in chosen.expired.iter().filter(|k| !k.first) {
        match home {
            GeneratedKeyHome::DataDir => {
                let path = settings.data_dir.join("keys").join(&key.id);
                std::fs::remove_file(&path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            }
            GeneratedKeyHome::Database(db) => {
                db.remove_signing_key(&key.id)
                    .await
                    .map_err(|e| format!("signing key store: {e}"))?;
            }
        }
        pruned.push(key.id.clone());
    }
    Ok(Rotation {
        kid,
        active_from: now + Timing::of(settings).activation,
        pruned,
    })
}

/// Write `bytes` to a new file `path`, mode 0600, atomically (temporary file + link).
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_file(path, bytes, 0o600)
}

/// Write `bytes` to a new file `path` with `mode`, atomically; refuses to overwrite.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A fresh private key for `algorithm` as PKCS#8 PEM, and its public key as SPKI PEM.
pub fn generate_pem_pair(algorithm: SigningAlgorithm) -> Result<(SecretString, String), String> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair as _;
    let fail = |e: aws_lc_rs::error::Unspecified| format!("key generation failed: {e}");
    let (private_der, public_der): (Vec<u8>, Vec<u8>) = match algorithm {
        SigningAlgorithm::EdDSA => {
            let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().map_err(fail)?;
            let private: Pkcs8V1Der<'_> = pair.as_der().map_err(fail)?;
            let public: PublicKeyX509Der<'_> = pair.public_key().as_der().map_err(fail)?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        SigningAlgorithm::ES256 => {
            let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )
            .map_err(fail)?;
            let private = pair.to_pkcs8v1().map_err(fail)?;
            let public: PublicKeyX509Der<'_> = pair.public_key().as_der().map_err(fail)?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        SigningAlgorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(fail)?;
            let private: Pkcs8V1Der<'_> = pair.as_der().map_err(fail)?;
            let public: PublicKeyX509Der<'_> = pair.public_key().as_der().map_err(fail)?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        SigningAlgorithm::HS256 => {
            return Err("HS256 uses a shared secret, not a key pair".into());
        }
    };
    Ok((
        SecretString::from(pem("PRIVATE KEY", &private_der)),
        pem("PUBLIC KEY", &public_der),
    ))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, secs: i64, first: bool) -> RingEntry {
        RingEntry {
            id: id.into(),
            pem: SecretString::from(String::new()),
            created_at: DateTime::<Utc>::from_timestamp(secs, 0).unwrap(),
            first,
        }
    }

    #[test]
    fn the_newest_active_key_signs_and_retired_keys_expire_after_the_access_ttl() {
        let timing = Timing {
            keep: chrono::Duration::seconds(100),
            activation: chrono::Duration::seconds(10),
        };
        let ring = [
            entry("first", 0, true),
            entry("a", 1000, false),
            entry("b", 2000, false),
        ];
        let at = |s| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let ids = |v: &[&RingEntry]| v.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
        // b is published but not active yet; a signs; first retired at 1010, kept to 1110.
        let c = choose(&ring, at(2005), &timing);
        assert_eq!(c.signer.id, "a");
        assert_eq!(ids(&c.verifiers), ["b"]);
        assert_eq!(ids(&c.expired), ["first"]);
        // b active at 2010; a kept until 2110.
        let c = choose(&ring, at(2050), &timing);
        assert_eq!(c.signer.id, "b");
        assert_eq!(ids(&c.verifiers), ["a"]);
        let c = choose(&ring, at(2111), &timing);
        assert!(c.verifiers.is_empty());
        assert_eq!(ids(&c.expired), ["first", "a"]);
    }

    #[test]
    fn generated_pem_pairs_load_for_every_algorithm() {
        for alg in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
        ] {
            let (private, public) = generate_pem_pair(alg).unwrap();
            KeySet::from_private_pem(
                alg,
                private.expose_secret().as_bytes(),
                Some(public.as_bytes()),
            )
            .unwrap();
        }
    }

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
