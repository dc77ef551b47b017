"""Transfer of a world of about 1M rows from LOCAL to BETA (two databases on one server).

Against (a) a raw binary COPY relay per table, the practical limit, and (b) pg_dump -Fc piped
into pg_restore for the same tables (which cannot filter by world).

    .venv/bin/python bench/transfer.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess

import psycopg
from psycopg import sql

from common import run_child, throwaway_cluster, url
from report import write_section
from worlds import add_world, create_database

from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import find_tool, libpq_environment
from ansible_collections.phoenix.platform.plugins.module_utils._schema.ensure import SchemaRequest, ensure_schema

TABLES = ("User", "WorldMeta", "Chat", "Message_v2")  # parents first
TRANSFER = """
import sys, psycopg
from ansible_collections.phoenix.platform.plugins.module_utils._transfer.engine import Transfer
from ansible_collections.phoenix.platform.plugins.module_utils._transfer.plan import TransferRequest
with psycopg.connect(sys.argv[1]) as source, psycopg.connect(sys.argv[2]) as target:
    result = Transfer(source, target, TransferRequest("LOCAL", "BETA", "bench", worlds=["BIG"])).run(False)
    moved = sum(p["insert"] for p in result["plan"].values())
    assert moved == int(sys.argv[3]), result["plan"]
"""
RELAY = """
import sys, psycopg
from psycopg import sql
with psycopg.connect(sys.argv[1]) as source, psycopg.connect(sys.argv[2]) as target, target.transaction():
    for table in ("User", "WorldMeta", "Chat", "Message_v2"):
        where = sql.SQL("id = 'BIG'") if table == "WorldMeta" else sql.SQL("world_id = 'BIG'")
        with source.cursor().copy(sql.SQL("COPY (SELECT * FROM {} WHERE {}) TO STDOUT (FORMAT binary)").format(
                sql.Identifier(table), where)) as out, target.cursor().copy(
                sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(table))) as into:
            for data in out:
                into.write(data)
"""


def migrated(cluster, name: str, stage: str) -> str:
    dsn = create_database(cluster, name)
    with psycopg.connect(dsn) as conn:
        ensure_schema(conn, SchemaRequest(stage, "reference", None, "bench", 60, name), False)
    return dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with throwaway_cluster(55474) as cluster:
        source = migrated(cluster, "source", "LOCAL")
        with psycopg.connect(source, autocommit=True) as conn:
            add_world(conn, "BIG", args.rows)
            conn.execute(sql.SQL("VACUUM ANALYZE"))
        migrated(cluster, "target_empty", "BETA")
        rows = args.rows + 1  # and its WorldMeta row

        phoenix_s, phoenix_mb = run_child(TRANSFER, source, create_database(cluster, "t_phoenix", "target_empty"),
                                          str(rows))
        relay_s, relay_mb = run_child(RELAY, source, create_database(cluster, "t_relay", "target_empty"))

        create_database(cluster, "t_dump", "target_empty")
        with psycopg.connect(source) as conn:
            major = int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
        pg_dump, pg_restore = find_tool("pg_dump", major), find_tool("pg_restore", major)
        tables = [arg for t in TABLES for arg in ("--table", '"%s"' % t)]
        import time

        started = time.perf_counter()
        dump = subprocess.Popen([str(pg_dump), "-Fc", "--data-only", *tables], stdout=subprocess.PIPE,
                                env=libpq_environment(source))
        subprocess.run([str(pg_restore), "--data-only", "--single-transaction", "-d", "t_dump"],
                       stdin=dump.stdout, env=libpq_environment(url(cluster, "t_dump")), check=True)
        dump.wait()
        dump_s = time.perf_counter() - started
    body = "\n".join([
        "A world of %s rows (users, chats, messages) plus its WorldMeta row, LOCAL -> BETA on one server, into an "
        "empty target schema; one run each, in child processes; %d cores." % (format(args.rows, ","), os.cpu_count()),
        "",
        "| method | time | rows/s | peak memory | ratio |",
        "|---|---|---|---|---|",
        "| `phoenix_transfer` (plan, staging, change detection, one transaction) | %.1f s | %s | %.0f MB | **%.2f×** |"
        % (phoenix_s, format(int(rows / phoenix_s), ","), phoenix_mb, phoenix_s / relay_s),
        "| raw binary COPY relay per table | %.1f s | %s | %.0f MB | 1.00× |"
        % (relay_s, format(int(rows / relay_s), ","), relay_mb),
        "| `pg_dump -Fc --data-only` piped into `pg_restore` (whole tables) | %.1f s | %s | – | %.2f× |"
        % (dump_s, format(int(rows / dump_s), ","), dump_s / relay_s),
    ])
    write_section("Transfer between environments", body)
    print(body)


if __name__ == "__main__":
    main()
