//! The master key: 32 random bytes, read from a file of 64 hex characters, or after a key
//! rotation a *chain* of such keys, one per line, oldest first.
//!
//! Pseudonyms are one-way, so a rotation cannot go back to the identities: it re-keys the
//! stored pseudonyms themselves, hashing each one again under the new key (see
//! [`KeyRotation`]). New data must then go through the same chain of hashes to join with the
//! rotated rows, which is why the key file keeps every key of the chain.

use std::fmt;
use std::io::Write;
use std::path::Path;

/// Why a key could not be loaded, saved or rotated. Never contains key material (nor any
/// text read from a key file, which could be a near-key).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path}, line {line}: each line must hold one 32-byte key as 64 hex characters, oldest key first (create a key file with `vaxlake key new`)")]
    Format { path: String, line: usize },
    #[error("key file {path} is readable by group or others (mode {mode:o}); fix with `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the new key file must hold one fresh key made by `vaxlake key new`, but it holds a chain of {keys} keys that does not continue the current key (id {current})")]
    NotFresh { keys: usize, current: String },
    #[error("the new key is already part of the current key chain (id {current}); create a fresh one with `vaxlake key new`")]
    Reused { current: String },
}

/// Context of the key id of a single key (and of the first key of a chain). Unchanged since
/// the first release, so existing warehouses keep their key id.
const KEY_ID_CONTEXT: &str = "vaxlake 2026-11 master key id v1";
/// Context of the key id of a chain of two or more keys: a different context from
/// [`KEY_ID_CONTEXT`], so a chain's id never equals one of its members' ids.
const CHAIN_ID_CONTEXT: &str = "vaxlake 2026-11 key chain id v1";

/// The master key: one 32-byte key, or a chain of them (oldest first) after rotations. Its
/// bytes never leave this crate except through BLAKE3 key derivation and [`MasterKey::save`],
/// and its `Debug` output is redacted so it cannot slip into logs or panics.
#[derive(Clone)]
pub struct MasterKey {
    /// Never empty.
    chain: Vec<[u8; 32]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MasterKey(id={}, keys={}, bytes=<redacted>)",
            self.key_id(),
            self.chain.len()
        )
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain
    }
}

impl Eq for MasterKey {}

fn key_id_of(key: &[u8; 32]) -> [u8; 8] {
    let k = blake3::derive_key(KEY_ID_CONTEXT, key);
    k[..8].try_into().expect("8 bytes")
}

impl MasterKey {
    /// Parses a key file's text: one or more lines of 64 hex characters, oldest key first.
    /// Surrounding whitespace and blank lines are ignored.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        Self::parse(text, "<inline>")
    }

    fn parse(text: &str, shown: &str) -> Result<Self, KeyError> {
        let mut chain = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(line, &mut bytes).map_err(|_| KeyError::Format {
                path: shown.to_string(),
                line: i + 1,
            })?;
            chain.push(bytes);
        }
        if chain.is_empty() {
            return Err(KeyError::Format {
                path: shown.to_string(),
                line: 1,
            });
        }
        Ok(Self { chain })
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
        Self::parse(&text, &shown)
    }

    /// Writes the key (every key of the chain, oldest first) to `path` atomically: a
    /// temporary file of mode 600 in the same directory, synced, then renamed over `path`.
    /// A crash leaves either the old file or the new one, never half a chain.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let shown = path.display().to_string();
        let err = |source| KeyError::Write {
            path: shown.clone(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path.file_name().ok_or_else(|| {
            err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let mut text = String::with_capacity(self.chain.len() * 65);
        for key in &self.chain {
            text.push_str(&hex::encode(key));
            text.push('\n');
        }
        let written = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename itself is durable once the directory is synced.
            std::fs::File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(err)
    }

    /// A fresh random key from the operating system, as 64 hex characters for a key file.
    pub fn generate_hex() -> String {
        let mut bytes = [0u8; 32];
        // The operating system's generator, unmixed: BLAKE3 of OS randomness plus time would be
        // no stronger than the OS itself. getrandom blocks until the OS pool is seeded.
        getrandom::fill(&mut bytes).expect("the operating system's random generator works");
        hex::encode(bytes)
    }

    /// A short public name for the key (16 hex characters), stored in table metadata so that
    /// ingesting with another key can be refused. One-way: it reveals nothing of the key.
    ///
    /// A single key keeps the id it always had. The id of a chain is derived from its last
    /// key and the id of the chain before it, under another context: rotating gives a new id,
    /// different from every member's own id.
    pub fn key_id(&self) -> String {
        let mut id = key_id_of(&self.chain[0]);
        for key in &self.chain[1..] {
            let mut material = key.to_vec();
            material.extend_from_slice(&id);
            let k = blake3::derive_key(CHAIN_ID_CONTEXT, &material);
            id = k[..8].try_into().expect("8 bytes");
        }
        hex::encode(id)
    }

    /// How many keys the chain holds (1 before any rotation).
    pub fn generations(&self) -> usize {
        self.chain.len()
    }

    /// The sub-keys of `context`, one per key of the chain, oldest first.
    pub(crate) fn derive_chain(&self, context: &str) -> Vec<[u8; 32]> {
        self.chain
            .iter()
            .map(|key| blake3::derive_key(context, key))
            .collect()
    }

    /// The chain of `self` followed by `next`'s keys.
    fn then(&self, next: &[[u8; 32]]) -> Self {
        let mut chain = self.chain.clone();
        chain.extend_from_slice(next);
        Self { chain }
    }

    fn last(&self) -> &[u8; 32] {
        self.chain.last().expect("a chain is never empty")
    }
}

/// One key rotation: re-keys pseudonyms made under the `current` key (or chain) into the
/// pseudonyms of the chain `current` + one fresh key, without going back to the identities.
///
/// ```
/// use vaxlake_pseudonymize::{IdKind, KeyRotation, MasterKey, Pseudonymizer};
/// let (old, fresh) = (MasterKey::from_hex(&"ab".repeat(32)).unwrap(), MasterKey::from_hex(&"cd".repeat(32)).unwrap());
/// let rotation = KeyRotation::new(&old, &fresh).unwrap();
/// let stored = Pseudonymizer::new(&old).pseudonym_bytes(IdKind::Person, b"1893120105732");
/// assert_eq!(rotation.rekey_bytes(IdKind::Person, &stored), Pseudonymizer::new(rotation.rotated_key()).pseudonym_bytes(IdKind::Person, b"1893120105732"));
/// ```
#[derive(Clone)]
pub struct KeyRotation {
    from_key_id: String,
    rotated: MasterKey,
    /// The new key's step alone, applied to pseudonyms of the current chain.
    step: crate::Pseudonymizer,
}

impl fmt::Debug for KeyRotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyRotation(from={}, to={}, keys=<redacted>)",
            self.from_key_id,
            self.rotated.key_id()
        )
    }
}

impl KeyRotation {
    /// `new` is one fresh key (from `vaxlake key new`), or the rotated chain itself (current
    /// + that key), so that a rotation that already wrote its key file can be run again.
    pub fn new(current: &MasterKey, new: &MasterKey) -> Result<Self, KeyError> {
        let current_id = current.key_id();
        let fresh_key = new.generations() == 1;
        let own_result = new.generations() == current.generations() + 1
            && new.chain[..current.generations()] == current.chain[..];
        if !fresh_key && !own_result {
            return Err(KeyError::NotFresh {
                keys: new.generations(),
                current: current_id,
            });
        }
        let fresh = *new.last();
        if current.chain.contains(&fresh) {
            return Err(KeyError::Reused {
                current: current_id,
            });
        }
        let step = crate::Pseudonymizer::new(&MasterKey { chain: vec![fresh] });
        Ok(Self {
            from_key_id: current_id,
            rotated: current.then(&[fresh]),
            step,
        })
    }

    /// The id of the key the stored pseudonyms were made with.
    pub fn from_key_id(&self) -> &str {
        &self.from_key_id
    }

    /// The id of the rotated chain, which the re-keyed tables carry.
    pub fn to_key_id(&self) -> String {
        self.rotated.key_id()
    }

    /// The rotated chain: the key to ingest with from now on (save it with
    /// [`MasterKey::save`]).
    pub fn rotated_key(&self) -> &MasterKey {
        &self.rotated
    }

    /// The pseudonym under the rotated chain of the identifier whose pseudonym under the
    /// current key is `pseudonym`.
    pub fn rekey_bytes(&self, kind: crate::IdKind, pseudonym: &[u8; 16]) -> [u8; 16] {
        self.step.pseudonym_bytes(kind, pseudonym)
    }

    /// [`KeyRotation::rekey_bytes`] on the stored form (32 hex characters); `None` if
    /// `pseudonym_hex` is not a pseudonym.
    pub fn rekey_hex(&self, kind: crate::IdKind, pseudonym_hex: &str) -> Option<String> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(pseudonym_hex, &mut bytes).ok()?;
        Some(hex::encode(self.rekey_bytes(kind, &bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_hex(&hex::encode([byte; 32])).unwrap()
    }

    #[test]
    fn debug_never_shows_the_key() {
        let hexkey = "0123456789abcdef".repeat(4);
        let other = "fedcba9876543210".repeat(4);
        let k = MasterKey::from_hex(&hexkey).unwrap();
        let chain = MasterKey::from_hex(&format!("{hexkey}\n{other}\n")).unwrap();
        let rotation = KeyRotation::new(&k, &MasterKey::from_hex(&other).unwrap()).unwrap();
        let shown = format!("{k:?} {k:#?} {chain:?} {chain:#?} {rotation:?} {rotation:#?}");
        for secret in [&hexkey, &other] {
            assert!(!shown.contains(&secret[..16]), "{shown}");
        }
        // Not even in the raw bytes' Debug form.
        assert!(!shown.contains("[1, 35, 69"), "{shown}");
        assert!(shown.contains(&k.key_id()));
        assert!(shown.contains(&chain.key_id()));
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(MasterKey::from_hex("").is_err());
        assert!(MasterKey::from_hex(&format!("  {}\n", "ab".repeat(32))).is_ok());
        let near = format!("{}\n{}g\n", "ab".repeat(32), "cd".repeat(31));
        let err = MasterKey::from_hex(&near).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains(&"cd".repeat(31)), "{err}");
        assert!(!err.contains(&"ab".repeat(32)), "{err}");
    }

    #[test]
    fn a_single_key_keeps_its_key_id() {
        // The id as the first release computed it.
        let bytes = [7u8; 32];
        let expected =
            hex::encode(&blake3::derive_key("vaxlake 2026-11 master key id v1", &bytes)[..8]);
        assert_eq!(key(7).key_id(), expected);
    }

    #[test]
    fn a_chain_has_its_own_key_id() {
        let chain = MasterKey::from_hex(&format!(
            "{}\n{}",
            hex::encode([1u8; 32]),
            hex::encode([2u8; 32])
        ))
        .unwrap();
        assert_eq!(chain.generations(), 2);
        assert_ne!(chain.key_id(), key(1).key_id());
        assert_ne!(chain.key_id(), key(2).key_id());
        // Order matters, and a longer chain differs again.
        let reversed = key(2).then(&[[1u8; 32]]);
        assert_ne!(chain.key_id(), reversed.key_id());
        assert_ne!(chain.key_id(), chain.then(&[[3u8; 32]]).key_id());
        assert_eq!(chain.key_id().len(), 16);
    }

    #[test]
    fn rotation_accepts_a_fresh_key_or_its_own_result_only() {
        let (old, fresh) = (key(1), key(2));
        let rotation = KeyRotation::new(&old, &fresh).unwrap();
        assert_eq!(rotation.from_key_id(), old.key_id());
        assert_eq!(rotation.rotated_key(), &old.then(&[[2u8; 32]]));
        // Run again after the chain was written to the new key file: the same rotation.
        let again = KeyRotation::new(&old, rotation.rotated_key()).unwrap();
        assert_eq!(again.to_key_id(), rotation.to_key_id());
        // A key already in the chain, or an unrelated chain, is refused.
        assert!(matches!(
            KeyRotation::new(&old, &key(1)),
            Err(KeyError::Reused { .. })
        ));
        let unrelated = key(3).then(&[[4u8; 32]]);
        assert!(matches!(
            KeyRotation::new(&old, &unrelated),
            Err(KeyError::NotFresh { keys: 2, .. })
        ));
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
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        assert!(!err.contains(&"cd".repeat(32)));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MasterKey::load(&path).is_ok());

        // save: mode 600, atomic replacement, and what it writes loads back the same.
        let chain = key(5).then(&[[6u8; 32]]);
        chain.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(MasterKey::load(&path).unwrap(), chain);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
