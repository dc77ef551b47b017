"""Where the time of a swap restore of one big table goes: the rows in one COPY, against the same rows in two COPYs
at once (what the swap's split load does), and the primary key built after each.

    .venv/bin/python bench/swap_load.py [--size-mb 1000] [--runs 3]

The COPYs read a file on the server (COPY ... FROM 'file'), so no client takes any CPU time: what is measured is the
server's own work, the floor under any restore of these rows on this machine. Two more runs tell the key's parts:
one COPY and the key in the transaction that created the table (as `pg_restore --single-transaction` builds it),
and the key built after a first read of the two COPYs' rows.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import psycopg
from psycopg import sql

from backup import fill
from common import side_by_side, throwaway_cluster
from report import write_section
from worlds import create_database

COLUMNS = "id bigint, world_id text, payload text, n numeric"  # backup.py's table, without its key
# what a COPY waits on while it adds a page to the table: the lock that one backend at a time extends it under,
# and the write of the new page (which the kernel holds up when too much written data waits for the disk)
EXTENDING = {"waiting for the lock that extends the table": ("Lock", "extend"),
             "writing a new page at the table's end": ("IO", "DataFileExtend")}


def busy_and_idle() -> tuple[float, float]:
    """CPU seconds of the whole machine so far: busy (user, nice, system) and idle."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    per_second = os.sysconf("SC_CLK_TCK")
    return sum(ticks[:3]) / per_second, ticks[3] / per_second


@contextlib.contextmanager
def waits_sampled(dsn: str, into: collections.Counter) -> Iterator[None]:
    """Count, every 10 ms while the block runs, what each running COPY waits on (("CPU", "-") when on nothing)."""
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not done.wait(0.01):
                into.update(conn.execute(sql.SQL(
                    "SELECT coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '-') FROM pg_stat_activity "
                    "WHERE state = 'active' AND query LIKE 'COPY t FROM %%'")).fetchall())
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()


def rows_to_files(dsn: str, work: Path) -> list[Path]:
    """The table's rows in COPY's text format: the whole in one file, and its two halves (cut between lines)."""
    whole, halves = work / "rows.txt", [work / "first.txt", work / "second.txt"]
    with psycopg.connect(dsn) as conn, whole.open("wb") as out:
        with conn.cursor().copy(sql.SQL("COPY filler TO STDOUT")) as copy:
            for block in copy:
                out.write(block)
    with whole.open("rb") as rows:
        rows.seek(whole.stat().st_size // 2)
        rows.readline()  # to the start of the next line
        cut = rows.tell()
        rows.seek(0)
        with halves[0].open("wb") as first:
            while rows.tell() < cut:
                first.write(rows.read(min(1 << 20, cut - rows.tell())))
        with halves[1].open("wb") as second:
            shutil.copyfileobj(rows, second, 1 << 20)
    for path in (whole, *halves):
        path.chmod(0o644)  # read by the server's own user
    return [whole, *halves]


def load(dsn: str, files: list[Path]) -> None:
    """COPY each of ``files`` into table ``t`` at once, one connection each."""
    failures: list[BaseException] = []

    def copy(path: Path) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("COPY t FROM {}").format(sql.Literal(str(path))))
        except BaseException as exc:
            failures.append(exc)
    threads = [threading.Thread(target=copy, args=(path,)) for path in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-load-"))
    work.chmod(0o755)
    with throwaway_cluster(55475) as cluster:
        source = create_database(cluster, "load_source")
        fill(source, args.size_mb)
        whole, *halves = rows_to_files(source, work)
        target = create_database(cluster, "load_target")
        timings: dict[str, list[float]] = {}

        waits: dict[str, collections.Counter] = {how: collections.Counter() for how in ("one", "two", "read")}

        def timed(name: str, action: Callable[[], None]) -> None:
            busy, idle = busy_and_idle()
            started = time.perf_counter()
            with waits_sampled(target, waits[name.split()[0]]) if name.endswith("load") else contextlib.nullcontext():
                action()
            timings.setdefault(name, []).append(time.perf_counter() - started)
            after = busy_and_idle()
            timings.setdefault(name + " busy", []).append(after[0] - busy)
            timings.setdefault(name + " idle", []).append(after[1] - idle)

        def rows_then_key(how: str, files: list[Path], read_first: bool = False) -> Callable[[int], None]:
            def run(number: int) -> None:
                with psycopg.connect(target, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS t"))
                    conn.execute(sql.SQL("CREATE TABLE t ({})".format(COLUMNS)))
                timed(how + " load", lambda: load(target, files))
                with psycopg.connect(target, autocommit=True) as conn:
                    if read_first:  # the first read of committed rows sets their hint bits
                        timed("read count", lambda: conn.execute(sql.SQL("SELECT count(*) FROM t")))
                    timed(how + " key", lambda: conn.execute(sql.SQL("ALTER TABLE t ADD PRIMARY KEY (id)")))
            return run

        def in_one_transaction(number: int) -> None:  # as pg_restore --single-transaction loads and keys a table
            with psycopg.connect(target, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS t"))
            with psycopg.connect(target) as conn:
                conn.execute(sql.SQL("CREATE TABLE t ({})".format(COLUMNS)))
                conn.execute(sql.SQL("COPY t FROM {}").format(sql.Literal(str(whole))))
                timed("single key", lambda: conn.execute(sql.SQL("ALTER TABLE t ADD PRIMARY KEY (id)")))

        def settle() -> None:
            with psycopg.connect(target, autocommit=True) as conn:
                conn.execute(sql.SQL("CHECKPOINT"))
            os.sync()
        side_by_side({"one": rows_then_key("one", [whole]), "two": rows_then_key("two", halves),
                      "single": in_one_transaction,
                      "read": rows_then_key("read", halves, read_first=True)}, args.runs, settle)
        with psycopg.connect(target) as conn:
            major = int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
    shutil.rmtree(work, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in timings.items()}
    one, two = median["one load"] + median["one key"], median["two load"] + median["two key"]
    share = {how: {wait: 100 * seen[wait] / max(sum(seen.values()), 1) for wait in EXTENDING.values()}
             for how, seen in waits.items()}
    body = "\n".join([
        "The rows of backup.py's one-table database (%d MB of data) as COPY text, loaded by the server from a file: "
        "in one COPY, and in two COPYs at once into the same table (as the split load of a `mode: swap` restore "
        "does); then the primary key is built. Median of %d run(s), taking turns, each after a CHECKPOINT and a "
        "sync; PostgreSQL %d, %d cores." % (args.size_mb, args.runs, major, os.cpu_count() or 0),
        "",
        "| step | one COPY | two COPYs at once | ratio |",
        "|---|---|---|---|",
        "| load | %.1f s (busy %.1f, idle %.1f CPU s) | %.1f s (busy %.1f, idle %.1f CPU s) | **%.2f×** |" % (
            median["one load"], median["one load busy"], median["one load idle"], median["two load"],
            median["two load busy"], median["two load idle"], median["two load"] / median["one load"]),
        "| primary key, built after the load | %.1f s | %.1f s | **%.2f×** |" % (
            median["one key"], median["two key"], median["two key"] / median["one key"]),
        "| both | %.1f s | %.1f s | **%.2f×** |" % (one, two, two / one),
        *["| the load's COPYs found %s (samples every 10 ms) | %.0f %% | %.0f %% | |"
          % (what, share["one"][wait], share["two"][wait]) for what, wait in EXTENDING.items()],
        "",
        "Two COPYs load the rows in %.2f× the time of one, with about the same CPU work (busy %.1f against %.1f "
        "CPU s): what the second core gives. They leave the table's pages interleaved, out of key order, and the "
        "primary key built after them takes %.2f× as long. Together, %.2f×: the floor under a swap restore of one "
        "big table on this machine, before it reads the dump (pg_restore), hands the rows to the COPYs and swaps, "
        "while `pg_restore --single-transaction` pays the one COPY and the key, with pg_restore on the second core."
        % (median["two load"] / median["one load"], median["two load busy"], median["one load busy"],
           median["two key"] / median["one key"], two / one),
        "",
        "The key, built where its rows were loaded: in the transaction that created the table and loaded it in "
        "one COPY, as `pg_restore --single-transaction` builds it, %.1f s; after the two COPYs committed, %.1f s; "
        "after a `count(*)` had read those rows once (%.1f s), %.1f s. A row's first reader after its transaction "
        "committed marks it as committed in its page (its hint bits), and writes the page again: inside the loading "
        "transaction there is nothing to mark, and the table's first reader after `pg_restore "
        "--single-transaction` (a query, autovacuum) does that work later. The key of a swap restore is built after "
        "its COPYs committed, and pays for it then."
        % (median["single key"], median["two key"], median["read count"], median["read key"]),
        "",
        "PostgreSQL %d adds pages to a table one at a time, one backend at a time, under the table's extension "
        "lock (16 and later add many at once). The samples show how much of the load went there rather than to "
        "the rows: writing a new page takes long when the kernel holds writers up (too much written data waiting "
        "for the disk, as in a slow spell of a shared machine), and two COPYs then take turns at the lock. That "
        "time is the disk's, the same for any client, and it is where the wide ranges of the swap restore's ratios "
        "come from." % major,
    ])
    write_section("Swap restore of one table: where the time goes", body)
    print(body)


if __name__ == "__main__":
    main()
