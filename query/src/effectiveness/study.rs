//! The question an effectiveness answer is computed for: the request's parameters, checked
//! and turned into day numbers.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::answer::StudyDescription;
use crate::coverage::{age_band, AGE_BANDS};
use crate::dates::{civil_from_days, days_from_civil, format_iso, parse_iso};
use crate::QueryError;

/// Which cases count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every notified case.
    #[default]
    Any,
    /// Cases admitted to hospital.
    Hospitalised,
    /// Cases who died.
    Died,
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "any" => Ok(Outcome::Any),
            "hospitalised" => Ok(Outcome::Hospitalised),
            "died" => Ok(Outcome::Died),
            // The value is not quoted back: a client's text may be an identity.
            _ => Err("outcome must be any, hospitalised or died".to_string()),
        }
    }
}

/// `/api/effectiveness` parameters (CONTRACTS.md), plus `outcome`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EffectivenessQuery {
    pub antigen: String,
    pub disease: String,
    pub from: String,
    pub to: String,
    pub lag_days: Option<u32>,
    pub dose: Option<u32>,
    pub by: Option<String>,
    pub doses_since: Option<String>,
    pub outcome: Option<Outcome>,
    /// Notifications of one person and disease whose onsets lie within this many days of
    /// the first are one episode (90 by default; 0 counts every notification).
    #[serde(default)]
    pub episode_days: Option<u32>,
}

/// Repeat notifications within this many days of an episode's first are the same episode
/// (docs/effectiveness.md, "Cases").
pub const DEFAULT_EPISODE_DAYS: u32 = 90;

/// A request checked and turned into day numbers.
#[derive(Debug, Clone)]
pub(super) struct Study {
    pub(super) antigen: String,
    pub(super) disease: String,
    pub(super) from: i32,
    pub(super) to: i32,
    pub(super) lag_days: i32,
    pub(super) dose: usize,
    pub(super) by_band: bool,
    pub(super) doses_since: Option<i32>,
    pub(super) outcome: Outcome,
    pub(super) episode_days: i32,
}

impl Study {
    /// Age in years reached in the year the period starts: the rule that places population
    /// rows (which know only a birth year), vaccinated persons and cases alike.
    pub(super) fn band_of(&self, birth_year: i32) -> Option<usize> {
        let age = civil_from_days(self.from).0 - birth_year;
        let label = age_band(age)?;
        AGE_BANDS.iter().position(|(band, _, _)| *band == label)
    }

    /// The study as every answer states it, computed by `method`.
    pub(super) fn describe(&self, method: &'static str) -> StudyDescription {
        StudyDescription {
            method,
            antigen: self.antigen.clone(),
            disease: self.disease.clone(),
            from: format_iso(self.from),
            to: format_iso(self.to),
            lag_days: self.lag_days,
            dose: self.dose,
            doses_since: self.doses_since.map(format_iso),
            outcome: self.outcome,
            episode_days: self.episode_days,
        }
    }

    /// Checks `query`; `seasonal_antigens` count only the season's doses unless
    /// `doses_since` says otherwise.
    pub(super) fn check(
        query: &EffectivenessQuery,
        seasonal_antigens: &[String],
    ) -> Result<Study, QueryError> {
        let invalid = |what: String| QueryError::Invalid(what);
        let date = |name: &str, text: &str| {
            parse_iso(text)
                // The text is not quoted back: a client's text may be an identity.
                .ok_or_else(|| invalid(format!("{name} must be a date YYYY-MM-DD")))
        };
        let antigen = query.antigen.trim().to_ascii_lowercase();
        if antigen.is_empty()
            || !antigen
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid(
                "antigen is not an antigen name (letters, digits and '_')".to_string(),
            ));
        }
        let disease = query.disease.trim().to_ascii_uppercase();
        let well_formed = (1..=8).contains(&disease.len())
            && disease.starts_with(|c: char| c.is_ascii_uppercase())
            && disease
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !well_formed {
            return Err(invalid(
                "disease must be an ICD-10 code or prefix such as J10 or U07.1".to_string(),
            ));
        }
        let (from, to) = (date("from", &query.from)?, date("to", &query.to)?);
        if to < from {
            return Err(invalid("to is before from".into()));
        }
        if to - from > 3_660 {
            return Err(invalid("a study period is at most ten years".into()));
        }
        let lag_days = query.lag_days.unwrap_or(14);
        if lag_days > 365 {
            return Err(invalid("lag_days must be between 0 and 365".into()));
        }
        let dose = query.dose.unwrap_or(1);
        if !(1..=20).contains(&dose) {
            return Err(invalid("dose must be between 1 and 20".into()));
        }
        let episode_days = query.episode_days.unwrap_or(DEFAULT_EPISODE_DAYS);
        if episode_days > 3_650 {
            return Err(invalid("episode_days must be between 0 and 3650".into()));
        }
        let by_band = match query.by.as_deref() {
            None => false,
            Some("age_band") => true,
            Some(_) => return Err(invalid("by must be age_band".to_string())),
        };
        let doses_since = match &query.doses_since {
            Some(text) => Some(date("doses_since", text)?),
            None if seasonal_antigens.contains(&antigen) => {
                // Only this season's doses protect: from the 1 September before `from`.
                let (year, month, _) = civil_from_days(from);
                Some(days_from_civil(
                    if month >= 9 { year } else { year - 1 },
                    9,
                    1,
                ))
            }
            None => None,
        };
        Ok(Study {
            antigen,
            disease,
            from,
            to,
            lag_days: lag_days as i32,
            dose: dose as usize,
            by_band,
            doses_since,
            outcome: query.outcome.unwrap_or_default(),
            episode_days: episode_days as i32,
        })
    }
}
