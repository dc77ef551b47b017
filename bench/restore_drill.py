"""Restore drill of a database of about 1 GB, against restoring its dump by hand with pg_restore; and a drill
killed half-way, whose scratch database the next drill removes, with the environment's database unchanged.

    .venv/bin/python bench/restore_drill.py [--size-mb 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from backup import BACKUP, fill
from common import ROOT, run_child, throwaway_cluster
from report import write_section
from worlds import create_database, migrated_base

from ansible_collections.phoenix.platform.plugins.module_utils._backups.drill import SCRATCH_PREFIX
from ansible_collections.phoenix.platform.plugins.module_utils._backups.scratch import scratch_name
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import find_tool, libpq_environment

DRILL = """
import sys
from ansible_collections.phoenix.platform.plugins.modules import phoenix_restore_drill
phoenix_restore_drill.main()
"""


def start_drill(dsn: str, dest: Path, work: Path) -> subprocess.Popen:
    args = work / "drill_args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"db_url": dsn, "stage": "LOCAL", "dest": str(dest)}}))
    return subprocess.Popen([sys.executable, "-c", DRILL, str(args)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True,  # its own process group: pg_restore dies with it
                            env={"PYTHONPATH": str(ROOT / "collections"), "PATH": "/usr/bin:/bin"})


def drill(dsn: str, dest: Path, work: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    process = start_drill(dsn, dest, work)
    output = process.communicate()[0]
    return time.perf_counter() - started, json.loads(output)


def digest(dsn: str) -> list[tuple]:
    """Row count and an order-independent hash of every user table."""
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(sql.SQL(
            "SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2")).fetchall()
        return [(schema, table) + conn.execute(sql.SQL("SELECT count(*), sum(hashtextextended(t::text, 0)) FROM {} t")
                                               .format(sql.Identifier(schema, table))).fetchone()
                for schema, table in tables]


def scratch_exists(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        name = scratch_name(SCRATCH_PREFIX, conn.info.dbname)
        return conn.execute(sql.SQL("SELECT count(*) FROM pg_database WHERE datname = %s"), [name]).fetchone()[0] == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-drill-"))
    try:
        body = measure(args.size_mb, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_section("Restore drill", body)
    print(body)


def measure(size_mb: int, work: Path) -> str:
    with throwaway_cluster(55474) as cluster:
        dsn = migrated_base(cluster, "big")
        fill(dsn, size_mb)
        with psycopg.connect(dsn) as conn:
            size = conn.execute(sql.SQL("SELECT pg_database_size(current_database())")).fetchone()[0]
            major = int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
        dest = work / "backups"
        run_child(BACKUP, dsn, str(dest))
        before = digest(dsn)

        drill_seconds, passed = drill(dsn, dest, work)
        assert passed.get("passed") is True and not scratch_exists(dsn), passed

        dump = next(dest.glob("LOCAL/*/*.dump"))
        create_database(cluster, "by_hand")
        started = time.perf_counter()
        subprocess.run([str(find_tool("pg_restore", major)), "--single-transaction", "--exit-on-error",
                        "-d", "by_hand", str(dump)], env=libpq_environment(dsn), check=True)
        by_hand = time.perf_counter() - started

        killed = start_drill(dsn, dest, work)
        time.sleep(drill_seconds / 2)
        assert scratch_exists(dsn), "the drill had no scratch database half-way"
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        left_after_kill = scratch_exists(dsn)
        next_seconds, next_drill = drill(dsn, dest, work)
        assert next_drill.get("passed") is True and next_drill["leftover_removed"] is True, next_drill
        assert not scratch_exists(dsn)
        unchanged = digest(dsn) == before
        assert unchanged, "the environment's database changed"
    return "\n".join([
        "Database of %.0f MB; one run; %d cores." % (size / 1e6, os.cpu_count()),
        "",
        "| operation | phoenix.platform | by hand | ratio |",
        "|---|---|---|---|",
        "| restore drill | %.1f s (`phoenix_restore_drill`: checksums, restore into a scratch database, row counts "
        "of every table against the manifest, schema and stage checks, drop) | %.1f s (`pg_restore "
        "--single-transaction` into an empty database, nothing checked or dropped) | **%.2f×** |"
        % (drill_seconds, by_hand, drill_seconds / by_hand),
        "",
        "A drill killed (SIGKILL of its process group) half-way, at %.1f s: scratch database left behind: %s; the "
        "next drill removed it and passed in %.1f s; the environment database's digest (row count and hash of "
        "every table) unchanged: %s."
        % (drill_seconds / 2, "yes" if left_after_kill else "no", next_seconds, "yes" if unchanged else "no"),
    ])


if __name__ == "__main__":
    main()
