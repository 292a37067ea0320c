#!/usr/bin/env python3
"""Arrow Flight SQL door, driven by the clients analysts use: ADBC's Flight SQL driver
(`adbc-driver-flightsql` with `adbc-driver-manager`'s DB-API) and polars on top of it.

Every answer is compared with the HTTP API's Arrow answer of the same query
(`POST /api/sql`, `Accept: application/vnd.apache.arrow.stream`): same columns, same
types, same values.

Usage: flight_check.py CONFIG.json
       flight_check.py --tls CONFIG.json   (CONFIG: {"flight": "grpc+tls://localhost:P",
                                            "token": ..., "cert": PEM file})
  CONFIG: {"flight": "grpc://127.0.0.1:P", "http": "http://127.0.0.1:Q",
           "analyst": {"name": ..., "token": ...}, "ministry": {...}, "max_rows": N}

Exit status 0 when every check holds; the first failure is printed otherwise.
"""

import json
import sys
import urllib.request

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import polars as pl
import pyarrow as pa
import pyarrow.ipc

AUTH_HEADER = adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value
TYPED = """
SELECT event_key, person_key, administered_on, recorded_at, age_months_at_dose,
       CAST(age_months_at_dose AS DOUBLE) / 12 AS age_years, sex,
       status = 'completed' AS completed, make_array(dose_number_recorded, 1) AS numbers
FROM vaccinations ORDER BY event_key LIMIT 200
"""


def connect(config, **db_kwargs):
    return flight_sql.connect(config["flight"], db_kwargs=db_kwargs, autocommit=True)


def bearer(config, who):
    return connect(config, **{AUTH_HEADER: f"Bearer {config[who]['token']}"})


def http_arrow(config, sql, token):
    request = urllib.request.Request(
        config["http"] + "/api/sql",
        data=json.dumps({"sql": sql}).encode(),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/vnd.apache.arrow.stream",
            "Authorization": f"Bearer {token}",
        },
    )
    with urllib.request.urlopen(request) as answer:
        return pa.ipc.open_stream(answer.read()).read_all()


def fetch(conn, sql):
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetch_arrow_table()


def execute_update(conn, sql):
    """A statement sent as an update (Flight SQL's DoPut), as JDBC's executeUpdate does."""
    statement = adbc_driver_manager.AdbcStatement(conn.adbc_connection)
    try:
        statement.set_sql_query(sql)
        return statement.execute_update()
    finally:
        statement.close()


def same(name, flight, http):
    if flight.schema != http.schema:
        raise SystemExit(f"{name}: schemas differ\nflight: {flight.schema}\nhttp:   {http.schema}")
    if not flight.equals(http):
        raise SystemExit(f"{name}: values differ\nflight: {flight.slice(0, 3)}\nhttp: {http.slice(0, 3)}")
    print(f"ok  {name}: {flight.num_rows} rows, {flight.num_columns} columns agree with HTTP")


def refused(name, action, *words):
    try:
        action()
    except Exception as error:  # the DB-API error classes differ by status
        text = str(error)
        missing = [word for word in words if word not in text]
        if missing:
            raise SystemExit(f"{name}: refused, but the reason lacks {missing}: {text}")
        print(f"ok  {name}: refused ({type(error).__name__}): {text.splitlines()[0][:160]}")
        return
    raise SystemExit(f"{name}: answered, wanted a refusal")


def tls(config):
    """Over TLS, verified against the server's certificate; plaintext is not answered."""
    pem = open(config["cert"]).read()
    options = {
        AUTH_HEADER: f"Bearer {config['token']}",
        adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value: pem,
    }
    with flight_sql.connect(config["flight"], db_kwargs=options, autocommit=True) as conn:
        rows = fetch(conn, "SELECT 42 AS answer")
        if rows.column(0).to_pylist() != [42]:
            raise SystemExit(f"over TLS: {rows}")
    print("ok  Flight SQL over TLS, verified against the server's certificate")
    plain = config["flight"].replace("grpc+tls://", "grpc://")
    refused(
        "plaintext to the TLS door",
        lambda: fetch(flight_sql.connect(plain, db_kwargs={AUTH_HEADER: f"Bearer {config['token']}"},
                                         autocommit=True), "SELECT 1"),
    )


def main():
    if sys.argv[1] == "--tls":
        tls(json.load(open(sys.argv[2])))
        return
    config = json.load(open(sys.argv[1]))
    token = config["analyst"]["token"]
    max_rows = config["max_rows"]

    with bearer(config, "analyst") as conn:
        for sql in ["SELECT count(*) AS doses FROM vaccinations", TYPED]:
            same(sql.split()[1], fetch(conn, sql), http_arrow(config, sql, token))
        types = {f.name: f.type for f in fetch(conn, TYPED).schema}
        wanted = {
            "administered_on": pa.date32(),
            "age_months_at_dose": pa.int32(),
            "age_years": pa.float64(),
            "completed": pa.bool_(),
        }
        for column, kind in wanted.items():
            if types[column] != kind:
                raise SystemExit(f"{column} arrived as {types[column]}, wanted {kind}")
        if not pa.types.is_timestamp(types["recorded_at"]) or not pa.types.is_list(types["numbers"]):
            raise SystemExit(f"recorded_at or numbers arrived as {types}")
        print("ok  date, timestamp, integer, float, text, boolean and list columns keep their types")

        # More rows than the cap: exactly the cap arrives, streamed.
        rows = fetch(conn, f"SELECT value FROM generate_series(1, {10 * max_rows}) AS t(value)")
        if rows.num_rows != max_rows:
            raise SystemExit(f"the row cap let {rows.num_rows} rows through, cap {max_rows}")
        print(f"ok  a result past the row cap stops at {max_rows} rows")

        # A prepared statement (what JDBC and ADBC's prepare do).
        with conn.cursor() as cursor:
            cursor.adbc_prepare("SELECT count(*) AS doses FROM vaccinations")
            cursor.execute("SELECT count(*) AS doses FROM vaccinations")
            prepared = cursor.fetch_arrow_table()
        same("prepared statement", prepared, http_arrow(config, "SELECT count(*) AS doses FROM vaccinations", token))

        # polars on the ADBC connection.
        frame = pl.read_database("SELECT sex, count(*) AS doses FROM vaccinations GROUP BY sex ORDER BY sex", connection=conn)
        http = pl.from_arrow(http_arrow(config, "SELECT sex, count(*) AS doses FROM vaccinations GROUP BY sex ORDER BY sex", token))
        if not frame.equals(http):
            raise SystemExit(f"polars over Flight SQL: {frame} != {http}")
        print(f"ok  polars.read_database over ADBC: {frame.height} rows agree with HTTP")

        refused("DDL", lambda: fetch(conn, "DROP TABLE vaccinations"), "refused:", "DROP TABLE")
        refused("DML", lambda: fetch(conn, "DELETE FROM vaccinations"), "refused:", "DELETE")
        refused("DML as an update call", lambda: execute_update(conn, "DELETE FROM vaccinations"), "refused:", "DELETE")

    # The auth file's name and the token as password (Basic, then the handshake's bearer).
    with connect(config, username=config["analyst"]["name"], password=token) as conn:
        count = fetch(conn, "SELECT count(*) AS doses FROM vaccinations")
        same("user name and token as password", count, http_arrow(config, "SELECT count(*) AS doses FROM vaccinations", token))

    refused("a wrong token", lambda: fetch(connect(config, **{AUTH_HEADER: "Bearer vxl_" + "0" * 64}), "SELECT 1"), "not valid")
    refused("no token", lambda: fetch(connect(config), "SELECT 1"), "token")
    refused("another user's name", lambda: fetch(connect(config, username=config["ministry"]["name"], password=token), "SELECT 1"), "not valid")
    refused("the ministry role", lambda: fetch(bearer(config, "ministry"), "SELECT 1"), "ministry", "may not run SQL")


if __name__ == "__main__":
    main()
