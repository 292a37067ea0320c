//! What a study reads from the warehouse: the resident vaccinated by birth year, the day
//! they are protected from and their last day alive, the period's case episodes of residents
//! by vaccination status at onset, the population, and the residents who died (whose
//! person-time ends at death). Definitions: docs/effectiveness.md, "Who is counted".

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray, Date32Array, Int32Array, RecordBatch};
use vaxlake_catalog::validity::{DoseDay, DoseRules};

use super::study::{Outcome, Study};
use crate::arrow_rows::{as_ints, as_strings, items, list, quote};
use crate::dates::{civil_from_days, days_from_civil, format_iso};
use crate::population::choose_reference_year;
use crate::QueryError;

/// What a study reads from the warehouse.
pub(super) struct StudyData {
    /// (birth year, first day counted as vaccinated, last day alive in the period) → resident
    /// persons.
    pub(super) vaccinated: BTreeMap<(i32, i32, i32), u64>,
    /// Case episodes starting in the period: (birth year, onset day, vaccinated at onset) →
    /// episodes.
    pub(super) cases: BTreeMap<(i32, i32, bool), u64>,
    /// Birth year → residents, of the reference year used.
    pub(super) population: BTreeMap<i32, u64>,
    /// Residents who died after the population's reference date and before the end of the
    /// period: (birth year, last day alive) → persons. Their days after it are nobody's
    /// person-time.
    pub(super) deaths: BTreeMap<(i32, i32), u64>,
    pub(super) reference_year: Option<i32>,
}

/// The last day a person who died in the month starting `deceased_month` counts as alive:
/// the last day of that month. Only the month is kept (like the birth month); ending
/// person-time at the month's end keeps a fatal case of that month inside the person's time
/// at risk, and adds at most a month per death.
fn last_day_alive(deceased_month: i32) -> i32 {
    let (year, month, _) = civil_from_days(deceased_month);
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(next_year, next_month, 1) - 1
}

/// One case notification of the studied disease: (onset, hospitalised, died).
type Notification = (i32, bool, bool);

/// A person's notifications (sorted by onset) made into episodes: a notification within
/// `window` days of the onset of its episode's first belongs to that episode, a later one
/// starts the next. Each episode is (onset of its first, any hospitalised, any died).
fn episodes(notifications: &[Notification], window: i32) -> Vec<Notification> {
    let mut out: Vec<Notification> = Vec::new();
    for &(onset, hospitalised, died) in notifications {
        match out.last_mut() {
            Some(episode) if window > 0 && onset - episode.0 <= window => {
                episode.1 |= hospitalised;
                episode.2 |= died;
            }
            _ => out.push((onset, hospitalised, died)),
        }
    }
    out
}

/// The first day counted as vaccinated: the `dose`-th valid dose day given on or after
/// `doses_since`, plus the lag. Validity is judged on the person's whole history up to the
/// period's end (the dose rules of sql/reference/dose_rules.csv, the same judge as coverage),
/// so an invalid dose never makes anyone vaccinated, and a dose before `doses_since` still
/// counts as the previous valid dose of an interval.
fn protected_from(
    dates: &Date32Array,
    ages: &Int32Array,
    (start, end): (usize, usize),
    study: &Study,
    rules: &DoseRules,
) -> Option<i32> {
    let mut days: Vec<DoseDay> = (start..end)
        .map(|index| {
            DoseDay::new(
                dates.value(index),
                ages.is_valid(index).then(|| ages.value(index)),
            )
        })
        .collect();
    days.sort_unstable_by_key(|day| (day.date, day.age_months));
    days.dedup_by_key(|day| day.date);
    let judged = rules.judge(&study.antigen, &days);
    days.iter()
        .zip(&judged)
        .filter(|(day, judged)| {
            judged.valid() && study.doses_since.is_none_or(|since| day.date >= since)
        })
        .nth(study.dose - 1)
        .map(|(day, _)| day.date + study.lag_days)
}

pub(super) async fn read_study(
    ctx: &datafusion::prelude::SessionContext,
    study: &Study,
    rules: &DoseRules,
) -> Result<StudyData, QueryError> {
    for table in ["vaccinations", "cases", "population", "persons"] {
        if !ctx.table_exist(table)? {
            return Err(QueryError::Unavailable(format!(
                "effectiveness needs the {table} table, which this warehouse does not have yet"
            )));
        }
    }
    // Residents only: a cross-border worker vaccinated in Luxembourg is in no population
    // of Luxembourg, so their person-time would be taken from the residents' unvaccinated.
    let doses = format!(
        "SELECT d.person_key, d.birth_year, d.dates,
                CAST(p.deceased_month AS INT) AS deceased_month, d.ages
         FROM (SELECT v.person_key,
                      CAST(date_part('year', max(v.birth_month)) AS BIGINT) AS birth_year,
                      array_agg(v.administered_on) AS dates,
                      array_agg(v.age_months_at_dose) AS ages
               FROM vaccinations AS v JOIN vaccine_antigens AS a ON a.atc_code = v.vaccine_atc
               WHERE a.antigen = {antigen} AND v.status = 'completed'
                 AND v.administered_on <= DATE {to}
               GROUP BY v.person_key) AS d
         JOIN persons AS p ON p.person_key = d.person_key
         WHERE p.resident",
        antigen = quote(&study.antigen),
        to = quote(&format_iso(study.to)),
    );

    let mut data = StudyData {
        vaccinated: BTreeMap::new(),
        cases: BTreeMap::new(),
        population: BTreeMap::new(),
        deaths: BTreeMap::new(),
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
        let deceased = as_ints(batch.column(3))?;
        let ages = list(batch.column(4))?;
        let age_values = items::<Int32Array>(&ages)?;
        if ages.value_offsets() != offsets {
            return Err(QueryError::Format(
                "dose dates and ages do not line up".into(),
            ));
        }
        for row in 0..batch.num_rows() {
            let range = (offsets[row] as usize, offsets[row + 1] as usize);
            let last = if deceased.is_valid(row) {
                last_day_alive(deceased.value(row) as i32).min(study.to)
            } else {
                study.to
            };
            if let Some(first) = protected_from(values, age_values, range, study, rules) {
                if first <= last {
                    *data
                        .vaccinated
                        .entry((birth_years.value(row) as i32, first.max(study.from), last))
                        .or_default() += 1;
                }
                if first <= study.to {
                    protected.insert(person_keys.value(row).to_string(), first);
                }
            }
        }
    }

    // Residents' notifications, from `episode_days` before the period so that a repeat
    // notification early in the period of an episode that began before it is not a new
    // case. The person's residence is the `persons` table's (a person known only from the
    // notification takes the residence it gives).
    let cases_sql = format!(
        "SELECT c.person_key, CAST(date_part('year', c.birth_month) AS BIGINT) AS birth_year,
                CAST(c.onset_date AS INT) AS onset, c.hospitalised, c.died
         FROM cases AS c JOIN persons AS p ON p.person_key = c.person_key
         WHERE p.resident
           AND (c.disease = {disease} OR c.disease LIKE {prefix})
           AND c.onset_date BETWEEN DATE {since} AND DATE {to}",
        disease = quote(&study.disease),
        prefix = quote(&format!("{}%", study.disease)),
        since = quote(&format_iso(study.from - study.episode_days)),
        to = quote(&format_iso(study.to)),
    );
    let batches: Vec<RecordBatch> = ctx.sql(&cases_sql).await?.collect().await?;
    // Person → (birth year, notifications).
    let mut notified: HashMap<String, (i32, Vec<Notification>)> = HashMap::new();
    for batch in &batches {
        let person_keys = as_strings(batch.column(0))?;
        let birth_years = as_ints(batch.column(1))?;
        let onsets = as_ints(batch.column(2))?;
        let hospitalised = batch.column(3).as_boolean();
        let died = batch.column(4).as_boolean();
        for row in 0..batch.num_rows() {
            let entry = notified
                .entry(person_keys.value(row).to_string())
                .or_insert_with(|| (birth_years.value(row) as i32, Vec::new()));
            entry.1.push((
                onsets.value(row) as i32,
                hospitalised.value(row),
                died.value(row),
            ));
        }
    }
    for (person_key, (birth_year, mut notifications)) in notified {
        notifications.sort_unstable();
        for (onset, hospitalised, died) in episodes(&notifications, study.episode_days) {
            let counted = match study.outcome {
                Outcome::Any => true,
                Outcome::Hospitalised => hospitalised,
                Outcome::Died => died,
            };
            if !counted || onset < study.from || onset > study.to {
                continue;
            }
            let vaccinated = protected
                .get(&person_key)
                .is_some_and(|&first| first <= onset);
            *data
                .cases
                .entry((birth_year, onset, vaccinated))
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

    // Residents who died after the population's reference date (so it counts them) and
    // before the period ends: their person-time stops at death, vaccinated or not.
    if let Some(reference_year) = data.reference_year {
        let deaths_sql = format!(
            "SELECT CAST(date_part('year', birth_month) AS BIGINT),
                    CAST(deceased_month AS INT), CAST(count(*) AS BIGINT)
             FROM persons
             WHERE resident AND deceased_month >= DATE '{reference_year:04}-01-01'
               AND deceased_month <= DATE {to}
             GROUP BY 1, 2",
            to = quote(&format_iso(study.to)),
        );
        for batch in ctx.sql(&deaths_sql).await?.collect().await? {
            let (births, months, counts) = (
                as_ints(batch.column(0))?,
                as_ints(batch.column(1))?,
                as_ints(batch.column(2))?,
            );
            for row in 0..batch.num_rows() {
                let last = last_day_alive(months.value(row) as i32);
                if last < study.to {
                    *data
                        .deaths
                        .entry((births.value(row) as i32, last))
                        .or_default() += counts.value(row).max(0) as u64;
                }
            }
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dates::parse_iso;

    #[test]
    fn the_month_of_death_counts_to_its_last_day() {
        let day = |text| parse_iso(text).unwrap();
        assert_eq!(last_day_alive(day("2024-02-01")), day("2024-02-29"));
        assert_eq!(last_day_alive(day("2024-12-01")), day("2024-12-31"));
    }

    #[test]
    fn repeat_notifications_within_the_window_are_one_episode() {
        // Onsets on days 0, 30 and 90 are one episode (all within 90 days of day 0, the
        // episode's first); day 181 starts a second one; day 200 is within 90 days of 181
        // and joins it, bringing its death.
        let notifications = [
            (0, false, false),
            (30, true, false),
            (90, false, false),
            (181, false, false),
            (200, false, true),
        ];
        assert_eq!(
            episodes(&notifications, 90),
            [(0, true, false), (181, false, true)]
        );
        // A window of 0: every notification is its own episode.
        assert_eq!(episodes(&notifications, 0).len(), 5);
    }

    #[test]
    fn only_valid_doses_make_a_person_vaccinated() {
        // A measles study from 2025-01-01, dose 1, lag 14 days. The child's first
        // measles-containing dose on 2024-03-10 was given at 6 completed months (MCV0:
        // before the 9 months of dose_rules.csv, invalid); the second, on 2024-09-10 at 12
        // months, is the first valid dose: protected from 2024-09-24, not 2024-03-24. A
        // dose-2 study needs a second valid dose, which this child does not have.
        let day = |text| parse_iso(text).unwrap();
        let mut study = Study {
            antigen: "measles".into(),
            disease: "B05".into(),
            from: day("2025-01-01"),
            to: day("2025-06-30"),
            lag_days: 14,
            dose: 1,
            by_band: false,
            doses_since: None,
            outcome: Outcome::Any,
            episode_days: 90,
        };
        let dates = Date32Array::from(vec![day("2024-09-10"), day("2024-03-10")]);
        let ages = Int32Array::from(vec![12, 6]);
        let rules = DoseRules::builtin().unwrap();
        assert_eq!(
            protected_from(&dates, &ages, (0, 2), &study, &rules),
            Some(day("2024-09-24"))
        );
        study.dose = 2;
        assert_eq!(protected_from(&dates, &ages, (0, 2), &study, &rules), None);
        // With doses counted only from 2024-06-01, the valid 2024-09-10 dose is still the
        // first one.
        study.dose = 1;
        study.doses_since = Some(day("2024-06-01"));
        assert_eq!(
            protected_from(&dates, &ages, (0, 2), &study, &rules),
            Some(day("2024-09-24"))
        );
    }
}
