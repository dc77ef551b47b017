"""What the module spends handing one big table's rows to the COPYs of a swap restore: rows decompressed by
pg_restore and read from its pipe, against rows read from the data file and decompressed in the module.

    .venv/bin/python bench/split_rows.py [--size-mb 1000] [--runs 3]

Both load backup.py's one-table database from a directory dump over 2 connections (split_load.load_split). The
CPU seconds are the module's and its children's (pg_restore): what the load takes from the cores the server's
COPYs need, and a steadier figure than wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import psycopg
from psycopg import sql

from backup import fill
from common import settler, throwaway_cluster
from report import write_section
from swap_load import COLUMNS
from worlds import create_database

from ansible_collections.phoenix.platform.plugins.module_utils._backups.compression import (
    capable_pg_dump,
    parse,
    rows_reader,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._backups.restore import NEWER_SESSION_SETTINGS
from ansible_collections.phoenix.platform.plugins.module_utils._backups.split_load import BLOCK, load_split
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import (
    find_tool,
    libpq_environment,
    tool_versions,
)

METHODS = ("zstd", "lz4", "gzip")


def cpu_seconds() -> float:
    """This process's CPU time and that of its waited-for children (pg_restore)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-rows-"))
    jobs, timings, major = parallel_jobs(), {}, 0
    try:
        with throwaway_cluster(55476) as cluster:
            source = create_database(cluster, "rows_source")
            fill(source, args.size_mb)
            with psycopg.connect(source) as conn:
                major = int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
            pg_dump, dump_major = capable_pg_dump(parse("zstd"), tool_versions("pg_dump"), major)
            pg_restore = find_tool("pg_restore", dump_major)  # reads what that pg_dump writes
            settle = settler(source, major)
            for method in METHODS:
                dump = work / method
                subprocess.run([str(pg_dump), "-Fd", "-Z", method, "-f", str(dump)], env=libpq_environment(source),
                               check=True)
                listed = subprocess.run([str(pg_restore), "--list", str(dump)], capture_output=True, text=True,
                                        check=True).stdout
                entry = next(line for line in listed.splitlines(True) if " TABLE DATA public filler " in line)
                data_file = next(dump.glob("%s.dat.*" % entry.split(";", 1)[0]))
                read = rows_reader(data_file.name)

                @contextlib.contextmanager
                def rows() -> Iterator[Iterator[bytes]]:
                    with data_file.open("rb") as stored:
                        yield read(stored, BLOCK)
                for run in range(args.runs):
                    for how, opener in (("pg_restore", None), ("module", rows)):
                        target = create_database(cluster, "rows_target")
                        with psycopg.connect(target, autocommit=True) as conn:
                            conn.execute(sql.SQL("CREATE TABLE public.filler ({})".format(COLUMNS)))
                        settle()
                        cpu, started = cpu_seconds(), time.perf_counter()
                        loaded = load_split(pg_restore, [str(dump)], entry, target, jobs, NEWER_SESSION_SETTINGS,
                                            opener)
                        timings.setdefault((method, how), []).append((time.perf_counter() - started,
                                                                      cpu_seconds() - cpu))
                        assert loaded and loaded[1] > 0, loaded
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {key: (statistics.median(wall for wall, cpu in values), statistics.median(cpu for wall, cpu in values))
              for key, values in timings.items()}
    rows_md = ["| %s | %.1f s, %.2f CPU s | %.1f s, %.2f CPU s | **%.2f×** | **%.2f×** |" % (
        method, *median[(method, "pg_restore")], *median[(method, "module")],
        median[(method, "module")][1] / median[(method, "pg_restore")][1],
        median[(method, "module")][0] / median[(method, "pg_restore")][0]) for method in METHODS]
    body = "\n".join([
        "The rows of backup.py's one-table database (%d MB of data) in a directory dump, loaded over %d connections "
        "as a `mode: swap` restore loads a big table; median of %d run(s), taking turns, each after the settling "
        "of the backup benchmark; PostgreSQL %d server, %d cores. CPU seconds are the module's own and "
        "pg_restore's: the cores they take are the ones the server's COPYs need."
        % (args.size_mb, jobs, args.runs, major, os.cpu_count() or 0),
        "",
        "| dump compressed with | rows decompressed by pg_restore, read from its pipe | rows read from the data "
        "file, decompressed in the module | CPU ratio | wall ratio |",
        "|---|---|---|---|---|",
        *rows_md,
    ])
    write_section("Swap restore of one table: who reads the rows", body)
    print(body)


if __name__ == "__main__":
    main()
