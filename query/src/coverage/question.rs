//! The questions the coverage engine answers: `/api/coverage` and its companions' parameters
//! (CONTRACTS.md, docs/coverage.md), which the command line fills in too.

use serde::{Deserialize, Serialize};

use super::facts::Group;

/// A breakdown of an answer's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
            other => Err(format!("by must be commune, canton or sex, not {other:?}")),
        }
    }
}

/// `/api/coverage` parameters (CONTRACTS.md).
#[derive(Debug, Clone, Deserialize)]
pub struct CoverageQuery {
    pub indicator: String,
    pub cohort: i32,
    pub age_months: Option<u32>,
    pub by: Option<Breakdown>,
}

/// `/api/coverage/curve` parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct CurveQuery {
    pub indicator: String,
    pub cohort: i32,
    pub max_age_months: Option<u32>,
}

/// `/api/coverage/dropout` parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct DropoutQuery {
    pub from: String,
    pub to: String,
    pub cohort: i32,
    pub age_months: Option<u32>,
    pub by: Option<Breakdown>,
}

/// `/api/coverage/timeliness` parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct TimelinessQuery {
    pub indicator: String,
    pub cohort: i32,
    pub by: Option<Breakdown>,
}
