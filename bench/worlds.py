"""World benchmarks, as ratios against the raw SQL or COPY a user would otherwise run.

1. Cleanup of 1,000 expired worlds x 100 rows: phoenix_world_cleanup's code against the same
   set-based DELETE statements written by hand.
2. Template clone of a 100k-row world: phoenix_world's from_template against a hand-written
   INSERT ... SELECT with the same re-keying.
3. Seed export and import of a 10k-row and a 1M-row world against a raw COPY to/from a file,
   with the peak memory of the process doing it.

    .venv/bin/python bench/worlds.py [--runs 3] [--big-rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from common import median_seconds, run_child, throwaway_cluster, url
from report import write_section

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import load
from ansible_collections.phoenix.platform.plugins.module_utils._schema.ensure import SchemaRequest, ensure_schema
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.cleanup import cleanup
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.rows import copy_rows

# A world of n rows: users, chats, and messages making up the rest (parents first).
FILL_WORLD = """
WITH u AS (INSERT INTO "User" (id, email, world_id)
           SELECT md5(%(w)s || ':u' || i)::uuid, 'u' || i || '@' || lower(%(w)s) || '.example', %(w)s
           FROM generate_series(1, %(users)s) i RETURNING id),
     c AS (INSERT INTO "Chat" (id, title, "userId", world_id)
           SELECT md5(%(w)s || ':c' || i)::uuid, 'chat ' || i, md5(%(w)s || ':u' || (1 + i %% %(users)s))::uuid, %(w)s
           FROM generate_series(1, %(chats)s) i RETURNING id)
INSERT INTO "Message_v2" (id, "chatId", role, parts, world_id)
SELECT md5(%(w)s || ':m' || i)::uuid, md5(%(w)s || ':c' || (1 + i %% %(chats)s))::uuid, 'user',
       json_build_array(json_build_object('type', 'text', 'text', 'message number ' || i || ' of the benchmark')),
       %(w)s
FROM generate_series(1, %(messages)s) i
"""


def create_database(cluster, name: str, template: str | None = None) -> str:
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url(cluster, name)


def add_world(conn, world: str, rows: int, hours_old: int = 0, template: bool = False) -> None:
    users, chats = max(1, rows // 100), max(1, rows // 10)
    conn.execute(sql.SQL('INSERT INTO "WorldMeta" (id, name, environment, "isTemplate", "createdAt") '
                         "VALUES (%s, %s, 'LOCAL', %s, now() - make_interval(hours => %s))"),
                 [world, world, template, hours_old])
    conn.execute(sql.SQL(FILL_WORLD), {"w": world, "users": users, "chats": chats,
                                       "messages": rows - users - chats})


def migrated_base(cluster, name: str) -> str:
    dsn = create_database(cluster, name)
    with psycopg.connect(dsn) as conn:
        ensure_schema(conn, SchemaRequest("LOCAL", "reference", None, "bench", 60, name), False)
    return dsn


def bench_cleanup(cluster, runs: int) -> list[str]:
    base = migrated_base(cluster, "cleanup_base")
    with psycopg.connect(base, autocommit=True) as conn:
        for n in range(1000):
            add_world(conn, "OLD_%04d" % n, 100, hours_old=48)
        conn.execute(sql.SQL("VACUUM ANALYZE"))

    def phoenix(run: int) -> None:
        dsn = create_database(cluster, "cleanup_p%d" % run, "cleanup_base")
        with psycopg.connect(dsn) as conn:
            result = cleanup(conn, "LOCAL", "bench", None, False, 60, False, "the bench database")
        assert len(result["removed"]) == 1000, result["removed"][:3]

    def raw(run: int) -> None:
        dsn = create_database(cluster, "cleanup_r%d" % run, "cleanup_base")
        with psycopg.connect(dsn) as conn, conn.transaction():
            ids = [r[0] for r in conn.execute(sql.SQL(
                'SELECT id FROM "WorldMeta" WHERE NOT "isTemplate" AND "autoCleanup" '
                'AND "createdAt" + make_interval(hours => "cleanupAfterHours") < now()'))]
            for table in ("Message_v2", "Chat", "User"):
                conn.execute(sql.SQL("DELETE FROM {} WHERE world_id = ANY(%s)").format(sql.Identifier(table)), [ids])
            conn.execute(sql.SQL('DELETE FROM "WorldMeta" WHERE id = ANY(%s)'), [ids])

    p, r = median_seconds(phoenix, runs), median_seconds(raw, runs)
    return ["| cleanup, 1,000 expired worlds × 100 rows | %.2f s | %.2f s (hand-written DELETEs) | **%.2f×** |"
            % (p, r, p / r)]


def bench_clone(cluster, runs: int, rows: int) -> list[str]:
    base = migrated_base(cluster, "clone_base")
    with psycopg.connect(base, autocommit=True) as conn:
        add_world(conn, "TEMPLATE_BIG", rows, template=True)
        conn.execute(sql.SQL("VACUUM ANALYZE"))

    def phoenix(run: int) -> None:
        dsn = create_database(cluster, "clone_p%d" % run, "clone_base")
        with psycopg.connect(dsn) as conn, conn.transaction():
            copied = copy_rows(conn, load(conn), "TEMPLATE_BIG", "CLONE", False)
        assert sum(copied.values()) == rows, copied

    def raw(run: int) -> None:
        dsn = create_database(cluster, "clone_r%d" % run, "clone_base")
        key = "md5('CLONE:' || {}::text)::uuid"
        with psycopg.connect(dsn) as conn, conn.transaction():
            conn.execute(sql.SQL('INSERT INTO "User" (id, email, name, password, type, world_id, "createdAt") '
                                 'SELECT ' + key.format("id") + ', email, name, password, type, %s, "createdAt" '
                                 'FROM "User" WHERE world_id = %s'), ["CLONE", "TEMPLATE_BIG"])
            conn.execute(sql.SQL('INSERT INTO "Chat" (id, "createdAt", title, "userId", visibility, world_id) '
                                 'SELECT ' + key.format("id") + ', "createdAt", title, ' + key.format('"userId"')
                                 + ', visibility, %s FROM "Chat" WHERE world_id = %s'), ["CLONE", "TEMPLATE_BIG"])
            conn.execute(sql.SQL('INSERT INTO "Message_v2" (id, "chatId", role, parts, attachments, "createdAt", '
                                 'world_id) SELECT ' + key.format("id") + ", " + key.format('"chatId"')
                                 + ', role, parts, attachments, "createdAt", %s FROM "Message_v2" WHERE world_id = %s'),
                         ["CLONE", "TEMPLATE_BIG"])

    p, r = median_seconds(phoenix, runs), median_seconds(raw, runs)
    return ["| template clone, %s rows | %.2f s | %.2f s (hand-written INSERT … SELECT) | **%.2f×** |"
            % (format(rows, ","), p, r, p / r)]


EXPORT = """
import sys, psycopg
from pathlib import Path
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.export import ExportRequest, export_world
with psycopg.connect(sys.argv[1]) as conn:
    export_world(conn, ExportRequest("SEEDED", Path(sys.argv[2]), "LOCAL", include_blobs=False), False)
"""
IMPORT = """
import sys, psycopg
from pathlib import Path
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.importer import ImportRequest, import_seed
with psycopg.connect(sys.argv[1]) as conn:
    r = import_seed(conn, ImportRequest(Path(sys.argv[2]), None, "skip", None, "LOCAL", "bench", False, 60,
                                        "bench"), False)
    assert sum(t["inserted"] for t in r["tables"].values()) == int(sys.argv[3]), r["tables"]
"""
RAW_EXPORT = """
import sys, psycopg
from psycopg import sql
with psycopg.connect(sys.argv[1]) as conn:
    for table in ("User", "Chat", "Message_v2"):
        with open(sys.argv[2] + "." + table, "wb") as out, conn.cursor().copy(sql.SQL(
                "COPY (SELECT * FROM {} WHERE world_id = 'SEEDED') TO STDOUT").format(sql.Identifier(table))) as copy:
            for data in copy:
                out.write(data)
"""
RAW_IMPORT = """
import sys, psycopg
from psycopg import sql
with psycopg.connect(sys.argv[1]) as conn, conn.transaction():
    for table in ("User", "Chat", "Message_v2"):
        with open(sys.argv[2] + "." + table, "rb") as data, conn.cursor().copy(
                sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as copy:
            while chunk := data.read(1 << 20):
                copy.write(chunk)
"""


def bench_seed(cluster, rows: int, work: Path) -> list[str]:
    name = "seed_%d" % rows
    dsn = migrated_base(cluster, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        add_world(conn, "SEEDED", rows)
    dest, raw_file = work / ("seed_%d" % rows), work / ("raw_%d.copy" % rows)
    export_s, export_mb = run_child(EXPORT, dsn, str(dest))
    raw_export_s = run_child(RAW_EXPORT, dsn, str(raw_file))[0]
    # Both imports go into an empty copy of the schema, with its indexes and foreign keys.
    migrated_base(cluster, name + "_empty")
    import_s, import_mb = run_child(IMPORT, create_database(cluster, name + "_p", name + "_empty"), str(dest), str(rows))
    raw_import_s = run_child(RAW_IMPORT, create_database(cluster, name + "_r", name + "_empty"), str(raw_file))[0]
    size_mb = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) / 1e6
    label = format(rows, ",")
    return [
        "| seed export, %s rows (%.0f MB) | %.2f s, peak %.0f MB | %.2f s (raw COPY TO file) | **%.2f×** |"
        % (label, size_mb, export_s, export_mb, raw_export_s, export_s / raw_export_s),
        "| seed import, %s rows | %.2f s, peak %.0f MB | %.2f s (raw COPY FROM file) | **%.2f×** |"
        % (label, import_s, import_mb, raw_import_s, import_s / raw_import_s),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--clone-rows", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-seed-"))
    lines = ["| operation | phoenix.platform | what a user would otherwise run | ratio |", "|---|---|---|---|"]
    try:
        with throwaway_cluster(55472) as cluster:
            lines += bench_cleanup(cluster, args.runs)
            lines += bench_clone(cluster, args.runs, args.clone_rows)
            for rows in (10_000, args.big_rows):
                lines += bench_seed(cluster, rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    body = "\n".join(lines + [
        "",
        "Median of %d run(s) for cleanup and clone (each on a fresh copy of the same database); one run each for "
        "export and import, in a child process whose peak resident memory is reported. Export and import stream "
        "(COPY in both directions), so peak memory stays flat as the world grows. Both imports write into an empty "
        "copy of the schema (indexes and foreign keys included); the raw one is a plain COPY of pg_dump-style text, "
        "the module also verifies checksums, parses JSON and handles key conflicts." % args.runs,
        "%d cores." % os.cpu_count(),
    ])
    write_section("Worlds: cleanup, clone, seed export and import", body)
    print(body)


if __name__ == "__main__":
    main()
