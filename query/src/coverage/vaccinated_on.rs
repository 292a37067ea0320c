//! Residents vaccinated on one day, by birth year: coverage at a date, as the screening
//! method of the effectiveness engine needs it for the proportion of the population
//! vaccinated (PPV). Counted from `antigen_doses` like every coverage figure — persons, not
//! person-time — so that the screening estimate is a check on the cohort estimate rather
//! than the same arithmetic written another way.

use std::collections::BTreeMap;

use datafusion::prelude::SessionContext;

use crate::arrow_rows::{quote, rows};
use crate::dates::{civil_from_days, days_from_civil, format_iso};
use crate::QueryError;

/// Who counts as vaccinated on a day: `dose` or more valid dose days of `antigen` given on
/// or before `by` (and on or after `since`, when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VaccinatedOn {
    pub(crate) antigen: String,
    pub(crate) dose: usize,
    pub(crate) since: Option<i32>,
    /// The last dose day that counts.
    pub(crate) by: i32,
    /// The day the persons must be alive and resident on.
    pub(crate) on: i32,
}

/// Birth year → persons vaccinated as `question` says. Only valid doses count (`dose_seq`
/// is null for an invalid one); where the warehouse knows residence and death (a `persons`
/// relation with `resident` and `deceased_month`), only residents alive in the month of
/// `on` or later count, as in every coverage numerator.
pub(crate) async fn vaccinated_on(
    ctx: &SessionContext,
    question: &VaccinatedOn,
) -> Result<BTreeMap<i32, u64>, QueryError> {
    if !ctx.table_exist("antigen_doses")? {
        return Ok(BTreeMap::new());
    }
    let mut residents = String::new();
    if ctx.table_exist("persons")? {
        let persons = ctx.table("persons").await?;
        let has = |column: &str| persons.schema().field_with_unqualified_name(column).is_ok();
        if has("resident") {
            residents.push_str(" JOIN persons AS p ON p.person_key = d.person_key AND p.resident");
            if has("deceased_month") {
                let (year, month, _) = civil_from_days(question.on);
                residents.push_str(&format!(
                    " AND (p.deceased_month IS NULL OR p.deceased_month >= DATE {})",
                    quote(&format_iso(days_from_civil(year, month, 1)))
                ));
            }
        }
    }
    let since = question
        .since
        .map(|day| format!("AND d.administered_on >= DATE {}", quote(&format_iso(day))))
        .unwrap_or_default();
    // `antigen IN (x, '')` rather than `antigen = x` ('' is no antigen): an equality makes
    // the antigen a constant below the view's window, which then sorts by person and day
    // only; on a Ballista cluster the window runs in a stage of its own, whose input (a
    // shuffle) no longer knows the constant, and the executor refuses the plan ("All
    // partition by columns should have an ordering"). The IN list keeps the antigen in the
    // sort, on both engines.
    let sql = format!(
        "WITH counted AS (
             SELECT d.person_key, max(d.birth_month) AS birth_month,
                    count(DISTINCT d.administered_on) AS doses
             FROM antigen_doses AS d{residents}
             WHERE d.antigen IN ({antigen}, '') AND d.dose_seq IS NOT NULL
               AND d.administered_on <= DATE {by} {since}
             GROUP BY d.person_key)
         SELECT CAST(date_part('year', birth_month) AS BIGINT) AS birth_year,
                CAST(count(*) AS BIGINT) AS persons
         FROM counted WHERE doses >= {dose}
         GROUP BY 1",
        antigen = quote(&question.antigen),
        by = quote(&format_iso(question.by)),
        dose = question.dose,
    );
    let mut out = BTreeMap::new();
    for row in rows(ctx, &sql).await? {
        if let Some(birth_year) = row.maybe_int(0) {
            *out.entry(birth_year as i32).or_default() += row.int(1).max(0) as u64;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dates::parse_iso;

    /// `antigen_doses` rows (person, dose_seq or null when invalid, day, birth month), and
    /// optionally a `persons` table with residence and death.
    async fn context(persons: bool) -> SessionContext {
        let ctx = SessionContext::new();
        ctx.sql(
            "CREATE TABLE antigen_doses AS SELECT column1 AS person_key, 'influenza' AS antigen,
                    CAST(column2 AS INT) AS dose_seq, CAST(column3 AS DATE) AS administered_on,
                    CAST(column4 AS DATE) AS birth_month
             FROM (VALUES ('p1', 1, '2024-09-10', '1955-03-01'),
                          ('p2', 1, '2024-09-20', '1955-07-01'),
                          ('p3', 1, '2024-09-25', '1955-01-01'),
                          ('p4', NULL, '2024-09-05', '1956-01-01'),
                          ('p5', 1, '2023-10-01', '1956-01-01'),
                          ('p6', 1, '2024-09-12', '1980-01-01'),
                          ('p7', 1, '2024-09-02', '1980-01-01'))",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        if persons {
            ctx.sql(
                "CREATE TABLE persons AS SELECT column1 AS person_key, column2 AS resident,
                        CAST(column3 AS DATE) AS deceased_month
                 FROM (VALUES ('p1', true, NULL), ('p2', true, NULL), ('p3', true, NULL),
                              ('p4', true, NULL), ('p5', true, NULL),
                              ('p6', false, NULL), ('p7', true, '2024-09-01'))",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        }
        ctx
    }

    #[tokio::test]
    async fn valid_doses_of_residents_alive_by_the_day() {
        // Vaccinated on 2024-10-01 with a 14-day lag: a dose on or before 09-17, since
        // 09-01. p1 (1955) counts; p2 and p3 are too late; p4's dose is invalid; p5's is of
        // last season; p6 (1980) is not resident; p7 (1980) died in September.
        let question = VaccinatedOn {
            antigen: "influenza".into(),
            dose: 1,
            since: parse_iso("2024-09-01"),
            by: parse_iso("2024-09-17").unwrap(),
            on: parse_iso("2024-10-01").unwrap(),
        };
        let counted = vaccinated_on(&context(true).await, &question)
            .await
            .unwrap();
        assert_eq!(counted, BTreeMap::from([(1955, 1)]));
        // Without residence known, p6 and p7 count too.
        let counted = vaccinated_on(&context(false).await, &question)
            .await
            .unwrap();
        assert_eq!(counted, BTreeMap::from([(1955, 1), (1980, 2)]));
        // By 09-30, without a season start: p2, p3 and p5 count as well (p4 never).
        let later = VaccinatedOn {
            since: None,
            by: parse_iso("2024-09-30").unwrap(),
            ..question
        };
        let counted = vaccinated_on(&context(true).await, &later).await.unwrap();
        assert_eq!(counted, BTreeMap::from([(1955, 3), (1956, 1)]));
    }
}
