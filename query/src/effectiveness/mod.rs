//! Vaccine effectiveness from linked case notifications: the cohort method (person-time and
//! cases by vaccination status per age band, rate ratios, Mantel–Haenszel over the bands),
//! the screening method beside it, and rates per 100,000 person-years by status, month and
//! age band. Definitions: docs/effectiveness.md; interface: CONTRACTS.md `/api/effectiveness`.
//!
//! Cases and vaccinations link only through the pseudonymous person key: no identity is read.
//! Per request, one grouped query reads the persons vaccinated with the antigen (their dose
//! dates as a list), a second the cases in the period with their person key; cases are
//! classified against the first, and the person-time arithmetic is done here. Answers are
//! cached per (question, table versions), typed ([`answer`]) and printed by
//! [`crate::output`].

mod answer;
mod engine;
mod estimate;
mod person_time;
mod publish;
mod read;
mod study;
mod withhold;

pub use answer::{
    BandEstimate, ComparisonGroup, EffectivenessAnswer, EstimateFigures, EstimateRow,
    EstimateTable, PooledEstimate, RateRow, RatesAnswer, Screening, StudyDescription,
    DEFINITION_VERSION,
};
pub use engine::EffectivenessEngine;
pub use estimate::{
    exact_conditional, exact_stratified_bound, mantel_haenszel, rate_ratio, screening, Estimate,
    IntervalMethod, Stratum, EXACT_BELOW,
};
pub use study::{EffectivenessQuery, Outcome, DEFAULT_EPISODE_DAYS};
