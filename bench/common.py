"""Shared pieces of the benchmarks: a throwaway cluster, timing, child-process peak memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import (  # noqa: E402
    find_tool,
    libpq_environment,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg.local_cluster import LocalCluster  # noqa: E402


@contextlib.contextmanager
def throwaway_cluster(port: int, bin_source: str = "auto") -> Iterator[LocalCluster]:
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-"))
    work.chmod(0o755)
    settings = {"fsync": "off", "synchronous_commit": "off", "shared_buffers": "256MB", "max_wal_size": "4GB"}
    cluster = LocalCluster(work / "pg", port, bin_source=bin_source, settings=settings)
    try:
        cluster.ensure_running()
        yield cluster
    finally:
        cluster.ensure_absent()
        shutil.rmtree(work, ignore_errors=True)


def url(cluster: LocalCluster, dbname: str) -> str:
    return "postgresql://postgres@/%s?host=%s&port=%d" % (dbname, cluster.socket_dir, cluster.port)


def median_seconds(action: Callable[[int], None], runs: int) -> float:
    """Median wall time of ``action(run_number)``."""
    return side_by_side({"action": action}, runs)["action"]


def in_turns(actions: dict[str, Callable[[int], None]], runs: int,
             settle: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Wall times of each ``action(run_number)``, the actions taking turns run after run. ``settle()`` runs
    before each, untimed: with a CHECKPOINT and a sync there, no action pays for the writes left by the one
    before it."""
    timings: dict[str, list[float]] = {name: [] for name in actions}
    for run in range(runs):
        for name, action in actions.items():
            settle()
            started = time.perf_counter()
            action(run)
            timings[name].append(time.perf_counter() - started)
    return timings


def side_by_side(actions: dict[str, Callable[[int], None]], runs: int,
                 settle: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Median wall time of each action, taken in turns (see ``in_turns``)."""
    return {name: statistics.median(seconds) for name, seconds in in_turns(actions, runs, settle).items()}


def run_by_run(timings: dict[str, list[float]], name: str, against: str) -> tuple[float, float, float]:
    """The ratios of ``name``'s time to ``against``'s within each run (taken minutes apart, two medians can come
    from a slow and a fast spell of a shared machine; two times of one run share it): median, lowest, highest."""
    ratios = [mine / theirs for mine, theirs in zip(timings[name], timings[against])]
    return statistics.median(ratios), min(ratios), max(ratios)


BY_HAND = "by_hand_"  # the start of the names of the databases the plain tools restore into


def settler(dsn: str, major: int) -> Callable[[], None]:
    """What runs before each timed operation (see ``side_by_side``): the databases a plain tool restored into are
    dropped (the module's restores replace or drop theirs, so the server holds as much for either side); the tables
    the last operation wrote are vacuumed now, or autovacuum would do it during the next one, on the same cores;
    then its writes are checkpointed and synced."""
    vacuumdb, env = find_tool("vacuumdb", major), libpq_environment(dsn)

    def settle() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for (name,) in conn.execute(sql.SQL("SELECT datname FROM pg_database WHERE starts_with(datname, %s)"),
                                        [BY_HAND]).fetchall():
                conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
        subprocess.run([str(vacuumdb), "--all", "--analyze", "--quiet"], env=env, check=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CHECKPOINT"))
        os.sync()
    return settle


PEAK_REPORT = "\nimport resource\nprint('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"


def run_child(code: str, *args: str) -> tuple[float, float]:
    """Run ``code`` in a fresh Python; returns (seconds, its peak RSS in MB)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code + PEAK_REPORT, *args], check=True, capture_output=True,
                            text=True, env={"PYTHONPATH": str(ROOT / "collections"), "PATH": "/usr/bin:/bin"})
    elapsed = time.perf_counter() - started
    peak_kb = int(result.stdout.rsplit("PEAK_KB", 1)[1].split()[0])
    return elapsed, peak_kb / 1024
