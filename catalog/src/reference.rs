//! The reference data of `sql/reference/` (compiled in, so a deployed binary cannot drift
//! from the files people read and edit), parsed once: vaccines → antigens, communes →
//! cantons, the indicator catalogue, the vaccine series by product, the dose rules (minimum
//! ages and intervals) and the completion schedules. Every error names file and line.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::CatalogError;

pub const VACCINES_FILE: &str = "sql/reference/vaccines.csv";
pub const COMMUNES_FILE: &str = "sql/reference/communes.csv";
pub const INDICATORS_FILE: &str = "sql/reference/indicators.csv";
pub const SERIES_FILE: &str = "sql/reference/vaccine_series.csv";
pub const DOSE_RULES_FILE: &str = "sql/reference/dose_rules.csv";
pub const SCHEDULES_FILE: &str = "sql/reference/schedules.csv";

/// The files' text as compiled into this binary.
pub const VACCINES_CSV: &str = include_str!("../../sql/reference/vaccines.csv");
pub const COMMUNES_CSV: &str = include_str!("../../sql/reference/communes.csv");
pub const INDICATORS_CSV: &str = include_str!("../../sql/reference/indicators.csv");
pub const SERIES_CSV: &str = include_str!("../../sql/reference/vaccine_series.csv");
pub const DOSE_RULES_CSV: &str = include_str!("../../sql/reference/dose_rules.csv");
pub const SCHEDULES_CSV: &str = include_str!("../../sql/reference/schedules.csv");

/// The text of every reference file, for [`Reference::parse`].
#[derive(Debug, Clone, Copy)]
pub struct ReferenceFiles<'a> {
    pub vaccines: &'a str,
    pub communes: &'a str,
    pub indicators: &'a str,
    pub series: &'a str,
    pub dose_rules: &'a str,
    pub schedules: &'a str,
}

/// The files compiled into this binary.
pub const BUILTIN_FILES: ReferenceFiles<'static> = ReferenceFiles {
    vaccines: VACCINES_CSV,
    communes: COMMUNES_CSV,
    indicators: INDICATORS_CSV,
    series: SERIES_CSV,
    dose_rules: DOSE_RULES_CSV,
    schedules: SCHEDULES_CSV,
};

/// A vaccine the warehouse knows, by ATC code; an event with another code is quarantined,
/// since coverage could not count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vaccine {
    pub atc_code: String,
    pub name: String,
    /// Every antigen it protects against: one hexavalent dose is a dose of six antigens.
    pub antigens: Vec<String>,
}

/// A commune, its canton, and its approximate resident population (the synthetic
/// generator's weight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commune {
    pub name: String,
    pub canton: String,
    pub population: u32,
}

/// How many doses complete a product's series (`DoseRule::Series`). The same ATC code
/// covers products with different series (J07BH01: Rotarix 2 doses, Rotavac 3), so the
/// product (`vaccine_name`) decides; the line without one is the code's length when the
/// product is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub atc_code: String,
    /// The product as the registry names it; `None` for "product not recorded".
    pub vaccine_name: Option<String>,
    pub antigen: String,
    pub doses: u32,
}

/// When a dose of an antigen counts (sql/reference/dose_rules.csv): the line of the valid
/// dose number it would become; the last line of an antigen also covers every later dose.
/// Ages are in completed months (the only age the warehouse keeps), intervals from exact
/// dates; [`crate::validity`] applies them with the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidityRule {
    pub antigen: String,
    pub dose: u32,
    pub min_age_months: Option<u32>,
    /// The oldest age in completed months at which the dose still counts (rotavirus).
    pub max_age_months: Option<u32>,
    /// Calendar months, then days, after the previous valid dose of the antigen.
    pub min_interval_months: Option<u32>,
    pub min_interval_days: Option<u32>,
    pub source: String,
}

/// How many valid doses complete an antigen's schedule, by the age the schedule was started
/// at (sql/reference/schedules.csv, used by indicators whose dose is `schedule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub antigen: String,
    pub name: String,
    /// The schedule applies when the first valid dose was given before this age (completed
    /// months); `None`: at any age. The first line that applies, in file order, is used.
    pub start_before_months: Option<u32>,
    pub doses: u32,
    /// The completing dose must be at least this many months (less the grace period) after
    /// the first valid dose; an earlier one leaves the schedule open.
    pub first_to_last_months: Option<u32>,
    pub source: String,
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

impl Kind {
    /// As written in indicators.csv.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BirthCohort => "birth_cohort",
            Kind::Season => "season",
            Kind::AgeBand => "age_band",
        }
    }
}

/// Which dose of the antigen the indicator counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DoseRule {
    /// The n-th day with a dose of the antigen (`dose_seq = n`).
    Nth(u32),
    /// The last dose of the product's series (`sql/reference/vaccine_series.csv`).
    Series,
    /// The dose completing the schedule for the age it was started at
    /// (`sql/reference/schedules.csv`; HPV: two doses before 15 years, else three).
    Schedule,
}

/// One line of indicators.csv. See docs/coverage.md for what each column means.
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
    /// The line's fields as written in indicators.csv (trimmed), in its column order.
    pub fn fields(&self) -> [String; 10] {
        let number = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
        [
            self.name.clone(),
            self.kind.as_str().to_string(),
            self.antigen.clone(),
            match self.dose {
                DoseRule::Nth(n) => n.to_string(),
                DoseRule::Series => "series".to_string(),
                DoseRule::Schedule => "schedule".to_string(),
            },
            number(self.age_months),
            number(self.schedule_age_months),
            self.min_age_years
                .map(|n| n.to_string())
                .unwrap_or_default(),
            self.sex.clone().unwrap_or_default(),
            self.definition_version.to_string(),
            self.title.clone(),
        ]
    }
}

/// The column names of indicators.csv, in order.
pub const INDICATOR_COLUMNS: [&str; 10] = [
    "name",
    "kind",
    "antigen",
    "dose",
    "age_months",
    "schedule_age_months",
    "min_age_years",
    "sex",
    "definition_version",
    "title",
];

/// All the reference data.
#[derive(Debug, Clone)]
pub struct Reference {
    /// In file order.
    pub vaccines: Vec<Vaccine>,
    pub communes: Vec<Commune>,
    pub indicators: Vec<Indicator>,
    pub series: Vec<Series>,
    pub dose_rules: Vec<ValidityRule>,
    pub schedules: Vec<Schedule>,
    vaccine_index: HashMap<String, usize>,
}

static BUILTIN: LazyLock<Result<Reference, CatalogError>> =
    LazyLock::new(|| Reference::parse(BUILTIN_FILES));

/// The reference data compiled into this binary, parsed on first use. An error here means
/// a file of `sql/reference/` was edited wrongly; the message names file and line.
pub fn builtin() -> Result<&'static Reference, CatalogError> {
    BUILTIN.as_ref().map_err(Clone::clone)
}

impl Reference {
    /// Parses the files' text (see the `*_FILE` constants for which is which).
    pub fn parse(files: ReferenceFiles<'_>) -> Result<Reference, CatalogError> {
        let vaccines = parse_vaccines(files.vaccines)?;
        let vaccine_index = vaccines
            .iter()
            .enumerate()
            .map(|(index, v)| (v.atc_code.clone(), index))
            .collect();
        let schedules = parse_schedules(files.schedules)?;
        let indicators = parse_indicators(files.indicators)?;
        for indicator in &indicators {
            if indicator.dose == DoseRule::Schedule
                && !schedules.iter().any(|s| s.antigen == indicator.antigen)
            {
                return Err(CatalogError::File {
                    file: SCHEDULES_FILE,
                    reason: format!(
                        "indicator {} counts the {} schedule, which has no line here",
                        indicator.name, indicator.antigen
                    ),
                });
            }
        }
        Ok(Reference {
            vaccines,
            communes: parse_communes(files.communes)?,
            indicators,
            series: parse_series(files.series)?,
            dose_rules: parse_dose_rules(files.dose_rules)?,
            schedules,
            vaccine_index,
        })
    }

    /// The vaccine of an ATC code, ignoring case and surrounding spaces.
    pub fn vaccine(&self, atc: &str) -> Option<&Vaccine> {
        let code = atc.trim();
        self.vaccine_index
            .get(code)
            .or_else(|| self.vaccine_index.get(&code.to_ascii_uppercase()))
            .map(|&index| &self.vaccines[index])
    }

    /// (ATC code, product or `None`) → (antigen, doses in its series).
    pub fn series_lengths(&self) -> BTreeMap<(String, Option<String>), (String, u32)> {
        self.series
            .iter()
            .map(|s| {
                (
                    (s.atc_code.clone(), s.vaccine_name.clone()),
                    (s.antigen.clone(), s.doses),
                )
            })
            .collect()
    }

    /// The product a source's vaccine name designates for an ATC code: the
    /// vaccine_series.csv spelling of the first product of that code whose name the text
    /// contains (case-insensitive: "Rotarix liquid oral" is Rotarix), else `None`. Ingest
    /// stores it as `vaccine_name`, so the series length follows the product.
    pub fn product(&self, atc: &str, text: &str) -> Option<&str> {
        let text = text.to_lowercase();
        self.series
            .iter()
            .filter(|s| s.atc_code.eq_ignore_ascii_case(atc.trim()))
            .filter_map(|s| s.vaccine_name.as_deref())
            .find(|name| text.contains(&name.to_lowercase()))
    }

    /// The series length of a dose of `atc` named `vaccine_name`, for `antigen`
    /// ([`series_doses`]).
    pub fn series_doses(
        &self,
        atc: &str,
        vaccine_name: Option<&str>,
        antigen: &str,
    ) -> Option<u32> {
        series_doses(&self.series, atc, vaccine_name, antigen)
    }
}

/// The series length of a dose of `atc` named `vaccine_name`, for `antigen`, in `series`:
/// the product's line, else the code's line without a product. One rule for the catalogue
/// and the coverage engine, which keeps its own copy of the lines.
pub fn series_doses(
    series: &[Series],
    atc: &str,
    vaccine_name: Option<&str>,
    antigen: &str,
) -> Option<u32> {
    let lines = || {
        series
            .iter()
            .filter(move |s| s.atc_code == atc && s.antigen == antigen)
    };
    vaccine_name
        .and_then(|name| {
            lines().find(|s| {
                s.vaccine_name
                    .as_deref()
                    .is_some_and(|product| product.eq_ignore_ascii_case(name))
            })
        })
        .or_else(|| lines().find(|s| s.vaccine_name.is_none()))
        .map(|s| s.doses)
}

/// Deserialises every line of a headed CSV (fields trimmed) into `T`, with its line number.
fn rows<T: DeserializeOwned>(
    file: &'static str,
    text: &str,
) -> Result<Vec<(u64, T)>, CatalogError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|error| csv_error(file, &error, None))?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| csv_error(file, &error, Some(&headers)))?;
        let line = record.position().map_or(0, |p| p.line());
        let row = record.deserialize(Some(&headers)).map_err(|error| {
            match csv_error(file, &error, Some(&headers)) {
                CatalogError::File { reason, .. } => CatalogError::Line { file, line, reason },
                located => located,
            }
        })?;
        rows.push((line, row));
    }
    Ok(rows)
}

fn csv_error(
    file: &'static str,
    error: &csv::Error,
    headers: Option<&csv::StringRecord>,
) -> CatalogError {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            pos: Some(pos),
            expected_len,
            len,
        } => CatalogError::Line {
            file,
            line: pos.line(),
            reason: format!("expected {expected_len} fields, found {len}"),
        },
        csv::ErrorKind::Deserialize { pos, err } => {
            let column = err
                .field()
                .and_then(|index| headers.and_then(|h| h.get(index as usize)));
            let reason = match column {
                Some(column) => format!("{column}: {}", err.kind()),
                None => err.kind().to_string(),
            };
            match pos {
                Some(pos) => CatalogError::Line {
                    file,
                    line: pos.line(),
                    reason,
                },
                None => CatalogError::File { file, reason },
            }
        }
        _ => match error.position() {
            Some(pos) => CatalogError::Line {
                file,
                line: pos.line(),
                reason: error.to_string(),
            },
            None => CatalogError::File {
                file,
                reason: error.to_string(),
            },
        },
    }
}

fn whole_number(
    file: &'static str,
    line: u64,
    what: &str,
    text: &str,
) -> Result<Option<u32>, CatalogError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u32>()
        .map(Some)
        .map_err(|_| CatalogError::Line {
            file,
            line,
            reason: format!("{what} {text:?} is not a whole number"),
        })
}

fn parse_vaccines(text: &str) -> Result<Vec<Vaccine>, CatalogError> {
    #[derive(Deserialize)]
    struct Row {
        atc_code: String,
        vaccine_name: String,
        antigens: String,
    }
    let mut vaccines: Vec<Vaccine> = Vec::new();
    for (line, row) in rows::<Row>(VACCINES_FILE, text)? {
        let bad = |reason: String| CatalogError::Line {
            file: VACCINES_FILE,
            line,
            reason,
        };
        let antigens: Vec<String> = row
            .antigens
            .split(';')
            .map(str::trim)
            .filter(|antigen| !antigen.is_empty())
            .map(str::to_string)
            .collect();
        if row.atc_code.is_empty() || antigens.is_empty() {
            return Err(bad("atc_code and antigens are required".into()));
        }
        if vaccines.iter().any(|v| v.atc_code == row.atc_code) {
            return Err(bad(format!("ATC code {} is listed twice", row.atc_code)));
        }
        vaccines.push(Vaccine {
            atc_code: row.atc_code,
            name: row.vaccine_name,
            antigens,
        });
    }
    Ok(vaccines)
}

fn parse_communes(text: &str) -> Result<Vec<Commune>, CatalogError> {
    #[derive(Deserialize)]
    struct Row {
        commune: String,
        canton: String,
        population: String,
    }
    let mut communes = Vec::new();
    for (line, row) in rows::<Row>(COMMUNES_FILE, text)? {
        if row.commune.is_empty() || row.canton.is_empty() {
            return Err(CatalogError::Line {
                file: COMMUNES_FILE,
                line,
                reason: "commune and canton are required".into(),
            });
        }
        let population = whole_number(COMMUNES_FILE, line, "population", &row.population)?
            .ok_or_else(|| CatalogError::Line {
                file: COMMUNES_FILE,
                line,
                reason: "population is required".into(),
            })?;
        communes.push(Commune {
            name: row.commune,
            canton: row.canton,
            population,
        });
    }
    Ok(communes)
}

fn parse_series(text: &str) -> Result<Vec<Series>, CatalogError> {
    #[derive(Deserialize)]
    struct Row {
        atc_code: String,
        vaccine_name: String,
        antigen: String,
        series_doses: String,
    }
    let mut series: Vec<Series> = Vec::new();
    for (line, row) in rows::<Row>(SERIES_FILE, text)? {
        let doses = whole_number(SERIES_FILE, line, "series_doses", &row.series_doses)?
            .ok_or_else(|| CatalogError::Line {
                file: SERIES_FILE,
                line,
                reason: "series_doses is required".into(),
            })?;
        let vaccine_name = (!row.vaccine_name.is_empty()).then_some(row.vaccine_name);
        if series.iter().any(|s| {
            s.atc_code == row.atc_code && s.antigen == row.antigen && s.vaccine_name == vaccine_name
        }) {
            return Err(CatalogError::Line {
                file: SERIES_FILE,
                line,
                reason: format!("{} {:?} is listed twice", row.atc_code, vaccine_name),
            });
        }
        series.push(Series {
            atc_code: row.atc_code,
            vaccine_name,
            antigen: row.antigen,
            doses,
        });
    }
    Ok(series)
}

fn parse_indicators(text: &str) -> Result<Vec<Indicator>, CatalogError> {
    #[derive(Deserialize)]
    struct Row {
        name: String,
        kind: String,
        antigen: String,
        dose: String,
        age_months: String,
        schedule_age_months: String,
        min_age_years: String,
        sex: String,
        definition_version: String,
        title: String,
    }
    const FILE: &str = INDICATORS_FILE;
    let mut indicators: Vec<Indicator> = Vec::new();
    for (line, row) in rows::<Row>(FILE, text)? {
        let bad = |what: &str| CatalogError::Line {
            file: FILE,
            line,
            reason: what.to_string(),
        };
        let number = |field: &str, what: &str| whole_number(FILE, line, what, field);
        let kind = match row.kind.as_str() {
            "birth_cohort" => Kind::BirthCohort,
            "season" => Kind::Season,
            "age_band" => Kind::AgeBand,
            other => {
                return Err(bad(&format!(
                    "kind {other:?} is not birth_cohort, season or age_band"
                )))
            }
        };
        let dose = match row.dose.as_str() {
            "series" => DoseRule::Series,
            "schedule" => DoseRule::Schedule,
            text => match number(text, "dose")? {
                Some(n) if n >= 1 => DoseRule::Nth(n),
                _ => return Err(bad("dose must be 1, 2, ..., `series` or `schedule`")),
            },
        };
        let indicator = Indicator {
            kind,
            dose,
            age_months: number(&row.age_months, "age_months")?,
            schedule_age_months: number(&row.schedule_age_months, "schedule_age_months")?,
            min_age_years: number(&row.min_age_years, "min_age_years")?.map(|age| age as i32),
            sex: (!row.sex.is_empty()).then(|| row.sex.clone()),
            definition_version: number(&row.definition_version, "definition_version")?
                .ok_or_else(|| bad("definition_version is required"))?,
            name: row.name,
            antigen: row.antigen,
            title: row.title,
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
            Kind::Season | Kind::AgeBand
                if matches!(dose, DoseRule::Series | DoseRule::Schedule) =>
            {
                return Err(bad(
                    "`series` and `schedule` doses are for birth_cohort indicators",
                ))
            }
            _ => {}
        }
        indicators.push(indicator);
    }
    Ok(indicators)
}

fn parse_dose_rules(text: &str) -> Result<Vec<ValidityRule>, CatalogError> {
    #[derive(Deserialize)]
    struct Row {
        antigen: String,
        dose: String,
        min_age_months: String,
        max_age_months: String,
        min_interval_months: String,
        min_interval_days: String,
        source: String,
    }
    const FILE: &str = DOSE_RULES_FILE;
    let mut rules: Vec<ValidityRule> = Vec::new();
    for (line, row) in rows::<Row>(FILE, text)? {
        let bad = |reason: String| CatalogError::Line {
            file: FILE,
            line,
            reason,
        };
        let number = |field: &str, what: &str| whole_number(FILE, line, what, field);
        let dose = number(&row.dose, "dose")?
            .filter(|&dose| dose >= 1)
            .ok_or_else(|| bad("dose must be 1, 2, ...".into()))?;
        if row.antigen.is_empty() || row.source.is_empty() {
            return Err(bad("antigen and source are required".into()));
        }
        let rule = ValidityRule {
            min_age_months: number(&row.min_age_months, "min_age_months")?,
            max_age_months: number(&row.max_age_months, "max_age_months")?,
            min_interval_months: number(&row.min_interval_months, "min_interval_months")?,
            min_interval_days: number(&row.min_interval_days, "min_interval_days")?,
            antigen: row.antigen,
            dose,
            source: row.source,
        };
        if let (Some(low), Some(high)) = (rule.min_age_months, rule.max_age_months) {
            if low > high {
                return Err(bad(format!(
                    "min_age_months {low} is above max_age_months {high}"
                )));
            }
        }
        // Lines of an antigen in increasing dose order, each once: the last one covers the
        // later doses, so a gap or a repeat would be a silent mistake.
        if let Some(previous) = rules.iter().rev().find(|r| r.antigen == rule.antigen) {
            if rule.dose != previous.dose + 1 {
                return Err(bad(format!(
                    "{} dose {} follows dose {}: lines of an antigen go 1, 2, 3, ...",
                    rule.antigen, rule.dose, previous.dose
                )));
            }
            if rules
                .last()
                .is_some_and(|last| last.antigen != rule.antigen)
            {
                return Err(bad(format!(
                    "the lines of {} are not together",
                    rule.antigen
                )));
            }
        } else if rule.dose != 1 {
            return Err(bad(format!(
                "{} starts at dose {}, not 1",
                rule.antigen, rule.dose
            )));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn parse_schedules(text: &str) -> Result<Vec<Schedule>, CatalogError> {
    #[derive(Deserialize)]
    struct Row {
        antigen: String,
        schedule: String,
        start_before_months: String,
        doses: String,
        first_to_last_months: String,
        source: String,
    }
    const FILE: &str = SCHEDULES_FILE;
    let mut schedules: Vec<Schedule> = Vec::new();
    for (line, row) in rows::<Row>(FILE, text)? {
        let bad = |reason: &str| CatalogError::Line {
            file: FILE,
            line,
            reason: reason.to_string(),
        };
        let number = |field: &str, what: &str| whole_number(FILE, line, what, field);
        if row.antigen.is_empty() || row.schedule.is_empty() || row.source.is_empty() {
            return Err(bad("antigen, schedule and source are required"));
        }
        let schedule = Schedule {
            start_before_months: number(&row.start_before_months, "start_before_months")?,
            doses: number(&row.doses, "doses")?
                .filter(|&doses| doses >= 1)
                .ok_or_else(|| bad("doses must be 1, 2, ..."))?,
            first_to_last_months: number(&row.first_to_last_months, "first_to_last_months")?,
            antigen: row.antigen,
            name: row.schedule,
            source: row.source,
        };
        if schedules
            .iter()
            .any(|s| s.antigen == schedule.antigen && s.start_before_months.is_none())
        {
            return Err(bad(
                "an earlier line of this antigen applies at every age, so this one never would",
            ));
        }
        schedules.push(schedule);
    }
    Ok(schedules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_files_parse() {
        let reference = builtin().unwrap();
        assert_eq!(reference.vaccine("J07CA09").unwrap().antigens.len(), 6);
        assert_eq!(
            reference.vaccine(" j07bd52 ").unwrap().antigens,
            ["measles", "mumps", "rubella"]
        );
        assert!(reference.vaccine("J07ZZ99").is_none());
        assert!(reference.communes.len() >= 100);
        assert_eq!(reference.indicators.len(), 15);
        assert_eq!(
            reference.series_lengths()[&("J07BH02".to_string(), None)],
            ("rotavirus".into(), 3)
        );
        // Rotavirus by product: Rotarix 2 doses, RotaTeq 3, an unrecorded product 3 (ACIP:
        // when any dose's product is unknown, give three).
        assert_eq!(
            reference.series_doses("J07BH01", Some("Rotarix"), "rotavirus"),
            Some(2)
        );
        assert_eq!(
            reference.series_doses("J07BH01", Some("ROTARIX"), "rotavirus"),
            Some(2)
        );
        assert_eq!(
            reference.series_doses("J07BH01", None, "rotavirus"),
            Some(3)
        );
        assert_eq!(
            reference.series_doses("J07BH01", Some("Rotavac"), "rotavirus"),
            Some(3)
        );
        assert_eq!(
            reference.series_doses("J07BH02", Some("RotaTeq"), "rotavirus"),
            Some(3)
        );
        assert_eq!(
            reference.series_doses(
                "J07BH01",
                Some("Rotavirus, live attenuated (monovalent)"),
                "rotavirus"
            ),
            Some(3)
        );
        assert_eq!(reference.series_doses("J07CA09", None, "rotavirus"), None);
        assert_eq!(
            reference.product("j07bh01", "ROTARIX liquid oral"),
            Some("Rotarix")
        );
        assert_eq!(reference.product("J07BH02", "Rotarix"), None);
        let rules = &reference.dose_rules;
        assert!(rules.iter().all(|rule| !rule.source.is_empty()));
        assert!(rules
            .iter()
            .any(|r| r.antigen == "measles" && r.dose == 1 && r.min_age_months == Some(9)));
        assert_eq!(reference.schedules.len(), 2);
    }

    /// Every indicator line, rendered back, is the line as written: what the query engine
    /// shows analysts as the `indicators` table.
    #[test]
    fn indicators_render_as_written() {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(INDICATORS_CSV.as_bytes());
        assert_eq!(reader.headers().unwrap(), &INDICATOR_COLUMNS[..]);
        let written: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        let rendered: Vec<Vec<String>> = builtin()
            .unwrap()
            .indicators
            .iter()
            .map(|i| i.fields().to_vec())
            .collect();
        assert_eq!(rendered, written);
    }

    /// vaccines.csv against the WHO ATC index (J07, 2025), written out by hand: a code
    /// that moves, a wrong antigen, or a line added without adding it here fails.
    #[test]
    fn the_vaccine_file_matches_the_atc_index() {
        const D: &str = "diphtheria";
        const T: &str = "tetanus";
        const P: &str = "pertussis";
        const IPV: &str = "polio";
        const HIB: &str = "hib";
        const HEPB: &str = "hepatitis_b";
        let expected: &[(&str, &[&str])] = &[
            ("J07AF01", &[D]),
            ("J07AG01", &[HIB]),
            ("J07AG52", &[HIB, D, T, P]),
            ("J07AG53", &[HIB, "meningococcal_c"]),
            ("J07AH04", &["meningococcal_acwy"]),
            ("J07AH07", &["meningococcal_c"]),
            ("J07AH08", &["meningococcal_acwy"]),
            // Bexsero and Trumenba both: meningococcus B, multicomponent.
            ("J07AH09", &["meningococcal_b"]),
            // Meningococcus A, conjugate (MenAfriVac): not meningococcal B.
            ("J07AH10", &["meningococcal_a"]),
            ("J07AJ51", &[D, T, P]),
            ("J07AJ52", &[D, T, P]),
            // Polysaccharide: not the conjugate antigen PCV3 counts.
            ("J07AL01", &["pneumococcal_polysaccharide"]),
            ("J07AL02", &["pneumococcal"]),
            ("J07AL52", &["pneumococcal"]),
            ("J07AM01", &[T]),
            ("J07AM51", &[T, D]),
            ("J07BB01", &["influenza"]),
            ("J07BB02", &["influenza"]),
            ("J07BB03", &["influenza"]),
            ("J07BC01", &[HEPB]),
            ("J07BC02", &["hepatitis_a"]),
            ("J07BC20", &["hepatitis_a", HEPB]),
            ("J07BD01", &["measles"]),
            ("J07BD52", &["measles", "mumps", "rubella"]),
            ("J07BD53", &["measles", "rubella"]),
            ("J07BD54", &["measles", "mumps", "rubella", "varicella"]),
            ("J07BF01", &[IPV]),
            ("J07BF02", &[IPV]),
            ("J07BF03", &[IPV]),
            ("J07BF04", &[IPV]),
            ("J07BH01", &["rotavirus"]),
            ("J07BH02", &["rotavirus"]),
            ("J07BK01", &["varicella"]),
            ("J07BK02", &["zoster"]),
            ("J07BK03", &["zoster"]),
            ("J07BM01", &["hpv"]),
            ("J07BM02", &["hpv"]),
            ("J07BM03", &["hpv"]),
            ("J07BN01", &["covid19"]),
            ("J07BN02", &["covid19"]),
            ("J07BN03", &["covid19"]),
            ("J07BN04", &["covid19"]),
            ("J07BX03", &["covid19"]),
            ("J07BX05", &["rsv"]),
            ("J07CA01", &[D, T, IPV]),
            ("J07CA02", &[D, T, P, IPV]),
            ("J07CA05", &[D, T, P, HEPB]),
            ("J07CA06", &[D, T, P, IPV, HIB]),
            ("J07CA09", &[D, T, P, IPV, HIB, HEPB]),
            ("J07CA11", &[D, T, P, HIB, HEPB]),
            ("J07CA12", &[D, T, P, IPV, HEPB]),
        ];
        let mut written: Vec<(String, Vec<String>)> = builtin()
            .unwrap()
            .vaccines
            .iter()
            .map(|v| {
                let mut antigens = v.antigens.clone();
                antigens.sort();
                (v.atc_code.clone(), antigens)
            })
            .collect();
        written.sort();
        let expected: Vec<(String, Vec<String>)> = expected
            .iter()
            .map(|(code, antigens)| {
                let mut antigens: Vec<String> = antigens.iter().map(|a| a.to_string()).collect();
                antigens.sort();
                (code.to_string(), antigens)
            })
            .collect();
        assert_eq!(written, expected);
    }

    #[test]
    fn a_malformed_line_names_file_and_line() {
        let cases = [
            (
                parse_vaccines("atc_code,vaccine_name,antigens\nJ07X,\"x\",a\nJ07Y,\"y\"\n").err(),
                "sql/reference/vaccines.csv:3: expected 3 fields, found 2",
            ),
            (
                parse_communes("commune,canton,population\nA,B,12\nC,D,many\n").err(),
                "sql/reference/communes.csv:3: population \"many\" is not a whole number",
            ),
            (
                parse_series("atc_code,vaccine_name,antigen,series_doses\nJ07BH01,,rotavirus,\n")
                    .err(),
                "sql/reference/vaccine_series.csv:2: series_doses is required",
            ),
            (
                parse_dose_rules(
                    "antigen,dose,min_age_months,max_age_months,min_interval_months,min_interval_days,source\n\
                     measles,1,9,,,,WHO\nmeasles,3,,,,28,WHO\n",
                )
                .err(),
                "sql/reference/dose_rules.csv:3: measles dose 3 follows dose 1: lines of an antigen go 1, 2, 3, ...",
            ),
            (
                parse_dose_rules(
                    "antigen,dose,min_age_months,max_age_months,min_interval_months,min_interval_days,source\n\
                     rotavirus,1,4,3,,,ACIP\n",
                )
                .err(),
                "sql/reference/dose_rules.csv:2: min_age_months 4 is above max_age_months 3",
            ),
            (
                parse_dose_rules(
                    "antigen,dose,min_age_months,max_age_months,min_interval_months,min_interval_days,source\n\
                     hpv,1,nine,,,,WHO\n",
                )
                .err(),
                "sql/reference/dose_rules.csv:2: min_age_months \"nine\" is not a whole number",
            ),
            (
                parse_schedules(
                    "antigen,schedule,start_before_months,doses,first_to_last_months,source\n\
                     hpv,three-dose,,3,5,ACIP\nhpv,two-dose,180,2,5,WHO\n",
                )
                .err(),
                "sql/reference/schedules.csv:3: an earlier line of this antigen applies at every age, so this one never would",
            ),
        ];
        for (error, wanted) in cases {
            assert_eq!(error.unwrap().to_string(), wanted);
        }
        let header = INDICATOR_COLUMNS.join(",");
        let error = parse_indicators(&format!("{header}\nX,birth_cohort,measles,1,,,,,1,t\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("indicators.csv:2") && error.contains("age_months"),
            "{error}"
        );
    }
}
