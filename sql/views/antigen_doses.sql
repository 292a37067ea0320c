-- antigen_doses: one row per person, antigen and day on which a completed dose of a
-- vaccine containing that antigen was given (CONTRACTS.md, "What analysts see").
--
-- * Only `status = 'completed'` doses count; not-done doses are recorded but give no
--   protection, and entered-in-error events are already gone from `vaccinations`.
-- * A vaccine counts for every antigen it contains (`vaccine_antigens`, from
--   sql/reference/vaccines.csv): one hexavalent dose is a dose of six antigens.
-- * Two doses sharing an antigen on the same day (hexavalent + DTaP, or one dose recorded
--   twice) are one dose of that antigen: coverage must not count them twice.
-- * `dose_seq` numbers the days 1, 2, 3, ... in date order per person and antigen; the
--   recorded dose number is ignored because registries get it wrong.
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
)
SELECT
    person_key,
    antigen,
    CAST(row_number() OVER (PARTITION BY person_key, antigen ORDER BY administered_on) AS INT) AS dose_seq,
    administered_on,
    age_months_at_dose,
    birth_month,
    sex,
    commune,
    canton
FROM doses_per_day;
