//! The complement-order secret: 32 random bytes stored once per warehouse, at its root, that
//! key the order in which coverage suppression picks complementary cells
//! (docs/coverage.md, "The order complements are taken in").
//!
//! Every door that publishes coverage of one warehouse (the HTTP API and its dashboards, the
//! command line, `--all`) must take complements in the same order: two orders would publish
//! two complement patterns of one table, and their union withholds less than either. So the
//! secret belongs to the warehouse, not to a command's flags. The first ingest creates it
//! (put-if-absent, so two first ingests agree); readers read it with the tables.
//!
//! It is not an identity and unrelated to the master key (a key rotation leaves it alone),
//! but whoever learns it can replay the complement choice and tell complements from primary
//! cells: it is never printed, logged or returned. [`OrderSecret`]'s `Debug` says only that
//! a secret is there.

/// Name of the object at the warehouse root holding the secret (raw bytes). The leading `_`
/// keeps Delta readers, vacuum and table listings away from it, like `_vaxlake_ingest.lock`.
pub const ORDER_SECRET_OBJECT: &str = "_vaxlake_order.secret";

/// Bytes of the secret.
pub const ORDER_SECRET_LEN: usize = 32;

/// The warehouse's complement-order secret. Only [`OrderSecret::expose`] gives its bytes,
/// to derive the order key from.
#[derive(Clone, PartialEq, Eq)]
pub struct OrderSecret([u8; ORDER_SECRET_LEN]);

impl OrderSecret {
    /// The secret stored as `bytes` (the object's whole content).
    pub fn from_bytes(bytes: &[u8]) -> Result<OrderSecret, OrderSecretError> {
        let bytes: [u8; ORDER_SECRET_LEN] = bytes
            .try_into()
            .map_err(|_| OrderSecretError::Length(bytes.len()))?;
        Ok(OrderSecret(bytes))
    }

    /// The secret's bytes, to key the order with; never to be written anywhere else.
    pub fn expose(&self) -> &[u8; ORDER_SECRET_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for OrderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrderSecret(..)")
    }
}

/// An object at [`ORDER_SECRET_OBJECT`] that is not a secret. The message never quotes its
/// content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderSecretError {
    #[error(
        "{ORDER_SECRET_OBJECT} at the warehouse root holds {0} bytes, not {ORDER_SECRET_LEN}: \
         restore it from a backup of the warehouse (deleting it makes the next ingest create \
         a new one, which changes which cells complementary suppression withholds)"
    )]
    Length(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_32_bytes_are_a_secret_and_debug_hides_them() {
        let secret = OrderSecret::from_bytes(&[0xab; 32]).unwrap();
        assert_eq!(secret.expose(), &[0xab; 32]);
        assert_eq!(format!("{secret:?}"), "OrderSecret(..)");
        assert_eq!(
            OrderSecret::from_bytes(&[1; 31]),
            Err(OrderSecretError::Length(31))
        );
        assert_eq!(
            OrderSecret::from_bytes(b""),
            Err(OrderSecretError::Length(0))
        );
    }
}
