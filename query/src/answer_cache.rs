//! The one answer cache of the coverage and effectiveness engines: answers keyed by
//! (question, table versions), so that a new ingest (a new Delta version) is never answered
//! from an older one.
//!
//! The map is locked only to find or insert a question's slot, never while an answer is
//! computed: a cached question returns at once while another question is cold. Each slot is
//! a [`OnceCell`], so concurrent callers of the same cold question share one computation; a
//! failed computation leaves its slot empty for the next caller to try again.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::QueryError;

/// The Delta version of every table an answer was read from.
pub type TableVersions = BTreeMap<String, i64>;

type Slot = Arc<OnceCell<Arc<dyn Any + Send + Sync>>>;

/// A question: the answer's type (so two engines or two answer kinds cannot collide), the
/// question's text, and the table versions it is asked of.
type Key = (TypeId, String, TableVersions);

/// Answers of any type, each computed once per question and table versions.
pub struct AnswerCache {
    capacity: usize,
    slots: Mutex<HashMap<Key, Slot>>,
}

impl AnswerCache {
    /// A cache that starts over after `capacity` questions (a bound on memory, far above what
    /// dashboards ask for).
    pub fn new(capacity: usize) -> AnswerCache {
        AnswerCache {
            capacity: capacity.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The answer to `question` over `versions`, computed by `compute` unless it is cached or
    /// being computed already (then this waits for that computation and shares its answer).
    pub async fn get_or_compute<T, F, Fut>(
        &self,
        question: &str,
        versions: &TableVersions,
        compute: F,
    ) -> Result<Arc<T>, QueryError>
    where
        T: Any + Send + Sync,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, QueryError>>,
    {
        let slot = self.slot(TypeId::of::<T>(), question, versions);
        let answer = slot
            .get_or_try_init(move || async move {
                let answer: Arc<dyn Any + Send + Sync> = Arc::new(compute().await?);
                Ok::<_, QueryError>(answer)
            })
            .await?
            .clone();
        Ok(answer
            .downcast::<T>()
            .expect("the key holds the answer's type"))
    }

    /// The slot of one question, created empty if new. Answers of other table versions are
    /// dropped when a new set of versions is first asked about.
    fn slot(&self, kind: TypeId, question: &str, versions: &TableVersions) -> Slot {
        // A panic while the lock was held cannot leave the map half-updated: every change
        // below is one call.
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (kind, question.to_string(), versions.clone());
        if let Some(slot) = slots.get(&key) {
            return slot.clone();
        }
        slots.retain(|(_, _, held), _| held == versions);
        if slots.len() >= self.capacity {
            slots.clear();
        }
        slots.entry(key).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn versions(vaccinations: i64) -> TableVersions {
        BTreeMap::from([("vaccinations".to_string(), vaccinations)])
    }

    #[tokio::test]
    async fn a_cached_answer_returns_while_a_cold_one_is_computed() {
        let cache = Arc::new(AnswerCache::new(100));
        let v = versions(1);
        let warm = cache
            .get_or_compute("warm", &v, || async { Ok(1_u64) })
            .await
            .unwrap();
        assert_eq!(*warm, 1);

        // A cold question whose computation runs until released.
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let release = Arc::new(tokio::sync::Notify::new());
        let cold = tokio::spawn({
            let (cache, v, release) = (cache.clone(), v.clone(), release.clone());
            async move {
                cache
                    .get_or_compute("cold", &v, || async move {
                        started_tx.send(()).unwrap();
                        release.notified().await;
                        Ok(2_u64)
                    })
                    .await
            }
        });
        started_rx.await.unwrap();

        // While it is in flight, the cached question answers without computing again.
        let cached = tokio::time::timeout(
            Duration::from_secs(5),
            cache.get_or_compute::<u64, _, _>("warm", &v, || async {
                panic!("a cached answer is not computed again")
            }),
        )
        .await
        .expect("the cached answer does not wait for the cold one")
        .unwrap();
        assert_eq!(*cached, 1);
        assert!(!cold.is_finished());

        release.notify_one();
        assert_eq!(*cold.await.unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn concurrent_identical_cold_questions_share_one_computation() {
        let cache = Arc::new(AnswerCache::new(100));
        let runs = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let mut askers = Vec::new();
        for _ in 0..4 {
            let (cache, runs, release) = (cache.clone(), runs.clone(), release.clone());
            askers.push(tokio::spawn(async move {
                cache
                    .get_or_compute("same", &versions(1), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        Ok(7_u64)
                    })
                    .await
            }));
        }
        // Let every asker reach the slot before the one computation finishes.
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        for asker in askers {
            assert_eq!(*asker.await.unwrap().unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn new_table_versions_and_failures_are_computed_again() {
        let cache = AnswerCache::new(100);
        let first = cache
            .get_or_compute("q", &versions(1), || async { Ok(1_u64) })
            .await
            .unwrap();
        let next = cache
            .get_or_compute("q", &versions(2), || async { Ok(2_u64) })
            .await
            .unwrap();
        assert_eq!((*first, *next), (1, 2));

        let failed = cache
            .get_or_compute::<u64, _, _>("bad", &versions(2), || async {
                Err(QueryError::Invalid("no".into()))
            })
            .await;
        assert!(failed.is_err());
        let retried = cache
            .get_or_compute("bad", &versions(2), || async { Ok(3_u64) })
            .await
            .unwrap();
        assert_eq!(*retried, 3);
    }

    #[tokio::test]
    async fn answers_of_different_types_do_not_collide() {
        let cache = AnswerCache::new(100);
        let number = cache
            .get_or_compute("q", &versions(1), || async { Ok(1_u64) })
            .await
            .unwrap();
        let text = cache
            .get_or_compute("q", &versions(1), || async { Ok("one".to_string()) })
            .await
            .unwrap();
        assert_eq!((*number, text.as_str()), (1, "one"));
    }
}
