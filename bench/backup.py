"""Backup and restore of a database of about 1 GB, against plain pg_dump -Fc and pg_restore --single-transaction.

    .venv/bin/python bench/backup.py [--size-mb 1000] [--runs 3] [--tables 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import psycopg
import pyrage
from psycopg import sql

from common import BY_HAND, in_turns, run_by_run, run_child, settler, throwaway_cluster
from report import write_section
from worlds import create_database, migrated_base

from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import default_jobs, parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import find_tool, libpq_environment

NEWER_METHODS = ("zstd", "lz4")  # directory backups compressed as pg_dump 16 and newer can
ROW_BYTES = 200  # roughly, per row of the filler table, indexes included

BACKUP = """
import sys, psycopg
from pathlib import Path
from ansible_collections.phoenix.platform.plugins.module_utils._backups.compression import parse
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import BackupRequest, default_jobs, ensure_backup
fmt = sys.argv[3] if len(sys.argv) > 3 else "custom"
request = BackupRequest(Path(sys.argv[2]), "LOCAL", fmt=fmt, jobs=default_jobs(fmt),
                        compress=parse(sys.argv[4] if len(sys.argv) > 4 else None), retention_days=1000,
                        encrypt_to=[sys.argv[5]] if len(sys.argv) > 5 else None)
with psycopg.connect(sys.argv[1]) as conn:
    ensure_backup(conn, sys.argv[1], request, False)
"""
RESTORE = """
import sys, psycopg
from pathlib import Path
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._backups.restore import RestoreRequest, restore
mode = sys.argv[3] if len(sys.argv) > 3 else "in_place"
request = RestoreRequest("latest", Path(sys.argv[2]), "LOCAL", "bench", safety_backup=False, mode=mode, jobs=parallel_jobs(),
                         identity=sys.argv[4] if len(sys.argv) > 4 else None)
with psycopg.connect(sys.argv[1]) as conn:
    restore(conn, sys.argv[1], request, False)
"""


def fill(dsn: str, size_mb: int, tables: int = 1) -> None:
    """``size_mb`` of rows, in one table ``filler`` or spread over ``filler_1`` .. ``filler_<tables>``."""
    rows = size_mb * 1_000_000 // ROW_BYTES // tables
    names = ["filler"] if tables == 1 else ["filler_%d" % n for n in range(1, tables + 1)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            table = sql.Identifier(name)
            conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, world_id text, payload text, n numeric)")
                         .format(table))
            conn.execute(sql.SQL(
                "INSERT INTO {} SELECT g, 'W' || (g %% 100), repeat(md5(g::text), 4), g / 7.0 "
                "FROM generate_series(1, %s) g").format(table), [rows])
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))


def restore_by_hand(cluster, dsn: str, major: int, dump: Path, *options: str) -> Callable[[int], None]:
    """``pg_restore <options>`` of ``dump`` into a new empty database, as a user would without phoenix.platform."""
    pg_restore, env = find_tool("pg_restore", major), libpq_environment(dsn)

    def restore(run: int) -> None:
        name = "%s%s_%d" % (BY_HAND, options[0].strip("-"), run)
        create_database(cluster, name)
        subprocess.run([str(pg_restore), *options, "--exit-on-error", "-d", name, str(dump)], env=env, check=True)
    return restore


def ratio(timings: dict[str, list[float]], name: str, against: str) -> str:
    """The median of the run-by-run ratios, in bold, and their range."""
    return "**%.2f×** (%.2f–%.2f)" % run_by_run(timings, name, against)


def read_manifest(root: Path) -> dict:
    return json.loads(next(root.glob("LOCAL/backup-*/manifest.json")).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tables", type=int, default=1, help="spread the rows over this many tables")
    parser.add_argument("--server", choices=["auto", "pgserver"], default="auto",
                        help="the server's programs: the system's (auto) or the pgserver wheel's (PostgreSQL 16)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-backup-"))
    try:
        with throwaway_cluster(55473, args.server) as cluster:
            dsn = migrated_base(cluster, "big")
            fill(dsn, args.size_mb, args.tables)
            with psycopg.connect(dsn) as conn:
                size = conn.execute(sql.SQL("SELECT pg_database_size(current_database())")).fetchone()[0]
                major = int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
            env = libpq_environment(dsn)
            pg_dump = find_tool("pg_dump", major)

            peak_mb: dict[str, float] = {}

            def phoenix_backup(run: int) -> None:
                peak_mb["plain"] = run_child(BACKUP, dsn, str(work / ("phoenix%d" % run)))[1]

            identity = pyrage.x25519.Identity.generate()

            def encrypted_backup(run: int) -> None:
                peak_mb["encrypted"] = run_child(BACKUP, dsn, str(work / ("encrypted%d" % run)), "custom", "",
                                                 str(identity.to_public()))[1]

            def raw_backup(run: int) -> None:
                subprocess.run([str(pg_dump), "-Fc", "-f", str(work / ("raw%d.dump" % run))], env=env, check=True)

            def parallel_backup(run: int) -> None:
                run_child(BACKUP, dsn, str(work / ("parallel%d" % run)), "directory", "gzip")

            def compressed_backup(method: str) -> Callable[[int], None]:
                return lambda run: run_child(BACKUP, dsn, str(work / ("%s%d" % (method, run))), "directory", method)

            settle = settler(dsn, major)

            backups = in_turns({"raw": raw_backup, "phoenix": phoenix_backup, "parallel": parallel_backup,
                                "encrypted": encrypted_backup, **{m: compressed_backup(m) for m in NEWER_METHODS}},
                               args.runs, settle)
            backup_p, backup_r, parallel_p, encrypted_p = (
                statistics.median(backups[name]) for name in ("phoenix", "raw", "parallel", "encrypted"))
            dump_mb = (work / "raw0.dump").stat().st_size / 1e6
            stored_mb = {name: sum(f.stat().st_size for f in (work / ("%s0" % name)).rglob("*") if f.is_file()) / 1e6
                         for name in ("parallel", *NEWER_METHODS)}

            def phoenix_restore(run: int) -> None:
                run_child(RESTORE, dsn, str(work / "phoenix0"))

            def encrypted_restore(run: int) -> None:
                peak_mb["encrypted_restore"] = run_child(RESTORE, dsn, str(work / "encrypted0"), "in_place",
                                                         str(identity))[1]

            raw_restore = restore_by_hand(cluster, dsn, major, work / "raw0.dump", "--single-transaction")
            # what any parallel restore of this dump starts from
            parallel_raw_restore = restore_by_hand(cluster, dsn, major, work / "raw0.dump", "--jobs", str(parallel_jobs()))

            def safe_restore(run: int) -> None:  # the default: a safety backup of the database first
                run_child(RESTORE.replace("safety_backup=False", "safety_backup=True"), dsn, str(work / "phoenix0"))

            def backup_then_raw_restore(run: int) -> None:
                subprocess.run([str(pg_dump), "-Fc", "-f", str(work / ("safety%d.dump" % run))], env=env, check=True)
                raw_restore(run)

            def swap_restore(run: int) -> None:
                peak_mb["swap"] = run_child(RESTORE, dsn, str(work / "phoenix0"), "swap")[1]

            def compressed_swap_restore(method: str) -> Callable[[int], None]:
                def swap(run: int) -> None:
                    peak_mb[method + "_swap"] = run_child(RESTORE, dsn, str(work / (method + "0")), "swap")[1]
                return swap

            restores = in_turns({"raw": raw_restore, "phoenix": phoenix_restore, "encrypted": encrypted_restore,
                                 "swap": swap_restore, **{m + "_swap": compressed_swap_restore(m) for m in NEWER_METHODS},
                                 "raw_parallel": parallel_raw_restore, "safe": safe_restore,
                                 "raw_safe": backup_then_raw_restore}, args.runs, settle)
            restore_p, restore_r, encrypted_restore_p, swap_p, parallel_r, safe_p, safe_r = (
                statistics.median(restores[name])
                for name in ("phoenix", "raw", "encrypted", "swap", "raw_parallel", "safe", "raw_safe"))
            newer_major = read_manifest(work / (NEWER_METHODS[0] + "0"))["pg_dump_major"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    body = "\n".join([
        "Database of %.0f MB in %d table(s) (dump %.0f MB, custom format, default compression) on a PostgreSQL %d "
        "server; median of %d run(s), the operations taking turns, each started after the plain tool's restored "
        "databases were dropped, a VACUUM ANALYZE of every database, a CHECKPOINT and a sync; %d cores. A ratio is "
        "the median of the ratios within each run, with the lowest and highest in brackets: two medians may come "
        "from a slow and a fast spell of a shared machine, two times of one run share it."
        % (size / 1e6, args.tables, dump_mb, major, args.runs, os.cpu_count()),
        "",
        "| operation | phoenix.platform | plain tool | ratio |",
        "|---|---|---|---|",
        "| backup | %.1f s (`phoenix_backup`: snapshot, row counts, sha256, manifest, fsync) | %.1f s (`pg_dump -Fc`) "
        "| %s |" % (backup_p, backup_r, ratio(backups, "phoenix", "raw")),
        "| backup, `format: directory`, `compress: gzip`, %d jobs | %.1f s, %.0f MB | %.1f s, %.0f MB (`pg_dump -Fc`) "
        "| %s |" % (default_jobs("directory"), parallel_p, stored_mb["parallel"], backup_r, dump_mb,
                    ratio(backups, "parallel", "raw")),
        *["| backup, `format: directory`, `compress: %s`, %d jobs (pg_dump %d) | %.1f s, %.0f MB | %.1f s, %.0f MB "
          "(`pg_dump -Fc`) | %s |" % (method, default_jobs("directory"), newer_major, statistics.median(backups[method]),
                                      stored_mb[method], backup_r, dump_mb, ratio(backups, method, "raw"))
          for method in NEWER_METHODS],
        "| backup encrypted to one age recipient (`encrypt_to`) | %.1f s | %.1f s (the same backup unencrypted) "
        "| %s |" % (encrypted_p, backup_p, ratio(backups, "encrypted", "phoenix")),
        "| restore | %.1f s (`phoenix_restore`: checksums, `pg_restore --list`, single transaction, no safety "
        "backup) | %.1f s (`pg_restore --single-transaction` into an empty database) | %s |"
        % (restore_p, restore_r, ratio(restores, "phoenix", "raw")),
        "| restore with a safety backup first (the default) | %.1f s (`phoenix_restore`: a safety backup, whose row "
        "counts are the database's now, then the restore) | %.1f s (`pg_dump -Fc` of the database, then `pg_restore "
        "--single-transaction` into an empty database) | %s |" % (safe_p, safe_r, ratio(restores, "safe", "raw_safe")),
        "| restore of the encrypted backup (`backup_identity`), decrypted on the fly into pg_restore | %.1f s | %.1f s "
        "(the same restore unencrypted) | %s |" % (encrypted_restore_p, restore_p, ratio(restores, "encrypted", "phoenix")),
        "| restore, `mode: swap`, %d jobs | %.1f s (`phoenix_restore`: checksums, `pg_restore -j` into a new database, "
        "row counts against the manifest, history carried over, names swapped) | %.1f s (`pg_restore "
        "--single-transaction` into an empty database) | %s |"
        % (parallel_jobs(), swap_p, restore_r, ratio(restores, "swap", "raw")),
        *["| restore of the %s backup, `mode: swap`, %d jobs | %.1f s (the same, with pg_restore %d) | %.1f s "
          "(`pg_restore --single-transaction` of the `-Fc` dump) | %s |"
          % (method, parallel_jobs(), statistics.median(restores[method + "_swap"]), newer_major, restore_r,
             ratio(restores, method + "_swap", "raw")) for method in NEWER_METHODS],
        "| for reference: `pg_restore --jobs %d` alone, into an empty database (no check, no swap) | – | %.1f s | "
        "%s of `pg_restore --single-transaction` |" % (parallel_jobs(), parallel_r, ratio(restores, "raw_parallel", "raw")),
        "",
        "Peak memory of the backup process: %.0f MB unencrypted, %.0f MB encrypted (the dump is streamed, never "
        "held whole; the encrypted one is encrypted as pg_dump writes it); of the encrypted restore: %.0f MB; of the "
        "swap restore: %.0f MB, %s. "
        % (peak_mb["plain"], peak_mb["encrypted"], peak_mb["encrypted_restore"], peak_mb["swap"],
           ", ".join("%.0f MB of the %s one" % (peak_mb[method + "_swap"], method) for method in NEWER_METHODS)) +
        "The module restores over the live database (`--clean` drops each object first); the plain tool restores "
        "into an empty one.",
    ])
    # pg_dump and pg_restore run jobs per table: one big table is the case parallelism cannot help
    write_section("Backup and restore" + ("" if args.tables == 1 else ", %d tables" % args.tables)
                  + ("" if args.server == "auto" else ", PostgreSQL %d server" % major), body)
    print(body)


if __name__ == "__main__":
    main()
