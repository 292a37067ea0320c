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

#[cfg(test)]
mod tests {
    use crate::{QueryOptions, Warehouse};
    use vaxlake_catalog::ORDER_SECRET_OBJECT;

    async fn open(dir: &std::path::Path) -> Result<Warehouse, crate::QueryError> {
        Warehouse::open(dir.to_str().unwrap(), QueryOptions::default()).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_secret_written_later_is_picked_up_by_the_next_refresh_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = open(dir.path()).await.unwrap();
        assert!(warehouse.snapshot().order_secret.is_none());
        assert!(!warehouse.refresh().await.unwrap());

        std::fs::write(dir.path().join(ORDER_SECRET_OBJECT), [9u8; 32]).unwrap();
        assert!(warehouse.refresh().await.unwrap(), "the secret is news");
        let secret = warehouse.snapshot().order_secret.clone().unwrap();
        assert_eq!(secret.expose(), &[9u8; 32]);

        // Read once, kept: a reader never switches orders under the same tables.
        std::fs::write(dir.path().join(ORDER_SECRET_OBJECT), [7u8; 32]).unwrap();
        assert!(!warehouse.refresh().await.unwrap());
        assert_eq!(warehouse.snapshot().order_secret, Some(secret));
        // A new opening reads what is there now.
        let reopened = open(dir.path()).await.unwrap();
        assert_eq!(
            reopened.snapshot().order_secret.as_ref().unwrap().expose(),
            &[7u8; 32]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_that_is_not_a_secret_refuses_the_opening_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ORDER_SECRET_OBJECT), b"hunter2").unwrap();
        let error = open(dir.path()).await.unwrap_err().to_string();
        assert!(error.contains("holds 7 bytes, not 32"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
