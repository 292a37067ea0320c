//! The key-id table property: every table the ingest writes records the public id of the key
//! its pseudonyms were made with, so a run with another key is refused before it writes
//! pseudonyms that would never join.

use std::collections::{BTreeSet, HashMap};

/// Table property (Delta `configuration`) holding the key id.
pub const KEY_ID_PROPERTY: &str = "vaxlake.keyId";

/// Table property holding the key id a rotation replaced: lets a run with the old key be
/// told to use the rotated key file, rather than only that the key is wrong.
pub const KEY_ROTATED_FROM_PROPERTY: &str = "vaxlake.keyRotatedFrom";

/// The key id a table's properties record, if any.
pub fn key_id(configuration: &HashMap<String, String>) -> Option<&str> {
    configuration.get(KEY_ID_PROPERTY).map(String::as_str)
}

/// The key id and rotation origin one table's properties record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub table: String,
    pub key_id: Option<String>,
    pub rotated_from: Option<String>,
}

impl StoredKey {
    /// Reads both properties of `table` from its `configuration`.
    pub fn read(table: &str, configuration: &HashMap<String, String>) -> StoredKey {
        StoredKey {
            table: table.to_string(),
            key_id: key_id(configuration).map(str::to_string),
            rotated_from: configuration.get(KEY_ROTATED_FROM_PROPERTY).cloned(),
        }
    }
}

/// Why a key may not be used on a warehouse. Messages say what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "table '{table}' was written with key id {stored}, but the key given has id {given}; \
         use the warehouse's key (or rotate the warehouse to the new key)"
    )]
    KeyMismatch {
        table: String,
        stored: String,
        given: String,
    },
    #[error(
        "the warehouse's tables carry different key ids ({ids}): a key rotation was \
         interrupted; finish it by running `vaxlake key rotate` again with the same \
         --key-file and --new-key-file, then ingest with the new key file"
    )]
    RotationUnfinished { ids: String },
    #[error(
        "the warehouse was rotated from key id {given} (the key given) to key id {stored}: \
         ingest with the rotated key file (the --new-key-file of `vaxlake key rotate`, which \
         now holds the key chain) and destroy this old key file"
    )]
    KeyRotatedAway { stored: String, given: String },
}

/// Refuses `key_id` unless every table present (`stored`, in [`crate::warehouse_tables`]
/// order) was written with it: says to finish the rotation when the tables disagree among
/// themselves (an interrupted `key rotate`), and which key to use when the warehouse was
/// rotated away from this one.
pub fn check_keys(stored: &[StoredKey], key_id: &str) -> Result<(), KeyError> {
    let ids: BTreeSet<&str> = stored.iter().filter_map(|s| s.key_id.as_deref()).collect();
    if ids.len() > 1 {
        let listed: Vec<String> = stored
            .iter()
            .map(|s| format!("{}={}", s.table, s.key_id.as_deref().unwrap_or("none")))
            .collect();
        return Err(KeyError::RotationUnfinished {
            ids: listed.join(", "),
        });
    }
    for s in stored {
        match &s.key_id {
            Some(id) if id != key_id && s.rotated_from.as_deref() == Some(key_id) => {
                return Err(KeyError::KeyRotatedAway {
                    stored: id.clone(),
                    given: key_id.to_string(),
                })
            }
            Some(id) if id != key_id => {
                return Err(KeyError::KeyMismatch {
                    table: s.table.clone(),
                    stored: id.clone(),
                    given: key_id.to_string(),
                })
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(table: &str, id: Option<&str>, from: Option<&str>) -> StoredKey {
        let mut configuration = HashMap::new();
        if let Some(id) = id {
            configuration.insert(KEY_ID_PROPERTY.to_string(), id.to_string());
        }
        if let Some(from) = from {
            configuration.insert(KEY_ROTATED_FROM_PROPERTY.to_string(), from.to_string());
        }
        StoredKey::read(table, &configuration)
    }

    #[test]
    fn one_key_everywhere_or_the_reason() {
        let same = [stored("a", Some("k1"), None), stored("b", None, None)];
        assert_eq!(check_keys(&same, "k1"), Ok(()));
        assert!(matches!(
            check_keys(&same, "k2"),
            Err(KeyError::KeyMismatch { table, .. }) if table == "a"
        ));
        let mixed = [
            stored("a", Some("k1"), None),
            stored("b", Some("k2"), Some("k1")),
        ];
        let error = check_keys(&mixed, "k1").unwrap_err().to_string();
        assert!(error.contains("(a=k1, b=k2)"), "{error}");
        let rotated = [stored("a", Some("k2"), Some("k1"))];
        assert!(matches!(
            check_keys(&rotated, "k1"),
            Err(KeyError::KeyRotatedAway { .. })
        ));
    }
}
