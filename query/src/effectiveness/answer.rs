//! The effectiveness engine's answers as types: what the API sends (their serde form, keys
//! in name order through [`crate::output::to_json`]) and what CSV and table print.

use serde::Serialize;
use utoipa::ToSchema;

use super::estimate::IntervalMethod;
use super::study::Outcome;
use crate::answer_cache::TableVersions;
use crate::output::{Provenance, Tabular};

/// The study every answer states first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StudyDescription {
    /// `cohort` (VE) or `rates`.
    pub method: &'static str,
    pub antigen: String,
    pub disease: String,
    pub from: String,
    pub to: String,
    pub lag_days: i32,
    pub dose: usize,
    pub doses_since: Option<String>,
    pub outcome: Outcome,
    /// Repeat notifications within this many days of an episode's first count once.
    pub episode_days: i32,
}

/// The version of the effectiveness definitions (docs/effectiveness.md, "Definition
/// versions"): answers computed under other definitions must not be compared silently.
pub const DEFINITION_VERSION: u32 = 2;

/// VE with its interval (or the reason there is none), how the interval was computed, and
/// the counts behind it. Counts, person-days and estimates are null when withheld. With no
/// case in one group, `ve` is null and only one bound is given (`ci_low` when no vaccinated
/// case: VE is at least that).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EstimateFigures {
    pub ve: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub irr: Option<f64>,
    pub interval_method: Option<IntervalMethod>,
    pub cases_vaccinated: Option<u64>,
    pub cases_unvaccinated: Option<u64>,
    pub person_days_vaccinated: Option<i64>,
    pub person_days_unvaccinated: Option<i64>,
    pub suppressed: bool,
    pub reason: Option<String>,
}

/// Farrington's screening method, a cross-check: PCV from the cases, PPV from coverage (the
/// share of the band's residents vaccinated on the first day of the period), not from the
/// person-time of the cohort estimate.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Screening {
    pub ve: Option<f64>,
    pub pcv: Option<f64>,
    pub ppv: Option<f64>,
    /// The day the PPV is the coverage of (the period's first day).
    pub ppv_on: String,
    pub reason: Option<String>,
}

/// An estimate over every age band: Mantel–Haenszel or crude.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PooledEstimate {
    #[serde(flatten)]
    pub figures: EstimateFigures,
    pub estimator: &'static str,
}

/// Who the comparison group is: the answer says it, because "unvaccinated" here is not
/// "never vaccinated".
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ComparisonGroup {
    /// The definition in words.
    pub definition: String,
    /// Persons with fewer valid doses than this are unvaccinated (the study's `dose`).
    pub fewer_doses_than: usize,
    /// Time and cases within this many days after the `dose`-th dose are unvaccinated.
    pub within_lag_days: i32,
    /// Doses given before this day do not count (a seasonal antigen's season start, or
    /// `doses_since`): persons vaccinated only before it are unvaccinated.
    pub doses_before_ignored: Option<String>,
}

/// The estimate of one age band.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BandEstimate {
    pub age_band: &'static str,
    #[serde(flatten)]
    pub figures: EstimateFigures,
    pub screening: Screening,
}

/// VE by the cohort method (`GET /api/effectiveness`). As CSV, its rows are the age bands
/// (screening as JSON); [`EffectivenessAnswer::estimates`] is the command line's table.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EffectivenessAnswer {
    #[serde(flatten)]
    pub study: StudyDescription,
    pub overall: PooledEstimate,
    pub crude: PooledEstimate,
    /// The screening method over every band pooled (crude): apart from `overall`, which is
    /// the Mantel–Haenszel cohort estimate.
    pub screening: Screening,
    pub unvaccinated: ComparisonGroup,
    pub rows: Vec<BandEstimate>,
    pub population_source: Option<String>,
    pub definition_version: u32,
    pub table_versions: TableVersions,
    pub suppression_threshold: u64,
}

impl EffectivenessAnswer {
    /// The estimates one per line: Mantel–Haenszel, crude, then each age band.
    pub fn estimates(&self) -> EstimateTable {
        let mut rows = vec![
            EstimateRow {
                estimate: "overall (MH)".into(),
                figures: self.overall.figures.clone(),
            },
            EstimateRow {
                estimate: "crude".into(),
                figures: self.crude.figures.clone(),
            },
        ];
        rows.extend(self.rows.iter().map(|band| EstimateRow {
            estimate: band.age_band.into(),
            figures: band.figures.clone(),
        }));
        EstimateTable {
            rows,
            provenance: self.provenance(),
        }
    }
}

impl Tabular for EffectivenessAnswer {
    type Row = BandEstimate;
    fn rows(&self) -> Vec<BandEstimate> {
        self.rows.clone()
    }
    fn provenance(&self) -> Provenance {
        study_provenance(&self.population_source, &self.table_versions)
    }
}

/// An answer's provenance: effectiveness has no data-until date.
fn study_provenance(
    population_source: &Option<String>,
    table_versions: &TableVersions,
) -> Provenance {
    Provenance {
        population_source: population_source.clone(),
        definition_version: Some(DEFINITION_VERSION.to_string()),
        table_versions: Some(table_versions.clone()),
        ..Provenance::default()
    }
}

/// One line of [`EstimateTable`].
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EstimateRow {
    /// `overall (MH)`, `crude` or an age band.
    pub estimate: String,
    #[serde(flatten)]
    pub figures: EstimateFigures,
}

/// The estimates of an [`EffectivenessAnswer`] one per line, as `vaxlake effectiveness`
/// prints them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EstimateTable {
    pub rows: Vec<EstimateRow>,
    #[serde(skip)]
    #[schema(ignore)]
    pub provenance: Provenance,
}

impl Tabular for EstimateTable {
    type Row = EstimateRow;
    fn rows(&self) -> Vec<EstimateRow> {
        self.rows.clone()
    }
    fn provenance(&self) -> Provenance {
        self.provenance.clone()
    }
}

/// Cases and rates of one month and age band; counts, person-years and rates are null when
/// withheld.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RateRow {
    pub month: String,
    pub age_band: &'static str,
    pub cases_vaccinated: Option<u64>,
    pub person_years_vaccinated: Option<f64>,
    pub rate_vaccinated: Option<f64>,
    pub cases_unvaccinated: Option<u64>,
    pub person_years_unvaccinated: Option<f64>,
    pub rate_unvaccinated: Option<f64>,
    pub suppressed: bool,
}

/// Cases per 100,000 person-years by vaccination status, month and age band
/// (`GET /api/effectiveness/rates`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RatesAnswer {
    #[serde(flatten)]
    pub study: StudyDescription,
    pub rate_unit: &'static str,
    pub unvaccinated: ComparisonGroup,
    pub rows: Vec<RateRow>,
    pub population_source: Option<String>,
    pub definition_version: u32,
    pub table_versions: TableVersions,
    pub suppression_threshold: u64,
}

impl Tabular for RatesAnswer {
    type Row = RateRow;
    fn rows(&self) -> Vec<RateRow> {
        self.rows.clone()
    }
    fn provenance(&self) -> Provenance {
        study_provenance(&self.population_source, &self.table_versions)
    }
}
