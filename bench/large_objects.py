"""An in-place restore of a database that holds large objects, against pg_restore --single-transaction.

    .venv/bin/python bench/large_objects.py [--size-mb 1000] [--objects 100] [--runs 3]

Such a restore unlinks the database's large objects in its own transaction first, so it runs pg_restore's script
through psql instead of letting pg_restore write to the server: this measures what that costs, beside the same
restore of the same database without large objects.
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

from backup import BACKUP, RESTORE, fill, restore_by_hand
from common import in_turns, run_by_run, run_child, settler, throwaway_cluster
from report import write_section
from worlds import migrated_base

from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import find_tool, libpq_environment

OBJECT_BYTES = 64 << 10


def ratio(timings: dict[str, list[float]], name: str, against: str) -> str:
    return "**%.2f×** (%.2f–%.2f)" % run_by_run(timings, name, against)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-lo-"))
    try:
        with throwaway_cluster(55477) as cluster:
            plain, with_objects = migrated_base(cluster, "without_objects"), migrated_base(cluster, "with_objects")
            for dsn in (plain, with_objects):
                fill(dsn, args.size_mb)
            with psycopg.connect(with_objects, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE TABLE scan (id int PRIMARY KEY, document oid NOT NULL)"))
                conn.execute(sql.SQL("INSERT INTO scan SELECT g, lo_from_bytea(0, decode(repeat(md5(g::text), %s), "
                                     "'hex')) FROM generate_series(1, %s) g"), [OBJECT_BYTES // 16, args.objects])
                major = int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
            for name, dsn in (("plain", plain), ("objects", with_objects)):
                run_child(BACKUP, dsn, str(work / name))  # custom format
                dump = next((work / name).glob("LOCAL/backup-*/database.dump"))
                shutil.copy(dump, work / ("%s.dump" % name))
            settle = settler(plain, major)

            def module_restore(dsn: str, name: str):
                return lambda run: run_child(RESTORE, dsn, str(work / name))

            timings = in_turns({
                "module_objects": module_restore(with_objects, "objects"),
                "tool_objects": restore_by_hand(cluster, with_objects, major, work / "objects.dump",
                                                "--single-transaction"),
                "module_plain": module_restore(plain, "plain"),
                "tool_plain": restore_by_hand(cluster, plain, major, work / "plain.dump", "--single-transaction"),
            }, args.runs, settle)
            env = libpq_environment(with_objects)
            listing = subprocess.run([str(find_tool("pg_restore", major)), "--list", str(work / "objects.dump")],
                                     env=env, capture_output=True, text=True, check=True).stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in timings.items()}
    body = "\n".join([
        "Two databases of %d MB of rows on a PostgreSQL %d server, one of them also with %d large objects of %d kB "
        "(%d entries in its dump's list); custom format; median of %d run(s), taking turns, each after the settling "
        "of the backup benchmark; %d cores. The module restores in place over the database (no safety backup); the "
        "plain tool into an empty database."
        % (args.size_mb, major, args.objects, OBJECT_BYTES >> 10, listing.count(" BLOB "), args.runs,
           os.cpu_count() or 0),
        "",
        "| restore in place | phoenix.platform | `pg_restore --single-transaction` | ratio |",
        "|---|---|---|---|",
        "| database with large objects (pg_restore's script through psql, the objects unlinked first) | %.1f s | "
        "%.1f s | %s |" % (median["module_objects"], median["tool_objects"],
                           ratio(timings, "module_objects", "tool_objects")),
        "| database without (pg_restore writes to the server itself) | %.1f s | %.1f s | %s |" % (
            median["module_plain"], median["tool_plain"], ratio(timings, "module_plain", "tool_plain")),
    ])
    write_section("In-place restore of a database with large objects", body)
    print(body)


if __name__ == "__main__":
    main()
