//! Faults of object storage during an ingest: a store that fails (or stalls) the N-th
//! request of a kind, registered under the `faulty://` scheme so the ingest reaches it
//! through deltalake exactly as it reaches S3. After every injected fault the tables read as
//! a version that was committed (every file the log names is there, no event twice), and the
//! next run without the fault ends where a run that never failed ends.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deltalake::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory,
    ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTable};
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use url::Url;
use vaxlake_generate::{generate, GenerateOptions};
use vaxlake_ingest::{ingest, IngestOptions, Source};
use vaxlake_pseudonymize::MasterKey;

mod common;

/// The kinds of request a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Get,
    List,
    Delete,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The request fails with a generic store error (a 500 after the client's retries).
    Fail,
    /// The request is held this long, then served.
    Stall(Duration),
}

/// One bucket of the `faulty://` scheme: an in-memory store whose requests of `kind` number
/// `hits` (0-based, counted from the fault's arming) get `fault`.
#[derive(Default)]
struct Bucket {
    inner: InMemory,
    plan: Mutex<Option<(Kind, Range<usize>, Fault)>>,
    counts: Mutex<HashMap<&'static str, usize>>,
    seen: AtomicUsize,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bucket")
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("faulty bucket")
    }
}

impl Bucket {
    fn arm(&self, kind: Kind, hits: Range<usize>, fault: Fault) {
        self.counts.lock().unwrap().clear();
        self.seen.store(0, Ordering::SeqCst);
        *self.plan.lock().unwrap() = Some((kind, hits, fault));
    }

    fn disarm(&self) {
        *self.plan.lock().unwrap() = None;
    }

    /// How many faults were injected since arming.
    fn injected(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    async fn check(&self, kind: Kind) -> object_store::Result<()> {
        let name = match kind {
            Kind::Put => "put",
            Kind::Get => "get",
            Kind::List => "list",
            Kind::Delete => "delete",
        };
        let fault = {
            let plan = self.plan.lock().unwrap();
            let Some((wanted, hits, fault)) = plan.as_ref() else {
                return Ok(());
            };
            if *wanted != kind {
                return Ok(());
            }
            let mut counts = self.counts.lock().unwrap();
            let n = counts.entry(name).or_default();
            let this = *n;
            *n += 1;
            if !hits.contains(&this) {
                return Ok(());
            }
            *fault
        };
        self.seen.fetch_add(1, Ordering::SeqCst);
        match fault {
            Fault::Fail => Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected fault on {name}").into(),
            }),
            Fault::Stall(pause) => {
                tokio::time::sleep(pause).await;
                Ok(())
            }
        }
    }
}

/// The store one URL of a bucket sees.
#[derive(Debug)]
struct Faulty(Arc<Bucket>);

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Faulty")
    }
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
        self.0.check(Kind::Get).await?;
        self.0.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.0.check(Kind::Get).await?;
        self.0.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        let bucket = self.0.clone();
        use futures::StreamExt;
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
        use futures::StreamExt;
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
struct FaultyFactory {
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
}

impl FaultyFactory {
    fn bucket(&self, name: &str) -> Arc<Bucket> {
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

fn factory() -> Arc<FaultyFactory> {
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

fn key() -> MasterKey {
    MasterKey::from_hex(&"ab".repeat(32)).unwrap()
}

fn options() -> IngestOptions {
    IngestOptions {
        batch_rows: 400,
        workers: 2,
        ..IngestOptions::default()
    }
}

/// Every row of `table` in the warehouse at `root` (see `common::rows_of`), sorted; `None`
/// when the table is not there.
async fn rows(root: &str, table: &str) -> Option<Vec<String>> {
    let url = Url::parse(&format!("{root}/{table}/")).unwrap();
    let delta = match DeltaTable::try_from_url(url).await {
        Ok(t) if t.version().is_some() => t,
        _ => return None,
    };
    // When and by which run a row was written differ from run to run by design.
    Some(common::rows_of(&delta, &["ingested_at", "received_at", "run_id"]).await)
}

const TABLES: &[&str] = &["vaccinations", "persons", "quarantine", "dose_facts"];

async fn snapshot(root: &str) -> Vec<Option<Vec<String>>> {
    let mut all = Vec::new();
    for table in TABLES {
        all.push(rows(root, table).await);
    }
    all
}

/// Fails naming the first table and row that differ (whole tables are too long to read).
fn assert_same(got: &[Option<Vec<String>>], want: &[Option<Vec<String>>], what: &str) {
    for ((table, got), want) in TABLES.iter().zip(got).zip(want) {
        if got == want {
            continue;
        }
        let (got, want) = (
            got.clone().unwrap_or_default(),
            want.clone().unwrap_or_default(),
        );
        let only_got: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
        let only_want: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
        panic!(
            "{what}: {table} holds {} rows, a clean run {}; only here: {only_got:?}; only in the clean run: {only_want:?}",
            got.len(),
            want.len()
        );
    }
}

fn export(dir: &Path) -> Source {
    let out = dir.join("export");
    generate(
        &GenerateOptions {
            persons: 300,
            seed: 5,
        },
        &out,
    )
    .unwrap();
    Source::parse(&format!("fhir:{}", out.join("fhir").display())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_any_failed_request_the_tables_hold_a_committed_version_and_the_next_run_completes() {
    let factory = factory();
    let dir = tempfile::tempdir().unwrap();
    let source = export(dir.path());

    // The run nothing fails: what every faulted warehouse must end as.
    let clean_root = "faulty://clean/wh";
    let clean = ingest(clean_root, &source, &key(), &options())
        .await
        .unwrap();
    let expected = snapshot(clean_root).await;
    assert!(expected[0].as_ref().is_some_and(|rows| rows.len() > 1000));
    // Count the requests of a clean run, to aim faults all along it.
    let counting = factory.bucket("counting");
    counting.arm(Kind::Put, usize::MAX..usize::MAX, Fault::Fail);
    ingest("faulty://counting/wh", &source, &key(), &options())
        .await
        .unwrap();
    let puts = counting
        .counts
        .lock()
        .unwrap()
        .get("put")
        .copied()
        .unwrap_or(0);
    assert!(puts > 10, "a clean run made {puts} puts");

    let mut failed_runs = 0;
    let mut cases = Vec::new();
    for n in (0..puts).step_by((puts / 8).max(1)) {
        cases.push((Kind::Put, n));
    }
    for n in [0, 3, 20, 60] {
        cases.push((Kind::Get, n));
        cases.push((Kind::List, n));
    }
    for (index, (kind, n)) in cases.into_iter().enumerate() {
        let name = format!("case{index}");
        let root = format!("faulty://{name}/wh");
        let bucket = factory.bucket(&name);
        bucket.arm(kind, n..n + 1, Fault::Fail);
        let first = ingest(&root, &source, &key(), &options()).await;
        let hit = bucket.injected() > 0;
        bucket.disarm();
        if let Err(error) = &first {
            failed_runs += 1;
            assert!(hit, "{kind:?} #{n}: failed without a fault: {error}");
            // What is there is a committed version: it reads whole, no event twice.
            if let Some(rows) = rows(&root, "vaccinations").await {
                let mut keys: Vec<&str> =
                    rows.iter().map(|r| r.split(',').next().unwrap()).collect();
                let all = keys.len();
                keys.dedup();
                assert_eq!(
                    keys.len(),
                    all,
                    "{kind:?} #{n}: an event twice after the fault"
                );
            }
        }
        // The next run ends where the clean run ended.
        let second = ingest(&root, &source, &key(), &options()).await;
        let second = second.unwrap_or_else(|error| {
            panic!("{kind:?} #{n}: the run after the fault failed: {error}")
        });
        assert_eq!(second.read, clean.read, "{kind:?} #{n}");
        assert_same(&snapshot(&root).await, &expected, &format!("{kind:?} #{n}"));
    }
    assert!(
        failed_runs >= 8,
        "only {failed_runs} injected faults stopped a run"
    );

    // A stalled request slows the run and changes nothing.
    let bucket = factory.bucket("stalled");
    bucket.arm(Kind::Put, 2..4, Fault::Stall(Duration::from_millis(700)));
    ingest("faulty://stalled/wh", &source, &key(), &options())
        .await
        .unwrap();
    assert_eq!(bucket.injected(), 2);
    assert_same(
        &snapshot("faulty://stalled/wh").await,
        &expected,
        "stalled puts",
    );
}
