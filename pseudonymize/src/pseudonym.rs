//! Keyed BLAKE3 pseudonyms with one derived sub-key per kind of identifier.

use crate::MasterKey;

/// Pseudonyms are the first 128 bits of keyed BLAKE3, written as 32 lower-case hex
/// characters. Text rather than binary because Delta has no fixed-size binary type, every
/// reader (DuckDB, Spark, CSV and JSON answers) shows text the same way, and dictionary
/// encoding in Parquet keeps the size cost small.
pub const PSEUDONYM_HEX_LEN: usize = 32;

/// The kinds of identifier, each hashed under its own sub-key (domain separation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A person's normalised national number.
    Person,
    /// A vaccinator (practitioner reference or identifier).
    Practitioner,
    /// A source event: `"<source system>|<event id>"`.
    Event,
    /// A case notification: `"<case id>"`.
    Case,
    /// A FHIR resource id inside one export (never stored; used to link resources).
    Resource,
}

impl IdKind {
    const ALL: [IdKind; 5] = [
        IdKind::Person,
        IdKind::Practitioner,
        IdKind::Event,
        IdKind::Case,
        IdKind::Resource,
    ];

    /// The BLAKE3 key-derivation context: globally unique, hard-coded, application-specific.
    fn context(self) -> &'static str {
        match self {
            IdKind::Person => "vaxlake 2026-11 pseudonym person v1",
            IdKind::Practitioner => "vaxlake 2026-11 pseudonym practitioner v1",
            IdKind::Event => "vaxlake 2026-11 pseudonym event v1",
            IdKind::Case => "vaxlake 2026-11 pseudonym case v1",
            IdKind::Resource => "vaxlake 2026-11 pseudonym resource v1",
        }
    }
}

/// Hashes identifiers under the sub-keys derived from one master key. Cheap to clone and
/// share across threads.
#[derive(Clone)]
pub struct Pseudonymizer {
    sub_keys: [[u8; 32]; 5],
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
        let sub_keys = IdKind::ALL.map(|k| master.derive(k.context()));
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
        let key = &self.sub_keys[kind as usize];
        let hash = blake3::keyed_hash(key, normalised);
        let mut out = [0u8; 16];
        out.copy_from_slice(&hash.as_bytes()[..16]);
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

    #[test]
    fn distinct_inputs_do_not_collide() {
        let p = Pseudonymizer::new(&key(7));
        let set: std::collections::HashSet<_> = (0..100_000u32)
            .map(|i| p.pseudonym_bytes(IdKind::Person, &i.to_le_bytes()))
            .collect();
        assert_eq!(set.len(), 100_000);
    }
}
