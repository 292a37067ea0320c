//! Reads the warehouse's complement-order secret (`vaxlake_catalog::order_secret`) through
//! the object store the tables live in. The ingest creates it; readers never do (opening a
//! warehouse must not write).

use deltalake::logstore::object_store::{self, path::Path, ObjectStoreExt};
use url::Url;
use vaxlake_catalog::{OrderSecret, ORDER_SECRET_OBJECT};

use crate::QueryError;

/// The secret of the warehouse at `root`, `None` when it has none yet (written before the
/// secret existed, or not ingested into yet). A secret that cannot be read, or an object
/// that is not one, is an error: answering with another order instead would publish a
/// second complement pattern of the same tables.
pub(crate) async fn read_order_secret(root: &Url) -> Result<Option<OrderSecret>, QueryError> {
    let failed = |reason: &dyn std::fmt::Display| {
        QueryError::warehouse(
            root,
            format_args!("complement-order secret ({ORDER_SECRET_OBJECT}): {reason}"),
        )
    };
    let store = deltalake::logstore::store_for(root, std::iter::empty::<(&str, &str)>())
        .map_err(|error| failed(&error))?;
    let bytes = match store.get(&Path::from(ORDER_SECRET_OBJECT)).await {
        Ok(found) => found.bytes().await.map_err(|error| failed(&error))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(failed(&error)),
    };
    OrderSecret::from_bytes(&bytes)
        .map(Some)
        .map_err(|error| failed(&error))
}
