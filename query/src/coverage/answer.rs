//! The coverage engine's answers as types: what the API sends (their serde form, keys in name
//! order through [`crate::output::to_json`]) and what CSV and table print.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

use super::catalogue::{DoseRule, Indicator, Kind};
use super::question::Breakdown;
use crate::answer_cache::TableVersions;
use crate::output::{Provenance, Tabular};

/// An indicator's catalogue line: the definition a figure is computed by.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Definition {
    pub indicator: String,
    /// `birth_cohort`, `season` or `age_band`.
    #[schema(value_type = String)]
    pub kind: Kind,
    pub title: String,
    pub antigen: String,
    /// The dose counted; none when the indicator counts a completed series.
    pub dose: Option<u32>,
    pub dose_rule: &'static str,
    pub age_months: Option<u32>,
    pub schedule_age_months: Option<u32>,
    pub min_age_years: Option<i32>,
    pub sex: Option<String>,
    pub definition_version: u32,
}

impl From<&Indicator> for Definition {
    fn from(indicator: &Indicator) -> Definition {
        Definition {
            indicator: indicator.name.clone(),
            kind: indicator.kind,
            title: indicator.title.clone(),
            antigen: indicator.antigen.clone(),
            dose: match indicator.dose {
                DoseRule::Nth(n) => Some(n),
                DoseRule::Series | DoseRule::Schedule => None,
            },
            dose_rule: match indicator.dose {
                DoseRule::Nth(_) => "nth",
                DoseRule::Series => "series",
                DoseRule::Schedule => "schedule",
            },
            age_months: indicator.age_months,
            schedule_age_months: indicator.schedule_age_months,
            min_age_years: indicator.min_age_years,
            sex: indicator.sex.clone(),
            definition_version: indicator.definition_version,
        }
    }
}

/// The fields every answer about one indicator starts with: what was computed, by which
/// definition, from what.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Header {
    #[serde(flatten)]
    pub definition: Definition,
    pub data_until: Option<String>,
    pub table_versions: TableVersions,
    pub suppression_threshold: u64,
}

impl Header {
    fn provenance(&self, population_source: Option<&String>) -> Provenance {
        Provenance {
            population_source: population_source.cloned(),
            data_until: self.data_until.clone(),
            definition_version: Some(self.definition.definition_version.to_string()),
            table_versions: Some(self.table_versions.clone()),
        }
    }
}

/// A row's breakdown value under its column's name (`commune`, `canton`, `sex` or
/// `age_band`); null for persons without one.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupValue {
    pub column: &'static str,
    pub value: Option<String>,
}

impl utoipa::PartialSchema for GroupValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
        let value = || {
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .build()
        };
        let mut object = ObjectBuilder::new().description(Some(
            "The row's breakdown value under the breakdown's name (one of these); null for \
             persons without one.",
        ));
        for column in ["commune", "canton", "sex", "age_band"] {
            object = object.property(column, value());
        }
        utoipa::openapi::RefOr::T(Schema::Object(object.build()))
    }
}

impl ToSchema for GroupValue {}

impl Serialize for GroupValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.column, &self.value)?;
        map.end()
    }
}

/// One published row: where it is (cohort, season, breakdown value, age) and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Row<F> {
    pub cohort: i32,
    /// The last birth year of a pooled cohort (`cohort` is the first); absent for one year.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohort_last: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_months: Option<u32>,
    #[serde(flatten)]
    pub group: Option<GroupValue>,
    #[serde(flatten)]
    pub figures: F,
}

/// The figures of a coverage cell; all but `suppressed` and `flags` are null when withheld.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CoverageFigures {
    pub numerator: Option<u64>,
    pub denominator: Option<u64>,
    pub coverage: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub suppressed: bool,
    pub flags: Vec<&'static str>,
    /// A withheld cell's band of coverage from the public grid: at least `band_low`, below
    /// `band_high` (or at most 100 %); docs/coverage.md, "Bands". Absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band_low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band_high: Option<f64>,
}

/// The figures of a dropout cell (completed of started).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DropoutFigures {
    pub started: Option<u64>,
    pub completed: Option<u64>,
    pub dropped: Option<u64>,
    pub dropout: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub suppressed: bool,
    pub flags: Vec<&'static str>,
}

/// The figures of a timeliness cell (timely of vaccinated).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TimelinessFigures {
    pub vaccinated: Option<u64>,
    pub median_age_months: Option<f64>,
    pub timely: Option<u64>,
    pub timely_share: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub suppressed: bool,
    pub flags: Vec<&'static str>,
}

/// The rows CSV and table print: the rows, then the total marked `total` in `column`.
fn printed<F: Clone>(
    rows: &[Row<F>],
    total: Option<&Row<F>>,
    column: Option<&'static str>,
) -> Vec<Row<F>> {
    let mut printed = rows.to_vec();
    if let (Some(total), Some(column)) = (total, column) {
        let mut total = total.clone();
        total.group = Some(GroupValue {
            column,
            value: Some("total".into()),
        });
        printed.push(total);
    }
    printed
}

/// Cohort, seasonal or age-band coverage (`GET /api/coverage`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CoverageAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub cohort: i32,
    /// The last birth year of a pooled cohort; absent for one year.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohort_last: Option<i32>,
    pub by: Option<Breakdown>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season: Option<String>,
    pub population_source: Option<String>,
    pub rows: Vec<Row<CoverageFigures>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<Row<CoverageFigures>>,
}

impl CoverageAnswer {
    /// The column the total is marked in: the breakdown's, or `age_band` for age-band rows.
    fn total_column(&self) -> Option<&'static str> {
        self.by.map(Breakdown::column).or_else(|| {
            self.rows
                .first()
                .and_then(|row| row.group.as_ref())
                .map(|group| group.column)
                .filter(|column| *column == "age_band")
        })
    }
}

impl Tabular for CoverageAnswer {
    type Row = Row<CoverageFigures>;
    fn rows(&self) -> Vec<Self::Row> {
        printed(&self.rows, self.total.as_ref(), self.total_column())
    }
    fn provenance(&self) -> Provenance {
        self.header.provenance(self.population_source.as_ref())
    }
}

/// Cumulative coverage by age in months (`GET /api/coverage/curve`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CurveAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub cohort: i32,
    pub population_source: Option<String>,
    pub rows: Vec<Row<CoverageFigures>>,
}

impl Tabular for CurveAnswer {
    type Row = Row<CoverageFigures>;
    fn rows(&self) -> Vec<Self::Row> {
        self.rows.clone()
    }
    fn provenance(&self) -> Provenance {
        self.header.provenance(self.population_source.as_ref())
    }
}

/// Dropout between two doses of one antigen (`GET /api/coverage/dropout`). Its denominators
/// are the children with the first dose, not a population estimate.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DropoutAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub from: String,
    pub to: String,
    pub cohort: i32,
    pub by: Option<Breakdown>,
    pub rows: Vec<Row<DropoutFigures>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<Row<DropoutFigures>>,
}

impl Tabular for DropoutAnswer {
    type Row = Row<DropoutFigures>;
    fn rows(&self) -> Vec<Self::Row> {
        printed(
            &self.rows,
            self.total.as_ref(),
            self.by.map(Breakdown::column),
        )
    }
    fn provenance(&self) -> Provenance {
        self.header.provenance(None)
    }
}

/// Median age at the dose and the share given on time (`GET /api/coverage/timeliness`). Its
/// denominators are the vaccinated, not a population estimate.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TimelinessAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub cohort: i32,
    pub by: Option<Breakdown>,
    pub rows: Vec<Row<TimelinessFigures>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<Row<TimelinessFigures>>,
}

impl Tabular for TimelinessAnswer {
    type Row = Row<TimelinessFigures>;
    fn rows(&self) -> Vec<Self::Row> {
        printed(
            &self.rows,
            self.total.as_ref(),
            self.by.map(Breakdown::column),
        )
    }
    fn provenance(&self) -> Provenance {
        self.header.provenance(None)
    }
}

/// The columns of the `--all` table (docs/coverage.md).
pub const TABLE_COLUMNS: &[&str] = &[
    "indicator",
    "cohort",
    "by",
    "group",
    "numerator",
    "denominator",
    "coverage",
    "ci_low",
    "ci_high",
    "suppressed",
    "flags",
];

/// One row of the `--all` table.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TableRow {
    pub indicator: String,
    pub cohort: i32,
    /// `national`, `commune`, `canton`, `sex` or `age_band`.
    pub by: &'static str,
    /// The breakdown value; empty for national rows and persons without one.
    pub group: String,
    pub numerator: Option<u64>,
    pub denominator: Option<u64>,
    pub coverage: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub suppressed: bool,
    /// The flags joined by `;`.
    pub flags: String,
}

/// Every indicator × cohort × breakdown as flat rows (`vaxlake coverage --all`). The JSON
/// is the columns and rows alone; CSV and table add the provenance of all rows.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TableAnswer {
    #[schema(value_type = Vec<String>)]
    pub columns: &'static [&'static str],
    pub rows: Vec<TableRow>,
    #[serde(skip)]
    #[schema(ignore)]
    pub provenance: Provenance,
}

impl Tabular for TableAnswer {
    type Row = TableRow;
    fn rows(&self) -> Vec<TableRow> {
        self.rows.clone()
    }
    fn provenance(&self) -> Provenance {
        self.provenance.clone()
    }
}

/// A published cell of the `--all` table whose numerator exceeds its denominator.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FlaggedRow {
    #[serde(flatten)]
    pub row: TableRow,
    pub definition_version: u32,
    pub population_source: Option<String>,
}

/// The flagged cells of the `--all` table (`GET /api/coverage/flags`), under the provenance
/// every coverage answer carries; `population_source` lists the rows' sources.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FlagsAnswer {
    pub columns: Vec<&'static str>,
    pub data_until: Option<String>,
    pub table_versions: TableVersions,
    pub suppression_threshold: u64,
    pub population_source: Option<String>,
    pub rows: Vec<FlaggedRow>,
}

impl Tabular for FlagsAnswer {
    type Row = FlaggedRow;
    fn rows(&self) -> Vec<FlaggedRow> {
        self.rows.clone()
    }
    fn provenance(&self) -> Provenance {
        Provenance {
            population_source: self.population_source.clone(),
            data_until: self.data_until.clone(),
            definition_version: definition_versions(
                self.rows
                    .iter()
                    .map(|flagged| (flagged.row.indicator.as_str(), flagged.definition_version)),
            ),
            table_versions: Some(self.table_versions.clone()),
        }
    }
}

/// `name=version, ...` of the distinct indicators, in first-seen order; none without any.
pub(crate) fn definition_versions<'a>(
    indicators: impl Iterator<Item = (&'a str, u32)>,
) -> Option<String> {
    let mut seen: Vec<(&str, u32)> = Vec::new();
    for pair in indicators {
        if !seen.contains(&pair) {
            seen.push(pair);
        }
    }
    (!seen.is_empty()).then(|| {
        seen.iter()
            .map(|(name, version)| format!("{name}={version}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The indicator catalogue (`GET /api/coverage/indicators`, `vaxlake coverage --list`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IndicatorList {
    pub indicators: Vec<Definition>,
    pub age_bands: Vec<&'static str>,
    pub suppression_threshold: u64,
}

impl Tabular for IndicatorList {
    type Row = Definition;
    fn rows(&self) -> Vec<Definition> {
        self.indicators.clone()
    }
    fn provenance(&self) -> Provenance {
        Provenance::default()
    }
}
