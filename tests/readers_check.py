#!/usr/bin/env python3
"""The warehouse's Delta tables read by other tools, untouched (issue 17, part 4).

Reads `vaccinations`, `persons` and `population` twice, once with the `deltalake` package
(to Arrow) and once with polars' own Delta reader, checks both see the same rows, and
computes one coverage figure in polars from them: FLU65 for one season, national (see
docs/coverage.md, "season"):

  numerator    residents born in or before `season - 65`, alive on 1 January `season + 1`
               (no month of death before it), with at least one completed dose of a vaccine
               containing influenza (sql/reference/vaccines.csv) given from 1 September
               `season` to 31 August `season + 1`;
  denominator  `population` of reference year `season + 1` (else the nearest year, the
               earlier of two as near), birth year <= `season - 65`.

`antigen_doses` is a view of the SQL door, not a stored table: a reader of the files gets
its antigens from the reference CSV, as here. Influenza has no dose rule in
sql/reference/dose_rules.csv, so every completed dose is valid.

Prints one JSON object {"numerator": N, "denominator": D, "rows": {...}}; the Rust test
compares it with the API's answer.

Usage: readers_check.py WAREHOUSE REFERENCE_DIR SEASON
"""

import csv
import datetime
import json
import os
import sys

import polars as pl
from deltalake import DeltaTable


def read_both(warehouse, name, columns):
    """The table read by deltalake and by polars, the same rows in both."""
    path = os.path.join(warehouse, name)
    by_deltalake = pl.from_arrow(
        DeltaTable(path).to_pyarrow_table(columns=columns)
    )
    by_polars = pl.read_delta(path, columns=columns)
    ordered = sorted(columns)
    a = by_deltalake.select(ordered).sort(ordered, nulls_last=True)
    b = by_polars.select(ordered).sort(ordered, nulls_last=True)
    if not a.equals(b):
        raise SystemExit(f"readers_check: deltalake and polars read {name} differently")
    return by_polars


def main():
    warehouse, reference, season = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(os.path.join(reference, "vaccines.csv"), newline="") as f:
        influenza = [
            row["atc_code"]
            for row in csv.DictReader(f)
            if "influenza" in row["antigens"].split(";")
        ]
    vaccinations = read_both(
        warehouse,
        "vaccinations",
        ["event_key", "person_key", "administered_on", "vaccine_atc", "status"],
    )
    persons = read_both(
        warehouse, "persons", ["person_key", "birth_month", "resident", "deceased_month"]
    )
    population = read_both(
        warehouse, "population", ["reference_year", "birth_year", "count"]
    )

    oldest_birth_year = season - 65
    new_year = datetime.date(season + 1, 1, 1)
    vaccinated = (
        vaccinations.filter(
            (pl.col("status") == "completed")
            & pl.col("vaccine_atc").is_in(influenza)
            & pl.col("administered_on").is_between(
                datetime.date(season, 9, 1), datetime.date(season + 1, 8, 31)
            )
        )
        .select("person_key")
        .unique()
    )
    counted = persons.filter(
        pl.col("resident")
        & (pl.col("birth_month").dt.year() <= oldest_birth_year)
        & (pl.col("deceased_month").is_null() | (pl.col("deceased_month") >= new_year))
    )
    numerator = vaccinated.join(counted, on="person_key", how="inner").height

    years = sorted(population["reference_year"].unique().to_list())
    year = min(years, key=lambda y: (abs(y - (season + 1)), y))
    denominator = int(
        population.filter(
            (pl.col("reference_year") == year)
            & (pl.col("birth_year") <= oldest_birth_year)
        )["count"].sum()
    )
    print(
        json.dumps(
            {
                "numerator": numerator,
                "denominator": denominator,
                "population_year": year,
                "rows": {
                    "vaccinations": vaccinations.height,
                    "persons": persons.height,
                    "population": population.height,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
