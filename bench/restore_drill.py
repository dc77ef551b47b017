"""Restore drill of a database of about 1 GB, against restoring its dump by hand with pg_restore; and a drill
killed half-way, whose scratch database the next drill removes, with the environment's database unchanged.

    .venv/bin/python bench/restore_drill.py [--size-mb 1000] [--runs 3]
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

from backup import BACKUP, fill, read_manifest, restore_by_hand
from common import ROOT, run_child, settler, side_by_side, throwaway_cluster
from report import write_section
from worlds import migrated_base

from ansible_collections.phoenix.platform.plugins.module_utils._backups.drill import SCRATCH_PREFIX
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._backups.scratch import scratch_name

DRILL = """
import sys
from ansible_collections.phoenix.platform.plugins.modules import phoenix_restore_drill
phoenix_restore_drill.main()
"""


def start_drill(dsn: str, dest: Path, work: Path, jobs: int | None = None) -> subprocess.Popen:
    args = work / "drill_args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"db_url": dsn, "stage": "LOCAL", "dest": str(dest),
                                                        "jobs": jobs}}))
    return subprocess.Popen([sys.executable, "-c", DRILL, str(args)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True,  # its own process group: pg_restore dies with it
                            env={"PYTHONPATH": str(ROOT / "collections"), "PATH": "/usr/bin:/bin"})


def drill(dsn: str, dest: Path, work: Path, jobs: int | None = None) -> tuple[float, dict]:
    started = time.perf_counter()
    process = start_drill(dsn, dest, work, jobs)
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
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-drill-"))
    try:
        body = measure(args.size_mb, args.runs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_section("Restore drill", body)
    print(body)


def measure(size_mb: int, runs: int, work: Path) -> str:
    with throwaway_cluster(55474) as cluster:
        dsn = migrated_base(cluster, "big")
        fill(dsn, size_mb)
        with psycopg.connect(dsn) as conn:
            size = conn.execute(sql.SQL("SELECT pg_database_size(current_database())")).fetchone()[0]
            major = int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
        custom, zstd = work / "custom", work / "zstd"
        run_child(BACKUP, dsn, str(custom))
        run_child(BACKUP, dsn, str(zstd), "directory", "zstd")
        before = digest(dsn)

        def drilling(dest: Path, jobs: int | None = None):
            def drill_once(run: int) -> None:
                passed = drill(dsn, dest, work, jobs)[1]
                assert passed.get("passed") is True and not scratch_exists(dsn), passed
            return drill_once

        timed = side_by_side({
            "by_hand": restore_by_hand(cluster, dsn, major, next(custom.glob("LOCAL/*/*.dump")), "--single-transaction"),
            "one_transaction": drilling(custom, 1), "custom": drilling(custom), "zstd": drilling(zstd)},
            runs, settler(dsn, major))
        by_hand = timed["by_hand"]

        killed = start_drill(dsn, zstd, work)
        time.sleep(timed["zstd"] / 2)
        assert scratch_exists(dsn), "the drill had no scratch database half-way"
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
        left_after_kill = scratch_exists(dsn)
        next_seconds, next_drill = drill(dsn, zstd, work)
        assert next_drill.get("passed") is True and next_drill["leftover_removed"] is True, next_drill
        assert not scratch_exists(dsn)
        unchanged = digest(dsn) == before
        assert unchanged, "the environment's database changed"
    checked = ("checksums, restore into a scratch database, row counts of every table against the manifest, schema "
               "and stage checks, drop")
    by_hand_text = "`pg_restore --single-transaction` of the `-Fc` dump into an empty database, nothing checked or dropped"
    return "\n".join([
        "Database of %.0f MB in one table on a PostgreSQL %d server; median of %d run(s), the operations taking "
        "turns, each started after the plain tool's restored databases were dropped, a VACUUM ANALYZE of every "
        "database, a CHECKPOINT and a sync; %d cores."
        % (size / 1e6, major, runs, os.cpu_count()),
        "",
        "| operation | phoenix.platform | by hand | ratio |",
        "|---|---|---|---|",
        "| restore drill, custom-format backup, `jobs: 1` (one transaction) | %.1f s (`phoenix_restore_drill`: %s) "
        "| %.1f s (%s) | **%.2f×** |"
        % (timed["one_transaction"], checked, by_hand, by_hand_text, timed["one_transaction"] / by_hand),
        "| restore drill, custom-format backup, by default %d jobs | %.1f s | %.1f s | **%.2f×** |"
        % (parallel_jobs(), timed["custom"], by_hand, timed["custom"] / by_hand),
        "| restore drill, `format: directory`, `compress: zstd` backup (pg_dump %d), by default %d jobs: the table's "
        "rows over %d connections | %.1f s | %.1f s | **%.2f×** |"
        % (read_manifest(zstd)["pg_dump_major"], parallel_jobs(), parallel_jobs(), timed["zstd"], by_hand,
           timed["zstd"] / by_hand),
        "",
        "A drill of the zstd backup killed (SIGKILL of its process group) half-way, at %.1f s: scratch database left "
        "behind: %s; the next drill removed it and passed in %.1f s; the environment database's digest (row count "
        "and hash of every table) unchanged: %s."
        % (timed["zstd"] / 2, "yes" if left_after_kill else "no", next_seconds, "yes" if unchanged else "no"),
    ])


if __name__ == "__main__":
    main()
