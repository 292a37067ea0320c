//! Keyed pseudonymisation of identities and generalisation of quasi-identifiers.
//!
//! Everything that turns an identity into something the warehouse may store lives here, so
//! that the rules of DESIGN.md ("Pseudonymisation") are enforced in one place:
//!
//! * one 32-byte [`MasterKey`], never printed (its `Debug` is redacted), or after key
//!   rotations ([`KeyRotation`]) a chain of them, each re-hashing the previous pseudonym;
//! * one BLAKE3 `derive_key` sub-key per [`IdKind`], so a person's pseudonym can never equal a
//!   practitioner's even for the same input bytes;
//! * identifiers are normalised (and national numbers check-digit verified) before hashing;
//! * birth dates are generalised to birth months, after the age at a dose has been computed.
//!
//! ```
//! use vaxlake_pseudonymize::{IdKind, MasterKey, Pseudonymizer};
//! let key = MasterKey::from_hex(&"ab".repeat(32)).unwrap();
//! let p = Pseudonymizer::new(&key);
//! assert_ne!(p.pseudonym(IdKind::Person, "1893120105732"), p.pseudonym(IdKind::Practitioner, "1893120105732"));
//! ```

mod generalise;
mod key;
pub mod national_id;
mod project;
mod pseudonym;

pub use generalise::{age_in_completed_months, birth_month, canton_of, Commune, COMMUNES};
pub use key::{KeyError, KeyRotation, MasterKey};
pub use project::ProjectKey;
pub use pseudonym::{IdKind, Pseudonymizer, PSEUDONYM_HEX_LEN};
