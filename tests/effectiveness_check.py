#!/usr/bin/env python3
"""Independent cross-check of `vaxlake effectiveness --by age_band --format json`.

Recomputes the cohort-method strata of docs/effectiveness.md in DuckDB, straight from the
raw Delta tables `vaccinations`, `population` and `cases` and the reference CSVs, then the
per-band incidence rate ratios, the Mantel–Haenszel and crude estimates in Python, and
(with --vaxlake-json) compares them with vaxlake's answer. It shares no code or SQL with
vaxlake (neither sql/views/ nor the Rust engine is read): the Delta tables are opened with
the `deltalake` package only to list the Parquet files of their current version.

The definitions, as docs/effectiveness.md gives them:
  * doses: completed doses of a vaccine containing the antigen (sql/reference/vaccines.csv),
    given on or before `to` and on or after `doses_since` (for a seasonal antigen, one with
    a `season` indicator in indicators.csv, it defaults to the 1 September before `from`);
    doses on one day count once; a person's `dose`-th such day + `lag_days` is their
    protected day;
  * residents only: persons the `persons` table marks resident, vaccinated or notified;
    a person's person-time ends on the last day of their month of death;
  * bands: year(from) - birth_year (persons: birth month of their most recently recorded
    current event; cases: the case's own birth month; population: birth_year);
  * vaccinated person-days of a band: Σ (min(to, last day alive) - max(from, protected day)
    + 1) over resident persons protected on or before that; population person-days:
    residents of the band in the reference year nearest the period's middle (the earlier of
    two as near) × days of the period, less the days in the period after the death of
    residents who died on or after that year's 1 January; unvaccinated = population −
    vaccinated;
  * cases: episodes of residents' notifications with disease = code or LIKE code || '%':
    a notification within `episode_days` (90) of its episode's first onset joins it; an
    episode counts when its first onset is in the period (notifications are read from
    `episode_days` before `from`), hospitalised/died when any of its notifications is, for
    `outcome`; vaccinated iff the first onset is on or after the person's protected day;
  * IRR = (a/T1)/(b/T0), VE = 1 − IRR; 95 % interval exp(log IRR ± 1.959964·sqrt(1/a + 1/b))
    when both a and b are 10 or more, else exact: given n = a + b, a ~ Binomial(n, π) and
    Clopper–Pearson bounds on π (P(X >= a | π_L) = 0.025, P(X <= a | π_U) = 0.025, found here
    by bisection on the binomial sums, not from beta quantiles) become IRR = π/(1 − π)·T0/T1;
    a = 0 or b = 0 (not both): no IRR or VE, only the one finite bound;
  * Mantel–Haenszel over the bands with the Greenland–Robins variance, the withheld bands
    entering as one merged stratum; with no vaccinated (or unvaccinated) case in any band,
    the exact stratified one-sided bound (Π (1 − π_k)^n_k = 0.025, resp. Π π_k^n_k, by
    bisection); crude pools them;
  * no estimate when a = b = 0, T1 <= 0 or T0 <= 0 (T1 > population);
  * withheld bands: those with a or b in 1..threshold − 1, then (complementary suppression)
    while the withheld bands' summed a or b is in 1..threshold − 1, the not-yet-withheld band
    with cases having the fewest cases (then vaccinated cases, then band order); bands
    without a case never take part. Pooled counts withheld when pooled a or b is small.
    Withheld: counts, person-days, VE, interval and IRR null;
  * screening: PCV = a/(a + b), PPV = persons protected on `from` (their protected day on or
    before it) over the band's residents — coverage, not person-time; no estimate when no
    case is vaccinated, every case is, or PPV is 0 or 1.

Interpretations where the document leaves room (change them here if the spec says
otherwise; each is reported on a disagreement): the middle of the period is
from + floor((to − from) / 2) days; the 1 September "before" a `from` that is itself a
1 September is that day; the Mantel–Haenszel sums run over the bands with population
person-time (T > 0) and no more vaccinated person-time than the band holds; the overall and
crude estimates refuse (no estimate) when some band has more vaccinated person-time than
residents; the screening method gives nothing where the counts are withheld; cases and
persons outside every band (born after the year of `from`) are left out of every figure.

Checks with --vaxlake-json: the same set of bands; per band and for `overall` and `crude`:
the four counts exactly (null when withheld), `suppressed`, VE, its interval and the IRR
within 1e-4 (null on both sides or on neither), `interval_method`, the screening method's
PCV, PPV and VE per band and pooled (top-level `screening`) likewise (PPV not compared
where there are no cases), the population source year, `definition_version` 2. Exit 0 when
everything agrees, 1 with the differences otherwise.

Usage:
  effectiveness_check.py --warehouse DIR --antigen influenza --disease J1
                         --from 2024-10-01 --to 2025-04-30 [--lag-days 14] [--dose 1]
                         [--outcome any|hospitalised|died] [--doses-since DATE]
                         [--threshold 8] [--vaxlake-json FILE] [--threads N]
"""

import argparse
import datetime as dt
import json
import math
import os
import sys
import time

import duckdb

Z = 1.959964
TOLERANCE = 1e-4
BANDS = ["0-4", "5-17", "18-64", "65-74", "75-84", "85+"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REFERENCE = os.path.join(ROOT, "sql", "reference")

# Age in whole years reached in the year of `from` -> band (NULL: outside every band).
BAND_SQL = """
CASE WHEN {age} < 0 THEN NULL
     WHEN {age} <= 4 THEN '0-4'
     WHEN {age} <= 17 THEN '5-17'
     WHEN {age} <= 64 THEN '18-64'
     WHEN {age} <= 74 THEN '65-74'
     WHEN {age} <= 84 THEN '75-84'
     ELSE '85+' END"""

# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def table_files(warehouse, name):
    """Parquet files of the current version of the Delta table `<warehouse>/<name>`."""
    from deltalake import DeltaTable

    files = DeltaTable(os.path.join(warehouse, name)).file_uris()
    if not files:
        raise SystemExit(f"effectiveness_check: table {name} has no data files")
    return files


def sql_list(items):
    return "[" + ", ".join("'" + str(s).replace("'", "''") + "'" for s in items) + "]"


def lit(s):
    return "'" + str(s).replace("'", "''") + "'"


def connect(warehouse, reference_dir, threads=None):
    return connect_files(table_files(warehouse, "vaccinations"), table_files(warehouse, "population"),
                         table_files(warehouse, "cases"), reference_dir, threads,
                         persons=table_files(warehouse, "persons"))


def connect_files(vacc, pop, cases, reference_dir, threads=None, persons=None):
    """A DuckDB connection with the raw inputs as views (vacc, pop, cases, residents: the
    resident rows of `persons`) and the reference tables vaccine_antigens (one row per ATC
    code and antigen) and seasonal (antigens with a `season` indicator)."""
    if not persons:
        raise SystemExit("effectiveness_check: the persons table's files are needed (residence)")
    con = duckdb.connect()
    con.execute(f"""CREATE VIEW residents AS
        SELECT person_key, birth_month, deceased_month, last_day(deceased_month) AS last_alive
        FROM read_parquet({sql_list(persons)}) WHERE resident""")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW vacc AS SELECT * FROM read_parquet({sql_list(vacc)}, hive_partitioning = true)")
    con.execute(f"CREATE VIEW pop AS SELECT * FROM read_parquet({sql_list(pop)})")
    con.execute(f"CREATE VIEW cases AS SELECT * FROM read_parquet({sql_list(cases)})")
    ref = lambda name: lit(os.path.join(reference_dir, name))  # noqa: E731
    con.execute(f"""
        CREATE TEMP TABLE vaccine_antigens AS
        SELECT DISTINCT trim(atc_code) AS atc_code, trim(a.antigen) AS antigen
        FROM read_csv({ref('vaccines.csv')}, header = true, all_varchar = true) v,
             unnest(string_split(v.antigens, ';')) AS a(antigen)
        WHERE trim(a.antigen) <> ''""")
    con.execute(f"""
        CREATE TEMP TABLE seasonal AS
        SELECT DISTINCT trim(antigen) AS antigen
        FROM read_csv({ref('indicators.csv')}, header = true, all_varchar = true)
        WHERE trim(kind) = 'season'""")
    return con


# --------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------


def day(s):
    return dt.date.fromisoformat(s)


def resolve(con, p):
    """Fills in doses_since (seasonal default) and checks the parameters."""
    p = dict(p)
    if p["to"] < p["from"]:
        raise SystemExit("effectiveness_check: --to before --from")
    if p.get("doses_since") is None:
        seasonal = {r[0] for r in con.execute("SELECT antigen FROM seasonal").fetchall()}
        if p["antigen"] in seasonal:
            f = p["from"]
            year = f.year if (f.month, f.day) >= (9, 1) else f.year - 1
            p["doses_since"] = dt.date(year, 9, 1)
    return p


def population_year(con, p):
    """The reference year nearest the period's middle; of two as near, the earlier."""
    years = sorted(r[0] for r in con.execute(
        "SELECT DISTINCT reference_year FROM pop WHERE reference_year IS NOT NULL").fetchall())
    if not years:
        return None
    middle = (p["from"] + dt.timedelta(days=(p["to"] - p["from"]).days // 2)).year
    return min(years, key=lambda y: (abs(y - middle), y))


def episodes(notifications, window):
    """[(onset, hospitalised, died)] sorted by onset → the episodes' (first onset, any
    hospitalised, any died): a notification within `window` days of the first onset of the
    episode in hand joins it (window 0: every notification is one)."""
    out = []
    for onset, hospitalised, died in notifications:
        if out and window > 0 and (onset - out[-1][0]).days <= window:
            first, h, d = out[-1]
            out[-1] = (first, h or hospitalised, d or died)
        else:
            out.append((onset, hospitalised, died))
    return out


# --------------------------------------------------------------------------------------
# The strata, in DuckDB SQL
# --------------------------------------------------------------------------------------


def strata(con, p):
    """Per band: cases vaccinated/unvaccinated, vaccinated person-days, residents, in
    DuckDB. Returns (bands dict, population year, details)."""
    frm, to = lit(p["from"].isoformat()), lit(p["to"].isoformat())
    since = f"AND v.administered_on >= DATE {lit(p['doses_since'].isoformat())}" if p.get("doses_since") else ""
    year_from = p["from"].year
    code = p["disease"]
    # Protected persons: the dose-th distinct day of the antigen in [doses_since, to], + lag.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE protected AS
        WITH d AS (
            SELECT DISTINCT v.person_key, v.administered_on
            FROM vacc v JOIN vaccine_antigens va ON va.atc_code = v.vaccine_atc
            WHERE v.status = 'completed' AND va.antigen = {lit(p['antigen'])}
              AND v.administered_on <= DATE {to} {since}),
        n AS (
            SELECT person_key, administered_on,
                   row_number() OVER (PARTITION BY person_key ORDER BY administered_on) AS seq
            FROM d)
        SELECT n.person_key, administered_on AS dose_day,
               CAST(administered_on + INTERVAL ({int(p['lag_days'])}) DAY AS DATE) AS protected_on,
               least(DATE {to}, coalesce(r.last_alive, DATE {to})) AS last_day
        FROM n JOIN residents r ON r.person_key = n.person_key
        WHERE seq = {int(p['dose'])}""")
    # A person's birth year: that of their most recently recorded current event.
    vacc_pd = con.execute(f"""
        WITH born AS (
            SELECT person_key, year(arg_max(birth_month, (recorded_at, event_key))) AS birth_year
            FROM (SELECT person_key, birth_month, event_key,
                         coalesce(recorded_at, TIMESTAMPTZ '0001-01-01 00:00:00+00') AS recorded_at
                  FROM vacc WHERE status <> 'entered-in-error'
                    AND person_key IN (SELECT person_key FROM protected))
            GROUP BY person_key)
        SELECT {BAND_SQL.format(age=f'{year_from} - b.birth_year')} AS band,
               count(*) AS persons,
               sum(date_diff('day', greatest(DATE {frm}, pr.protected_on), pr.last_day) + 1) AS person_days,
               count(*) FILTER (WHERE pr.protected_on <= DATE {frm}) AS protected_at_start
        FROM protected pr JOIN born b USING (person_key)
        WHERE greatest(DATE {frm}, pr.protected_on) <= pr.last_day
        GROUP BY ALL""").fetchall()
    # Residents' notifications from `episode_days` before `from`, made into episodes here.
    window = int(p.get("episode_days", 90))
    since_cases = lit((p["from"] - dt.timedelta(days=window)).isoformat())
    notified = con.execute(f"""
        SELECT c.person_key, {BAND_SQL.format(age=f'{year_from} - year(c.birth_month)')} AS band,
               c.onset_date, c.hospitalised, c.died, pr.protected_on
        FROM cases c JOIN residents r ON r.person_key = c.person_key
        LEFT JOIN protected pr ON pr.person_key = c.person_key
        WHERE (c.disease = {lit(code)} OR starts_with(c.disease, {lit(code)}))
          AND c.onset_date BETWEEN DATE {since_cases} AND DATE {to}
        ORDER BY c.person_key, c.onset_date""").fetchall()
    by_person = {}
    for person, band, onset, hospitalised, died, protected_on in notified:
        entry = by_person.setdefault(person, (band, protected_on, []))
        entry[2].append((onset, bool(hospitalised), bool(died)))
    counted = {}
    for band, protected_on, notes in by_person.values():
        for onset, hospitalised, died in episodes(sorted(notes), window):
            keep = {"any": True, "hospitalised": hospitalised, "died": died}[p["outcome"]]
            if not keep or onset < p["from"] or onset > p["to"]:
                continue
            vaccinated = protected_on is not None and onset >= protected_on
            a, b = counted.get(band, (0, 0))
            counted[band] = (a + vaccinated, b + (not vaccinated))
    cases = [(band, a, b) for band, (a, b) in counted.items()]
    ref_year = population_year(con, p)
    # Residents who died on or after the reference date and before `to`: their days in the
    # period after the month of death leave the population's person-time.
    after_death = con.execute(f"""
        SELECT {BAND_SQL.format(age=f'{year_from} - year(r.birth_month)')} AS band,
               sum(date_diff('day', greatest(DATE {frm}, r.last_alive + 1), DATE {to}) + 1)
        FROM residents r
        WHERE r.deceased_month >= make_date({ref_year if ref_year is not None else 0}, 1, 1)
          AND r.last_alive < DATE {to}
        GROUP BY ALL""").fetchall() if ref_year is not None else []
    residents = con.execute(f"""
        SELECT {BAND_SQL.format(age=f'{year_from} - birth_year')} AS band, sum(count) AS residents
        FROM pop WHERE reference_year = {ref_year if ref_year is not None else 'NULL'}
        GROUP BY ALL""").fetchall()
    days = (p["to"] - p["from"]).days + 1
    bands = {b: {"cases_vaccinated": 0, "cases_unvaccinated": 0, "person_days_vaccinated": 0,
                 "residents": 0, "vaccinated_persons": 0, "protected_at_start": 0} for b in BANDS}
    outside = {"cases": 0, "protected_persons": 0, "residents": 0}
    for band, persons, pd, at_start in vacc_pd:
        if band is None:
            outside["protected_persons"] += persons
            continue
        bands[band]["person_days_vaccinated"] += int(pd)
        bands[band]["vaccinated_persons"] += persons
        bands[band]["protected_at_start"] += at_start
    for band, a, b in cases:
        if band is None:
            outside["cases"] += a + b
            continue
        bands[band]["cases_vaccinated"] += a
        bands[band]["cases_unvaccinated"] += b
    for band, n in residents:
        if band is None:
            outside["residents"] += int(n)
            continue
        bands[band]["residents"] += int(n)
    dead_days = {band: int(n) for band, n in after_death if band is not None}
    for band, s in bands.items():
        s["person_days"] = s["residents"] * days - dead_days.get(band, 0)
        s["person_days_unvaccinated"] = s["person_days"] - s["person_days_vaccinated"]
    return bands, ref_year, {"days": days, "outside_every_band": outside}


# --------------------------------------------------------------------------------------
# Estimates, in Python
# --------------------------------------------------------------------------------------


def fails(n, threshold):
    return 1 <= n <= threshold - 1


def binomial(k, n, p):
    """P(X = k) for X ~ Binomial(n, p), in log space: C(n, k) alone overflows a float once
    n is in the thousands (the unvaccinated cases of a national season)."""
    if p <= 0.0:
        return 1.0 if k == 0 else 0.0
    if p >= 1.0:
        return 1.0 if k == n else 0.0
    log = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
           + k * math.log(p) + (n - k) * math.log1p(-p))
    return math.exp(log)


def bisect(f, target, lo, hi, increasing, steps=200):
    """x in [lo, hi] where the monotone f crosses target."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def exact(a, b, t1, t0):
    """(irr, low, high): the conditional binomial interval with Clopper–Pearson bounds."""
    n = a + b
    to_irr = lambda p: p / (1 - p) * t0 / t1  # noqa: E731
    low = high = None
    if a > 0:
        low = to_irr(bisect(lambda p: sum(binomial(k, n, p) for k in range(a, n + 1)), 0.025, 0.0, 1.0, True))
    if b > 0:
        high = to_irr(bisect(lambda p: sum(binomial(k, n, p) for k in range(0, a + 1)), 0.025, 0.0, 1.0, False))
    irr = (a / t1) / (b / t0) if a > 0 and b > 0 else None
    return irr, low, high


def rate_ratio(a, b, t1, t0):
    """(irr, low, high, reason, method) of the per-band (or crude) estimate."""
    if t1 <= 0:
        return None, None, None, "no vaccinated person-time", None
    if t0 < 0:
        return None, None, None, "more vaccinated person-time than the population holds", None
    if t0 == 0:
        return None, None, None, "no unvaccinated person-time", None
    if a == 0 and b == 0:
        return None, None, None, "no cases", None
    if a < 10 or b < 10:
        irr, low, high = exact(a, b, t1, t0)
        one_sided = a == 0 or b == 0
        reason = ("no cases among the vaccinated" if a == 0 else "no cases among the unvaccinated") if one_sided else None
        return irr, low, high, reason, "exact_conditional_one_sided" if one_sided else "exact_conditional"
    irr = (a / t1) / (b / t0)
    se = math.sqrt(1 / a + 1 / b)
    return irr, math.exp(math.log(irr) - Z * se), math.exp(math.log(irr) + Z * se), None, "wald_log"


def withheld_bands(bands, threshold):
    """Primary, then complementary suppression across the bands; returns (set, pooled)."""
    counts = {name: (bands[name]["cases_vaccinated"], bands[name]["cases_unvaccinated"]) for name in BANDS}
    small = lambda a, b: fails(a, threshold) or fails(b, threshold)  # noqa: E731
    pooled = small(sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()))
    hidden = {name for name, (a, b) in counts.items() if a + b > 0 and small(a, b)}
    if pooled:
        return hidden, True
    while hidden and small(sum(counts[n][0] for n in hidden), sum(counts[n][1] for n in hidden)):
        candidates = [(counts[n][0] + counts[n][1], counts[n][0], BANDS.index(n), n)
                      for n in BANDS if n not in hidden and sum(counts[n]) > 0]
        if not candidates:
            break
        hidden.add(min(candidates)[3])
    return hidden, False


def stratified_bound(strata, no_vaccinated):
    """The exact one-sided IRR bound over strata when one group has no case anywhere."""
    def log_p(log_irr):
        total = 0.0
        for a, b, t1, t0 in strata:
            share = math.exp(log_irr) * t1 / (math.exp(log_irr) * t1 + t0)
            total += (a + b) * (math.log(1 - share) if no_vaccinated else math.log(share))
        return total
    # log P decreases in IRR with no vaccinated case, increases otherwise.
    return math.exp(bisect(log_p, math.log(0.025), -40.0, 40.0, not no_vaccinated))


def mantel_haenszel(bands, hidden):
    """(irr, low, high, reason, method) over the bands, the withheld ones merged into one."""
    if any(s["person_days_unvaccinated"] < 0 for s in bands.values()):
        return None, None, None, "more vaccinated person-time than the population holds", None
    keys = ("cases_vaccinated", "cases_unvaccinated", "person_days_vaccinated", "person_days_unvaccinated")
    strata = [tuple(bands[n][k] for k in keys) for n in BANDS if n not in hidden]
    if hidden:
        strata.append(tuple(sum(bands[n][k] for n in hidden) for k in keys))
    informative = [x for x in strata if x[2] > 0 and x[3] > 0]
    if not informative:
        return None, None, None, "no stratum has both vaccinated and unvaccinated person-time", None
    num = den = var = 0.0
    for a, b, t1, t0 in informative:
        t = t1 + t0
        num += a * t0 / t
        den += b * t1 / t
        var += (a + b) * t1 * t0 / (t * t)
    if num == 0 and den == 0:
        return None, None, None, "no cases", None
    if num == 0:
        return None, None, stratified_bound(informative, True), "no cases among the vaccinated", "exact_conditional_one_sided"
    if den == 0:
        return None, stratified_bound(informative, False), None, "no cases among the unvaccinated", "exact_conditional_one_sided"
    irr = num / den
    se = math.sqrt(var / (num * den))
    return irr, math.exp(math.log(irr) - Z * se), math.exp(math.log(irr) + Z * se), None, "greenland_robins"


def screening(a, b, vaccinated, residents, hide):
    if hide or a + b == 0:
        return {"pcv": None, "ppv": None, "ve": None}
    pcv = a / (a + b)
    ppv = vaccinated / residents if residents > 0 and vaccinated <= residents else None
    sve = None
    if ppv is not None and 0 < pcv < 1 and 0 < ppv < 1:
        sve = 1 - pcv / (1 - pcv) * (1 - ppv) / ppv
    return {"pcv": pcv, "ppv": ppv, "ve": sve}


def estimate(a, b, t1, t0, hide, irr_ci):
    irr, low, high, reason, method = irr_ci
    out = {"cases_vaccinated": a, "cases_unvaccinated": b,
           "person_days_vaccinated": t1, "person_days_unvaccinated": t0,
           "irr": irr, "ve": None if irr is None else 1 - irr,
           "ci_low": None if high is None else 1 - high, "ci_high": None if low is None else 1 - low,
           "interval_method": method, "suppressed": hide, "reason": reason}
    if hide:
        out.update(cases_vaccinated=None, cases_unvaccinated=None, person_days_vaccinated=None,
                   person_days_unvaccinated=None, irr=None, ve=None, ci_low=None, ci_high=None,
                   interval_method=None)
    return out


def coverage_withheld(bands, threshold):
    """The shared coverage rule on (protected at start, residents) per band, complementary
    against the pooled cell (smallest residents, then vaccinated, then band order)."""
    def fails_cell(n, d):
        return fails(n, threshold) or fails(d, threshold) or (d >= n and fails(d - n, threshold))
    cells = {name: (bands[name]["protected_at_start"], bands[name]["residents"]) for name in BANDS}
    total = (sum(c[0] for c in cells.values()), sum(c[1] for c in cells.values()))
    hidden = {name for name, (n, d) in cells.items() if fails_cell(n, d)}
    if fails_cell(*total):
        return hidden, True
    while hidden and fails_cell(sum(cells[n][0] for n in hidden), sum(cells[n][1] for n in hidden)):
        candidates = [(cells[n][1], cells[n][0], BANDS.index(n), n) for n in BANDS if n not in hidden]
        if not candidates:
            break
        hidden.add(min(candidates)[3])
    return hidden, False


def compute(con, p, threshold):
    p = resolve(con, p)
    bands, ref_year, details = strata(con, p)
    hidden, pooled_hidden = withheld_bands(bands, threshold)
    coverage_hidden, coverage_pooled_hidden = coverage_withheld(bands, threshold)
    rows = []
    for name in BANDS:
        s = bands[name]
        a, b = s["cases_vaccinated"], s["cases_unvaccinated"]
        t1, t0 = s["person_days_vaccinated"], s["person_days_unvaccinated"]
        hide = name in hidden
        row = estimate(a, b, t1, t0, hide, rate_ratio(a, b, t1, t0))
        row["screening"] = screening(a, b, s["protected_at_start"], s["residents"],
                                     hide)
        if name in coverage_hidden and not hide and a + b > 0:
            row["screening"] = {"pcv": row["screening"]["pcv"], "ppv": None, "ve": None}
        row["age_band"] = name
        row["residents"] = s["residents"]
        rows.append(row)
    a = sum(s["cases_vaccinated"] for s in bands.values())
    b = sum(s["cases_unvaccinated"] for s in bands.values())
    t1 = sum(s["person_days_vaccinated"] for s in bands.values())
    t0 = sum(s["person_days_unvaccinated"] for s in bands.values())
    crude_ci = rate_ratio(a, b, t1, t0)
    if any(s["person_days_unvaccinated"] < 0 for s in bands.values()):
        crude_ci = (None, None, None, "more vaccinated person-time than the population holds", None)
    pooled_screening = screening(a, b, sum(s["protected_at_start"] for s in bands.values()),
                                 sum(s["residents"] for s in bands.values()), pooled_hidden)
    if coverage_pooled_hidden and not pooled_hidden and a + b > 0:
        pooled_screening = {"pcv": pooled_screening["pcv"], "ppv": None, "ve": None}
    return {
        "method": "cohort",
        "antigen": p["antigen"], "disease": p["disease"],
        "from": p["from"].isoformat(), "to": p["to"].isoformat(),
        "lag_days": p["lag_days"], "dose": p["dose"], "outcome": p["outcome"],
        "doses_since": p["doses_since"].isoformat() if p.get("doses_since") else None,
        "population_reference_year": ref_year,
        "suppression_threshold": threshold,
        "overall": estimate(a, b, t1, t0, pooled_hidden, mantel_haenszel(bands, hidden if not pooled_hidden else set())),
        "crude": estimate(a, b, t1, t0, pooled_hidden, crude_ci),
        "screening": pooled_screening,
        "rows": rows,
        "details": details,
    }


# --------------------------------------------------------------------------------------
# Comparison with vaxlake's JSON
# --------------------------------------------------------------------------------------

COUNTS = ("cases_vaccinated", "cases_unvaccinated", "person_days_vaccinated", "person_days_unvaccinated")
FLOATS = ("ve", "ci_low", "ci_high", "irr")


def compare_screening(name, mine, theirs, differences):
    if not isinstance(theirs, dict):
        differences.append(f"{name}: screening missing from vaxlake's answer")
        return
    for field in ("pcv", "ppv", "ve"):
        want, got = mine[field], theirs.get(field)
        if field == "ppv" and mine["pcv"] is None:
            continue  # no cases: the screening method has nothing to say
        if (want is None) != (got is None) or (want is not None and abs(want - got) > TOLERANCE):
            differences.append(f"{name}: screening {field} vaxlake {got}, expected {want}")


def compare_estimate(name, mine, theirs, differences):
    if not isinstance(theirs, dict):
        differences.append(f"{name}: missing from vaxlake's answer")
        return
    if bool(theirs.get("suppressed")) != mine["suppressed"]:
        differences.append(f"{name}: vaxlake suppressed={theirs.get('suppressed')}, expected {mine['suppressed']} "
                           f"(counts would be a={mine['cases_vaccinated']} b={mine['cases_unvaccinated']})")
    for field in COUNTS:
        want, got = mine[field], theirs.get(field)
        if want != got:
            differences.append(f"{name}: {field} vaxlake {got}, expected {want}")
    for field in FLOATS:
        want, got = mine[field], theirs.get(field)
        if want is None or got is None:
            if (want is None) != (got is None):
                differences.append(f"{name}: {field} vaxlake {got}, expected {want}"
                                   + (f" ({mine['reason']})" if mine.get("reason") else "")
                                   + (f" (vaxlake's reason: {theirs.get('reason')})" if theirs.get("reason") else ""))
        elif abs(want - got) > TOLERANCE:
            differences.append(f"{name}: {field} vaxlake {got}, expected {want}")
    if theirs.get("interval_method") != mine["interval_method"]:
        differences.append(f"{name}: interval_method vaxlake {theirs.get('interval_method')}, "
                           f"expected {mine['interval_method']}")
    if "screening" in mine:
        compare_screening(name, mine["screening"], theirs.get("screening"), differences)


def compare(mine, theirs):
    differences = []
    for field in ("antigen", "disease", "from", "to", "lag_days", "dose", "outcome"):
        if field in theirs and theirs[field] != mine[field]:
            differences.append(f"parameter {field}: vaxlake answered for {theirs[field]!r}, checked {mine[field]!r}")
    source = json.dumps(theirs.get("population_source"))
    if mine["population_reference_year"] is not None and str(mine["population_reference_year"]) not in source:
        differences.append(f"population_source {source} does not name reference year "
                           f"{mine['population_reference_year']}")
    if theirs.get("definition_version") != 2:
        differences.append(f"definition_version vaxlake {theirs.get('definition_version')}, checked 2")
    compare_estimate("overall", mine["overall"], theirs.get("overall"), differences)
    compare_screening("pooled", mine["screening"], theirs.get("screening"), differences)
    compare_estimate("crude", mine["crude"], theirs.get("crude"), differences)
    got = {r.get("age_band"): r for r in theirs.get("rows") or []}
    want = {r["age_band"]: r for r in mine["rows"]}
    for band in sorted(set(got) - set(want), key=str):
        differences.append(f"band {band}: vaxlake row not expected")
    for band in BANDS:
        if band not in got:
            differences.append(f"band {band}: missing from vaxlake's rows")
            continue
        compare_estimate(f"band {band}", want[band], got[band], differences)
    return differences


# --------------------------------------------------------------------------------------


def params_from(args):
    return {"antigen": args.antigen, "disease": args.disease, "from": day(args.from_),
            "to": day(args.to), "lag_days": args.lag_days, "dose": args.dose, "outcome": args.outcome,
            "doses_since": day(args.doses_since) if args.doses_since else None,
            "episode_days": args.episode_days}


def table(result):
    lines = [f"{'band':>6} {'a':>8} {'b':>8} {'T1 (days)':>14} {'T0 (days)':>14} {'VE':>8} {'95% CI':>18}"]

    def line(name, r):
        def f(x, spec):
            return "—" if x is None else format(x, spec)
        # One bound only when a group has no case (VE at least ci_low, or at most ci_high).
        ci = f"{f(r['ci_low'], '.3f')}..{f(r['ci_high'], '.3f')}"
        lines.append(f"{name:>6} {f(r['cases_vaccinated'], 'd'):>8} {f(r['cases_unvaccinated'], 'd'):>8} "
                     f"{f(r['person_days_vaccinated'], ',d'):>14} {f(r['person_days_unvaccinated'], ',d'):>14} "
                     f"{f(r['ve'], '.4f'):>8} {ci:>18}" + (f"  ({r['reason']})" if r.get("reason") else "")
                     + ("  suppressed" if r["suppressed"] else ""))
    for r in result["rows"]:
        line(r["age_band"], r)
    line("MH", result["overall"])
    line("crude", result["crude"])
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--reference-dir", default=DEFAULT_REFERENCE)
    ap.add_argument("--antigen", required=True)
    ap.add_argument("--disease", required=True)
    ap.add_argument("--from", dest="from_", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--lag-days", type=int, default=14)
    ap.add_argument("--dose", type=int, default=1)
    ap.add_argument("--outcome", choices=["any", "hospitalised", "died"], default="any")
    ap.add_argument("--doses-since")
    ap.add_argument("--episode-days", type=int, default=90)
    ap.add_argument("--by", choices=["age_band"], default="age_band")
    ap.add_argument("--threshold", "--suppression-threshold", type=int, default=None,
                    help="suppression threshold (default: vaxlake's `suppression_threshold`, else 8)")
    ap.add_argument("--vaxlake-json", metavar="FILE", help="vaxlake's answer to compare with")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--quiet", action="store_true", help="no table on stderr")
    args = ap.parse_args()

    theirs = None
    if args.vaxlake_json:
        with open(args.vaxlake_json, encoding="utf-8") as f:
            theirs = json.load(f)
    threshold = args.threshold
    if threshold is None:
        threshold = int(theirs.get("suppression_threshold", 8)) if theirs else 8

    started = time.perf_counter()
    con = connect(args.warehouse, args.reference_dir, args.threads)
    mine = compute(con, params_from(args), threshold)
    mine["details"]["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(mine, indent=1))
    if not args.quiet:
        print(table(mine), file=sys.stderr)
    if theirs is None:
        return 0
    differences = compare(mine, theirs)
    if differences:
        print(f"effectiveness_check: {len(differences)} differences with vaxlake:", file=sys.stderr)
        for d in differences:
            print("  " + d, file=sys.stderr)
        return 1
    print("effectiveness_check: vaxlake agrees with the DuckDB recomputation "
          f"(6 bands, overall and crude; population {mine['population_reference_year']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
