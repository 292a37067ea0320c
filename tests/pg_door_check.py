#!/usr/bin/env python3
"""The PostgreSQL door driven by psycopg 3 (PyPI): the extended query protocol with
parameters, server-side cursors, the column types, and the refusals. Answers are compared
with the HTTP API's JSON answers of the same query.

Usage: pg_door_check.py CONFIG.json
  CONFIG: {"host": ..., "port": P, "http": "http://127.0.0.1:Q",
           "analyst": {"name", "token"}, "ministry": {...}, "sslmode": "disable"|"require",
           "max_rows": N}

Exit status 0 when every check holds; the first failure is printed otherwise.
"""

import datetime
import json
import sys
import urllib.request

import psycopg


def connect(config, who, password=None, **extra):
    user = config[who]
    return psycopg.connect(
        host=config["host"],
        port=config["port"],
        dbname="vaxlake",
        user=user["name"],
        password=user["token"] if password is None else password,
        sslmode=config["sslmode"],
        connect_timeout=10,
        **extra,
    )


def http_rows(config, sql):
    request = urllib.request.Request(
        config["http"] + "/api/sql",
        data=json.dumps({"sql": sql}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config['analyst']['token']}",
        },
    )
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["rows"]


def refused(name, action, *words):
    try:
        action()
    except psycopg.Error as error:
        text = str(error)
        missing = [w for w in words if w not in text]
        if missing:
            raise SystemExit(f"{name}: refused, but the reason lacks {missing}: {text}")
        print(f"ok  {name}: {type(error).__name__}: {text.splitlines()[0][:160]}")
        return
    raise SystemExit(f"{name}: answered, wanted a refusal")


def main():
    config = json.load(open(sys.argv[1]))
    with connect(config, "analyst") as conn:
        with conn.cursor() as cur:
            # Parameters through the extended protocol, as psycopg sends them.
            cur.execute(
                "SELECT count(*) FROM vaccinations WHERE sex = %s AND administered_on >= %s",
                ("female", datetime.date(2020, 1, 1)),
            )
            (count,) = cur.fetchone()
            expected = http_rows(
                config,
                "SELECT count(*) FROM vaccinations WHERE sex = 'female' AND administered_on >= DATE '2020-01-01'",
            )[0][0]
            if count != expected:
                raise SystemExit(f"parameters: {count} != HTTP {expected}")
            print(f"ok  parameters (text and date): {count} rows, as HTTP")

            # A quote in a parameter stays a value.
            cur.execute("SELECT %s::text AS v", ("it's'; DROP TABLE vaccinations; --",))
            if cur.fetchone()[0] != "it's'; DROP TABLE vaccinations; --":
                raise SystemExit("a quoted parameter came back changed")
            print("ok  a parameter holding quotes and SQL is a value")

            # Types arrive as PostgreSQL's.
            cur.execute(
                "SELECT administered_on, recorded_at, age_months_at_dose, "
                "CAST(age_months_at_dose AS DOUBLE) / 12 AS years, sex, "
                "status = 'completed' AS completed, make_array(1, 2) AS numbers "
                "FROM vaccinations ORDER BY event_key LIMIT 1"
            )
            row = cur.fetchone()
            kinds = [type(v).__name__ for v in row]
            want = ["date", "datetime", "int", "float", "str", "bool", "list"]
            if kinds != want:
                raise SystemExit(f"types {kinds}, wanted {want}: {row}")
            print(f"ok  types: {kinds}")

        # A server-side cursor (DECLARE / FETCH / CLOSE in a transaction).
        with conn.transaction():
            with conn.cursor(name="doses") as cur:
                cur.itersize = 100
                cur.execute("SELECT event_key FROM vaccinations ORDER BY event_key")
                keys = [k for (k,) in cur]
        expected = [r[0] for r in http_rows(config, "SELECT event_key FROM vaccinations ORDER BY event_key")]
        if keys != expected[: len(keys)] or len(keys) != min(len(expected), config["max_rows"]):
            raise SystemExit(f"server-side cursor: {len(keys)} keys, HTTP {len(expected)}")
        print(f"ok  server-side cursor: {len(keys)} rows in batches of 100, as HTTP")

        with conn.cursor() as cur:
            cur.execute("SHOW transaction_read_only")
            if cur.fetchone()[0] != "on":
                raise SystemExit("transaction_read_only is not on")
            cur.execute("SET application_name = 'check'")
            cur.execute("SHOW application_name")
            print(f"ok  SET/SHOW answered: application_name = {cur.fetchone()[0]!r}")

    conn = connect(config, "analyst", autocommit=True)
    refused("DDL", lambda: conn.execute("DROP TABLE vaccinations"), "refused:", "DROP TABLE")
    refused("DML", lambda: conn.execute("DELETE FROM vaccinations"), "refused:", "DELETE")
    refused("COPY out", lambda: conn.execute("COPY (SELECT 1) TO STDOUT"), "COPY")
    refused("a file", lambda: conn.execute("SELECT * FROM '/etc/passwd'"), "refused:")
    conn.close()
    refused("a wrong password", lambda: connect(config, "analyst", password="vxl_" + "0" * 64), "password authentication failed")
    refused("an empty password", lambda: connect(config, "analyst", password=""), "password")
    refused("the ministry role", lambda: connect(config, "ministry"), "ministry", "may not run SQL")
    refused(
        "another database",
        lambda: psycopg.connect(host=config["host"], port=config["port"], dbname="postgres",
                                user=config["analyst"]["name"], password=config["analyst"]["token"],
                                sslmode=config["sslmode"]),
        "does not exist",
    )


if __name__ == "__main__":
    main()
