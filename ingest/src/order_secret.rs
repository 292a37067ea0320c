//! Creates the warehouse's complement-order secret ([`vaxlake_catalog::order_secret`]) if
//! it is missing: the ingest does it before its first commit, `vaxlake maintain` for a
//! warehouse written before the secret existed.
//!
//! Written through the object store the warehouse's tables live in (a local directory or an
//! object-store URL alike), with put-if-absent: of two first ingests racing, one creates it
//! and the other reads the winner's, so every reader sees one secret for the warehouse's
//! whole life. Its bytes are never logged or returned.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;
use vaxlake_catalog::{OrderSecret, ORDER_SECRET_LEN, ORDER_SECRET_OBJECT};

use crate::error::{IngestError, Result};

/// Makes sure the warehouse at `root` (a directory URL, as [`crate::warehouse_url`] gives)
/// holds a valid complement-order secret, creating one when it has none. Returns whether
/// this call created it. An object that is there but is not a secret is an error (never
/// replaced: that would change the order behind the readers' backs).
pub async fn ensure_order_secret(root: &Url) -> Result<bool> {
    let store = deltalake::logstore::store_for(root, std::iter::empty::<(&str, &str)>())
        .map_err(|error| secret_error(root, error))?;
    let path = Path::from(ORDER_SECRET_OBJECT);
    if read(store.as_ref(), root, &path).await?.is_some() {
        return Ok(false);
    }
    let mut bytes = [0u8; ORDER_SECRET_LEN];
    // The operating system's generator, as for master keys: nothing outside can predict it.
    getrandom::fill(&mut bytes).map_err(|error| secret_error(root, error))?;
    let options = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match store
        .put_opts(&path, PutPayload::from(bytes.to_vec()), options)
        .await
    {
        Ok(_) => {
            tracing::info!(
                object = ORDER_SECRET_OBJECT,
                "created the warehouse's complement-order secret"
            );
            Ok(true)
        }
        // Another writer created it between our read and our write: theirs holds.
        Err(object_store::Error::AlreadyExists { .. }) => {
            match read(store.as_ref(), root, &path).await? {
                Some(_) => Ok(false),
                None => Err(secret_error(root, "created by another writer, then gone")),
            }
        }
        Err(error) => Err(secret_error(root, error)),
    }
}

/// The secret at `path`, `None` when there is no such object.
async fn read(store: &dyn ObjectStore, root: &Url, path: &Path) -> Result<Option<OrderSecret>> {
    let bytes = match store.get(path).await {
        Ok(found) => found
            .bytes()
            .await
            .map_err(|error| secret_error(root, error))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(secret_error(root, error)),
    };
    OrderSecret::from_bytes(&bytes)
        .map(Some)
        .map_err(|error| secret_error(root, error))
}

fn secret_error(root: &Url, reason: impl std::fmt::Display) -> IngestError {
    IngestError::OrderSecret {
        warehouse: root.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::warehouse_url(dir.path().to_str().unwrap()).unwrap();
        assert!(ensure_order_secret(&root).await.unwrap());
        let first = std::fs::read(dir.path().join(ORDER_SECRET_OBJECT)).unwrap();
        assert_eq!(first.len(), ORDER_SECRET_LEN);
        assert!(!ensure_order_secret(&root).await.unwrap());
        assert_eq!(
            std::fs::read(dir.path().join(ORDER_SECRET_OBJECT)).unwrap(),
            first
        );
        // No staging file of the atomic write is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [ORDER_SECRET_OBJECT], "{names:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_first_writers_agree_on_one_secret() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::warehouse_url(dir.path().to_str().unwrap()).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let root = root.clone();
                tokio::spawn(async move { ensure_order_secret(&root).await.unwrap() })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            created += usize::from(task.await.unwrap());
        }
        assert_eq!(created, 1, "exactly one writer creates the secret");
        assert_eq!(
            std::fs::read(dir.path().join(ORDER_SECRET_OBJECT))
                .unwrap()
                .len(),
            ORDER_SECRET_LEN
        );
    }

    #[tokio::test]
    async fn a_broken_secret_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::warehouse_url(dir.path().to_str().unwrap()).unwrap();
        std::fs::write(dir.path().join(ORDER_SECRET_OBJECT), b"short").unwrap();
        let error = ensure_order_secret(&root).await.unwrap_err().to_string();
        assert!(error.contains("holds 5 bytes, not 32"), "{error}");
        assert_eq!(
            std::fs::read(dir.path().join(ORDER_SECRET_OBJECT)).unwrap(),
            b"short"
        );
    }
}
