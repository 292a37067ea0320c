//! The indicator catalogue, read from `sql/reference/indicators.csv` (compiled in): adding an
//! indicator is one line in that file, no Rust. See docs/coverage.md for what each column means.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::reference::{read_rows, INDICATORS_CSV, SERIES_CSV};
use crate::QueryError;

/// The age bands of CONTRACTS.md (effectiveness strata), used by age-band indicators too so
/// that coverage and effectiveness tables line up: (label, lowest age, highest age).
pub const AGE_BANDS: &[(&str, i32, i32)] = &[
    ("0-4", 0, 4),
    ("5-17", 5, 17),
    ("18-64", 18, 64),
    ("65-74", 65, 74),
    ("75-84", 75, 84),
    ("85+", 85, i32::MAX),
];

/// The age band of an age in years; `None` for a negative age (born after the reference date).
pub fn age_band(age: i32) -> Option<&'static str> {
    AGE_BANDS
        .iter()
        .find(|(_, low, high)| (*low..=*high).contains(&age))
        .map(|(label, _, _)| *label)
}

/// Which population an indicator is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Children born in one year, vaccinated by an age in months (WUENIC style).
    BirthCohort,
    /// Persons of an age vaccinated during one season (1 September – 31 August).
    Season,
    /// Persons vaccinated by the end of a calendar year, per age band.
    AgeBand,
}

/// Which dose of the antigen the indicator counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DoseRule {
    /// The n-th day with a dose of the antigen (`dose_seq = n`).
    Nth(u32),
    /// The last dose of the product's series (`sql/reference/vaccine_series.csv`).
    Series,
}

/// One line of indicators.csv.
#[derive(Debug, Clone)]
pub struct Indicator {
    pub name: String,
    pub kind: Kind,
    pub antigen: String,
    pub dose: DoseRule,
    /// "By age M months" (birth-cohort indicators).
    pub age_months: Option<u32>,
    /// The schedule's age for the dose, for timeliness.
    pub schedule_age_months: Option<u32>,
    /// Season indicators: persons reaching at least this age in the season's first year.
    pub min_age_years: Option<i32>,
    /// Only persons of this recorded sex (HPVc: girls).
    pub sex: Option<String>,
    /// Bumped whenever the definition changes, and shown beside every figure.
    pub definition_version: u32,
    pub title: String,
}

impl Indicator {
    /// The catalogue line as JSON, for `/api/coverage/indicators` and answer headers.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "indicator": self.name,
            "kind": self.kind,
            "title": self.title,
            "antigen": self.antigen,
            "dose": match self.dose { DoseRule::Nth(n) => Some(n), DoseRule::Series => None },
            "dose_rule": match self.dose { DoseRule::Nth(_) => "nth", DoseRule::Series => "series" },
            "age_months": self.age_months,
            "schedule_age_months": self.schedule_age_months,
            "min_age_years": self.min_age_years,
            "sex": self.sex,
            "definition_version": self.definition_version,
        })
    }
}

/// Every indicator, and the series lengths `DoseRule::Series` needs.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub indicators: Vec<Indicator>,
    /// ATC code → (antigen, doses in its series).
    pub series: BTreeMap<String, (String, u32)>,
}

impl Catalogue {
    /// The catalogue compiled into this binary.
    pub fn builtin() -> Result<Catalogue, QueryError> {
        Catalogue::parse(INDICATORS_CSV, SERIES_CSV)
    }

    fn parse(indicators_csv: &str, series_csv: &str) -> Result<Catalogue, QueryError> {
        const FILE: &str = "sql/reference/indicators.csv";
        let rows = read_rows(indicators_csv, FILE, 10)?;
        let mut indicators: Vec<Indicator> = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let line = index + 2;
            let bad = |what: &str| QueryError::Format(format!("{FILE}:{line}: {what}"));
            let number = |field: &str, what: &str| -> Result<Option<u32>, QueryError> {
                if field.is_empty() {
                    Ok(None)
                } else {
                    field
                        .parse::<u32>()
                        .map(Some)
                        .map_err(|_| bad(&format!("{what} {field:?} is not a whole number")))
                }
            };
            let kind = match row[1].as_str() {
                "birth_cohort" => Kind::BirthCohort,
                "season" => Kind::Season,
                "age_band" => Kind::AgeBand,
                other => {
                    return Err(bad(&format!(
                        "kind {other:?} is not birth_cohort, season or age_band"
                    )))
                }
            };
            let dose = match row[3].as_str() {
                "series" => DoseRule::Series,
                text => match number(text, "dose")? {
                    Some(n) if n >= 1 => DoseRule::Nth(n),
                    _ => return Err(bad("dose must be 1, 2, ... or `series`")),
                },
            };
            let indicator = Indicator {
                name: row[0].clone(),
                kind,
                antigen: row[2].clone(),
                dose,
                age_months: number(&row[4], "age_months")?,
                schedule_age_months: number(&row[5], "schedule_age_months")?,
                min_age_years: number(&row[6], "min_age_years")?.map(|age| age as i32),
                sex: (!row[7].is_empty()).then(|| row[7].clone()),
                definition_version: number(&row[8], "definition_version")?
                    .ok_or_else(|| bad("definition_version is required"))?,
                title: row[9].clone(),
            };
            if indicator.name.is_empty() || indicator.antigen.is_empty() {
                return Err(bad("name and antigen are required"));
            }
            if indicators
                .iter()
                .any(|other| other.name.eq_ignore_ascii_case(&indicator.name))
            {
                return Err(bad(&format!(
                    "indicator {} is listed twice",
                    indicator.name
                )));
            }
            match kind {
                Kind::BirthCohort if indicator.age_months.is_none() => {
                    return Err(bad("a birth_cohort indicator needs age_months"))
                }
                Kind::Season if indicator.min_age_years.is_none() => {
                    return Err(bad("a season indicator needs min_age_years"))
                }
                Kind::Season | Kind::AgeBand if dose == DoseRule::Series => {
                    return Err(bad("`series` doses are for birth_cohort indicators"))
                }
                _ => {}
            }
            indicators.push(indicator);
        }

        const SERIES_FILE: &str = "sql/reference/vaccine_series.csv";
        let mut series = BTreeMap::new();
        for (index, row) in read_rows(series_csv, SERIES_FILE, 3)?
            .into_iter()
            .enumerate()
        {
            let doses = row[2].parse::<u32>().map_err(|_| {
                QueryError::Format(format!(
                    "{SERIES_FILE}:{}: series_doses {:?} is not a whole number",
                    index + 2,
                    row[2]
                ))
            })?;
            series.insert(row[0].clone(), (row[1].clone(), doses));
        }
        Ok(Catalogue { indicators, series })
    }

    /// The indicator called `name` (case-insensitive: `dtp3` is DTP3).
    pub fn get(&self, name: &str) -> Option<&Indicator> {
        self.indicators
            .iter()
            .find(|indicator| indicator.name.eq_ignore_ascii_case(name))
    }

    /// Names, for error messages.
    pub fn names(&self) -> String {
        self.indicators
            .iter()
            .map(|indicator| indicator.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::ReferenceTables;
    use datafusion::prelude::SessionContext;

    #[test]
    fn the_wuenic_and_national_indicators_are_defined() {
        let catalogue = Catalogue::builtin().unwrap();
        for name in [
            "DTP1",
            "DTP3",
            "Pol3",
            "HepB3",
            "Hib3",
            "PCV3",
            "RotaC",
            "MCV1",
            "MCV2",
            "HPVc",
            "MenB3",
            "MMR2_5Y",
            "FLU65",
            "COVID19_1",
            "COVID19_2",
        ] {
            assert!(catalogue.get(name).is_some(), "{name} is missing");
        }
        let mcv1 = catalogue.get("mcv1").unwrap();
        assert_eq!(
            (mcv1.antigen.as_str(), mcv1.dose, mcv1.age_months),
            ("measles", DoseRule::Nth(1), Some(24))
        );
        assert_eq!(catalogue.get("RotaC").unwrap().dose, DoseRule::Series);
        assert_eq!(catalogue.get("FLU65").unwrap().min_age_years, Some(65));
    }

    /// Every antigen named in the catalogue is one the vaccine file maps vaccines to, and every
    /// vaccine containing a `series` antigen says how long its series is (a product missing
    /// there would silently never complete RotaC).
    #[tokio::test]
    async fn indicators_and_series_agree_with_the_vaccine_catalogue() {
        let catalogue = Catalogue::builtin().unwrap();
        let ctx = SessionContext::new();
        for (name, table) in ReferenceTables::load().unwrap().tables {
            ctx.register_table(name, table).unwrap();
        }
        let batches = ctx
            .sql("SELECT atc_code, antigen FROM vaccine_antigens")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut pairs = Vec::new();
        for batch in &batches {
            let column = |index: usize| {
                batch
                    .column(index)
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .unwrap()
                    .clone()
            };
            let (atc, antigen) = (column(0), column(1));
            for row in 0..batch.num_rows() {
                pairs.push((atc.value(row).to_string(), antigen.value(row).to_string()));
            }
        }
        for indicator in &catalogue.indicators {
            assert!(
                pairs
                    .iter()
                    .any(|(_, antigen)| *antigen == indicator.antigen),
                "{}: antigen {} is in no vaccine",
                indicator.name,
                indicator.antigen
            );
            if indicator.dose == DoseRule::Series {
                for (atc, antigen) in &pairs {
                    if *antigen == indicator.antigen {
                        assert!(
                            catalogue.series.contains_key(atc),
                            "{atc} contains {antigen} but has no series length"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_broken_line_is_refused_with_its_line_number() {
        let header = "name,kind,antigen,dose,age_months,schedule_age_months,min_age_years,sex,definition_version,title\n";
        let error = Catalogue::parse(
            &format!("{header}X,birth_cohort,measles,1,,,,,1,t\n"),
            "atc_code,antigen,series_doses\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("indicators.csv:2") && error.contains("age_months"),
            "{error}"
        );
    }

    #[test]
    fn age_bands_cover_every_age_once() {
        assert_eq!(age_band(0), Some("0-4"));
        assert_eq!(age_band(17), Some("5-17"));
        assert_eq!(age_band(65), Some("65-74"));
        assert_eq!(age_band(104), Some("85+"));
        assert_eq!(age_band(-1), None);
    }
}
