"""Backup and restore of a database of many small tables (a schema per tenant), on a server with the default lock
table, against pg_dump -Fc and pg_restore.

    .venv/bin/python bench/many_tables.py [--tenants 700] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from backup import BACKUP, RESTORE, ratio, restore_by_hand
from common import in_turns, run_child, settler, throwaway_cluster
from report import write_section
from worlds import migrated_base

from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import find_tool, libpq_environment

TABLES_PER_TENANT = 10


def add_tenants(dsn: str, tenants: int) -> None:
    """A schema per tenant, each of TABLES_PER_TENANT tables with a key, a default and a few rows."""
    with psycopg.connect(dsn) as conn:
        for tenant in range(tenants):
            schema = "tenant_%04d" % tenant
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            for number in range(TABLES_PER_TENANT):
                table = sql.Identifier(schema, "t%d" % number)
                conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v text, at timestamptz DEFAULT now())")
                             .format(table))
                conn.execute(sql.SQL("INSERT INTO {} (id, v) SELECT g, md5(g::text) FROM generate_series(1, %s) g")
                             .format(table), [10 * (number + 1)])
            conn.commit()  # a tenant at a time: the lock table holds their creation


def in_place_refusal(dsn: str, work: Path) -> str:
    """The first words of what an in-place restore of the backup says."""
    try:
        run_child(RESTORE, dsn, str(work), "in_place")
    except subprocess.CalledProcessError as failed:
        return failed.stderr.strip().splitlines()[-1].split("PhoenixError: ", 1)[-1]
    return "it was restored"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=700)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-many-"))
    try:
        with throwaway_cluster(55474) as cluster:
            dsn = migrated_base(cluster, "tenants")
            add_tenants(dsn, args.tenants)
            with psycopg.connect(dsn) as conn:
                major = int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
                tables, room = conn.execute(sql.SQL(
                    "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname LIKE 'tenant%%'), "
                    "current_setting('max_locks_per_transaction')::int * (current_setting('max_connections')::int "
                    "+ current_setting('max_prepared_transactions')::int + current_setting('autovacuum_max_workers')"
                    "::int + 1 + current_setting('max_worker_processes')::int "
                    "+ current_setting('max_wal_senders')::int)")).fetchone()
            pg_dump, env = find_tool("pg_dump", major), libpq_environment(dsn)

            def phoenix_backup(run: int) -> None:
                run_child(BACKUP, dsn, str(work / ("phoenix%d" % run)))

            def raw_backup(run: int) -> None:
                subprocess.run([str(pg_dump), "-Fc", "-f", str(work / ("raw%d.dump" % run))], env=env, check=True)

            settle = settler(dsn, major)
            backups = in_turns({"raw": raw_backup, "phoenix": phoenix_backup}, args.runs, settle)
            refusal = in_place_refusal(dsn, work / "phoenix0")

            def swap_restore(run: int) -> None:
                run_child(RESTORE, dsn, str(work / "phoenix0"), "swap")

            raw_parallel = restore_by_hand(cluster, dsn, major, work / "raw0.dump", "--jobs", str(parallel_jobs()))
            restores = in_turns({"raw_parallel": raw_parallel, "swap": swap_restore}, args.runs, settle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {name: statistics.median(times) for name, times in {**backups, **restores}.items()}
    body = "\n".join([
        "%d tables in %d schemas (one per tenant), each with a key, a default and 10 to 100 rows, on a PostgreSQL %d "
        "server with the default lock table (room for about %d locks); median of %d run(s), taking turns, each after "
        "the settling of the backup benchmark; %d cores."
        % (tables, args.tenants, major, room, args.runs, os.cpu_count()),
        "",
        "| operation | phoenix.platform | plain tool | ratio |",
        "|---|---|---|---|",
        "| backup | %.1f s (`phoenix_backup`, custom format) | %.1f s (`pg_dump -Fc`) | %s |"
        % (median["phoenix"], median["raw"], ratio(backups, "phoenix", "raw")),
        "| restore, `mode: swap`, %d jobs | %.1f s | %.1f s (`pg_restore --jobs %d` into an empty database) | %s |"
        % (parallel_jobs(), median["swap"], median["raw_parallel"], parallel_jobs(),
           ratio(restores, "swap", "raw_parallel")),
        "",
        "The backup's row counts give back their locks as they go, and count each table once pg_dump holds its lock; "
        "before, they kept a lock on every table and index beside pg_dump's and failed here with `out of shared "
        "memory`. A restore in one transaction cannot fit this database in the lock table "
        "(`pg_restore --single-transaction` fails with `out of shared memory`); the in-place restore says so before "
        "anything is written: \"%s\"" % refusal,
    ])
    write_section("Backup and restore of a database of many tables", body)
    print(body)


if __name__ == "__main__":
    main()
