//! The warehouse's locks on object storage (S3 and S3-compatible stores), where there is no
//! `flock`: a lease object created with put-if-absent (`If-None-Match: *`), renewed by its
//! holder with compare-and-swap (`If-Match` on its ETag) and deleted on release.
//!
//! A holder that dies (SIGKILL, a lost machine) stops renewing. A waiter takes the lease over
//! once it has seen the same ETag for longer than the lease's lifetime *on its own clock*:
//! no two machines' clocks are ever compared, so clock skew cannot hand a live lease to a
//! second writer. The takeover is itself a compare-and-swap on the ETag the waiter saw, so of
//! two waiters only one wins.
//!
//! What a lease cannot do is stop a holder that stalls for longer than its lifetime (a
//! paused VM): it logs that it lost the lease when it wakes. Delta's own commit protocol
//! (put-if-absent of the next log entry) still never loses a commit then; what the lease
//! adds is that two ingests do not MERGE the same new event at once (see
//! [`crate::maintain::ingest_lock`]).
//!
//! No crate on crates.io offers this for `object_store` (delta-rs dropped its DynamoDB lock
//! in 1.x in favour of conditional puts, which order commits but do not serialise
//! read-modify-write runs), hence these hundred lines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::error::{IngestError, Result};

/// How long a lease lives without renewal: `VAXLAKE_LEASE_SECONDS`, default 30 s. The
/// holder renews every quarter of it; a waiter takes over a lease unchanged for this long.
pub fn lease_lifetime() -> Duration {
    std::env::var("VAXLAKE_LEASE_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.2)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30))
}

/// A held lease; released (its object deleted) when dropped.
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    path: Path,
    what: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("path", &self.path.as_ref())
            .finish()
    }
}

impl Lease {
    /// Takes the lease at `path` in `store`, waiting while someone else holds it. `what`
    /// names the lock in logs and errors ("the ingest lock of s3://bucket/wh/").
    pub async fn acquire(store: Arc<dyn ObjectStore>, path: Path, what: &str) -> Result<Lease> {
        Lease::acquire_for(store, path, what, lease_lifetime()).await
    }

    /// [`Lease::acquire`] with a lifetime of its own.
    pub async fn acquire_for(
        store: Arc<dyn ObjectStore>,
        path: Path,
        what: &str,
        lifetime: Duration,
    ) -> Result<Lease> {
        let holder = holder_id()?;
        let mut seen: Option<(Option<String>, Instant)> = None;
        let mut said_waiting = false;
        loop {
            let take = match &seen {
                None => PutMode::Create,
                Some((etag, since)) if since.elapsed() >= lifetime => {
                    PutMode::Update(UpdateVersion {
                        e_tag: etag.clone(),
                        version: None,
                    })
                }
                Some(_) => {
                    tokio::time::sleep(poll_interval(lifetime)).await;
                    match current_etag(store.as_ref(), &path, what).await? {
                        None => seen = None,
                        Some(etag) => {
                            if seen.as_ref().map(|(e, _)| e) != Some(&etag) {
                                seen = Some((etag, Instant::now()));
                            }
                        }
                    }
                    continue;
                }
            };
            let took_over = matches!(take, PutMode::Update(_));
            let options = PutOptions {
                mode: take,
                ..PutOptions::default()
            };
            match store.put_opts(&path, body(&holder, 0), options).await {
                Ok(put) => {
                    if took_over {
                        tracing::warn!(
                            lock = what,
                            "took over a lock its holder stopped renewing (a crashed run)"
                        );
                    }
                    let lost = Arc::new(AtomicBool::new(false));
                    let renewer = tokio::spawn(renew(
                        store.clone(),
                        path.clone(),
                        what.to_string(),
                        holder,
                        put.e_tag,
                        lifetime,
                        lost.clone(),
                    ));
                    return Ok(Lease {
                        store,
                        path,
                        what: what.to_string(),
                        lost,
                        renewer,
                    });
                }
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {
                    if !said_waiting {
                        tracing::info!(lock = what, "another run holds the lock: waiting for it");
                        said_waiting = true;
                    }
                    seen = current_etag(store.as_ref(), &path, what)
                        .await?
                        .map(|etag| (etag, Instant::now()));
                }
                // Deleted between our look and our takeover: start again with a create.
                Err(object_store::Error::NotFound { .. }) => seen = None,
                Err(error) => return Err(lease_error(what, error)),
            }
        }
    }

    /// Whether the lease was lost while held (a renewal found someone else's lease).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    async fn release(store: Arc<dyn ObjectStore>, path: Path, what: String) {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                tracing::warn!(lock = %what, %error, "could not release the lock; it expires on its own")
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.lost() {
            // Someone else's now: not ours to delete.
            return;
        }
        let release = Lease::release(self.store.clone(), self.path.clone(), self.what.clone());
        match tokio::runtime::Handle::try_current() {
            // Released before the process goes on (or exits), so the next run need not wait
            // for the lease to expire.
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(release))
            }
            Ok(handle) => {
                handle.spawn(release);
            }
            Err(_) => {}
        }
    }
}

/// Renews the lease every quarter of its lifetime until aborted.
async fn renew(
    store: Arc<dyn ObjectStore>,
    path: Path,
    what: String,
    holder: String,
    mut etag: Option<String>,
    lifetime: Duration,
    lost: Arc<AtomicBool>,
) {
    let mut count = 0u64;
    loop {
        tokio::time::sleep(lifetime / 4).await;
        count += 1;
        let options = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: etag.clone(),
                version: None,
            }),
            ..PutOptions::default()
        };
        match store.put_opts(&path, body(&holder, count), options).await {
            Ok(put) => etag = put.e_tag,
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::NotFound { .. }) => {
                lost.store(true, Ordering::SeqCst);
                tracing::error!(
                    lock = %what,
                    "lost the lock: this run stalled for longer than the lease and another took \
                     it over; Delta's commit protocol still orders the commits"
                );
                return;
            }
            // A failed request: try again at the next tick, well within the lifetime.
            Err(error) => {
                tracing::warn!(lock = %what, %error, "could not renew the lock; retrying")
            }
        }
    }
}

async fn current_etag(
    store: &dyn ObjectStore,
    path: &Path,
    what: &str,
) -> Result<Option<Option<String>>> {
    match store.head(path).await {
        Ok(meta) => Ok(Some(meta.e_tag)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(error) => Err(lease_error(what, error)),
    }
}

fn poll_interval(lifetime: Duration) -> Duration {
    (lifetime / 8).clamp(Duration::from_millis(50), Duration::from_secs(2))
}

/// Who holds the lease, for an operator reading the object: a random id and the process id
/// (no host name, no user name).
fn holder_id() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| IngestError::Worker(error.to_string()))?;
    Ok(format!("{}-{}", hex::encode(bytes), std::process::id()))
}

fn body(holder: &str, renewal: u64) -> PutPayload {
    PutPayload::from(format!("{{\"holder\":\"{holder}\",\"renewal\":{renewal}}}\n").into_bytes())
}

fn lease_error(what: &str, error: object_store::Error) -> IngestError {
    IngestError::Lock {
        lock: what.to_string(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_holder_at_a_time_and_released_on_drop() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("_lock");
        let lifetime = Duration::from_secs(1);
        let first = Lease::acquire_for(store.clone(), path.clone(), "test", lifetime)
            .await
            .unwrap();
        let waiting = tokio::spawn({
            let store = store.clone();
            let path = path.clone();
            async move {
                Lease::acquire_for(store, path, "test", lifetime)
                    .await
                    .unwrap()
            }
        });
        // Three lifetimes: the holder's renewals keep its lease.
        tokio::time::sleep(3 * lifetime).await;
        assert!(!waiting.is_finished(), "a second holder got a held lease");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the lease was not handed on after release")
            .unwrap();
        assert!(!second.lost());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_nobody_renews_is_taken_over_after_its_lifetime() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("_lock");
        // A crashed holder: its object stays, nobody renews it.
        store.put(&path, body("dead-1", 0)).await.unwrap();
        let lifetime = Duration::from_millis(500);
        let started = Instant::now();
        let lease = Lease::acquire_for(store.clone(), path.clone(), "test", lifetime)
            .await
            .unwrap();
        assert!(
            started.elapsed() >= lifetime,
            "taken over before the lease expired"
        );
        assert!(!lease.lost());
    }
}
