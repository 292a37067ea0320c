//! A memory limit for one query inside the warehouse's shared pool.
//!
//! The warehouse has one pool for everything it runs (DataFusion's `FairSpillPool`, shared so
//! that all queries together stay under the operator's `--memory-limit-mb`). Alone, that lets
//! one analyst's query take the whole pool and push the dashboards' coverage queries into
//! "resources exhausted". [`QueryPool`] sits in front of the shared pool for one query: every
//! reservation is checked against the query's own limit first and then against the shared
//! pool, so a query spills (sorts, aggregates, joins) or fails cleanly at its own limit while
//! the rest of the pool stays free for others. DataFusion has no two-level pool of its own
//! (its pools limit one runtime each), hence this small wrapper.

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One query's view of the shared pool: at most `limit` bytes of it.
#[derive(Debug)]
pub(crate) struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl QueryPool {
    pub(crate) fn new(shared: Arc<dyn MemoryPool>, limit: usize) -> Self {
        QueryPool {
            shared,
            limit,
            used: AtomicUsize::new(0),
        }
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query pool ({} of {} bytes) in {}",
            self.used.load(Ordering::Relaxed),
            self.limit,
            self.shared
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "vaxlake-query-pool"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.shared.grow(reservation, additional);
        self.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.shared.shrink(reservation, shrink);
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        // Claim the query's share first, so that two operators of one query racing for the
        // last bytes cannot both pass the check.
        let claimed = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional)
                    .filter(|&total| total <= self.limit)
            });
        if claimed.is_err() {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the memory limit of one query, {} MiB, is reached ({} bytes more asked by {})",
                self.limit >> 20,
                additional,
                reservation.consumer().name()
            )));
        }
        if let Err(error) = self.shared.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(error);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn a_query_stops_at_its_own_limit_and_the_shared_one() {
        let shared: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(100));
        let first: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(shared.clone(), 60));
        let second: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(shared.clone(), 60));

        let a = MemoryConsumer::new("a").register(&first);
        a.try_grow(50).unwrap();
        // Its own limit: 50 + 20 > 60, although the shared pool has 50 left.
        let refused = a.try_grow(20).unwrap_err().to_string();
        assert!(refused.contains("memory limit of one query"), "{refused}");
        assert_eq!(first.reserved(), 50);
        assert_eq!(shared.reserved(), 50);

        // The other query gets the rest of the shared pool, not more.
        let b = MemoryConsumer::new("b").register(&second);
        b.try_grow(50).unwrap();
        assert!(b.try_grow(5).is_err());
        assert_eq!(second.reserved(), 50, "a refused grow was left counted");
        assert_eq!(shared.reserved(), 100);

        // Freed memory is the others' again.
        drop(a);
        assert_eq!(first.reserved(), 0);
        assert_eq!(shared.reserved(), 50);
        b.try_grow(10).unwrap();
        assert_eq!(shared.reserved(), 60);
    }
}
