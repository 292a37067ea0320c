//! Person-level coverage: cohort coverage at an age, curves, dropout, timeliness, seasonal
//! and age-band coverage, with Wilson intervals and disclosure control, for the API and the
//! command line alike. Definitions: docs/coverage.md; indicators: sql/reference/indicators.csv.
//!
//! Answers come from [`facts::Facts`], sums over the coverage facts the ingest maintains,
//! kept up to date from what each new facts version added ([`maintained`]); answers are
//! cached per (question, table versions), so a new ingest invalidates them.
//! Each answer is a type ([`answer`]); [`crate::output`] prints it as JSON, CSV or a table.

mod answer;
#[cfg(test)]
mod audit;
mod bands;
pub mod catalogue;
mod cohort;
mod curve;
mod dropout;
mod engine;
pub(crate) mod facts;
mod invalid_doses;
#[cfg(test)]
mod invalid_doses_audit;
#[cfg(test)]
mod lp_model;
mod maintained;
mod plan;
mod pooled;
#[cfg(test)]
mod pooled_audit;
mod publish;
mod question;
mod select;
mod table;
mod timeliness;
pub(crate) mod vaccinated_on;

pub use answer::{
    CoverageAnswer, CoverageFigures, CurveAnswer, Definition, DropoutAnswer, DropoutFigures,
    FlaggedRow, FlagsAnswer, GroupValue, Header, IndicatorList, Row, TableAnswer, TableRow,
    TimelinessAnswer, TimelinessFigures, TABLE_COLUMNS,
};
pub use catalogue::{age_band, Catalogue, DoseRule, Indicator, Kind, AGE_BANDS};
pub use engine::CoverageEngine;
pub use invalid_doses::{
    invalid_doses_answer, InvalidDoseCount, InvalidDosesAnswer, InvalidDosesRow, InvalidDosesTotal,
};
pub use maintained::CountsRead;
pub use question::{
    Breakdown, CohortSpan, CoverageQuery, CurveQuery, DropoutQuery, TimelinessQuery,
};
// Disclosure control is shared with the effectiveness engine; re-exported where callers
// have always found it.
pub use crate::disclosure::{round4, Cell, Suppression};
