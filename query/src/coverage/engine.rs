//! The coverage engine: questions in, typed answers out, each computed once per table
//! version from counts read once per table version.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::answer::{
    CoverageAnswer, CurveAnswer, Definition, DropoutAnswer, FlagsAnswer, IndicatorList,
    TableAnswer, TimelinessAnswer,
};
use super::catalogue::{Catalogue, Indicator, AGE_BANDS};
use super::cohort::coverage_answer;
use super::curve::curve_answer;
use super::dropout::dropout_answer;
use super::facts::Facts;
use super::invalid_doses::{invalid_doses_answer, InvalidDosesAnswer};
use super::maintained::{counts_for, CountsRead, Maintained};
use super::publish::Context;
use super::question::{CoverageQuery, CurveQuery, DropoutQuery, TimelinessQuery};
use super::table::{flags_answer, table_answer};
use super::timeliness::timeliness_answer;
use crate::answer_cache::AnswerCache;
use crate::disclosure::Suppression;
use crate::warehouse::Snapshot;
use crate::{QueryError, Warehouse};

/// The key-derivation context of the complement order.
const ORDER_CONTEXT: &str = "vaxlake 2026-12 coverage complementary suppression order";

/// Answers kept before the cache starts over (a bound on memory, far above what dashboards
/// ask for).
const MAX_CACHED_ANSWERS: usize = 20_000;

/// The coverage engine over one warehouse. Cheap to share behind an `Arc`; concurrent
/// requests for a new table version wait for one read of the counts, and cached answers
/// never wait for a cold one.
pub struct CoverageEngine {
    warehouse: Warehouse,
    catalogue: Arc<Catalogue>,
    rule: Suppression,
    /// The key of the order complementary suppression takes cells in (see [`super::plan`])
    /// when set with [`CoverageEngine::with_complement_key`]; otherwise it comes from the
    /// warehouse's secret.
    order_key: Option<[u8; 32]>,
    /// Whether the public order has been warned about (once per engine).
    warned_public_order: AtomicBool,
    /// The facts of the current table versions.
    counts: AnswerCache,
    /// The counts of the newest facts version read, kept up to date from what later
    /// versions add.
    maintained: tokio::sync::Mutex<Option<Maintained>>,
    answers: AnswerCache,
}

impl CoverageEngine {
    /// An engine with the compiled-in catalogue and the given suppression rule.
    pub fn new(warehouse: Warehouse, rule: Suppression) -> Result<CoverageEngine, QueryError> {
        Ok(CoverageEngine {
            warehouse,
            catalogue: Arc::new(Catalogue::builtin()?),
            rule,
            order_key: None,
            warned_public_order: AtomicBool::new(false),
            counts: AnswerCache::new(1),
            maintained: tokio::sync::Mutex::new(None),
            answers: AnswerCache::new(MAX_CACHED_ANSWERS),
        })
    }

    /// Keys the order in which complementary suppression picks cells with `secret` instead
    /// of the warehouse's own secret (`vaxlake_catalog::order_secret`), which every door
    /// uses by default. For tests and comparisons: a publication whose doors took
    /// complements in different orders would give cells away (docs/coverage.md,
    /// "Disclosure control"). An empty `secret` is the public order.
    pub fn with_complement_key(mut self, secret: &[u8]) -> Self {
        self.order_key = Some(blake3::derive_key(ORDER_CONTEXT, secret));
        self
    }

    /// The order key for `snapshot` and a word for the answer cache's question, so that an
    /// answer computed before the warehouse's secret appeared is not served after.
    fn order_key(&self, snapshot: &Snapshot) -> ([u8; 32], &'static str) {
        if let Some(key) = self.order_key {
            return (key, "given");
        }
        match &snapshot.order_secret {
            Some(secret) => (blake3::derive_key(ORDER_CONTEXT, secret.expose()), "keyed"),
            None => {
                if !self.warned_public_order.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "this warehouse has no complement-order secret yet: complementary \
                         suppression takes cells in the public order, which lets an outsider \
                         who replays it tell complements from primary cells; run an ingest \
                         or `vaxlake maintain` to create the secret (docs/coverage.md, \
                         \"Disclosure control\")"
                    );
                }
                (blake3::derive_key(ORDER_CONTEXT, b""), "public")
            }
        }
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn suppression(&self) -> Suppression {
        self.rule
    }

    /// The catalogue as `/api/coverage/indicators` shows it.
    pub fn indicators(&self) -> IndicatorList {
        IndicatorList {
            indicators: self
                .catalogue
                .indicators
                .iter()
                .map(Definition::from)
                .collect(),
            age_bands: AGE_BANDS.iter().map(|(label, _, _)| *label).collect(),
            suppression_threshold: self.rule.threshold,
        }
    }

    /// Reads the counts of the current table versions if they are not read yet, so that the
    /// next request after an ingest does not pay for it (the server calls this periodically).
    pub async fn warm(&self) -> Result<(), QueryError> {
        self.warehouse.refresh_if_due().await;
        self.facts(&self.warehouse.snapshot()).await.map(|_| ())
    }

    /// Cohort, seasonal or age-band coverage (`GET /api/coverage`).
    pub async fn coverage(&self, query: &CoverageQuery) -> Result<Arc<CoverageAnswer>, QueryError> {
        let indicator = self.indicator(&query.indicator)?;
        let key = format!(
            "coverage|{}|{}|{:?}|{:?}",
            indicator.name, query.cohort, query.age_months, query.by
        );
        self.cached(key, |context| {
            coverage_answer(context, indicator, query.cohort, query.age_months, query.by)
        })
        .await
    }

    /// Cumulative coverage by age in months (`GET /api/coverage/curve`).
    pub async fn curve(&self, query: &CurveQuery) -> Result<Arc<CurveAnswer>, QueryError> {
        let indicator = self.indicator(&query.indicator)?;
        let key = format!(
            "curve|{}|{}|{:?}",
            indicator.name, query.cohort, query.max_age_months
        );
        self.cached(key, |context| curve_answer(context, indicator, query))
            .await
    }

    /// Dropout between two doses of one antigen on the same children.
    pub async fn dropout(&self, query: &DropoutQuery) -> Result<Arc<DropoutAnswer>, QueryError> {
        let from = self.indicator(&query.from)?;
        let to = self.indicator(&query.to)?;
        let key = format!(
            "dropout|{}|{}|{}|{:?}|{:?}",
            from.name, to.name, query.cohort, query.age_months, query.by
        );
        self.cached(key, |context| dropout_answer(context, from, to, query))
            .await
    }

    /// Median age at the dose and the share given on time.
    pub async fn timeliness(
        &self,
        query: &TimelinessQuery,
    ) -> Result<Arc<TimelinessAnswer>, QueryError> {
        let indicator = self.indicator(&query.indicator)?;
        let key = format!(
            "timeliness|{}|{}|{:?}",
            indicator.name, query.cohort, query.by
        );
        self.cached(key, |context| timeliness_answer(context, indicator, query))
            .await
    }

    /// Every indicator × cohort × breakdown as flat rows (the `--all` table; docs/coverage.md).
    pub async fn table(&self) -> Result<Arc<TableAnswer>, QueryError> {
        self.cached("table".into(), |context| {
            table_answer(context, &self.catalogue)
        })
        .await
    }

    /// The published cells whose numerator exceeds their denominator, of `cohort` or of all
    /// cohorts (`GET /api/coverage/flags`), from the `--all` table's cells (read once per
    /// table version, then filtered).
    pub async fn flags(&self, cohort: Option<i32>) -> Result<FlagsAnswer, QueryError> {
        let all = self
            .cached("flags".into(), |context| {
                flags_answer(context, &self.catalogue)
            })
            .await?;
        let mut answer = all.as_ref().clone();
        answer
            .rows
            .retain(|flagged| cohort.is_none_or(|cohort| flagged.row.cohort == cohort));
        let mut sources: Vec<&str> = Vec::new();
        for source in answer
            .rows
            .iter()
            .filter_map(|flagged| flagged.population_source.as_deref())
        {
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        // The rows' sources on one line (each row says which is its own); null without rows.
        answer.population_source = (!sources.is_empty()).then(|| sources.join("; "));
        Ok(answer)
    }

    /// Dose days by antigen and reason, valid or not, protected as one table
    /// (`GET /api/coverage/invalid_doses`; docs/coverage.md, "Invalid doses: disclosure
    /// control"). Complements follow the same keyed order as the coverage plans.
    pub async fn invalid_doses(&self) -> Result<Arc<InvalidDosesAnswer>, QueryError> {
        self.cached("invalid_doses".into(), |context| {
            Ok(invalid_doses_answer(
                context.rule,
                &context.order_key,
                &context.facts.invalid_doses,
                context.versions,
            ))
        })
        .await
    }

    fn indicator(&self, name: &str) -> Result<&Indicator, QueryError> {
        self.catalogue.get(name).ok_or_else(|| {
            QueryError::Invalid(format!(
                // The name is not quoted: whatever a client typed may be an identity.
                "unknown indicator; known: {}",
                self.catalogue.names()
            ))
        })
    }

    /// The answer to `question` for the current table versions, computing it (and, after a
    /// new ingest, the counts) when missing.
    async fn cached<T: Send + Sync + 'static>(
        &self,
        question: String,
        compute: impl FnOnce(&Context) -> Result<T, QueryError>,
    ) -> Result<Arc<T>, QueryError> {
        self.warehouse.refresh_if_due().await;
        let snapshot = self.warehouse.snapshot();
        let versions = snapshot.versions.clone();
        let (order_key, order) = self.order_key(&snapshot);
        let question = format!("{question}|{order}");
        self.answers
            .get_or_compute(&question, &versions, move || async move {
                let facts = self.facts(&snapshot).await?;
                compute(&Context {
                    facts: &facts,
                    versions: &snapshot.versions,
                    rule: self.rule,
                    order_key,
                    catalogue: &self.catalogue,
                    plans: Default::default(),
                })
            })
            .await
    }

    /// The counts of `snapshot`'s table versions, read once however many questions need them:
    /// from the maintained counts, brought up to the snapshot's facts version by adding what
    /// the commits since added.
    async fn facts(&self, snapshot: &Snapshot) -> Result<Arc<Facts>, QueryError> {
        self.counts
            .get_or_compute("counts", &snapshot.versions, || async {
                let started = std::time::Instant::now();
                let mut slot = self.maintained.lock().await;
                let maintained = counts_for(&mut slot, snapshot, &self.catalogue).await?;
                let facts = maintained.counts().facts(&snapshot.ctx).await?;
                tracing::info!(
                    versions = ?snapshot.versions,
                    read = ?maintained.last_read(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "coverage counts read"
                );
                Ok(facts)
            })
            .await
    }

    /// How the counts of the last new table version were had: kept, added up from the
    /// files a commit added, or read whole (for tests and the benchmark).
    pub async fn last_counts_read(&self) -> Option<CountsRead> {
        self.maintained
            .lock()
            .await
            .as_ref()
            .map(Maintained::last_read)
    }
}
