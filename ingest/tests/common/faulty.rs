//! A fault-injecting object store registered under the `faulty://` scheme, so that ingest,
//! maintenance, key rotation and extracts reach it through deltalake exactly as they reach
//! S3. Each `faulty://BUCKET/...` is an in-memory bucket whose requests of one kind number
//! `hits` (0-based, counted from the plan's arming) get a fault: a failure, a stall, or a
//! torn read (the body of a get ends early, with an error as a dropped connection gives, or
//! silently short as a broken proxy gives). Shared by the ingest crate's fault tests and the
//! end-to-end extract fault test (`tests/faults_extract.rs` includes this file by path).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deltalake::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory,
    ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::DeltaResult;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use url::Url;

/// The kinds of request a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Put,
    Get,
    List,
    Delete,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Put, Kind::Get, Kind::List, Kind::Delete];
}

/// What happens to a request a plan hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request fails with a generic store error (a 500 after the client's retries).
    Fail,
    /// The request is held this long, then served.
    Stall(Duration),
    /// A get whose body breaks off after half its bytes with an error (a connection reset
    /// mid-body). Only meaningful for [`Kind::Get`].
    TornError,
    /// A get whose body ends cleanly after half its bytes, although its range and metadata
    /// announce the whole object (a proxy that cut the body). Only for [`Kind::Get`].
    TornShort,
}

#[derive(Debug, Clone)]
struct Plan {
    kind: Kind,
    hits: Range<usize>,
    fault: Fault,
}

/// One bucket of the `faulty://` scheme.
#[derive(Default)]
pub struct Bucket {
    inner: InMemory,
    plan: Mutex<Option<Plan>>,
    counts: Mutex<HashMap<Kind, usize>>,
    seen: AtomicUsize,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bucket")
    }
}

impl Bucket {
    /// Injects `fault` into the requests of `kind` numbered `hits` from now on; every
    /// count starts again from 0.
    pub fn arm(&self, kind: Kind, hits: Range<usize>, fault: Fault) {
        self.counts.lock().unwrap().clear();
        self.seen.store(0, Ordering::SeqCst);
        *self.plan.lock().unwrap() = Some(Plan { kind, hits, fault });
    }

    /// Starts counting requests from 0 without injecting anything.
    pub fn count_only(&self) {
        self.counts.lock().unwrap().clear();
        self.seen.store(0, Ordering::SeqCst);
        *self.plan.lock().unwrap() = None;
    }

    /// Stops injecting; the counts go on.
    pub fn disarm(&self) {
        *self.plan.lock().unwrap() = None;
    }

    /// How many faults were injected since arming.
    pub fn injected(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Requests of `kind` since the last [`Bucket::arm`] or [`Bucket::count_only`].
    pub fn count(&self, kind: Kind) -> usize {
        self.counts.lock().unwrap().get(&kind).copied().unwrap_or(0)
    }

    /// Every object of the bucket, with its bytes (to copy a warehouse between buckets).
    pub async fn objects(&self) -> Vec<(ObjectPath, Bytes)> {
        let metas: Vec<ObjectMeta> = self.inner.list(None).map(|m| m.unwrap()).collect().await;
        let mut out = Vec::new();
        for meta in metas {
            let bytes = self
                .inner
                .get_opts(&meta.location, GetOptions::default())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            out.push((meta.location, bytes));
        }
        out
    }

    /// Puts `objects` into the bucket (neither counted nor faulted): a fresh bucket made a
    /// copy of another one's warehouse.
    pub async fn load(&self, objects: &[(ObjectPath, Bytes)]) {
        for (location, bytes) in objects {
            self.inner
                .put_opts(
                    location,
                    PutPayload::from(bytes.clone()),
                    PutOptions::default(),
                )
                .await
                .unwrap();
        }
    }

    /// Counts a request of `kind`; the fault it gets, if the plan hits it.
    fn next(&self, kind: Kind) -> Option<Fault> {
        let this = {
            let mut counts = self.counts.lock().unwrap();
            let n = counts.entry(kind).or_default();
            let this = *n;
            *n += 1;
            this
        };
        let plan = self.plan.lock().unwrap();
        let plan = plan.as_ref()?;
        if plan.kind != kind || !plan.hits.contains(&this) {
            return None;
        }
        self.seen.fetch_add(1, Ordering::SeqCst);
        Some(plan.fault)
    }

    /// Counts a request that cannot be torn: fails or stalls it when the plan says so.
    async fn check(&self, kind: Kind) -> object_store::Result<()> {
        match self.next(kind) {
            None => Ok(()),
            Some(Fault::Stall(pause)) => {
                tokio::time::sleep(pause).await;
                Ok(())
            }
            Some(_) => Err(injected(kind)),
        }
    }
}

fn injected(kind: Kind) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: format!("injected fault on {kind:?}").into(),
    }
}

/// The store one URL of a bucket sees.
#[derive(Debug)]
pub struct Faulty(pub Arc<Bucket>);

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Faulty")
    }
}

/// The first half of `bytes` (at least one byte short when there is any).
fn half(bytes: &Bytes) -> Bytes {
    bytes.slice(..bytes.len() / 2)
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.0.check(Kind::Put).await?;
        self.0.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.check(Kind::Put).await?;
        self.0.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let fault = self.0.next(Kind::Get);
        match fault {
            None => return self.0.inner.get_opts(location, options).await,
            Some(Fault::Fail) => return Err(injected(Kind::Get)),
            Some(Fault::Stall(pause)) => {
                tokio::time::sleep(pause).await;
                return self.0.inner.get_opts(location, options).await;
            }
            Some(Fault::TornError | Fault::TornShort) => {}
        }
        let head = options.head;
        let mut result = self.0.inner.get_opts(location, options).await?;
        if head {
            return Ok(result);
        }
        let whole = std::mem::replace(
            &mut result.payload,
            GetResultPayload::Stream(futures::stream::empty().boxed()),
        );
        let bytes = GetResult {
            payload: whole,
            meta: result.meta.clone(),
            range: result.range.clone(),
            attributes: result.attributes.clone(),
        }
        .bytes()
        .await?;
        let torn = half(&bytes);
        let tail: Vec<object_store::Result<Bytes>> = match fault {
            Some(Fault::TornError) => vec![Err(object_store::Error::Generic {
                store: "faulty",
                source: "injected torn read: the body broke off".into(),
            })],
            _ => Vec::new(),
        };
        result.payload = GetResultPayload::Stream(
            futures::stream::iter(std::iter::once(Ok(torn)).chain(tail)).boxed(),
        );
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        match self.0.next(Kind::Get) {
            None => self.0.inner.get_ranges(location, ranges).await,
            Some(Fault::Fail | Fault::TornError) => Err(injected(Kind::Get)),
            Some(Fault::Stall(pause)) => {
                tokio::time::sleep(pause).await;
                self.0.inner.get_ranges(location, ranges).await
            }
            Some(Fault::TornShort) => {
                let mut parts = self.0.inner.get_ranges(location, ranges).await?;
                if let Some(last) = parts.last_mut() {
                    *last = half(last);
                }
                Ok(parts)
            }
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        let bucket = self.0.clone();
        let checked = locations
            .then(move |location| {
                let bucket = bucket.clone();
                async move {
                    let location = location?;
                    bucket.check(Kind::Delete).await?;
                    Ok(location)
                }
            })
            .boxed();
        self.0.inner.delete_stream(checked)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let bucket = self.0.clone();
        let inner = self.0.inner.list(prefix);
        futures::stream::once(async move { bucket.check(Kind::List).await })
            .filter_map(|checked| async move { checked.err().map(Err) })
            .chain(inner)
            .boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.0.check(Kind::List).await?;
        self.0.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.0.check(Kind::Put).await?;
        self.0.inner.copy_opts(from, to, options).await
    }
}

/// `faulty://BUCKET/...` → the bucket's store.
#[derive(Default)]
pub struct FaultyFactory {
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
}

impl FaultyFactory {
    /// The bucket `name` (created empty on first use).
    pub fn bucket(&self, name: &str) -> Arc<Bucket> {
        self.buckets
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

impl ObjectStoreFactory for FaultyFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, ObjectPath)> {
        let bucket = self.bucket(url.host_str().unwrap_or_default());
        let path = ObjectPath::from_url_path(url.path())?;
        Ok((Arc::new(Faulty(bucket)), path))
    }
}

struct FaultyLogStores;

impl LogStoreFactory for FaultyLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// The `faulty://` scheme, registered with deltalake on first use.
pub fn factory() -> Arc<FaultyFactory> {
    static FACTORY: OnceLock<Arc<FaultyFactory>> = OnceLock::new();
    FACTORY
        .get_or_init(|| {
            let factory = Arc::new(FaultyFactory::default());
            let scheme = Url::parse("faulty://").unwrap();
            object_store_factories().insert(scheme.clone(), factory.clone());
            logstore_factories().insert(scheme, Arc::new(FaultyLogStores));
            factory
        })
        .clone()
}

/// `n` request numbers spread evenly over `0..total` (the first and the last included when
/// `n` ≥ 2), to aim faults all along a run of `total` requests.
pub fn spread(total: usize, n: usize) -> Vec<usize> {
    if total == 0 || n == 0 {
        return Vec::new();
    }
    let n = n.min(total);
    let mut points: Vec<usize> = (0..n)
        .map(|i| if n == 1 { 0 } else { i * (total - 1) / (n - 1) })
        .collect();
    points.dedup();
    points
}
