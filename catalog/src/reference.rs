//! The reference data of `sql/reference/` (compiled in, so a deployed binary cannot drift
//! from the files people read and edit), parsed once: vaccines → antigens, communes →
//! cantons, the indicator catalogue and the vaccine series. Every error names file and line.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::CatalogError;

pub const VACCINES_FILE: &str = "sql/reference/vaccines.csv";
pub const COMMUNES_FILE: &str = "sql/reference/communes.csv";
pub const INDICATORS_FILE: &str = "sql/reference/indicators.csv";
pub const SERIES_FILE: &str = "sql/reference/vaccine_series.csv";

/// The files' text as compiled into this binary.
pub const VACCINES_CSV: &str = include_str!("../../sql/reference/vaccines.csv");
pub const COMMUNES_CSV: &str = include_str!("../../sql/reference/communes.csv");
pub const INDICATORS_CSV: &str = include_str!("../../sql/reference/indicators.csv");
pub const SERIES_CSV: &str = include_str!("../../sql/reference/vaccine_series.csv");

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

/// How many doses complete a product's series (`DoseRule::Series`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub atc_code: String,
    pub antigen: String,
    pub doses: u32,
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
    vaccine_index: HashMap<String, usize>,
}

static BUILTIN: LazyLock<Result<Reference, CatalogError>> =
    LazyLock::new(|| Reference::parse(VACCINES_CSV, COMMUNES_CSV, INDICATORS_CSV, SERIES_CSV));

/// The reference data compiled into this binary, parsed on first use. An error here means
/// a file of `sql/reference/` was edited wrongly; the message names file and line.
pub fn builtin() -> Result<&'static Reference, CatalogError> {
    BUILTIN.as_ref().map_err(Clone::clone)
}

impl Reference {
    /// Parses the four files' text (see the `*_FILE` constants for which is which).
    pub fn parse(
        vaccines: &str,
        communes: &str,
        indicators: &str,
        series: &str,
    ) -> Result<Reference, CatalogError> {
        let vaccines = parse_vaccines(vaccines)?;
        let vaccine_index = vaccines
            .iter()
            .enumerate()
            .map(|(index, v)| (v.atc_code.clone(), index))
            .collect();
        Ok(Reference {
            vaccines,
            communes: parse_communes(communes)?,
            indicators: parse_indicators(indicators)?,
            series: parse_series(series)?,
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

    /// ATC code → (antigen, doses in its series).
    pub fn series_lengths(&self) -> BTreeMap<String, (String, u32)> {
        self.series
            .iter()
            .map(|s| (s.atc_code.clone(), (s.antigen.clone(), s.doses)))
            .collect()
    }
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
        antigen: String,
        series_doses: String,
    }
    let mut series = Vec::new();
    for (line, row) in rows::<Row>(SERIES_FILE, text)? {
        let doses = whole_number(SERIES_FILE, line, "series_doses", &row.series_doses)?
            .ok_or_else(|| CatalogError::Line {
                file: SERIES_FILE,
                line,
                reason: "series_doses is required".into(),
            })?;
        series.push(Series {
            atc_code: row.atc_code,
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
            text => match number(text, "dose")? {
                Some(n) if n >= 1 => DoseRule::Nth(n),
                _ => return Err(bad("dose must be 1, 2, ... or `series`")),
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
            Kind::Season | Kind::AgeBand if dose == DoseRule::Series => {
                return Err(bad("`series` doses are for birth_cohort indicators"))
            }
            _ => {}
        }
        indicators.push(indicator);
    }
    Ok(indicators)
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
            reference.series_lengths()["J07BH02"],
            ("rotavirus".into(), 3)
        );
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
                parse_series("atc_code,antigen,series_doses\nJ07BH01,rotavirus,\n").err(),
                "sql/reference/vaccine_series.csv:2: series_doses is required",
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
