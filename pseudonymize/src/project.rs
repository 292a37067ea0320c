//! Project pseudonyms for researcher extracts: every key column leaves re-keyed under a key
//! derived from the master key and the project id, so two projects' extracts cannot be
//! joined with each other or with the warehouse, while one project's extracts link.

use std::fmt;

use crate::{IdKind, MasterKey};

/// Context of the project key's derivation from the master key chain.
const PROJECT_CONTEXT: &str = "vaxlake 2026-11 project pseudonym key v1";
/// Context of the per-kind sub-keys of a project key.
const KIND_CONTEXT: &str = "vaxlake 2026-11 project pseudonym kind v1";
/// Context of a project key's public id.
const ID_CONTEXT: &str = "vaxlake 2026-11 project key id v1";

/// One project's re-keying key. `Debug` shows only its id.
#[derive(Clone)]
pub struct ProjectKey {
    sub_keys: Vec<[u8; 32]>,
    key_id: String,
}

impl fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProjectKey(id={}, bytes=<redacted>)", self.key_id)
    }
}

impl ProjectKey {
    /// The key of `project` under `master` (every key of a rotated chain contributes).
    pub fn new(master: &MasterKey, project: &str) -> Self {
        let mut material = Vec::new();
        for key in master.derive_chain(PROJECT_CONTEXT) {
            material.extend_from_slice(&key);
        }
        material.extend_from_slice(project.as_bytes());
        let key = blake3::derive_key(PROJECT_CONTEXT, &material);
        let sub_keys = [
            IdKind::Person,
            IdKind::Practitioner,
            IdKind::Event,
            IdKind::Case,
            IdKind::Resource,
        ]
        .iter()
        .map(|kind| {
            let mut m = key.to_vec();
            m.push(*kind as u8);
            blake3::derive_key(KIND_CONTEXT, &m)
        })
        .collect();
        let id = blake3::derive_key(ID_CONTEXT, &key);
        ProjectKey {
            sub_keys,
            key_id: hex::encode(&id[..8]),
        }
    }

    /// A short public name of the key, recorded in the manifest.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The project pseudonym (32 hex) of a warehouse pseudonym (32 hex); `None` if the value
    /// is not a pseudonym.
    pub fn rekey_hex(&self, kind: IdKind, warehouse: &str) -> Option<String> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(warehouse, &mut bytes).ok()?;
        let hash = blake3::keyed_hash(&self.sub_keys[kind as usize], &bytes);
        Some(hex::encode(&hash.as_bytes()[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_do_not_share_pseudonyms_and_one_project_is_stable() {
        let master = MasterKey::from_hex(&"ab".repeat(32)).unwrap();
        let stored = crate::Pseudonymizer::new(&master).pseudonym(IdKind::Person, "1893120105732");
        let a = ProjectKey::new(&master, "P-1");
        let b = ProjectKey::new(&master, "P-2");
        let pa = a.rekey_hex(IdKind::Person, &stored).unwrap();
        assert_eq!(
            pa,
            ProjectKey::new(&master, "P-1")
                .rekey_hex(IdKind::Person, &stored)
                .unwrap()
        );
        assert_ne!(pa, b.rekey_hex(IdKind::Person, &stored).unwrap());
        assert_ne!(pa, stored);
        assert_ne!(pa, a.rekey_hex(IdKind::Case, &stored).unwrap());
        assert_ne!(a.key_id(), b.key_id());
        assert!(!format!("{a:?}").contains(&"ab".repeat(4)));
        assert_eq!(a.rekey_hex(IdKind::Person, "not hex"), None);
    }
}
