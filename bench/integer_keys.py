"""Integer-keyed worlds: clones and transfers with a rename, as ratios against what a user would otherwise run.

A store schema with serial and identity keys (customers, rentals referencing customers and a shared film
lookup, payments referencing rentals).
1. Clone: phoenix_world's from_template code (new keys from each table's sequence, recorded in phoenix.key_map,
   references rewritten through it) against hand-written INSERT ... SELECT statements with temporary key maps.
2. Transfer with a suffix into another database: phoenix_transfer's code against a raw binary COPY relay of
   the same rows (which keeps the source's keys, so it could not land next to rows with the same ids).

    .venv/bin/python bench/integer_keys.py [--runs 3] [--rows 100000] [--transfer-rows 1000000]
"""

from __future__ import annotations

import argparse
import os

import psycopg
from psycopg import sql

from common import median_seconds, run_child, throwaway_cluster, url
from report import write_section

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import load
from ansible_collections.phoenix.platform.plugins.module_utils._schema.ensure import SchemaRequest, ensure_schema
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.rows import copy_rows

SCHEMA = (
    "CREATE SCHEMA store",
    "CREATE TABLE store.film (film_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL)",
    "CREATE TABLE store.customer (customer_id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL, "
    "world_id text)",
    "CREATE INDEX ON store.customer (world_id)",
    "CREATE TABLE store.rental (rental_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "customer_id integer NOT NULL REFERENCES store.customer, film_id integer NOT NULL REFERENCES store.film, "
    "rented_at timestamptz NOT NULL)",
    "CREATE INDEX ON store.rental (customer_id)",
    "CREATE TABLE store.payment (payment_id serial PRIMARY KEY, rental_id bigint NOT NULL REFERENCES store.rental, "
    "amount numeric(6, 2) NOT NULL)",
    "CREATE INDEX ON store.payment (rental_id)",
    "INSERT INTO store.film (title) SELECT 'Film ' || i FROM generate_series(1, 100) i",
)
# A template world of n rows: 2 % customers, the rest rentals and one payment per rental.
FILL = (
    "INSERT INTO \"WorldMeta\" (id, name, environment, \"isTemplate\") VALUES ('TEMPLATE', 'T', 'LOCAL', true)",
    "INSERT INTO store.customer (name, email, world_id) SELECT 'Customer ' || i, 'c' || i || '@store.example', "
    "'TEMPLATE' FROM generate_series(1, %(customers)s) i",
    "INSERT INTO store.rental (customer_id, film_id, rented_at) SELECT c.customer_id, 1 + i %% 100, "
    "'2025-01-01'::timestamptz + i * interval '1 minute' FROM generate_series(1, %(rentals)s) i "
    "JOIN store.customer c ON c.customer_id = 1 + i %% %(customers)s",
    "INSERT INTO store.payment (rental_id, amount) SELECT rental_id, 2.50 FROM store.rental",
)
HAND_WRITTEN = (
    "CREATE TEMP TABLE map_customer AS SELECT customer_id AS old, nextval('store.customer_customer_id_seq') AS new "
    "FROM store.customer WHERE world_id = 'TEMPLATE'",
    "INSERT INTO store.customer (customer_id, name, email, world_id) SELECT m.new, c.name, c.email, 'CLONE' "
    "FROM store.customer c JOIN map_customer m ON m.old = c.customer_id",
    "CREATE TEMP TABLE map_rental AS SELECT r.rental_id AS old, nextval('store.rental_rental_id_seq') AS new "
    "FROM store.rental r JOIN map_customer c ON c.old = r.customer_id",
    "INSERT INTO store.rental (rental_id, customer_id, film_id, rented_at) OVERRIDING SYSTEM VALUE "
    "SELECT m.new, c.new, r.film_id, r.rented_at FROM store.rental r JOIN map_rental m ON m.old = r.rental_id "
    "JOIN map_customer c ON c.old = r.customer_id",
    "INSERT INTO store.payment (payment_id, rental_id, amount) SELECT nextval('store.payment_payment_id_seq'), "
    "m.new, p.amount FROM store.payment p JOIN map_rental m ON m.old = p.rental_id",
)


TRANSFER = """
import sys, psycopg
from ansible_collections.phoenix.platform.plugins.module_utils._transfer.engine import Transfer
from ansible_collections.phoenix.platform.plugins.module_utils._transfer.plan import TransferRequest
with psycopg.connect(sys.argv[1]) as source, psycopg.connect(sys.argv[2]) as target:
    request = TransferRequest("LOCAL", "BETA", "bench", worlds=["TEMPLATE"], suffix="_BETA")
    result = Transfer(source, target, request).run(False)
    moved = sum(p["insert"] for label, p in result["plan"].items() if label != "WorldMeta")
    assert moved == int(sys.argv[3]), result["plan"]
"""
RELAY = """
import sys, psycopg
from psycopg import sql
SELECTS = (
    ("store.customer", "SELECT * FROM store.customer WHERE world_id = 'TEMPLATE'"),
    ("store.rental", "SELECT r.* FROM store.rental r JOIN store.customer c USING (customer_id) "
                     "WHERE c.world_id = 'TEMPLATE'"),
    ("store.payment", "SELECT p.* FROM store.payment p JOIN store.rental r USING (rental_id) "
                      "JOIN store.customer c USING (customer_id) WHERE c.world_id = 'TEMPLATE'"),
)
with psycopg.connect(sys.argv[1]) as source, psycopg.connect(sys.argv[2]) as target, target.transaction():
    for table, select in SELECTS:
        with source.cursor().copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(sql.SQL(select))) as out, \\
                target.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(
                    sql.Identifier(*table.split(".")))) as into:
            for data in out:
                into.write(data)
"""


def database(cluster, name: str, template: str | None = None) -> str:
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}{}").format(
            sql.Identifier(name), sql.SQL(" TEMPLATE {}").format(sql.Identifier(template)) if template else sql.SQL("")))
    return url(cluster, name)


def store(cluster, name: str, stage: str, rows: int) -> tuple[str, int]:
    """A store database with a template world of about ``rows`` rows (none with rows=0); returns its URL and
    the world's exact row count."""
    dsn = database(cluster, name)
    customers = max(1, rows // 50)
    rentals = (rows - customers) // 2
    with psycopg.connect(dsn) as conn:
        ensure_schema(conn, SchemaRequest(stage, "none", None, "bench", 60, "bench"), False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in SCHEMA + (FILL if rows else ()):
            conn.execute(sql.SQL(statement), {"customers": customers, "rentals": rentals})
        conn.execute(sql.SQL("VACUUM ANALYZE"))
    return dsn, customers + 2 * rentals


def bench_transfer(cluster, rows: int) -> list[str]:
    source, total = store(cluster, "intkeys_source", "LOCAL", rows)
    store(cluster, "intkeys_target", "BETA", 0)
    phoenix_s, phoenix_mb = run_child(TRANSFER, source, database(cluster, "intkeys_t1", "intkeys_target"), str(total))
    relay_s, relay_mb = run_child(RELAY, source, database(cluster, "intkeys_t2", "intkeys_target"))
    return ["| transfer of an integer-keyed world with a suffix, %s rows | %.1f s, peak %.0f MB | %.1f s, peak %.0f MB "
            "(raw binary COPY relay, keys kept) | **%.2f×** |"
            % (format(total, ","), phoenix_s, phoenix_mb, relay_s, relay_mb, phoenix_s / relay_s)]


def bench_clone(cluster, runs: int, rows: int) -> list[str]:
    _base, total = store(cluster, "intkeys_base", "LOCAL", rows)

    def phoenix(run: int) -> None:
        with psycopg.connect(database(cluster, "intkeys_p%d" % run, "intkeys_base")) as conn, conn.transaction():
            copied = copy_rows(conn, load(conn), "TEMPLATE", "CLONE", False)
        assert sum(copied.values()) == total, copied

    def hand_written(run: int) -> None:
        with psycopg.connect(database(cluster, "intkeys_h%d" % run, "intkeys_base")) as conn, conn.transaction():
            for statement in HAND_WRITTEN:
                conn.execute(sql.SQL(statement))

    p, h = median_seconds(phoenix, runs), median_seconds(hand_written, runs)
    return ["| clone of an integer-keyed world, %s rows | %.2f s | %.2f s (hand-written INSERT … SELECT with "
            "temporary key maps) | **%.2f×** |" % (format(total, ","), p, h, p / h)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--transfer-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    lines = ["| operation | phoenix.platform | what a user would otherwise run | ratio |", "|---|---|---|---|"]
    with throwaway_cluster(55473) as cluster:
        lines += bench_clone(cluster, args.runs, args.rows)
        lines += bench_transfer(cluster, args.transfer_rows)
    body = "\n".join(lines + [
        "",
        "Clone: median of %d run(s), each on a fresh copy of the same database. Both take new keys from the tables' "
        "own sequences; phoenix.platform also records every new key in phoenix.key_map (so a repeated clone finds "
        "its rows and changes nothing), keeps references to rows outside the world, and checks every row's key "
        "before inserting it. The hand-written statements do none of that." % args.runs,
        "Transfer: one run each into an empty copy of the schema, in child processes whose peak memory is reported. "
        "phoenix_transfer stages the rows with binary COPY, gives the renamed world's rows new keys from the "
        "target's sequences through its key map, plans and writes in one transaction; the relay only copies.",
        "%d cores." % os.cpu_count(),
    ])
    write_section("Integer keys: clone and transfer with a key map", body)
    print(body)


if __name__ == "__main__":
    main()
