//! What a study reads from the warehouse: the vaccinated by birth year and the day they are
//! protected from, the period's cases by vaccination status at onset, and the population.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Date32Array, RecordBatch};

use super::study::{Outcome, Study};
use crate::arrow_rows::{as_ints, as_strings, items, list, quote};
use crate::dates::{civil_from_days, format_iso};
use crate::population::choose_reference_year;
use crate::QueryError;

/// What a study reads from the warehouse.
pub(super) struct StudyData {
    /// (birth year, first day counted as vaccinated) → persons.
    pub(super) vaccinated: BTreeMap<(i32, i32), u64>,
    /// Cases in the period: (birth year, onset day, vaccinated at onset) → cases.
    pub(super) cases: BTreeMap<(i32, i32, bool), u64>,
    /// Birth year → residents, of the reference year used.
    pub(super) population: BTreeMap<i32, u64>,
    pub(super) reference_year: Option<i32>,
}

/// The n-th distinct dose day of a list of dose dates, plus the lag: the first day counted
/// as vaccinated.
fn protected_from(dates: &Date32Array, start: usize, end: usize, study: &Study) -> Option<i32> {
    let mut days: Vec<i32> = (start..end).map(|index| dates.value(index)).collect();
    days.sort_unstable();
    days.dedup();
    days.get(study.dose - 1).map(|day| day + study.lag_days)
}

pub(super) async fn read_study(
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
