#!/usr/bin/env python3
"""Independent cross-check of `vaxlake coverage --all --format csv`.

Recomputes every cell of the coverage indicator table in DuckDB, straight from the raw
Delta tables `vaccinations`, `persons` and `population` and the reference CSVs, following the
definitions of docs/coverage.md, and compares the result with vaxlake's CSV. It shares no
SQL with vaxlake (sql/views/ is never read): the Delta tables are opened with the
`deltalake` package only to list the Parquet files of their current version, and DuckDB
reads those files.

Checks:
  (a) the same set of (indicator, cohort, by, group) rows;
  (b) every row vaxlake does not suppress: numerator and denominator equal, coverage and
      the Wilson interval within 1e-4;
  (c) every cell whose counts fail the primary rule is suppressed;
  (d) within each (indicator, cohort, by) answer the suppressed rows' sums pass the rule,
      and the secondary suppressions are few (counted); the spec's secondary algorithm is
      also replayed and differences reported (fatal only with --strict-secondary);
  (e) the flags numerator_exceeds_denominator and no_denominator.

Exit status 0 when everything agrees, 1 with the first 20 differences otherwise.

Usage:
  coverage_check.py --warehouse DIR --vaxlake-csv FILE --reference-dir sql/reference
                    [--threshold 8] [--strict-secondary] [--max-listed N]
                    [--dump-expected FILE]

Valid doses (docs/coverage.md, "Valid doses", definition version 2) are judged here in
Python, written from the documentation and reading sql/reference/dose_rules.csv and
schedules.csv itself, not the Rust implementation: each person's dose days of an antigen in
date order, the line of the valid-dose number the day would become (the antigen's last line
for later doses), minimum and maximum age in completed months, minimum interval in calendar
months then days after the previous valid dose less 4 days of grace; an invalid day neither
counts nor advances the numbering.

Interpretations where docs/coverage.md leaves room (change them here if the spec says
otherwise): every denominator comes from the reference year nearest its target 1 January
(the earlier of two as near); season and age-band numerators count residents alive on that
1 January;
a missing or zero denominator gives no_denominator; a row exists for every group with a
numerator person or a population row, and one national row per cohort.
"""

import argparse
import bisect
import calendar
import csv
import datetime
import itertools
import tempfile
import math
import os
import sys
from collections import defaultdict

import duckdb
from deltalake import DeltaTable

Z = 1.959964
TOLERANCE = 1e-4
CHECKED_FLAGS = ("numerator_exceeds_denominator", "no_denominator")
MAX_LISTED = 20

# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def table_files(warehouse, name):
    """Parquet files of the current version of the Delta table `<warehouse>/<name>`."""
    files = DeltaTable(os.path.join(warehouse, name)).file_uris()
    if not files:
        raise SystemExit(f"coverage_check: table {name} has no data files")
    return files


def sql_list(items):
    """A DuckDB list literal of strings."""
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"


def connect(warehouse, reference_dir):
    """A DuckDB connection with the raw inputs as views and temp tables:

    vacc (vaccinations, partition column from the path), pop (population),
    ind (indicators.csv), vaccine_antigens (vaccines.csv, one row per antigen),
    series (vaccine_series.csv).
    """
    vacc = table_files(warehouse, "vaccinations")
    pop = table_files(warehouse, "population")
    persons = table_files(warehouse, "persons")
    return connect_files(vacc, pop, reference_dir, persons)


def connect_files(vacc, pop, reference_dir, persons=None):
    """connect(), from lists of Parquet files (paths or URIs) of `vaccinations`,
    `population` and `persons` instead of a warehouse (scripts/bench times it on the files
    it lists)."""
    if not persons:
        raise SystemExit("coverage_check: the persons table's files are needed (residence)")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW person_rows AS SELECT * FROM read_parquet({sql_list(persons)})")
    con.execute(
        f"CREATE VIEW vacc AS SELECT * FROM read_parquet({sql_list(vacc)}, hive_partitioning = true)"
    )
    con.execute(f"CREATE VIEW pop AS SELECT * FROM read_parquet({sql_list(pop)})")

    def ref(name):
        return "'" + os.path.join(reference_dir, name).replace("'", "''") + "'"

    con.execute(f"""
        CREATE TEMP TABLE ind AS
        SELECT trim(name) AS name,
               trim(kind) AS kind,
               trim(antigen) AS antigen,
               trim(dose) AS dose,
               TRY_CAST(NULLIF(trim(age_months), '') AS INTEGER) AS age_months,
               TRY_CAST(NULLIF(trim(min_age_years), '') AS INTEGER) AS min_age_years,
               NULLIF(trim(sex), '') AS sex
        FROM read_csv({ref('indicators.csv')}, header = true, all_varchar = true)""")
    con.execute(f"""
        CREATE TEMP TABLE vaccine_antigens AS
        SELECT DISTINCT trim(atc_code) AS atc_code, trim(a.antigen) AS antigen
        FROM read_csv({ref('vaccines.csv')}, header = true, all_varchar = true) v,
             unnest(string_split(v.antigens, ';')) AS a(antigen)
        WHERE trim(a.antigen) <> ''""")
    con.execute(f"""
        CREATE TEMP TABLE series AS
        SELECT trim(atc_code) AS atc_code, coalesce(trim(vaccine_name), '') AS product,
               trim(antigen) AS antigen, CAST(series_doses AS INTEGER) AS series_doses
        FROM read_csv({ref('vaccine_series.csv')}, header = true, all_varchar = true)""")
    return con


# --------------------------------------------------------------------------------------
# Valid doses: sql/reference/dose_rules.csv and schedules.csv, judged in Python
# --------------------------------------------------------------------------------------

GRACE_DAYS = 4


def read_reference(reference_dir, name):
    with open(os.path.join(reference_dir, name), newline="", encoding="utf-8") as f:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]


def number(text):
    return int(text) if text != "" else None


def load_rules(reference_dir):
    """antigen -> {dose number: rule dict}; antigen -> [schedule dicts in file order]."""
    rules = defaultdict(dict)
    for row in read_reference(reference_dir, "dose_rules.csv"):
        rules[row["antigen"]][int(row["dose"])] = {
            "min_age": number(row["min_age_months"]),
            "max_age": number(row["max_age_months"]),
            "months": number(row["min_interval_months"]),
            "days": number(row["min_interval_days"]),
        }
    schedules = defaultdict(list)
    for row in read_reference(reference_dir, "schedules.csv"):
        schedules[row["antigen"]].append({
            "before": number(row["start_before_months"]),
            "doses": int(row["doses"]),
            "months": number(row["first_to_last_months"]),
        })
    return rules, schedules


def plus_months(day, months):
    """`months` calendar months after `day`, the day clamped to the month's last."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def rule_for(lines, dose):
    """The line of dose `dose`, else the highest-numbered line below it."""
    numbers = sorted(lines)
    at = bisect.bisect_right(numbers, dose)
    return lines[numbers[at - 1]] if at else None


def judge(lines, days):
    """[(valid, seq or None)] for one person's days [(date, age)] of one antigen, in order."""
    out, seq, previous = [], 0, None
    for date, age in days:
        rule = rule_for(lines, seq + 1) if lines else None
        valid = True
        if rule is not None:
            if rule["min_age"] is not None and age is not None and age < rule["min_age"]:
                valid = False
            elif rule["max_age"] is not None and age is not None and age > rule["max_age"]:
                valid = False
            elif previous is not None and (rule["months"] is not None or rule["days"] is not None):
                due = plus_months(previous, rule["months"] or 0) + datetime.timedelta(
                    days=(rule["days"] or 0) - GRACE_DAYS)
                valid = date >= due
        if valid:
            seq += 1
            previous = date
            out.append((True, seq))
        else:
            out.append((False, None))
    return out


def schedule_done(schedules, days, verdicts):
    """Index of the day completing the schedule for the age at the first valid day."""
    valid = [i for i, (ok, _) in enumerate(verdicts) if ok]
    if not valid:
        return None
    first_date, first_age = days[valid[0]]
    chosen = next((s for s in schedules
                   if s["before"] is None or (first_age is not None and first_age < s["before"])),
                  None)
    if chosen is None:
        return None
    earliest = first_date
    if chosen["months"] is not None:
        earliest = plus_months(first_date, chosen["months"]) - datetime.timedelta(days=GRACE_DAYS)
    for i in valid:
        if verdicts[i][1] >= chosen["doses"] and days[i][0] >= earliest:
            return i
    return None


def judge_days(con, reference_dir):
    """Replaces `days` by its valid days, numbered among themselves (seq), and fills
    `schedule_done` (person_key, antigen, age_months of the completing day)."""
    rules, schedules = load_rules(reference_dir)
    directory = tempfile.mkdtemp(prefix="coverage_check_")
    valid_path = os.path.join(directory, "valid.csv")
    done_path = os.path.join(directory, "done.csv")
    cursor = con.execute(
        "SELECT person_key, antigen, administered_on, age_months FROM days "
        "ORDER BY person_key, antigen, administered_on")
    with open(valid_path, "w", newline="") as valid_file, \
            open(done_path, "w", newline="") as done_file:
        valid_out, done_out = csv.writer(valid_file), csv.writer(done_file)
        valid_out.writerow(["person_key", "antigen", "administered_on", "age_months", "seq"])
        done_out.writerow(["person_key", "antigen", "age_months"])

        def flush(key, days):
            verdicts = judge(rules.get(key[1], {}), days)
            for (date, age), (ok, seq) in zip(days, verdicts):
                if ok:
                    valid_out.writerow([key[0], key[1], date.isoformat(),
                                        "" if age is None else age, seq])
            if key[1] in schedules:
                index = schedule_done(schedules[key[1]], days, verdicts)
                if index is not None:
                    age = days[index][1]
                    done_out.writerow([key[0], key[1], "" if age is None else age])

        key, days = None, []
        while True:
            batch = cursor.fetchmany(100_000)
            if not batch:
                break
            for person, antigen, date, age in batch:
                if (person, antigen) != key:
                    if key is not None:
                        flush(key, days)
                    key, days = (person, antigen), []
                days.append((date, age))
        if key is not None:
            flush(key, days)
    con.execute("DROP TABLE days")
    con.execute(f"""
        CREATE TEMP TABLE days AS SELECT * FROM read_csv('{valid_path}', header = true,
            columns = {{'person_key': 'VARCHAR', 'antigen': 'VARCHAR', 'administered_on': 'DATE',
                        'age_months': 'INTEGER', 'seq': 'BIGINT'}})""")
    con.execute(f"""
        CREATE TEMP TABLE schedule_done AS SELECT * FROM read_csv('{done_path}', header = true,
            columns = {{'person_key': 'VARCHAR', 'antigen': 'VARCHAR', 'age_months': 'INTEGER'}})""")
    for path in (valid_path, done_path):
        os.remove(path)
    os.rmdir(directory)


# --------------------------------------------------------------------------------------
# The definitions of docs/coverage.md, in DuckDB SQL
# --------------------------------------------------------------------------------------

# Persons: residents only, with the attributes the persons table gives them (ingest keeps
# one row per person, the latest record's). Persons living abroad are in no numerator.
PERSONS = """
CREATE TEMP TABLE persons AS
SELECT person_key, birth_month, year(birth_month) AS birth_year, sex, commune, canton,
       deceased_month
FROM person_rows
WHERE resident
"""

# Antigen days: completed doses only, a vaccine counts for each of its antigens, several
# doses of one antigen on one day are one, numbered by date. The recorded dose number is
# not used.
DAYS = """
CREATE TEMP TABLE days AS
SELECT person_key, antigen, administered_on,
       min(age_months_at_dose) AS age_months,
       row_number() OVER (PARTITION BY person_key, antigen ORDER BY administered_on) AS seq
FROM vacc v JOIN vaccine_antigens va ON va.atc_code = v.vaccine_atc
WHERE v.status = 'completed'
GROUP BY person_key, antigen, administered_on
"""

# dose = series: the number of valid days a person needs is the largest series length
# among the doses they received (completed doses); a dose's length is its product's
# (vaccine_name, case-insensitive), else its code's line without a product.
SERIES_NEED = """
CREATE TEMP TABLE series_need AS
WITH per_dose AS (
    SELECT v.event_key, v.person_key, s.antigen,
           coalesce(max(s.series_doses) FILTER (WHERE lower(s.product) = lower(v.vaccine_name)),
                    max(s.series_doses) FILTER (WHERE s.product = '')) AS need
    FROM vacc v JOIN series s ON s.atc_code = v.vaccine_atc
    WHERE v.status = 'completed'
    GROUP BY ALL)
SELECT person_key, antigen, max(need) AS need FROM per_dose GROUP BY ALL
"""

# The age bands of effectiveness, by age in years (cohort year - birth year).
BAND = """
CASE WHEN {age} < 0 THEN NULL
     WHEN {age} <= 4 THEN '0-4'
     WHEN {age} <= 17 THEN '5-17'
     WHEN {age} <= 64 THEN '18-64'
     WHEN {age} <= 74 THEN '65-74'
     WHEN {age} <= 84 THEN '75-84'
     ELSE '85+' END
"""

# Numerator persons per indicator and cohort (band: the age band, age-band kinds only),
# before the cohort range is applied.
HITS = f"""
CREATE TEMP TABLE hits AS
-- birth_cohort: the cohort's persons whose dose-th day was at an age < age_months.
SELECT i.name AS indicator, p.birth_year AS cohort, p.person_key, NULL AS band
FROM ind i
JOIN days d ON d.antigen = i.antigen
JOIN persons p ON p.person_key = d.person_key
LEFT JOIN series_need sn
       ON i.dose = 'series' AND sn.person_key = d.person_key AND sn.antigen = i.antigen
WHERE i.kind = 'birth_cohort' AND i.dose <> 'schedule'
  AND d.seq = CASE WHEN i.dose = 'series' THEN sn.need ELSE TRY_CAST(i.dose AS INTEGER) END
  AND d.age_months < i.age_months
  AND (i.sex IS NULL OR p.sex = i.sex)
UNION ALL
-- birth_cohort, dose = schedule: the day completing the schedule, at an age < age_months.
SELECT i.name, p.birth_year, p.person_key, NULL
FROM ind i
JOIN schedule_done sd ON sd.antigen = i.antigen
JOIN persons p ON p.person_key = sd.person_key
WHERE i.kind = 'birth_cohort' AND i.dose = 'schedule'
  AND sd.age_months < i.age_months
  AND (i.sex IS NULL OR p.sex = i.sex)
UNION ALL
-- season: persons born in or before cohort - min_age_years with a dose in the season
-- (1 September of cohort .. 31 August of cohort + 1).
SELECT indicator, cohort, person_key, NULL
FROM (
    SELECT i.name AS indicator, d.person_key, i.min_age_years, i.dose,
           CASE WHEN month(d.administered_on) >= 9 THEN year(d.administered_on)
                ELSE year(d.administered_on) - 1 END AS cohort,
           count(*) AS days_in_season
    FROM ind i JOIN days d ON d.antigen = i.antigen
    WHERE i.kind = 'season'
    GROUP BY ALL) s
JOIN persons p USING (person_key)
JOIN ind i ON i.name = s.indicator
WHERE p.birth_year <= s.cohort - s.min_age_years
  AND s.days_in_season >= TRY_CAST(s.dose AS INTEGER)
  AND (i.sex IS NULL OR p.sex = i.sex)
  -- alive on the season's 1 January (the denominator's date)
  AND (p.deceased_month IS NULL OR p.deceased_month >= make_date(s.cohort + 1, 1, 1))
UNION ALL
-- age_band: status on 31 December of the cohort year; the dose-th day on or before it.
SELECT i.name, y.cohort, p.person_key, {BAND.format(age='y.cohort - p.birth_year')}
FROM ind i
JOIN days d ON d.antigen = i.antigen AND d.seq = TRY_CAST(i.dose AS INTEGER)
JOIN persons p ON p.person_key = d.person_key
JOIN (SELECT DISTINCT year(administered_on) AS cohort FROM days) y
  ON y.cohort >= year(d.administered_on)
WHERE i.kind = 'age_band'
  AND p.birth_year <= y.cohort
  AND (i.sex IS NULL OR p.sex = i.sex)
  -- alive on 1 January after the year (the denominator's date)
  AND (p.deceased_month IS NULL OR p.deceased_month >= make_date(y.cohort + 1, 1, 1))
"""

# Cohorts of each indicator: birth_cohort from the earliest birth year of a numerator
# person to the latest birth year of the population; season from the first to the last
# season with a completed dose of the antigen; age_band from the first year with the
# indicator's dose to the year of the newest dose in the warehouse.
COHORTS = """
CREATE TEMP TABLE cohorts AS
WITH bounds AS (
    SELECT i.name AS indicator, i.kind,
           (SELECT min(cohort) FROM hits h WHERE h.indicator = i.name) AS lo,
           (SELECT max(birth_year) FROM pop) AS hi
    FROM ind i WHERE i.kind = 'birth_cohort'
    UNION ALL
    SELECT i.name, i.kind,
           min(CASE WHEN month(d.administered_on) >= 9 THEN year(d.administered_on)
                    ELSE year(d.administered_on) - 1 END),
           max(CASE WHEN month(d.administered_on) >= 9 THEN year(d.administered_on)
                    ELSE year(d.administered_on) - 1 END)
    FROM ind i JOIN days d ON d.antigen = i.antigen
    WHERE i.kind = 'season' GROUP BY i.name, i.kind
    UNION ALL
    SELECT i.name, i.kind, min(year(d.administered_on)),
           (SELECT year(max(administered_on)) FROM vacc)
    FROM ind i JOIN days d ON d.antigen = i.antigen AND d.seq = TRY_CAST(i.dose AS INTEGER)
    WHERE i.kind = 'age_band' GROUP BY i.name, i.kind)
SELECT indicator, kind, c.cohort
FROM bounds, range(lo, hi + 1) AS c(cohort)
WHERE lo IS NOT NULL AND hi IS NOT NULL
"""

# Population rows of each (indicator, cohort) denominator, with the age band. The
# reference year is the one nearest to a target 1 January (the earlier of two as near):
#   birth_cohort: the 1 January after the cohort's youngest (born 31 December) reaches
#                 age_months, i.e. the year after December of the cohort + age_months;
#                 birth_year = cohort;
#   season: target cohort + 1; birth_year <= cohort - min_age;
#   age_band: target cohort + 1; birth_year <= cohort.
DENOMINATOR_ROWS = f"""
CREATE TEMP TABLE denominator_rows AS
WITH targets AS (
    SELECT c.indicator, c.kind, c.cohort, i.sex AS only_sex, i.min_age_years,
           CASE WHEN c.kind = 'birth_cohort'
                THEN year(make_date(c.cohort, 12, 1) + to_months(i.age_months)) + 1
                ELSE c.cohort + 1 END AS target
    FROM cohorts c JOIN ind i ON i.name = c.indicator),
years AS (SELECT DISTINCT reference_year FROM pop),
chosen AS (
    SELECT t.*, (SELECT y.reference_year FROM years y
                 ORDER BY abs(y.reference_year - t.target), y.reference_year
                 LIMIT 1) AS reference_year
    FROM targets t)
SELECT ch.indicator, ch.cohort, p.commune, p.canton, p.sex, p.count,
       CASE WHEN ch.kind = 'age_band'
            THEN {BAND.format(age='ch.cohort - p.birth_year')} END AS band
FROM chosen ch JOIN pop p ON p.reference_year = ch.reference_year
WHERE (ch.only_sex IS NULL OR p.sex = ch.only_sex)
  AND CASE ch.kind
        WHEN 'birth_cohort' THEN p.birth_year = ch.cohort
        WHEN 'season' THEN p.birth_year <= ch.cohort - ch.min_age_years
        WHEN 'age_band' THEN p.birth_year <= ch.cohort
      END
"""

# Every cell: numerator (distinct persons) and denominator (NULL when no population row)
# per (indicator, cohort, by, group). National rows exist for every cohort; other rows
# for each group with a numerator person or a population row.
CELLS = """
WITH num AS (
    SELECT h.indicator, h.cohort, p.commune, p.canton, p.sex, h.band, h.person_key
    FROM hits h
    JOIN cohorts c ON c.indicator = h.indicator AND c.cohort = h.cohort
    JOIN persons p ON p.person_key = h.person_key),
dims(dim) AS (VALUES ('national'), ('commune'), ('canton'), ('sex'), ('age_band')),
num_cells AS (
    SELECT indicator, cohort, dim,
           CASE dim WHEN 'national' THEN NULL WHEN 'commune' THEN commune
                   WHEN 'canton' THEN canton WHEN 'sex' THEN sex ELSE band END AS grp,
           count(DISTINCT person_key) AS numerator
    FROM num, dims GROUP BY ALL),
den_cells AS (
    SELECT indicator, cohort, dim,
           CASE dim WHEN 'national' THEN NULL WHEN 'commune' THEN commune
                   WHEN 'canton' THEN canton WHEN 'sex' THEN sex ELSE band END AS grp,
           sum(count) AS denominator
    FROM denominator_rows, dims GROUP BY ALL),
national AS (SELECT indicator, cohort, 'national' AS dim, NULL AS grp FROM cohorts),
keys AS (
    SELECT indicator, cohort, dim, grp FROM num_cells
    UNION SELECT indicator, cohort, dim, grp FROM den_cells
    UNION SELECT indicator, cohort, dim, grp FROM national)
SELECT k.indicator, k.cohort, k.dim, k.grp,
       coalesce(n.numerator, 0) AS numerator, d.denominator
FROM keys k
JOIN cohorts c ON c.indicator = k.indicator AND c.cohort = k.cohort
LEFT JOIN num_cells n ON n.indicator = k.indicator AND n.cohort = k.cohort
     AND n.dim = k.dim AND n.grp IS NOT DISTINCT FROM k.grp
LEFT JOIN den_cells d ON d.indicator = k.indicator AND d.cohort = k.cohort
     AND d.dim = k.dim AND d.grp IS NOT DISTINCT FROM k.grp
WHERE CASE WHEN c.kind = 'age_band' THEN k.dim = 'age_band' ELSE k.dim <> 'age_band' END
  AND NOT (k.dim = 'age_band' AND k.grp IS NULL)
ORDER BY ALL
"""


def expected_cells(con, reference_dir):
    """{(indicator, cohort, by, group): (numerator, denominator or None)} per the spec."""
    for statement in (PERSONS, DAYS):
        con.execute(statement)
    judge_days(con, reference_dir)
    for statement in (SERIES_NEED, HITS, COHORTS, DENOMINATOR_ROWS):
        con.execute(statement)
    cells = {}
    for indicator, cohort, by, grp, numerator, denominator in con.execute(CELLS).fetchall():
        key = (indicator, int(cohort), by, grp or "")
        cells[key] = (int(numerator), None if denominator is None else int(denominator))
    return cells


# --------------------------------------------------------------------------------------
# Cells: interval, flags, suppression
# --------------------------------------------------------------------------------------


def wilson(n, d):
    """95 % Wilson score interval of n / d, or (None, None) without a sensible one."""
    if not d or n > d:
        return None, None
    p = n / d
    z2 = Z * Z
    scale = 1 + z2 / d
    centre = (p + z2 / (2 * d)) / scale
    half = Z * math.sqrt(p * (1 - p) / d + z2 / (4 * d * d)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def coverage(n, d):
    return n / d if d else None


def flags(n, d):
    """The checked flags of a cell."""
    out = set()
    if not d:
        out.add("no_denominator")
    elif n > d:
        out.add("numerator_exceeds_denominator")
    return out


def fails_rule(n, d, threshold):
    """The primary rule: a count in 1..threshold-1 (a missing denominator counts as 0)."""
    d = d or 0
    return any(1 <= x <= threshold - 1 for x in (d, n, d - n))


def total_fails(rows, threshold):
    """Whether the answer's total (the sum of its rows) is itself withheld."""
    n = sum(cell[0] for cell in rows.values())
    d = sum(cell[1] or 0 for cell in rows.values())
    return fails_rule(n, d, threshold)


def replay_secondary(rows, threshold):
    """The spec's secondary suppression over one answer's rows.

    rows: {group: (n, d)}. Returns the set of suppressed groups (primary and secondary).
    """
    suppressed = {g for g, (n, d) in rows.items() if fails_rule(n, d, threshold)}
    if total_fails(rows, threshold):
        # A withheld total leaves nothing to subtract from: primary suppression only.
        return suppressed

    def sums():
        n = sum(rows[g][0] for g in suppressed)
        d = sum(rows[g][1] or 0 for g in suppressed)
        return n, d

    while suppressed and fails_rule(*sums(), threshold):
        candidates = [g for g in rows if g not in suppressed]
        if not candidates:
            break
        nxt = min(candidates, key=lambda g: (rows[g][1] or 0, rows[g][0], g))
        suppressed.add(nxt)
    return suppressed


# --------------------------------------------------------------------------------------
# vaxlake's CSV
# --------------------------------------------------------------------------------------

COLUMNS = ["indicator", "cohort", "by", "group", "numerator", "denominator", "coverage",
           "ci_low", "ci_high", "suppressed", "flags"]


def opt(value, kind):
    return None if value is None or value.strip() == "" else kind(value)


def read_vaxlake(path, differences):
    """{key: row dict} from vaxlake's CSV; duplicate keys are differences."""
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        # The provenance comment lines (`# key: value`) come before the header; a `#` line
        # anywhere after it is a difference, left for the reader to report.
        reader = csv.DictReader(itertools.dropwhile(lambda line: line.startswith("#"), f))
        if reader.fieldnames != COLUMNS:
            differences.append(f"header: expected {','.join(COLUMNS)}, got {reader.fieldnames}")
            if not reader.fieldnames or not set(COLUMNS) <= set(reader.fieldnames):
                return rows
        for line in reader:
            key = (line["indicator"], int(line["cohort"]), line["by"], line["group"])
            if key in rows:
                differences.append(f"{fmt(key)}: duplicate row in vaxlake's CSV")
            rows[key] = {
                "numerator": opt(line["numerator"], int),
                "denominator": opt(line["denominator"], int),
                "coverage": opt(line["coverage"], float),
                "ci_low": opt(line["ci_low"], float),
                "ci_high": opt(line["ci_high"], float),
                "suppressed": line["suppressed"].strip().lower() == "true",
                "flags": {f for f in line["flags"].split(";") if f},
            }
    return rows


# --------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------


def fmt(key):
    indicator, cohort, by, group = key
    return f"{indicator} {cohort} {by}={group or '∅'}"


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOLERANCE


def compare_row(key, mine, theirs, threshold, differences):
    """Checks (b), (c) and (e) for one row present on both sides."""
    n, d = mine
    if fails_rule(n, d, threshold) and not theirs["suppressed"]:
        differences.append(f"{fmt(key)}: counts n={n} d={d} fail the primary rule, not suppressed")
    if theirs["suppressed"]:
        for field in ("numerator", "denominator", "coverage", "ci_low", "ci_high"):
            if theirs[field] is not None:
                differences.append(f"{fmt(key)}: suppressed but {field}={theirs[field]}")
        extra = (theirs["flags"] & set(CHECKED_FLAGS)) - flags(n, d)
        if extra:
            differences.append(f"{fmt(key)}: suppressed row has flags {sorted(extra)} "
                               f"that its counts n={n} d={d} do not have")
        return
    if (theirs["numerator"], theirs["denominator"]) != (n, d):
        differences.append(f"{fmt(key)}: vaxlake n={theirs['numerator']} d={theirs['denominator']}, "
                           f"expected n={n} d={d}")
        return
    low, high = wilson(n, d)
    for field, want in (("coverage", coverage(n, d)), ("ci_low", low), ("ci_high", high)):
        if not close(theirs[field], want):
            differences.append(f"{fmt(key)}: {field} {theirs[field]}, expected {want} (n={n} d={d})")
    got_flags = theirs["flags"] & set(CHECKED_FLAGS)
    if got_flags != flags(n, d):
        differences.append(f"{fmt(key)}: flags {sorted(got_flags)}, expected {sorted(flags(n, d))} "
                           f"(n={n} d={d})")


def check_secondary(expected, theirs, threshold, differences, notes):
    """Check (d): per answer with `by`, the suppressed rows' sums pass the rule. Returns
    (secondary count, replay mismatches)."""
    answers = defaultdict(dict)
    for key in expected.keys() & theirs.keys():
        indicator, cohort, by, group = key
        if by != "national":
            answers[(indicator, cohort, by)][group] = expected[key]
    secondary = 0
    replay_mismatches = []
    for (indicator, cohort, by), rows in sorted(answers.items()):
        suppressed = {g for g in rows if theirs[(indicator, cohort, by, g)]["suppressed"]}
        secondary += sum(1 for g in suppressed if not fails_rule(*rows[g], threshold))
        n = sum(rows[g][0] for g in suppressed)
        d = sum(rows[g][1] or 0 for g in suppressed)
        if (suppressed and fails_rule(n, d, threshold) and len(suppressed) < len(rows)
                and not total_fails(rows, threshold)):
            differences.append(f"{indicator} {cohort} by {by}: suppressed rows sum to n={n} d={d}, "
                               f"which fails the rule (groups {sorted(suppressed)})")
        want = replay_secondary(rows, threshold)
        if want != suppressed:
            replay_mismatches.append(
                f"{indicator} {cohort} by {by}: secondary replay suppresses {sorted(want - suppressed)} "
                f"more and {sorted(suppressed - want)} fewer than vaxlake")
    notes.append(f"secondary suppressions (suppressed rows passing the primary rule): {secondary}")
    return secondary, replay_mismatches


def compare(expected, theirs, threshold, strict_secondary):
    """All checks; returns (differences, notes)."""
    differences, notes = [], []
    for key in sorted(expected.keys() - theirs.keys()):
        differences.append(f"{fmt(key)}: missing from vaxlake (expected n={expected[key][0]} "
                           f"d={expected[key][1]})")
    for key in sorted(theirs.keys() - expected.keys()):
        differences.append(f"{fmt(key)}: vaxlake row not expected")
    for key in sorted(expected.keys() & theirs.keys()):
        compare_row(key, expected[key], theirs[key], threshold, differences)
    _, replay = check_secondary(expected, theirs, threshold, differences, notes)
    notes.append(f"secondary-suppression replay of the spec: {len(replay)} answers differ"
                 + ("" if strict_secondary else " (not fatal without --strict-secondary)"))
    notes.extend("  " + r for r in replay[:MAX_LISTED])
    if strict_secondary:
        differences.extend(replay)
    return differences, notes


def dump(expected, threshold, path):
    """Writes the recomputed table as vaxlake's --all CSV would be (for debugging)."""
    answers = defaultdict(dict)
    for (indicator, cohort, by, group), cell in expected.items():
        answers[(indicator, cohort, by)][group] = cell
    suppressed = set()
    for (indicator, cohort, by), rows in answers.items():
        if by == "national":
            groups = {g for g, cell in rows.items() if fails_rule(*cell, threshold)}
        else:
            groups = replay_secondary(rows, threshold)
        suppressed |= {(indicator, cohort, by, g) for g in groups}
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for key in sorted(expected):
            n, d = expected[key]
            if key in suppressed:
                out.writerow([*key, "", "", "", "", "", "true", ""])
                continue
            low, high = wilson(n, d)
            out.writerow([*key, n, "" if d is None else d, coverage(n, d), low, high, "false",
                          ";".join(sorted(flags(n, d)))])


def summary(expected, theirs):
    shared = expected.keys() & theirs.keys()
    unsuppressed = sum(1 for k in shared if not theirs[k]["suppressed"])
    by_kind = defaultdict(int)
    for k in shared:
        by_kind[k[2]] += 1
    kinds = ", ".join(f"{b} {c}" for b, c in sorted(by_kind.items()))
    return (f"expected {len(expected)} rows, vaxlake {len(theirs)}, shared {len(shared)} "
            f"({kinds}); unsuppressed and compared: {unsuppressed}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--vaxlake-csv", required=True)
    parser.add_argument("--reference-dir", required=True)
    parser.add_argument("--threshold", type=int, default=8)
    parser.add_argument("--strict-secondary", action="store_true",
                        help="fail when vaxlake's suppressed set differs from a replay of the spec")
    parser.add_argument("--max-listed", type=int, default=MAX_LISTED,
                        help=f"differences to list (default {MAX_LISTED})")
    parser.add_argument("--dump-expected", metavar="FILE",
                        help="also write the recomputed table, in vaxlake's CSV format, to FILE")
    args = parser.parse_args()

    expected = expected_cells(connect(args.warehouse, args.reference_dir), args.reference_dir)
    if args.dump_expected:
        dump(expected, args.threshold, args.dump_expected)
    differences = []
    theirs = read_vaxlake(args.vaxlake_csv, differences)
    more, notes = compare(expected, theirs, args.threshold, args.strict_secondary)
    differences.extend(more)

    print("coverage_check: " + summary(expected, theirs))
    for note in notes:
        print("coverage_check: " + note)
    if differences:
        print(f"coverage_check: {len(differences)} differences; the first {args.max_listed}:")
        for d in differences[:args.max_listed]:
            print("  " + d)
        return 1
    print("coverage_check: vaxlake agrees with the DuckDB recomputation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
