#!/usr/bin/env python3
"""Fires statements through the Flight SQL door (ADBC) and the PostgreSQL door (psycopg),
one at a time, and writes what each door answered, for tests/sql_doors.rs to compare with
`/api/sql`'s answers.

Usage: doors_corpus.py CONFIG.json STATEMENTS.json OUT.json
  CONFIG: {"flight": "grpc://...", "pg_host", "pg_port", "name", "token"}
  STATEMENTS: [{"line": N, "sql": "..."}, ...]
  OUT: [{"line": N, "door": "flight"|"postgres", "ok": bool, "rows": N, "error": "..."}]
"""

import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import psycopg

AUTH_HEADER = adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value


def flight_connection(config):
    return flight_sql.connect(
        config["flight"],
        db_kwargs={AUTH_HEADER: f"Bearer {config['token']}"},
        autocommit=True,
    )


def pg_connection(config):
    return psycopg.connect(
        host=config["pg_host"],
        port=config["pg_port"],
        dbname="vaxlake",
        user=config["name"],
        password=config["token"],
        sslmode="disable",
        autocommit=True,
        connect_timeout=10,
    )


def fire_flight(conn, sql):
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetch_arrow_table().num_rows


def fire_pg(conn, sql):
    with conn.cursor() as cursor:
        # Without parameters psycopg sends the text as it is (no % placeholders read).
        cursor.execute(sql)
        return len(cursor.fetchall()) if cursor.description else 0


def main():
    config = json.load(open(sys.argv[1]))
    statements = json.load(open(sys.argv[2]))
    results = []
    doors = {
        "flight": (flight_connection, fire_flight),
        "postgres": (pg_connection, fire_pg),
    }
    for door, (connect, fire) in doors.items():
        conn = connect(config)
        for statement in statements:
            try:
                rows = fire(conn, statement["sql"])
                results.append({"line": statement["line"], "door": door, "ok": True, "rows": rows})
            except Exception as error:  # every refusal, whatever the driver's class
                results.append(
                    {"line": statement["line"], "door": door, "ok": False, "error": str(error)}
                )
                # A door may close the connection on a fatal error; start afresh.
                try:
                    conn.close()
                except Exception:
                    pass
                conn = connect(config)
        conn.close()
    json.dump(results, open(sys.argv[3], "w"))


if __name__ == "__main__":
    main()
