-- persons: one row per person known to the registry, with the attributes coverage counts
-- them under (docs/coverage.md, "Who is counted").
--
-- * A person's birth month, sex, commune and canton are those of their most recently
--   recorded current event (completed or not): the registry's latest word on where they
--   live, so a child who moved counts in the commune whose population now holds them.
-- * Ties on recorded_at are broken by event_key, so the answer does not depend on file order.
--
-- latest_by(x, recorded_at, event_key) is first_value(x ORDER BY recorded_at DESC NULLS LAST,
-- event_key) computed in one pass (query/src/latest.rs says why: DataFusion's ordered
-- first_value took 13 s here at 10 million events).
CREATE VIEW persons AS
SELECT
    person_key,
    latest_by(birth_month, recorded_at, event_key) AS birth_month,
    latest_by(sex, recorded_at, event_key) AS sex,
    latest_by(commune, recorded_at, event_key) AS commune,
    latest_by(canton, recorded_at, event_key) AS canton
FROM vaccinations
GROUP BY person_key;
