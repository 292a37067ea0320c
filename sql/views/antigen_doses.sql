-- antigen_doses: one row per person, antigen and day on which a completed dose of a
-- vaccine containing that antigen was given (CONTRACTS.md, "What analysts see").
--
-- * Only `status = 'completed'` doses count; not-done doses are recorded but give no
--   protection, and entered-in-error events are already gone from `vaccinations`.
-- * A vaccine counts for every antigen it contains (`vaccine_antigens`, from
--   sql/reference/vaccines.csv): one hexavalent dose is a dose of six antigens.
-- * Two doses sharing an antigen on the same day (hexavalent + DTaP, or one dose recorded
--   twice) are one dose of that antigen: coverage must not count them twice.
-- * Every dose day is judged by the dose rules (sql/reference/dose_rules.csv: minimum age,
--   maximum age, minimum interval since the previous valid dose, 4 days' grace on intervals;
--   docs/coverage.md, "Valid doses"): `valid`, and `invalid_reason` (below_minimum_age,
--   above_maximum_age, interval_too_short; null when valid). `dose_seq` numbers the valid
--   days 1, 2, 3, ... in date order per person and antigen (null for an invalid day, which
--   does not advance the sequence); the recorded dose number is ignored because registries
--   get it wrong. `dose_validity` is the coverage engine's own implementation
--   (query/src/validity_window.rs over vaxlake_catalog::validity), so the two agree.
-- * The person's attributes come from the latest recorded of the day's events (ties by
--   event_key; latest_by is first_value(x ORDER BY recorded_at DESC NULLS LAST, event_key)
--   in one pass, see persons.sql).
--
-- A table of the same name in the warehouse, if one is ever materialised, replaces this view
-- (query/src/views.rs); none is today.
CREATE VIEW antigen_doses AS
WITH doses_per_day AS (
    SELECT
        v.person_key,
        a.antigen,
        v.administered_on,
        min(v.age_months_at_dose) AS age_months_at_dose,
        latest_by(v.birth_month, v.recorded_at, v.event_key) AS birth_month,
        latest_by(v.sex, v.recorded_at, v.event_key) AS sex,
        latest_by(v.commune, v.recorded_at, v.event_key) AS commune,
        latest_by(v.canton, v.recorded_at, v.event_key) AS canton
    FROM vaccinations AS v
    JOIN vaccine_antigens AS a ON a.atc_code = v.vaccine_atc
    WHERE v.status = 'completed'
    GROUP BY v.person_key, a.antigen, v.administered_on
),
judged AS (
    SELECT
        *,
        dose_validity(antigen, administered_on, age_months_at_dose)
            OVER (PARTITION BY person_key, antigen ORDER BY administered_on) AS verdict
    FROM doses_per_day
)
SELECT
    person_key,
    antigen,
    verdict['dose_seq'] AS dose_seq,
    administered_on,
    age_months_at_dose,
    birth_month,
    sex,
    commune,
    canton,
    verdict['valid'] AS valid,
    verdict['invalid_reason'] AS invalid_reason
FROM judged;
