//! The master key: 32 random bytes, read from a file of 64 hex characters.

use std::fmt;
use std::path::Path;

/// Why a key could not be loaded. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} must hold 32 bytes as 64 hex characters (create one with `vaxlake key new`)")]
    Format { path: String },
    #[error("key file {path} is readable by group or others (mode {mode:o}); fix with `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
}

/// The 32-byte master key. Its bytes never leave this crate except through BLAKE3 key
/// derivation, and its `Debug` output is redacted so it cannot slip into logs or panics.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id={}, bytes=<redacted>)", self.key_id())
    }
}

impl MasterKey {
    /// Parses 64 hex characters; surrounding whitespace is ignored.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| KeyError::Format {
            path: "<inline>".into(),
        })?;
        Ok(Self(bytes))
    }

    /// Reads a key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
                path: shown.clone(),
                source,
            })?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions { path: shown, mode });
            }
        }
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_hex(&text).map_err(|_| KeyError::Format { path: shown })
    }

    /// A fresh random key from the operating system, as 64 hex characters for a key file.
    pub fn generate_hex() -> String {
        let mut bytes = [0u8; 32];
        // BLAKE3 of OS randomness plus time would be weaker than the OS itself; read it directly.
        let mut f = std::fs::File::open("/dev/urandom").expect("/dev/urandom is readable");
        std::io::Read::read_exact(&mut f, &mut bytes).expect("/dev/urandom yields bytes");
        hex::encode(bytes)
    }

    /// A short public name for the key (16 hex characters), stored in table metadata so that
    /// ingesting with another key can be refused. One-way: it reveals nothing of the key.
    pub fn key_id(&self) -> String {
        let k = blake3::derive_key("vaxlake 2026-11 master key id v1", &self.0);
        hex::encode(&k[..8])
    }

    pub(crate) fn derive(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let hexkey = "0123456789abcdef".repeat(4);
        let k = MasterKey::from_hex(&hexkey).unwrap();
        let shown = format!("{k:?} {k:#?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains(&k.key_id()));
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(MasterKey::from_hex(&format!("  {}\n", "ab".repeat(32))).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_group_readable_key_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vaxlake-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        std::fs::write(&path, "cd".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains(&"cd".repeat(32)));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MasterKey::load(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
