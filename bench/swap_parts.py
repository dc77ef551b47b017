"""A swap restore of one big table and `pg_restore --single-transaction`, part by part in the same runs: the load of
the table's rows, its primary key, and everything else, as the server logged their statements.

    .venv/bin/python bench/swap_parts.py [--size-mb 1000] [--runs 3]

backup.py's one-table database, restored from its lz4 directory backup with `mode: swap` (2 COPYs at once into the
big table) and by pg_restore from a `pg_dump -Fc` dump (one COPY). The server logs each statement with its duration;
the parts are read from the lines each restore left in the log.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple

import psycopg
from psycopg import sql

from backup import BACKUP, RESTORE, fill, restore_by_hand
from common import run_child, settler, throwaway_cluster
from report import write_section
from worlds import migrated_base

from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import (
    find_tool,
    libpq_environment,
    server_major,
)

LOGGED = re.compile(r"^(\S+ \S+) \S+ \[\d+\] LOG:  duration: ([\d.]+) ms  statement: (.*)$", re.MULTILINE)
LOAD, KEY = "COPY public.filler ", "ALTER TABLE ONLY public.filler"  # pg_dump's statements for the big table
TARGET = 0.8  # what a swap restore aims at: this much of the time of pg_restore --single-transaction
OLD_COUNT = 'SELECT (SELECT count(*) FROM "public"."filler")'  # the swap counting the old database's rows


class Parts(NamedTuple):
    total: float
    load: float  # from the first COPY's start to the last one's end
    key: float
    rest: float  # the total less the load and the key
    counting: float  # of the old database's rows, beside the load (the swap's row_changes)


def logged(text: str) -> list[tuple[float, float, str]]:
    """(end, seconds, statement) of each statement the server logged in ``text``."""
    return [(datetime.datetime.strptime(end, "%Y-%m-%d %H:%M:%S.%f").timestamp(), float(ms) / 1000, statement)
            for end, ms, statement in LOGGED.findall(text)]


def parts_of(total: float, statements: list[tuple[float, float, str]]) -> Parts:
    copies = [(end - seconds, end) for end, seconds, statement in statements if statement.startswith(LOAD)]
    if not copies:
        raise RuntimeError("the server logged no COPY of the big table: were its rows restored?")
    load = max(end for _start, end in copies) - min(start for start, _end in copies)
    key = sum(seconds for _end, seconds, statement in statements if statement.startswith(KEY))
    return Parts(total, load, key, total - load - key,
                 sum(seconds for _end, seconds, statement in statements if statement.startswith(OLD_COUNT)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-parts-"))
    parts: dict[str, list[Parts]] = {"plain": [], "swap": []}
    try:
        with throwaway_cluster(55477) as cluster:
            dsn = migrated_base(cluster, "big")
            fill(dsn, args.size_mb)
            with psycopg.connect(dsn, autocommit=True) as conn:
                major = server_major(conn)
                conn.execute(sql.SQL("ALTER SYSTEM SET log_min_duration_statement = 0"))
                conn.execute(sql.SQL("ALTER SYSTEM SET log_line_prefix = '%m [%p] '"))
                conn.execute(sql.SQL("ALTER SYSTEM SET log_timezone = 'UTC'"))
                conn.execute(sql.SQL("SELECT pg_reload_conf()"))
            run_child(BACKUP, dsn, str(work / "lz4"), "directory", "lz4")
            subprocess.run([str(find_tool("pg_dump", major)), "-Fc", "-f", str(work / "plain.dump")],
                           env=libpq_environment(dsn), check=True)
            actions: dict[str, Callable[[int], object]] = {
                "plain": restore_by_hand(cluster, dsn, major, work / "plain.dump", "--single-transaction"),
                "swap": lambda run: run_child(RESTORE, dsn, str(work / "lz4"), "swap")}
            settle = settler(dsn, major)
            for run in range(args.runs):
                for name, action in actions.items():
                    settle()
                    with cluster.log_file.open() as log:
                        log.seek(0, os.SEEK_END)
                        started = time.perf_counter()
                        action(run)
                        total = time.perf_counter() - started
                        time.sleep(0.5)  # the server writes a statement's line as it ends: let the last one land
                        parts[name].append(parts_of(total, logged(log.read())))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {name: Parts(*(statistics.median(values) for values in zip(*runs))) for name, runs in parts.items()}

    def ratio(part: str) -> str:
        ratios = [getattr(mine, part) / getattr(theirs, part) for mine, theirs in zip(parts["swap"], parts["plain"])]
        return "**%.2f×** (%.2f–%.2f)" % (statistics.median(ratios), min(ratios), max(ratios))
    needed_load = TARGET * median["plain"].total - median["swap"].key - median["swap"].rest
    rows = [("load of the big table's rows", "load", "1 COPY", "%d COPYs at once" % parallel_jobs()),
            ("its primary key, built after the load", "key", "", ""),
            ("everything else", "rest", "reading the dump, definitions, commit",
             "checksums, definitions, row counts against the manifest, history carried over, names swapped, "
             "the database the swap before kept dropped"),
            ("whole restore", "total", "", "")]
    body = "\n".join([
        "backup.py's one-table database (%d MB of data) on a PostgreSQL %d server, restored by `pg_restore "
        "--single-transaction` from its `pg_dump -Fc` dump into an empty database, and by `phoenix_restore` with "
        "`mode: swap`, %d jobs, from its lz4 directory backup; median of %d run(s), taking turns, each after the "
        "settling of the backup benchmark; %d cores. The parts are the server's own log of each statement with its "
        "duration. Each part is its own median, so the parts need not add up to the whole; a ratio is the median of "
        "the ratios within each run, lowest and highest in brackets."
        % (args.size_mb, major, parallel_jobs(), args.runs, os.cpu_count() or 0),
        "",
        "| part | `pg_restore --single-transaction` | swap restore | ratio |",
        "|---|---|---|---|",
        *["| %s | %.1f s%s | %.1f s%s | %s |" % (
            label, getattr(median["plain"], part), " (%s)" % plain if plain else "", getattr(median["swap"], part),
            " (%s)" % swap if swap else "", ratio(part)) for label, part, plain, swap in rows],
        "",
        "Beside the swap's load, a connection of its own counts the old database's rows for the restore's "
        "`row_changes`: %.1f s (median), on the same cores." % median["swap"].counting,
        "",
        "For the swap to take %.1f× the time of `pg_restore --single-transaction` (%.1f s), with its key and "
        "everything else as measured, its load would have to take %.1f s: %.2f× the one COPY. For the floor under "
        "that, two COPYs of the rows from a file on the server with no client at all, see \"Swap restore of one "
        "table: where the time goes\"." % (TARGET, TARGET * median["plain"].total, needed_load,
                                           needed_load / median["plain"].load),
    ])
    write_section("Swap restore of one table: its parts beside pg_restore's", body)
    print(body)


if __name__ == "__main__":
    main()
