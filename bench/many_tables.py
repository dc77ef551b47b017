"""Backup and restore of a database of many small tables (a schema per tenant), and of one whose table is
partitioned by day into thousands of partitions, on a server with the default lock table, against pg_dump -Fc and
pg_restore.

    .venv/bin/python bench/many_tables.py [--tenants 700] [--partitions 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from backup import BACKUP, RESTORE, ratio, restore_by_hand
from common import in_turns, run_child, settler, throwaway_cluster, url
from report import write_section
from worlds import migrated_base

from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._backups.lock_room import lock_table_room
from ansible_collections.phoenix.platform.plugins.module_utils._backups.swap import kept_databases
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


def add_partitions(dsn: str, partitions: int) -> None:
    """An event table partitioned by day into ``partitions`` partitions, with 10 rows in each."""
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("CREATE TABLE events (day int, id bigint, body text, PRIMARY KEY (day, id)) "
                             "PARTITION BY LIST (day)"))
        for day in range(partitions):
            conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES IN ({})").format(
                sql.Identifier("events_%05d" % day), sql.Literal(day)))
            if day % 100 == 99:
                conn.commit()
        conn.execute(sql.SQL("INSERT INTO events SELECT g %% %s, g, md5(g::text) FROM generate_series(1, %s) g"),
                     [partitions, 10 * partitions])


def in_place_refusal(dsn: str, work: Path) -> str:
    """The first words of what an in-place restore of the backup says."""
    try:
        run_child(RESTORE, dsn, str(work), "in_place")
    except subprocess.CalledProcessError as failed:
        return failed.stderr.strip().splitlines()[-1].split("PhoenixError: ", 1)[-1]
    return "it was restored"


def kept_dropped_by_hand(cluster, database: str, settle) -> float:
    """Seconds a DROP DATABASE of the database the last swap kept takes, after ``settle()``: what each swap pays
    for the one kept by the swap before it."""
    with psycopg.connect(url(cluster, "postgres"), autocommit=True) as admin:
        kept = kept_databases(admin, database)[0][-1]
        settle()
        started = time.perf_counter()
        admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(kept)))
        return time.perf_counter() - started


def compared(cluster, dsn: str, work: Path, runs: int) -> dict[str, str]:
    """The backup against pg_dump -Fc, and the swap restore against pg_restore --jobs, as table rows; what the
    in-place restore says."""
    with psycopg.connect(dsn) as conn:
        major = int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
    pg_dump, env = find_tool("pg_dump", major), libpq_environment(dsn)
    work.mkdir()

    def phoenix_backup(run: int) -> None:
        run_child(BACKUP, dsn, str(work / ("phoenix%d" % run)))

    def raw_backup(run: int) -> None:
        subprocess.run([str(pg_dump), "-Fc", "-f", str(work / ("raw%d.dump" % run))], env=env, check=True)

    settle = settler(dsn, major)
    backups = in_turns({"raw": raw_backup, "phoenix": phoenix_backup}, runs, settle)
    refusal = in_place_refusal(dsn, work / "phoenix0")

    def swap_restore(run: int) -> None:
        run_child(RESTORE, dsn, str(work / "phoenix0"), "swap")

    raw_parallel = restore_by_hand(cluster, dsn, major, work / "raw0.dump", "--jobs", str(parallel_jobs()))
    restores = in_turns({"raw_parallel": raw_parallel, "swap": swap_restore}, runs, settle)
    kept_drop = kept_dropped_by_hand(cluster, conninfo_to_dict(dsn)["dbname"], settle)
    median = {name: statistics.median(times) for name, times in {**backups, **restores}.items()}
    return {
        "backup": "%.1f s | %.1f s | %s" % (median["phoenix"], median["raw"], ratio(backups, "phoenix", "raw")),
        "swap": "%.1f s | %.1f s | %s" % (median["swap"], median["raw_parallel"], ratio(restores, "swap", "raw_parallel")),
        "refusal": refusal, "major": str(major), "kept_drop": "%.1f s" % kept_drop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=700)
    parser.add_argument("--partitions", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-many-"))
    try:
        with throwaway_cluster(55474) as cluster:
            tenants = migrated_base(cluster, "tenants")
            add_tenants(tenants, args.tenants)
            with psycopg.connect(tenants) as conn:
                per_session, sessions = lock_table_room(conn)
            of_tenants = compared(cluster, tenants, work / "tenants", args.runs)
            partitioned = migrated_base(cluster, "partitioned")
            add_partitions(partitioned, args.partitions)
            of_partitions = compared(cluster, partitioned, work / "partitioned", args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tables = args.tenants * TABLES_PER_TENANT
    body = "\n".join([
        "Two databases on a PostgreSQL %s server with the default lock table (room for about %d locks): %d tables "
        "in %d schemas (one per tenant), each with a key, a default and 10 to 100 rows; and an event table "
        "partitioned by day into %d partitions of 10 rows, with a key. Median of %d run(s), taking turns, each after "
        "the settling of the backup benchmark; %d cores."
        % (of_tenants["major"], per_session * sessions, tables, args.tenants, args.partitions, args.runs, os.cpu_count()),
        "",
        "| operation | phoenix.platform | plain tool | ratio |",
        "|---|---|---|---|",
        "| backup of %d tables (custom format) | %s |" % (tables, of_tenants["backup"]),
        "| backup of %d partitions | %s |" % (args.partitions, of_partitions["backup"]),
        "| restore of %d tables, `mode: swap`, %d jobs | %s |" % (tables, parallel_jobs(), of_tenants["swap"]),
        "| restore of %d partitions, `mode: swap`, %d jobs | %s |" % (args.partitions, parallel_jobs(), of_partitions["swap"]),
        "",
        "The plain tools: `pg_dump -Fc`, and `pg_restore --jobs %d` into an empty database. The backup's row counts "
        "give back their locks as they go, count each table once pg_dump holds its lock, and count a partitioned "
        "table partition by partition; before, they kept a lock on every table and index beside pg_dump's (on every "
        "partition and its index at once, for a partitioned table), and both backups failed here with `out of "
        "shared memory`. A restore in one transaction cannot fit either database in the lock table "
        "(`pg_restore --single-transaction` fails with `out of shared memory`); the in-place restore says so before "
        "anything is written: \"%s\"" % (parallel_jobs(), of_tenants["refusal"]),
        "",
        "Each swap but the first also drops the database the swap before it kept. Dropping the last one by hand, "
        "after the same settling, took %s for the %d tables and %s for the %d partitions (the server unlinks "
        "every file of the database)." % (of_tenants["kept_drop"], tables, of_partitions["kept_drop"], args.partitions),
    ])
    write_section("Backup and restore of a database of many tables", body)
    print(body)


if __name__ == "__main__":
    main()
