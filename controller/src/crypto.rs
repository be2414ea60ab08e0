//! Cryptographic building blocks shared by the security features (CA key at rest, secrets, join
//! and API tokens). Everything goes through `ring` (the provider rustls already uses here).
//!
//! * [`ClusterKey`] — the cluster key-encryption key (KEK): 32 random bytes, AES-256-GCM.
//!   It lives in `<data-dir>/cluster.key` (mode 0600) or in the file given by
//!   `--cluster-key-file`, never in the Raft log or snapshots: what the store keeps encrypted
//!   with it (the CA's private key, secrets) is unreadable from a copy of the store alone.
//! * [`sha256_hex`] — how tokens are stored (hashed; the secret is shown once, at creation).
//! * [`random_secret`] — unguessable token material (hex of random bytes).
//! * [`constant_time_eq`] — comparing secrets without a timing side channel.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::Path;

/// Length of the cluster key in bytes.
pub const CLUSTER_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    #[error("the system random number generator failed")]
    Random,
    #[error("the cluster key must be 32 bytes (64 hex digits), found {0}")]
    KeyLength(usize),
    #[error("sealed data is truncated")]
    Truncated,
    #[error("decryption failed: the data was made with another cluster key or was altered")]
    Open,
    #[error("cluster key file {path}: {message}")]
    File { path: String, message: String },
}

/// The cluster key-encryption key. `Debug` never prints the key.
#[derive(Clone)]
pub struct ClusterKey {
    bytes: [u8; CLUSTER_KEY_LEN],
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(…)")
    }
}

impl ClusterKey {
    /// A new random key.
    pub fn generate() -> Result<ClusterKey, CryptoError> {
        let mut bytes = [0u8; CLUSTER_KEY_LEN];
        SystemRandom::new().fill(&mut bytes).map_err(|_| CryptoError::Random)?;
        Ok(ClusterKey { bytes })
    }

    pub fn from_bytes(raw: &[u8]) -> Result<ClusterKey, CryptoError> {
        let bytes: [u8; CLUSTER_KEY_LEN] =
            raw.try_into().map_err(|_| CryptoError::KeyLength(raw.len()))?;
        Ok(ClusterKey { bytes })
    }

    pub fn as_bytes(&self) -> &[u8; CLUSTER_KEY_LEN] {
        &self.bytes
    }

    /// Parses the file format: the key as hex on one line (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<ClusterKey, CryptoError> {
        let raw =
            hex::decode(text.trim()).map_err(|_| CryptoError::KeyLength(text.trim().len()))?;
        ClusterKey::from_bytes(&raw)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// Reads the key file.
    pub fn load(path: &Path) -> Result<ClusterKey, CryptoError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        ClusterKey::from_hex(&text).map_err(|e| CryptoError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Writes the key file with mode 0600 (created fresh; an existing file is replaced).
    pub fn store(&self, path: &Path) -> Result<(), CryptoError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| file_error(path, e))?;
        }
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp).map_err(|e| file_error(path, e))?;
            f.write_all(format!("{}\n", self.to_hex()).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| file_error(path, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| file_error(path, e))
    }

    /// The key in `path`, or a new one written there if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<ClusterKey, CryptoError> {
        if path.exists() {
            return ClusterKey::load(path);
        }
        let key = ClusterKey::generate()?;
        key.store(path)?;
        Ok(key)
    }

    fn aead(&self) -> Result<LessSafeKey, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.bytes).map_err(|_| CryptoError::Open)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Encrypts `plaintext`, binding `context` (e.g. `secret:NAME`) as associated data so a
    /// sealed value cannot be moved to another record. Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut buf = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buf,
            )
            .map_err(|_| CryptoError::Open)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`ClusterKey::seal`] made with the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Truncated);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Truncated)?;
        let mut buf = rest.to_vec();
        let plain = self
            .aead()?
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| CryptoError::Open)?;
        Ok(plain.to_vec())
    }
}

fn file_error(path: &Path, e: std::io::Error) -> CryptoError {
    CryptoError::File { path: path.display().to_string(), message: e.to_string() }
}

/// SHA-256 of `data`, as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// `bytes` random bytes as lowercase hex (so `2 * bytes` characters).
pub fn random_secret(bytes: usize) -> Result<String, CryptoError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).map_err(|_| CryptoError::Random)?;
    Ok(hex::encode(buf))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_context() {
        let key = ClusterKey::generate().expect("key");
        let sealed = key.seal(b"secret:db", b"hunter2").expect("seal");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "ciphertext hides the value");
        assert_eq!(key.open(b"secret:db", &sealed).expect("open"), b"hunter2");
        assert_eq!(key.open(b"secret:other", &sealed), Err(CryptoError::Open));
        let other = ClusterKey::generate().expect("key");
        assert_eq!(other.open(b"secret:db", &sealed), Err(CryptoError::Open));
        assert_eq!(key.open(b"secret:db", &sealed[..10]), Err(CryptoError::Truncated));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(key.open(b"secret:db", &tampered), Err(CryptoError::Open));
    }

    #[test]
    fn key_file_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.key");
        let key = ClusterKey::load_or_create(&path).expect("create");
        let again = ClusterKey::load_or_create(&path).expect("load");
        assert_eq!(key.as_bytes(), again.as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "abcd\n").expect("write");
        let err = ClusterKey::load(&path).expect_err("short key");
        assert!(err.to_string().contains("must be 32 bytes"), "{err}");
        assert_eq!(format!("{key:?}"), "ClusterKey(…)");
    }

    #[test]
    fn hashes_and_secrets_have_the_documented_shape() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let s = random_secret(16).expect("secret");
        assert_eq!(s.len(), 32);
        assert_ne!(s, random_secret(16).expect("secret"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
