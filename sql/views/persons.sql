-- persons: one row per person known to the registry, with the attributes coverage counts
-- them under (docs/coverage.md, "Who is counted").
--
-- * A person's birth month, sex, commune and canton are those of their most recently
--   recorded current event (completed or not): the registry's latest word on where they
--   live, so a child who moved counts in the commune whose population now holds them.
-- * Ties on recorded_at are broken by event_key, so the answer does not depend on file order.
CREATE VIEW persons AS
SELECT
    person_key,
    first_value(birth_month ORDER BY recorded_at DESC NULLS LAST, event_key) AS birth_month,
    first_value(sex ORDER BY recorded_at DESC NULLS LAST, event_key) AS sex,
    first_value(commune ORDER BY recorded_at DESC NULLS LAST, event_key) AS commune,
    first_value(canton ORDER BY recorded_at DESC NULLS LAST, event_key) AS canton
FROM vaccinations
GROUP BY person_key;
