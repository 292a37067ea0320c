//! The object stores of the scheduler's and executors' sessions: the local file system, and
//! one S3 client per bucket configured from the standard AWS environment (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`), the same
//! variables the warehouse's own commands read. Clients are kept, so a query's tasks share
//! one connection pool.
//!
//! Not Ballista's `CustomObjectStoreRegistry`: it builds a new S3 client on every lookup and
//! panics when a store is registered.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use url::Url;

#[derive(Debug, Default)]
pub struct ObjectStores {
    stores: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

/// `s3://bucket/any/path` → `s3://bucket`.
fn key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
}

impl ObjectStoreRegistry for ObjectStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.stores
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key(url), store)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let key = key(url);
        if let Some(store) = self
            .stores
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
        {
            return Ok(store.clone());
        }
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => Arc::new(LocalFileSystem::new()),
            "s3" | "s3a" => {
                let bucket = url
                    .host_str()
                    .ok_or_else(|| DataFusionError::Configuration(format!("{url}: no bucket")))?;
                Arc::new(
                    AmazonS3Builder::from_env()
                        .with_bucket_name(bucket)
                        .build()
                        .map_err(|error| DataFusionError::External(Box::new(error)))?,
                )
            }
            other => {
                return Err(DataFusionError::Configuration(format!(
                    "object store '{other}://' is not supported on the cluster (file, s3)"
                )))
            }
        };
        Ok(self
            .stores
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key)
            .or_insert(store)
            .clone())
    }
}
