//! The effectiveness engine: questions in, typed answers out, each computed once per
//! (question, table versions).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::answer::{EffectivenessAnswer, RatesAnswer};
use super::publish::{effectiveness_answer, rates_answer};
use super::read::{read_study, StudyData};
use super::study::{EffectivenessQuery, Study};
use crate::answer_cache::{AnswerCache, TableVersions};
use crate::coverage::vaccinated_on::{vaccinated_on, VaccinatedOn};
use crate::coverage::{Catalogue, Kind};
use crate::disclosure::Suppression;
use crate::{QueryError, Warehouse};
use vaxlake_catalog::validity::DoseRules;

const MAX_CACHED_ANSWERS: usize = 5_000;

/// The effectiveness engine over one warehouse.
pub struct EffectivenessEngine {
    warehouse: Warehouse,
    rule: Suppression,
    seasonal_antigens: Vec<String>,
    /// Which doses count (sql/reference/dose_rules.csv), parsed once.
    rules: Arc<DoseRules>,
    answers: AnswerCache,
}

impl EffectivenessEngine {
    pub fn new(warehouse: Warehouse, rule: Suppression) -> Result<EffectivenessEngine, QueryError> {
        // Antigens with a seasonal indicator are the seasonal ones (influenza).
        let catalogue = Catalogue::builtin()?;
        let seasonal_antigens = catalogue
            .indicators
            .iter()
            .filter(|indicator| indicator.kind == Kind::Season)
            .map(|indicator| indicator.antigen.clone())
            .collect();
        Ok(EffectivenessEngine {
            warehouse,
            rule,
            seasonal_antigens,
            rules: Arc::new(catalogue.rules),
            answers: AnswerCache::new(MAX_CACHED_ANSWERS),
        })
    }

    /// VE by the cohort method (`GET /api/effectiveness`).
    pub async fn effectiveness(
        &self,
        query: &EffectivenessQuery,
    ) -> Result<Arc<EffectivenessAnswer>, QueryError> {
        let study = Study::check(query, &self.seasonal_antigens)?;
        let rule = self.rule;
        self.cached(
            format!("ve|{study:?}"),
            &study,
            true,
            |study, data, at_start, versions| {
                effectiveness_answer(study, data, at_start, versions, rule)
            },
        )
        .await
    }

    /// Cases per 100,000 person-years by vaccination status, month and age band.
    pub async fn rates(&self, query: &EffectivenessQuery) -> Result<Arc<RatesAnswer>, QueryError> {
        let study = Study::check(query, &self.seasonal_antigens)?;
        let rule = self.rule;
        self.cached(
            format!("rates|{study:?}"),
            &study,
            false,
            |study, data, _, versions| rates_answer(study, data, versions, rule),
        )
        .await
    }

    /// The answer to `question` for the current table versions, reading the study's data (and
    /// `with_coverage`, the residents vaccinated on its first day, by birth year, for the
    /// screening method) and computing it when missing.
    async fn cached<T: Send + Sync + 'static>(
        &self,
        question: String,
        study: &Study,
        with_coverage: bool,
        compute: impl FnOnce(&Study, &StudyData, &BTreeMap<i32, u64>, &TableVersions) -> T,
    ) -> Result<Arc<T>, QueryError> {
        self.warehouse.refresh_if_due().await;
        let snapshot = self.warehouse.snapshot();
        let versions = snapshot.versions.clone();
        let rules = self.rules.clone();
        self.answers
            .get_or_compute(&question, &versions, move || async move {
                let started = std::time::Instant::now();
                let data = read_study(&snapshot.ctx, study, &rules).await?;
                let at_start = if with_coverage {
                    // Vaccinated on the first day: protected by then, as a case would be.
                    let question = VaccinatedOn {
                        antigen: study.antigen.clone(),
                        dose: study.dose,
                        since: study.doses_since,
                        by: study.from - study.lag_days,
                        on: study.from,
                    };
                    vaccinated_on(&snapshot.ctx, &question).await?
                } else {
                    BTreeMap::new()
                };
                let answer = compute(study, &data, &at_start, &snapshot.versions);
                tracing::info!(
                    antigen = %study.antigen,
                    disease = %study.disease,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "effectiveness computed"
                );
                Ok(answer)
            })
            .await
    }
}
