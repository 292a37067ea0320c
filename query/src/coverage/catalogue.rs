//! The indicator catalogue, read from `sql/reference/indicators.csv` (compiled in, parsed by
//! `vaxlake_catalog`): adding an indicator is one line in that file, no Rust. See
//! docs/coverage.md for what each column means.

pub use vaxlake_catalog::validity::DoseRules;
pub use vaxlake_catalog::{DoseRule, Indicator, Kind, Series};

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

/// Every indicator, the series lengths `DoseRule::Series` needs, and the dose rules that
/// say which doses count (`DoseRule::Schedule` reads its schedules there too).
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub indicators: Vec<Indicator>,
    /// By ATC code and product (sql/reference/vaccine_series.csv).
    pub series: Vec<Series>,
    pub rules: DoseRules,
}

impl Catalogue {
    /// The catalogue compiled into this binary (as `vaxlake_catalog` parsed it).
    pub fn builtin() -> Result<Catalogue, QueryError> {
        let reference = vaxlake_catalog::builtin()?;
        Ok(Catalogue {
            indicators: reference.indicators.clone(),
            series: reference.series.clone(),
            rules: DoseRules::new(&reference.dose_rules, &reference.schedules),
        })
    }

    /// The series length of a dose of `atc` recorded as `vaccine_name`, for `antigen`
    /// (`vaxlake_catalog::reference::series_doses`).
    pub fn series_doses(
        &self,
        atc: &str,
        vaccine_name: Option<&str>,
        antigen: &str,
    ) -> Option<u32> {
        vaxlake_catalog::reference::series_doses(&self.series, atc, vaccine_name, antigen)
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
        assert_eq!(catalogue.get("HPVc").unwrap().dose, DoseRule::Schedule);
        assert!(catalogue.rules.has_schedule("hpv"));
        assert_eq!(catalogue.get("PCV3").unwrap().antigen, "pneumococcal");
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
                            catalogue.series_doses(atc, None, antigen).is_some(),
                            "{atc} contains {antigen} but has no series length for an unrecorded product"
                        );
                    }
                }
            }
        }
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
