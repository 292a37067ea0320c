//! The questions the coverage engine answers: `/api/coverage` and its companions' parameters
//! (CONTRACTS.md, docs/coverage.md), which the command line fills in too.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::facts::Group;

/// A breakdown of an answer's rows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Breakdown {
    Commune,
    Canton,
    Sex,
}

impl Breakdown {
    /// The column an answer's rows carry this breakdown in.
    pub fn column(self) -> &'static str {
        match self {
            Breakdown::Commune => "commune",
            Breakdown::Canton => "canton",
            Breakdown::Sex => "sex",
        }
    }

    /// The value of this breakdown for persons of `group`.
    pub(crate) fn key(self, group: &Group) -> Option<String> {
        match self {
            Breakdown::Commune => group.commune.clone(),
            Breakdown::Canton => group.canton.clone(),
            Breakdown::Sex => group.sex.clone(),
        }
    }
}

impl std::str::FromStr for Breakdown {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "commune" => Ok(Breakdown::Commune),
            "canton" => Ok(Breakdown::Canton),
            "sex" => Ok(Breakdown::Sex),
            // The value is not quoted back: a client's text may be an identity.
            _ => Err("by must be commune, canton or sex".to_string()),
        }
    }
}

/// The most birth years one pooled answer sums (statistical offices pool three; five is
/// already a long span for a coverage figure).
pub const MAX_POOLED_YEARS: i32 = 5;

/// One birth cohort (`2022`) or consecutive ones pooled (`2022-2024`): small areas show a
/// figure over three birth years where one year's would be withheld (docs/coverage.md,
/// "Pooled cohorts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "CohortText")]
pub struct CohortSpan {
    pub first: i32,
    pub last: i32,
}

impl CohortSpan {
    pub fn single(year: i32) -> CohortSpan {
        CohortSpan {
            first: year,
            last: year,
        }
    }

    pub fn is_pooled(&self) -> bool {
        self.last > self.first
    }

    pub fn years(&self) -> std::ops::RangeInclusive<i32> {
        self.first..=self.last
    }
}

impl From<i32> for CohortSpan {
    fn from(year: i32) -> CohortSpan {
        CohortSpan::single(year)
    }
}

impl std::fmt::Display for CohortSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_pooled() {
            write!(f, "{}-{}", self.first, self.last)
        } else {
            write!(f, "{}", self.first)
        }
    }
}

impl std::str::FromStr for CohortSpan {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let year = |part: &str| {
            part.trim()
                .parse::<i32>()
                .ok()
                .filter(|year| (1800..=2200).contains(year))
                .ok_or_else(|| {
                    "cohort must be a birth year (2022) or a span of consecutive years \
                     (2022-2024)"
                        .to_string()
                })
        };
        let span = match text.split_once('-') {
            Some((first, last)) => CohortSpan {
                first: year(first)?,
                last: year(last)?,
            },
            None => CohortSpan::single(year(text)?),
        };
        if span.last < span.first {
            return Err("a cohort span runs from the earlier year to the later one".into());
        }
        if span.last - span.first >= MAX_POOLED_YEARS {
            return Err(format!(
                "a pooled cohort spans at most {MAX_POOLED_YEARS} birth years"
            ));
        }
        Ok(span)
    }
}

/// How a cohort arrives: a number in JSON, text in a query string or on the command line.
#[derive(Deserialize)]
#[serde(untagged)]
enum CohortText {
    Year(i32),
    Text(String),
}

impl TryFrom<CohortText> for CohortSpan {
    type Error = String;
    fn try_from(text: CohortText) -> Result<Self, Self::Error> {
        match text {
            CohortText::Year(year) => year.to_string().parse(),
            CohortText::Text(text) => text.parse(),
        }
    }
}

/// `/api/coverage` parameters (CONTRACTS.md). `cohort` may pool consecutive birth years
/// (birth-cohort indicators only).
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CoverageQuery {
    pub indicator: String,
    /// A birth year (`2022`) or consecutive ones pooled (`2022-2024`).
    #[param(value_type = String)]
    pub cohort: CohortSpan,
    pub age_months: Option<u32>,
    pub by: Option<Breakdown>,
}

/// `/api/coverage/curve` parameters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CurveQuery {
    pub indicator: String,
    pub cohort: i32,
    pub max_age_months: Option<u32>,
}

/// `/api/coverage/dropout` parameters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DropoutQuery {
    pub from: String,
    pub to: String,
    pub cohort: i32,
    pub age_months: Option<u32>,
    pub by: Option<Breakdown>,
}

/// `/api/coverage/timeliness` parameters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelinessQuery {
    pub indicator: String,
    pub cohort: i32,
    pub by: Option<Breakdown>,
}
