//! Vaccine effectiveness from linked case notifications: the cohort method (person-time and
//! cases by vaccination status per age band, rate ratios, Mantel–Haenszel over the bands),
//! the screening method beside it, and rates per 100,000 person-years by status, month and
//! age band. Definitions: docs/effectiveness.md; interface: CONTRACTS.md `/api/effectiveness`.
//!
//! Cases and vaccinations link only through the pseudonymous person key: no identity is read.
//! Per request, one grouped query reads the persons vaccinated with the antigen (their dose
//! dates as a list), a second the cases in the period with their person key; cases are
//! classified against the first, and the person-time arithmetic is done here. Answers are cached per table version.

mod estimate;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Date32Array, RecordBatch};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use estimate::{mantel_haenszel, rate_ratio, screening, Estimate, Stratum};

use crate::coverage::facts::{as_ints, as_strings, items, list, quote};
use crate::coverage::{
    age_band, choose_reference_year, round4, Catalogue, Kind, Suppression, AGE_BANDS,
};
use crate::dates::{civil_from_days, days_from_civil, format_iso, parse_iso};
use crate::{QueryError, Warehouse};

/// Days in a year, for person-years.
const DAYS_PER_YEAR: f64 = 365.25;
const MAX_CACHED_ANSWERS: usize = 5_000;

/// Which cases count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
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
            other => Err(format!(
                "outcome must be any, hospitalised or died, not {other:?}"
            )),
        }
    }
}

/// `/api/effectiveness` parameters (CONTRACTS.md), plus `outcome`.
#[derive(Debug, Clone, Deserialize)]
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
}

/// A request checked and turned into day numbers.
#[derive(Debug, Clone)]
struct Study {
    antigen: String,
    disease: String,
    from: i32,
    to: i32,
    lag_days: i32,
    dose: usize,
    by_band: bool,
    doses_since: Option<i32>,
    outcome: Outcome,
}

impl Study {
    /// Age in years reached in the year the period starts: the rule that places population
    /// rows (which know only a birth year), vaccinated persons and cases alike.
    fn band_of(&self, birth_year: i32) -> Option<usize> {
        let age = civil_from_days(self.from).0 - birth_year;
        let label = age_band(age)?;
        AGE_BANDS.iter().position(|(band, _, _)| *band == label)
    }

    fn describe(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("method".into(), json!("cohort"));
        map.insert("antigen".into(), json!(self.antigen));
        map.insert("disease".into(), json!(self.disease));
        map.insert("from".into(), json!(format_iso(self.from)));
        map.insert("to".into(), json!(format_iso(self.to)));
        map.insert("lag_days".into(), json!(self.lag_days));
        map.insert("dose".into(), json!(self.dose));
        map.insert(
            "doses_since".into(),
            json!(self.doses_since.map(format_iso)),
        );
        map.insert("outcome".into(), json!(self.outcome));
        map
    }
}

/// What a study reads from the warehouse.
struct StudyData {
    /// (birth year, first day counted as vaccinated) → persons.
    vaccinated: BTreeMap<(i32, i32), u64>,
    /// Cases in the period: (birth year, onset day, vaccinated at onset) → cases.
    cases: BTreeMap<(i32, i32, bool), u64>,
    /// Birth year → residents, of the reference year used.
    population: BTreeMap<i32, u64>,
    reference_year: Option<i32>,
}

/// The effectiveness engine over one warehouse.
pub struct EffectivenessEngine {
    warehouse: Warehouse,
    rule: Suppression,
    seasonal_antigens: Vec<String>,
    cache: tokio::sync::Mutex<AnswerCache>,
}

/// Answers of one set of table versions, by request.
#[derive(Default)]
struct AnswerCache {
    versions: BTreeMap<String, i64>,
    answers: HashMap<String, Arc<Value>>,
}

impl EffectivenessEngine {
    pub fn new(warehouse: Warehouse, rule: Suppression) -> Result<EffectivenessEngine, QueryError> {
        // Antigens with a seasonal indicator are the seasonal ones (influenza).
        let seasonal_antigens = Catalogue::builtin()?
            .indicators
            .iter()
            .filter(|indicator| indicator.kind == Kind::Season)
            .map(|indicator| indicator.antigen.clone())
            .collect();
        Ok(EffectivenessEngine {
            warehouse,
            rule,
            seasonal_antigens,
            cache: tokio::sync::Mutex::new(AnswerCache::default()),
        })
    }

    /// VE by the cohort method (`GET /api/effectiveness`).
    pub async fn effectiveness(
        &self,
        query: &EffectivenessQuery,
    ) -> Result<Arc<Value>, QueryError> {
        let study = self.study(query)?;
        let key = format!("ve|{study:?}");
        self.cached(key, &study, |data, versions| {
            effectiveness_answer(&study, data, versions, self.rule)
        })
        .await
    }

    /// Cases per 100,000 person-years by vaccination status, month and age band.
    pub async fn rates(&self, query: &EffectivenessQuery) -> Result<Arc<Value>, QueryError> {
        let study = self.study(query)?;
        let key = format!("rates|{study:?}");
        self.cached(key, &study, |data, versions| {
            rates_answer(&study, data, versions, self.rule)
        })
        .await
    }

    fn study(&self, query: &EffectivenessQuery) -> Result<Study, QueryError> {
        let invalid = |what: String| QueryError::Invalid(what);
        let date = |name: &str, text: &str| {
            parse_iso(text)
                .ok_or_else(|| invalid(format!("{name} must be a date YYYY-MM-DD, not {text:?}")))
        };
        let antigen = query.antigen.trim().to_ascii_lowercase();
        if antigen.is_empty()
            || !antigen
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid(format!(
                "antigen {:?} is not an antigen name",
                query.antigen
            )));
        }
        let disease = query.disease.trim().to_ascii_uppercase();
        let well_formed = (1..=8).contains(&disease.len())
            && disease.starts_with(|c: char| c.is_ascii_uppercase())
            && disease
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !well_formed {
            return Err(invalid(format!(
                "disease must be an ICD-10 code or prefix such as J10 or U07.1, not {:?}",
                query.disease
            )));
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
        let by_band = match query.by.as_deref() {
            None => false,
            Some("age_band") => true,
            Some(other) => return Err(invalid(format!("by must be age_band, not {other:?}"))),
        };
        let doses_since = match &query.doses_since {
            Some(text) => Some(date("doses_since", text)?),
            None if self.seasonal_antigens.contains(&antigen) => {
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
        })
    }

    async fn cached(
        &self,
        key: String,
        study: &Study,
        compute: impl FnOnce(&StudyData, &BTreeMap<String, i64>) -> Result<Value, QueryError>,
    ) -> Result<Arc<Value>, QueryError> {
        self.warehouse.refresh_if_due().await;
        let snapshot = self.warehouse.snapshot();
        let mut cache = self.cache.lock().await;
        if cache.versions != snapshot.versions {
            cache.versions = snapshot.versions.clone();
            cache.answers.clear();
        }
        if let Some(answer) = cache.answers.get(&key) {
            return Ok(answer.clone());
        }
        let started = std::time::Instant::now();
        let data = read_study(&snapshot.ctx, study).await?;
        let answer = Arc::new(compute(&data, &snapshot.versions)?);
        tracing::info!(
            antigen = %study.antigen,
            disease = %study.disease,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "effectiveness computed"
        );
        if cache.answers.len() >= MAX_CACHED_ANSWERS {
            cache.answers.clear();
        }
        cache.answers.insert(key, answer.clone());
        Ok(answer)
    }
}

/// The n-th distinct dose day of a list of dose dates, plus the lag: the first day counted
/// as vaccinated.
fn protected_from(dates: &Date32Array, start: usize, end: usize, study: &Study) -> Option<i32> {
    let mut days: Vec<i32> = (start..end).map(|index| dates.value(index)).collect();
    days.sort_unstable();
    days.dedup();
    days.get(study.dose - 1).map(|day| day + study.lag_days)
}

async fn read_study(
    ctx: &datafusion::prelude::SessionContext,
    study: &Study,
) -> Result<StudyData, QueryError> {
    for table in ["vaccinations", "cases", "population"] {
        if !ctx.table_exist(table)? {
            return Err(QueryError::Unavailable(format!(
                "effectiveness needs the {table} table, which this warehouse does not have yet"
            )));
        }
    }
    let since = study
        .doses_since
        .map(|day| format!("AND v.administered_on >= DATE {}", quote(&format_iso(day))))
        .unwrap_or_default();
    let doses = format!(
        "SELECT v.person_key,
                CAST(date_part('year', max(v.birth_month)) AS BIGINT) AS birth_year,
                array_agg(v.administered_on) AS dates
         FROM vaccinations AS v JOIN vaccine_antigens AS a ON a.atc_code = v.vaccine_atc
         WHERE a.antigen = {antigen} AND v.status = 'completed'
           AND v.administered_on <= DATE {to} {since}
         GROUP BY v.person_key",
        antigen = quote(&study.antigen),
        to = quote(&format_iso(study.to)),
    );

    let mut data = StudyData {
        vaccinated: BTreeMap::new(),
        cases: BTreeMap::new(),
        population: BTreeMap::new(),
        reference_year: None,
    };
    let batches = ctx.sql(&doses).await?.collect().await?;
    // The day each vaccinated person is protected from, for classifying their cases: the
    // dose lists are read once, not again for the cases.
    let mut protected: HashMap<String, i32> = HashMap::new();
    for batch in &batches {
        let person_keys = as_strings(batch.column(0))?;
        let birth_years = as_ints(batch.column(1))?;
        let dates = list(batch.column(2))?;
        let values = items::<Date32Array>(&dates)?;
        let offsets = dates.value_offsets();
        for row in 0..batch.num_rows() {
            let range = (offsets[row] as usize, offsets[row + 1] as usize);
            if let Some(first) = protected_from(values, range.0, range.1, study) {
                if first <= study.to {
                    *data
                        .vaccinated
                        .entry((birth_years.value(row) as i32, first.max(study.from)))
                        .or_default() += 1;
                    protected.insert(person_keys.value(row).to_string(), first);
                }
            }
        }
    }

    let outcome = match study.outcome {
        Outcome::Any => "",
        Outcome::Hospitalised => "AND c.hospitalised",
        Outcome::Died => "AND c.died",
    };
    let cases_sql = format!(
        "SELECT CAST(date_part('year', c.birth_month) AS BIGINT) AS birth_year, c.onset_date, c.person_key
         FROM cases AS c
         WHERE (c.disease = {disease} OR c.disease LIKE {prefix})
           AND c.onset_date BETWEEN DATE {from} AND DATE {to} {outcome}",
        disease = quote(&study.disease),
        prefix = quote(&format!("{}%", study.disease)),
        from = quote(&format_iso(study.from)),
        to = quote(&format_iso(study.to)),
    );
    let batches: Vec<RecordBatch> = ctx.sql(&cases_sql).await?.collect().await?;
    for batch in &batches {
        let birth_years = as_ints(batch.column(0))?;
        let onsets = as_ints(&arrow::compute::cast(
            batch.column(1),
            &arrow::datatypes::DataType::Int32,
        )?)?;
        let person_keys = as_strings(batch.column(2))?;
        for row in 0..batch.num_rows() {
            let onset = onsets.value(row) as i32;
            let vaccinated = protected
                .get(person_keys.value(row))
                .is_some_and(|&first| first <= onset);
            *data
                .cases
                .entry((birth_years.value(row) as i32, onset, vaccinated))
                .or_default() += 1;
        }
    }

    // Residents on 1 January of the year in the middle of the period (or the nearest year
    // before it, or else the earliest there is).
    let middle_year = civil_from_days(study.from + (study.to - study.from) / 2).0;
    let batches = ctx
        .sql("SELECT CAST(reference_year AS BIGINT), CAST(birth_year AS BIGINT), CAST(sum(count) AS BIGINT) FROM population GROUP BY 1, 2")
        .await?
        .collect()
        .await?;
    let mut rows: Vec<(i32, i32, u64)> = Vec::new();
    for batch in &batches {
        let (years, births, counts) = (
            as_ints(batch.column(0))?,
            as_ints(batch.column(1))?,
            as_ints(batch.column(2))?,
        );
        for row in 0..batch.num_rows() {
            rows.push((
                years.value(row) as i32,
                births.value(row) as i32,
                counts.value(row).max(0) as u64,
            ));
        }
    }
    data.reference_year = choose_reference_year(rows.iter().map(|row| row.0), middle_year);
    for (year, birth_year, count) in rows {
        if Some(year) == data.reference_year {
            *data.population.entry(birth_year).or_default() += count;
        }
    }
    Ok(data)
}

/// Cases and person-time per age band over `[first, last]` (a sub-period of the study).
fn strata(study: &Study, data: &StudyData, first: i32, last: i32) -> Vec<Stratum> {
    let days = f64::from(last - first + 1);
    let mut strata = vec![Stratum::default(); AGE_BANDS.len()];
    let mut population = vec![0.0; AGE_BANDS.len()];
    for (&birth_year, &persons) in &data.population {
        if let Some(band) = study.band_of(birth_year) {
            population[band] += persons as f64 * days;
        }
    }
    for (&(birth_year, protected), &persons) in &data.vaccinated {
        if let Some(band) = study.band_of(birth_year) {
            let start = protected.max(first);
            if start <= last {
                strata[band].t1 += persons as f64 * f64::from(last - start + 1);
            }
        }
    }
    for (&(birth_year, onset, vaccinated), &cases) in &data.cases {
        if onset < first || onset > last {
            continue;
        }
        if let Some(band) = study.band_of(birth_year) {
            if vaccinated {
                strata[band].a += cases;
            } else {
                strata[band].b += cases;
            }
        }
    }
    for (stratum, population) in strata.iter_mut().zip(population) {
        stratum.t0 = population - stratum.t1;
    }
    strata
}

/// Whether a stratum's case counts must be withheld (CONTRACTS.md rule on counts).
fn withheld(rule: Suppression, stratum: &Stratum) -> bool {
    let small = |count: u64| count >= 1 && count < rule.threshold;
    small(stratum.a) || small(stratum.b)
}

/// One estimate object: VE with its interval (or the reason there is none), the counts
/// behind it, and the screening-method cross-check.
fn estimate_fields(
    stratum: &Stratum,
    estimate: Result<Estimate, &str>,
    rule: Suppression,
) -> Map<String, Value> {
    let hide = withheld(rule, stratum);
    let mut map = Map::new();
    let (ve, low, high, irr, reason) = match (&estimate, hide) {
        (_, true) => (
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            json!(format!(
                "fewer than {} cases in a group: withheld",
                rule.threshold
            )),
        ),
        (Ok(estimate), false) => {
            let (low, high) = estimate.ve_interval();
            (
                json!(round4(estimate.ve())),
                json!(round4(low)),
                json!(round4(high)),
                json!(round4(estimate.irr)),
                Value::Null,
            )
        }
        (Err(reason), false) => (
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            json!(reason),
        ),
    };
    map.insert("ve".into(), ve);
    map.insert("ci_low".into(), low);
    map.insert("ci_high".into(), high);
    map.insert("irr".into(), irr);
    let count = |value: u64| if hide { Value::Null } else { json!(value) };
    map.insert("cases_vaccinated".into(), count(stratum.a));
    map.insert("cases_unvaccinated".into(), count(stratum.b));
    map.insert(
        "person_days_vaccinated".into(),
        json!(stratum.t1.round() as i64),
    );
    map.insert(
        "person_days_unvaccinated".into(),
        json!(stratum.t0.round() as i64),
    );
    map.insert("suppressed".into(), json!(hide));
    map.insert("reason".into(), reason);
    map
}

/// Farrington's cross-check on one stratum: PCV from the cases, PPV as the vaccinated share
/// of the person-time (the period's average coverage).
fn screening_fields(stratum: &Stratum, rule: Suppression) -> Value {
    if withheld(rule, stratum) {
        return json!({"ve": null, "pcv": null, "ppv": null, "reason": "withheld with the counts"});
    }
    let cases = stratum.a + stratum.b;
    let time = stratum.t1 + stratum.t0;
    if cases == 0 || time <= 0.0 || stratum.t0 < 0.0 {
        return json!({"ve": null, "pcv": null, "ppv": null, "reason": "no cases or no person-time"});
    }
    let pcv = stratum.a as f64 / cases as f64;
    let ppv = stratum.t1 / time;
    match screening(pcv, ppv) {
        Ok(ve) => json!({"ve": round4(ve), "pcv": round4(pcv), "ppv": round4(ppv), "reason": null}),
        Err(reason) => {
            json!({"ve": null, "pcv": round4(pcv), "ppv": round4(ppv), "reason": reason})
        }
    }
}

fn effectiveness_answer(
    study: &Study,
    data: &StudyData,
    versions: &BTreeMap<String, i64>,
    rule: Suppression,
) -> Result<Value, QueryError> {
    let strata = strata(study, data, study.from, study.to);
    let pooled = strata
        .iter()
        .fold(Stratum::default(), |sum, s| sum.plus(*s));
    // A band with more vaccinated person-time than residents poisons the pooled sums too.
    let overdrawn = strata.iter().find(|stratum| stratum.t0 < 0.0);
    let mut answer = study.describe();
    let mut overall = estimate_fields(&pooled, mantel_haenszel(&strata), rule);
    overall.insert("estimator".into(), json!("mantel_haenszel"));
    let pooled_screening = match overdrawn {
        Some(_) => json!({"ve": null, "pcv": null, "ppv": null,
                          "reason": "a band has more vaccinated person-time than the population holds"}),
        None => screening_fields(&pooled, rule),
    };
    overall.insert("screening".into(), pooled_screening);
    let crude_estimate = match overdrawn {
        Some(stratum) => Err(rate_ratio(stratum).err().unwrap_or_default()),
        None => rate_ratio(&pooled),
    };
    let mut crude = estimate_fields(&pooled, crude_estimate, rule);
    crude.insert("estimator".into(), json!("crude"));
    answer.insert("overall".into(), Value::Object(overall));
    answer.insert("crude".into(), Value::Object(crude));
    let rows: Vec<Value> = if study.by_band {
        strata
            .iter()
            .zip(AGE_BANDS)
            .map(|(stratum, (label, _, _))| {
                let mut row = Map::new();
                row.insert("age_band".into(), json!(label));
                row.extend(estimate_fields(stratum, rate_ratio(stratum), rule));
                row.insert("screening".into(), screening_fields(stratum, rule));
                Value::Object(row)
            })
            .collect()
    } else {
        Vec::new()
    };
    answer.insert("rows".into(), Value::Array(rows));
    answer.insert(
        "population_source".into(),
        json!(data
            .reference_year
            .map(|year| format!("population, reference_year {year}"))),
    );
    answer.insert("table_versions".into(), json!(versions));
    answer.insert("suppression_threshold".into(), json!(rule.threshold));
    Ok(Value::Object(answer))
}

/// The calendar months of the period, clipped to it: (label, first day, last day).
fn months(study: &Study) -> Vec<(String, i32, i32)> {
    let mut out = Vec::new();
    let (mut year, mut month, _) = civil_from_days(study.from);
    loop {
        let start = days_from_civil(year, month, 1);
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let end = days_from_civil(next_year, next_month, 1) - 1;
        if start > study.to {
            break;
        }
        out.push((
            format!("{year:04}-{month:02}"),
            start.max(study.from),
            end.min(study.to),
        ));
        (year, month) = (next_year, next_month);
    }
    out
}

fn rates_answer(
    study: &Study,
    data: &StudyData,
    versions: &BTreeMap<String, i64>,
    rule: Suppression,
) -> Result<Value, QueryError> {
    let per_100k = |cases: u64, days: f64| {
        (days > 0.0).then(|| round4(cases as f64 / (days / DAYS_PER_YEAR) * 100_000.0))
    };
    let mut rows = Vec::new();
    for (label, first, last) in months(study) {
        for (stratum, (band, _, _)) in strata(study, data, first, last).iter().zip(AGE_BANDS) {
            let hide = withheld(rule, stratum);
            let shown = |value: Option<f64>| if hide { Value::Null } else { json!(value) };
            let count = |value: u64| if hide { Value::Null } else { json!(value) };
            rows.push(json!({
                "month": label,
                "age_band": band,
                "cases_vaccinated": count(stratum.a),
                "person_years_vaccinated": round4(stratum.t1 / DAYS_PER_YEAR),
                "rate_vaccinated": shown(per_100k(stratum.a, stratum.t1)),
                "cases_unvaccinated": count(stratum.b),
                "person_years_unvaccinated": round4(stratum.t0 / DAYS_PER_YEAR),
                "rate_unvaccinated": shown(per_100k(stratum.b, stratum.t0)),
                "suppressed": hide,
            }));
        }
    }
    let mut answer = study.describe();
    answer.insert("method".into(), json!("rates"));
    answer.insert("rate_unit".into(), json!("cases per 100,000 person-years"));
    answer.insert("rows".into(), Value::Array(rows));
    answer.insert(
        "population_source".into(),
        json!(data
            .reference_year
            .map(|year| format!("population, reference_year {year}"))),
    );
    answer.insert("table_versions".into(), json!(versions));
    answer.insert("suppression_threshold".into(), json!(rule.threshold));
    Ok(Value::Object(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study(from: &str, to: &str) -> Study {
        Study {
            antigen: "influenza".into(),
            disease: "J10".into(),
            from: parse_iso(from).unwrap(),
            to: parse_iso(to).unwrap(),
            lag_days: 14,
            dose: 1,
            by_band: true,
            doses_since: None,
            outcome: Outcome::Any,
        }
    }

    #[test]
    fn person_days_by_hand() {
        // Period 2024-10-01..2024-10-31 (31 days). Band 65-74 (born 1955, 69 in 2024):
        // 10 residents = 310 person-days. One person protected from 2024-10-22 (10 days:
        // 22..31), one from before the period (31 days): T1 = 41, T0 = 269. A case on
        // 2024-10-25 in a protected person, two unprotected.
        let study = study("2024-10-01", "2024-10-31");
        let mut data = StudyData {
            vaccinated: BTreeMap::new(),
            cases: BTreeMap::new(),
            population: BTreeMap::from([(1955, 10)]),
            reference_year: Some(2025),
        };
        data.vaccinated
            .insert((1955, parse_iso("2024-10-22").unwrap()), 1);
        data.vaccinated.insert((1955, study.from), 1);
        data.cases
            .insert((1955, parse_iso("2024-10-25").unwrap(), true), 1);
        data.cases
            .insert((1955, parse_iso("2024-10-05").unwrap(), false), 2);
        let strata = strata(&study, &data, study.from, study.to);
        assert_eq!(
            strata[3],
            Stratum {
                a: 1,
                b: 2,
                t1: 41.0,
                t0: 269.0
            }
        );
        assert_eq!(strata[2], Stratum::default());
    }

    #[test]
    fn months_are_clipped_to_the_period() {
        let months = months(&study("2024-10-15", "2024-12-03"));
        let labels: Vec<&str> = months.iter().map(|(label, _, _)| label.as_str()).collect();
        assert_eq!(labels, ["2024-10", "2024-11", "2024-12"]);
        assert_eq!(months[0].1, parse_iso("2024-10-15").unwrap());
        assert_eq!(months[2].2, parse_iso("2024-12-03").unwrap());
    }
}
