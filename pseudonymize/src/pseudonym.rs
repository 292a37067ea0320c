//! Keyed BLAKE3 pseudonyms with one derived sub-key per kind of identifier.

use crate::MasterKey;

/// Pseudonyms are the first 128 bits of keyed BLAKE3, written as 32 lower-case hex
/// characters. Text rather than binary because Delta has no fixed-size binary type, every
/// reader (DuckDB, Spark, CSV and JSON answers) shows text the same way, and dictionary
/// encoding in Parquet keeps the size cost small.
pub const PSEUDONYM_HEX_LEN: usize = 32;

/// The kinds of identifier, each hashed under its own sub-key (domain separation). Declared
/// in the catalogue, beside the columns that hold them.
pub use vaxlake_catalog::IdKind;

/// The BLAKE3 key-derivation context of a kind: globally unique, hard-coded,
/// application-specific.
fn context(kind: IdKind) -> &'static str {
    match kind {
        IdKind::Person => "vaxlake 2026-11 pseudonym person v1",
        IdKind::Practitioner => "vaxlake 2026-11 pseudonym practitioner v1",
        IdKind::Event => "vaxlake 2026-11 pseudonym event v1",
        IdKind::Case => "vaxlake 2026-11 pseudonym case v1",
        IdKind::Resource => "vaxlake 2026-11 pseudonym resource v1",
    }
}

/// Hashes identifiers under the sub-keys derived from one master key. Cheap to clone and
/// share across threads.
///
/// Under a key chain `[k1, k2, ...]` (after rotations) the pseudonym is the keyed hash under
/// `k1` of the identifier, then under `k2` of that pseudonym's 16 bytes, and so on, each step
/// with the same per-kind sub-key derivation: exactly what re-keying the stored pseudonyms
/// at each rotation made of them, so new data joins with rotated data.
#[derive(Clone)]
pub struct Pseudonymizer {
    /// One set of per-kind sub-keys per key of the chain, oldest first.
    sub_keys: Vec<[[u8; 32]; 5]>,
    key_id: String,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pseudonymizer(key_id={}, sub_keys=<redacted>)",
            self.key_id
        )
    }
}

impl Pseudonymizer {
    pub fn new(master: &MasterKey) -> Self {
        let per_kind = IdKind::ALL.map(|k| master.derive_chain(context(k)));
        let sub_keys = (0..master.generations())
            .map(|generation| std::array::from_fn(|kind| per_kind[kind][generation]))
            .collect();
        Self {
            sub_keys,
            key_id: master.key_id(),
        }
    }

    /// The id of the master key these pseudonyms were made with.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The 128-bit pseudonym of an already normalised identifier.
    pub fn pseudonym_bytes(&self, kind: IdKind, normalised: &[u8]) -> [u8; 16] {
        let step = |keys: &[[u8; 32]; 5], input: &[u8]| {
            let hash = blake3::keyed_hash(&keys[kind as usize], input);
            let mut out = [0u8; 16];
            out.copy_from_slice(&hash.as_bytes()[..16]);
            out
        };
        let mut out = step(&self.sub_keys[0], normalised);
        for keys in &self.sub_keys[1..] {
            out = step(keys, &out);
        }
        out
    }

    /// The pseudonym as 32 hex characters (the form stored in tables).
    pub fn pseudonym(&self, kind: IdKind, normalised: &str) -> String {
        hex::encode(self.pseudonym_bytes(kind, normalised.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_hex(&hex::encode([byte; 32])).unwrap()
    }

    #[test]
    fn same_input_same_pseudonym() {
        let p = Pseudonymizer::new(&key(1));
        let q = Pseudonymizer::new(&key(1));
        let a = p.pseudonym(IdKind::Person, "1893120105732");
        assert_eq!(a, q.pseudonym(IdKind::Person, "1893120105732"));
        assert_eq!(a.len(), PSEUDONYM_HEX_LEN);
        assert!(!a.contains("1893120105732"));
    }

    #[test]
    fn kinds_are_domain_separated() {
        let p = Pseudonymizer::new(&key(1));
        let id = "1893120105732";
        let all: std::collections::HashSet<_> =
            IdKind::ALL.iter().map(|k| p.pseudonym(*k, id)).collect();
        assert_eq!(all.len(), IdKind::ALL.len());
    }

    #[test]
    fn a_new_key_changes_every_pseudonym_and_the_key_id() {
        let p = Pseudonymizer::new(&key(1));
        let q = Pseudonymizer::new(&key(2));
        assert_ne!(p.key_id(), q.key_id());
        for i in 0..1000u32 {
            let id = i.to_string();
            for k in IdKind::ALL {
                assert_ne!(p.pseudonym(k, &id), q.pseudonym(k, &id));
            }
        }
    }

    /// Today's single-key code path, spelled out: existing warehouses must stay valid.
    fn single_key_pseudonym(key_bytes: [u8; 32], kind: IdKind, input: &[u8]) -> [u8; 16] {
        let sub_key = blake3::derive_key(context(kind), &key_bytes);
        blake3::keyed_hash(&sub_key, input).as_bytes()[..16]
            .try_into()
            .unwrap()
    }

    fn chain(bytes: &[u8]) -> MasterKey {
        let lines: Vec<String> = bytes.iter().map(|b| hex::encode([*b; 32])).collect();
        MasterKey::from_hex(&lines.join("\n")).unwrap()
    }

    #[test]
    fn a_single_key_file_gives_the_pseudonyms_it_always_gave() {
        let p = Pseudonymizer::new(&key(9));
        for kind in IdKind::ALL {
            assert_eq!(
                p.pseudonym_bytes(kind, b"1893120105732"),
                single_key_pseudonym([9; 32], kind, b"1893120105732")
            );
        }
        assert_eq!(p.key_id(), key(9).key_id());
    }

    #[test]
    fn a_chain_hashes_the_previous_pseudonym_under_each_next_key() {
        let id = b"1893120105732";
        let two = Pseudonymizer::new(&chain(&[1, 2]));
        let three = Pseudonymizer::new(&chain(&[1, 2, 3]));
        for kind in IdKind::ALL {
            let p1 = single_key_pseudonym([1; 32], kind, id);
            let p2 = single_key_pseudonym([2; 32], kind, &p1);
            let p3 = single_key_pseudonym([3; 32], kind, &p2);
            assert_eq!(two.pseudonym_bytes(kind, id), p2);
            assert_eq!(three.pseudonym_bytes(kind, id), p3);
            // Differs from each member key used alone.
            assert_ne!(p2, p1);
            assert_ne!(p2, single_key_pseudonym([2; 32], kind, id));
        }
        // Kinds stay separated along the chain.
        let all: std::collections::HashSet<_> = IdKind::ALL
            .iter()
            .map(|k| three.pseudonym(*k, "1893120105732"))
            .collect();
        assert_eq!(all.len(), IdKind::ALL.len());
        // The chain's id is none of its members' ids.
        for member in [1, 2, 3] {
            assert_ne!(three.key_id(), key(member).key_id());
        }
        assert_ne!(three.key_id(), two.key_id());
    }

    #[test]
    fn rotation_turns_stored_pseudonyms_into_the_chains() {
        let (old, fresh) = (chain(&[1, 2]), key(3));
        let rotation = crate::KeyRotation::new(&old, &fresh).unwrap();
        let before = Pseudonymizer::new(&old);
        let after = Pseudonymizer::new(rotation.rotated_key());
        assert_eq!(after.key_id(), chain(&[1, 2, 3]).key_id());
        assert_eq!(rotation.to_key_id(), after.key_id());
        for i in 0..200u32 {
            let id = format!("{i:013}");
            for kind in IdKind::ALL {
                let stored = before.pseudonym(kind, &id);
                let rekeyed = rotation.rekey_hex(kind, &stored).unwrap();
                assert_eq!(rekeyed, after.pseudonym(kind, &id));
                assert_ne!(rekeyed, stored);
            }
        }
        assert_eq!(rotation.rekey_hex(IdKind::Person, "not hex"), None);
        assert_eq!(rotation.rekey_hex(IdKind::Person, "abcd"), None);
    }

    #[test]
    fn debug_never_shows_sub_keys() {
        let p = Pseudonymizer::new(&chain(&[0x11, 0x22]));
        let shown = format!("{p:?} {p:#?}");
        assert!(!shown.contains("1111"), "{shown}");
        assert!(!shown.contains("17, 17"), "{shown}");
        for sub_key in p.sub_keys.iter().flatten() {
            assert!(!shown.contains(&hex::encode(sub_key)[..8]), "{shown}");
            assert!(
                !shown.contains(&format!("{}, {}", sub_key[0], sub_key[1])),
                "{shown}"
            );
        }
        assert!(shown.contains(p.key_id()));
    }

    #[test]
    fn distinct_inputs_do_not_collide() {
        let p = Pseudonymizer::new(&key(7));
        let set: std::collections::HashSet<_> = (0..100_000u32)
            .map(|i| p.pseudonym_bytes(IdKind::Person, &i.to_le_bytes()))
            .collect();
        assert_eq!(set.len(), 100_000);
    }
}
