"""A database of many tables (a schema per tenant) and the server's lock table, which every lock of every session
shares (about max_locks_per_transaction × its connections and processes). A backup's row counts once kept a lock on
each table and each index until the end of pg_dump's snapshot (and of every partition of a partitioned table at
once), and overflowed it where pg_dump alone fits. An
in-place restore locks every object it drops and creates in its one transaction: one that cannot fit is refused
before anything is written, and one that runs out says how to get through (a swap, or more locks per transaction).

The server here has a small lock table (a few hundred locks), so that a few hundred tables stand for thousands."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._backups import dump
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import find_tool, libpq_environment, server_major
from ansible_collections.phoenix.platform.plugins.module_utils._pg.local_cluster import LocalCluster
from ansible_collections.phoenix.platform.plugins.modules import phoenix_backup, phoenix_restore, phoenix_restore_drill
from ansible_collections.phoenix.platform.tests.helpers import free_port, run_module

from conftest import SERVER_PROGRAMS, THROWAWAY_SETTINGS, Database, make_base_dir
from worlds_fixtures import migrate

pytestmark = pytest.mark.usefixtures("clean_env")

TABLES_PER_TENANT = 10
WAYS_OUT = ("use mode=swap, which restores each table in a transaction of its own, or raise max_locks_per_transaction "
            "(a server restart)")


@pytest.fixture(scope="module")
def small_lock_table() -> Iterator[LocalCluster]:
    """A server whose lock table holds 10 × 46 locks (and some more from spare shared memory)."""
    base = make_base_dir("phoenix-locks-")
    cluster = LocalCluster(base / "pg", free_port(), bin_source=SERVER_PROGRAMS, settings=dict(
        THROWAWAY_SETTINGS, max_locks_per_transaction="10", max_connections="20"))
    cluster.ensure_running()
    yield cluster
    cluster.ensure_absent()
    shutil.rmtree(base, ignore_errors=True)


def tenants_database(cluster: LocalCluster, tenants: int) -> Database:
    """A migrated BETA database with a schema per tenant, each of TABLES_PER_TENANT tables with a key, a text column
    and a few rows (table n of a tenant has n + 1)."""
    database = Database(cluster, "tenants_" + uuid.uuid4().hex[:8])
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.name)))
    migrate(database)
    add_tenants(database, tenants)
    return database


def add_tenants(database: Database, tenants: int) -> None:
    with database.connect() as conn:
        for tenant in range(tenants):
            schema = "tenant_%03d" % tenant
            with conn.transaction():  # a tenant at a time: its creation fits the small lock table
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                for number in range(TABLES_PER_TENANT):
                    table = sql.Identifier(schema, "t%d" % number)
                    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v text)").format(table))
                    conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'row ' || g FROM generate_series(1, %s) g")
                                 .format(table), [number + 1])


@pytest.fixture
def tenants(small_lock_table, request) -> Iterator[Database]:
    database = tenants_database(small_lock_table, request.param)
    yield database
    with psycopg.connect(**small_lock_table.conninfo(), autocommit=True) as conn:
        for (name,) in conn.execute(sql.SQL("SELECT datname FROM pg_database WHERE datname LIKE %s"),
                                    [database.name + "%"]).fetchall():  # and what a swap kept of it
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def tenant_counts(database: Database) -> dict[str, int]:
    with database.connect() as conn:
        tables = conn.execute(sql.SQL("SELECT schemaname, tablename FROM pg_tables WHERE schemaname LIKE 'tenant%' "
                                      "ORDER BY 1, 2")).fetchall()
        return {"%s.%s" % table: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(*table))).fetchone()[0] for table in tables}


def dumped_by_hand(database: Database, dump: Path) -> None:
    """``pg_dump -Fc`` of ``database``, which fits the lock table."""
    with database.connect() as conn:
        pg_dump = find_tool("pg_dump", server_major(conn))
    subprocess.run([str(pg_dump), "--format", "c", "--file", str(dump)], env=libpq_environment(database.url),
                   check=True, capture_output=True)


def call(main, database: Database, check: bool = False, **options):
    return run_module(main, dict({"db_url": database.url, "stage": "BETA"}, **options), check=check)


def backed_up_then_changed(tenants: Database, dest: Path) -> tuple[str, dict[str, int]]:
    """A backup of ``tenants`` under ``dest``, after which a table lost rows: its id, and the tables' counts now."""
    made = call(phoenix_backup.main, tenants, dest=str(dest))
    assert made.get("changed") is True, made.get("msg")
    with tenants.connect() as conn:
        conn.execute(sql.SQL("DELETE FROM tenant_007.t9 WHERE id > 3"))
    return made["backup"]["id"], tenant_counts(tenants)


def backups_in(dest: Path) -> list[str]:
    return sorted(path.name for path in (dest / "BETA").iterdir() if path.name.startswith("backup-"))


@pytest.mark.parametrize("tenants", [40], indirect=True)
def test_a_backup_counts_as_many_tables_as_pg_dump_locks(tenants, tmp_path):
    """400 tables: pg_dump holds 400 locks; the counts, keeping one on each table and index as well, took 800
    more, which this server has no room for."""
    counts = tenant_counts(tenants)
    assert len(counts) == 400
    dumped_by_hand(tenants, tmp_path / "by_hand.dump")
    made = call(phoenix_backup.main, tenants, dest=str(tmp_path / "phoenix"))
    assert made.get("changed") is True, made.get("msg")
    manifest = json.loads((tmp_path / "phoenix" / "BETA" / made["backup"]["id"] / "manifest.json").read_text())
    assert {table: rows for table, rows in manifest["row_counts"].items() if table.startswith("tenant")} == counts
    drilled = call(phoenix_restore_drill.main, tenants, dest=str(tmp_path / "phoenix"))
    assert drilled.get("passed") is True, drilled.get("msg")
    with tenants.connect() as conn:
        conn.execute(sql.SQL("DELETE FROM tenant_007.t9 WHERE id > 3"))
    swapped = call(phoenix_restore.main, tenants, dest=str(tmp_path / "phoenix"), backup=made["backup"]["id"],
                   mode="swap", jobs=2, safety_backup=False)
    assert swapped.get("changed") is True, swapped.get("msg")
    assert swapped["row_changes"] == {"tenant_007.t9": {"now": 3, "backup": 10, "difference": 7}}
    assert tenant_counts(tenants) == counts


@pytest.mark.parametrize("tenants", [40], indirect=True)
def test_an_in_place_restore_that_cannot_fit_the_lock_table_is_refused_first(tenants, tmp_path):
    backup, after = backed_up_then_changed(tenants, tmp_path)
    for check in (True, False):
        refused = call(phoenix_restore.main, tenants, check=check, dest=str(tmp_path), backup=backup)
        assert refused.get("failed") is True and "Traceback" not in refused["_raw"], (check, refused)
        assert refused["msg"].startswith("restoring backup %s over database %s drops the database's objects and "
                                         "creates the dump's in one transaction, which holds a lock on each until it "
                                         "ends: " % (backup, tenants.name)), refused["msg"]
        assert ("and the server's lock table holds about 460 (max_locks_per_transaction 10 × 46 connections and "
                "processes); %s; nothing was written" % WAYS_OUT) in refused["msg"]
    assert tenant_counts(tenants) == after
    assert backups_in(tmp_path) == [backup]  # no safety backup either


@pytest.mark.parametrize("tenants", [12], indirect=True)
def test_an_in_place_restore_that_runs_out_of_locks_says_how_to_get_through(tenants, tmp_path):
    """120 tables: fewer locks at least than the server's room, and more than it holds."""
    backup, after = backed_up_then_changed(tenants, tmp_path)
    failed = call(phoenix_restore.main, tenants, dest=str(tmp_path), backup=backup, safety_backup=False)
    assert failed.get("failed") is True and "Traceback" not in failed["_raw"], failed
    assert failed["msg"].startswith("pg_restore failed (exit 1), the database was left as it was: "), failed["msg"]
    assert "out of shared memory" in failed["msg"]
    assert failed["msg"].endswith("(the restore's one transaction locks every object it drops or creates, and the "
                                  "server's lock table was full: %s)" % WAYS_OUT), failed["msg"]
    assert tenant_counts(tenants) == after
    swapped = call(phoenix_restore.main, tenants, dest=str(tmp_path), backup=backup, mode="swap",
                   safety_backup=False)
    assert swapped.get("changed") is True, swapped.get("msg")
    assert tenant_counts(tenants)["tenant_007.t9"] == 10


@pytest.fixture
def partitioned(small_lock_table) -> Iterator[Database]:
    """A migrated BETA database with an event table partitioned by day into 400 partitions (a year and more), a
    table partitioned by region and then by year, and a partitioned table without partitions yet."""
    database = tenants_database(small_lock_table, 0)
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE events (day int, id bigint, body text, PRIMARY KEY (day, id)) "
                             "PARTITION BY LIST (day)"))
        for first in range(0, 400, 20):
            with conn.transaction():
                for day in range(first, first + 20):
                    conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES IN ({})").format(
                        sql.Identifier("events_%03d" % day), sql.Literal(day)))
        conn.execute(sql.SQL("INSERT INTO events SELECT g % 400, g, 'event' FROM generate_series(1, 4321) g"))
        conn.execute(sql.SQL("CREATE TABLE sales (region text, year int, amount int) PARTITION BY LIST (region)"))
        for region in ("north", "south"):
            conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF sales FOR VALUES IN ({}) PARTITION BY RANGE (year)")
                         .format(sql.Identifier("sales_" + region), sql.Literal(region)))
            for year in (2025, 2026):
                conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier("sales_%s_%d" % (region, year)), sql.Identifier("sales_" + region),
                    sql.Literal(year), sql.Literal(year + 1)))
        conn.execute(sql.SQL("INSERT INTO sales SELECT CASE WHEN g % 3 = 0 THEN 'north' ELSE 'south' END, "
                             "2025 + g % 2, g FROM generate_series(1, 77) g"))
        conn.execute(sql.SQL("CREATE TABLE audit_trail (at date, entry text) PARTITION BY RANGE (at)"))
    yield database
    with psycopg.connect(**small_lock_table.conninfo(), autocommit=True) as conn:
        for (name,) in conn.execute(sql.SQL("SELECT datname FROM pg_database WHERE datname LIKE %s"),
                                    [database.name + "%"]).fetchall():
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_table_of_many_partitions_is_counted_partition_by_partition(partitioned, tmp_path):
    """Counted whole, the event table locked its 400 partitions and their 400 keys at once, beside pg_dump's 400
    locks: more than this server holds."""
    dumped_by_hand(partitioned, tmp_path / "by_hand.dump")
    made = call(phoenix_backup.main, partitioned, dest=str(tmp_path))
    assert made.get("changed") is True, made.get("msg")
    manifest = json.loads((tmp_path / "BETA" / made["backup"]["id"] / "manifest.json").read_text())
    counted = {table: manifest["row_counts"].get(table) for table in ("events", "sales", "audit_trail")}
    assert counted == {"events": 4321, "sales": 77, "audit_trail": 0}
    assert not [table for table in manifest["row_counts"] if table.startswith(("events_", "sales_"))]
    with partitioned.connect() as conn:
        conn.execute(sql.SQL("DELETE FROM events WHERE day = 7"))
        conn.execute(sql.SQL("INSERT INTO sales VALUES ('north', 2026, 1)"))
    swapped = call(phoenix_restore.main, partitioned, dest=str(tmp_path), backup=made["backup"]["id"], mode="swap",
                   safety_backup=False)
    assert swapped.get("changed") is True, swapped.get("msg")
    assert swapped["row_changes"] == {"events": {"now": 4310, "backup": 4321, "difference": 11},
                                      "sales": {"now": 78, "backup": 77, "difference": -1}}
    assert partitioned.query("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM sales)") == [(4321, 77)]


@pytest.mark.parametrize("tenants", [150], indirect=True)
def test_a_backup_pg_dump_cannot_fit_says_how_to_get_through(tenants, tmp_path):
    """1500 tables: more than pg_dump alone may lock on this server."""
    with pytest.raises(subprocess.CalledProcessError) as plain_tool:
        dumped_by_hand(tenants, tmp_path / "by_hand.dump")
    assert b"out of shared memory" in plain_tool.value.stderr
    for jobs, ways_out in ((1, "raise max_locks_per_transaction (a server restart)"),
                           (2, "back up with jobs=1, or raise max_locks_per_transaction (a server restart)")):
        failed = call(phoenix_backup.main, tenants, dest=str(tmp_path / "phoenix"), format="directory", jobs=jobs)
        assert failed.get("failed") is True and "Traceback" not in failed["_raw"], failed
        # whichever asks for a lock once the table is full fails: pg_dump, or the row counts beside it
        assert failed["msg"].startswith(("pg_dump failed (exit 1): ", "the row counts failed while pg_dump ran: ")), \
            failed["msg"]
        assert "out of shared memory" in failed["msg"], failed["msg"]
        assert failed["msg"].endswith("and the server's lock table was full: %s)" % ways_out), failed["msg"]
        assert not list((tmp_path / "phoenix" / "BETA").glob("backup-*"))


@pytest.mark.parametrize("tenants", [0], indirect=True)
def test_tables_made_since_the_backup_do_not_count_against_an_in_place_restore(tenants, tmp_path):
    """An in-place restore drops the dump's objects only: 400 tables made since the backup stay as they are, and
    take none of its locks."""
    made = call(phoenix_backup.main, tenants, dest=str(tmp_path))
    assert made.get("changed") is True, made.get("msg")
    add_tenants(tenants, 40)
    after = tenant_counts(tenants)
    assert len(after) == 400
    restored = call(phoenix_restore.main, tenants, dest=str(tmp_path), backup=made["backup"]["id"],
                    safety_backup=False)
    assert restored.get("changed") is True, restored.get("msg")
    assert tenant_counts(tenants) == after


@pytest.mark.parametrize("tenants", [45], indirect=True)
def test_a_backup_left_to_choose_its_jobs_takes_one_where_a_parallel_dump_cannot_fit(tenants, tmp_path, monkeypatch):
    """450 tables and the schema's: more than this server's lock table is sized for (460 locks). One job fits in the
    room above that; two, each table locked twice, do not."""
    monkeypatch.setattr(dump.os, "cpu_count", lambda: 4)  # the default jobs, whatever this machine has
    counts = tenant_counts(tenants)
    parallel = call(phoenix_backup.main, tenants, dest=str(tmp_path / "given"), format="directory", jobs=2)
    assert parallel.get("failed") is True, parallel
    # pg_dump fails in its COPY (out of shared memory) or in a job's lock on the table (which says less), as it goes
    assert "back up with jobs=1, or raise max_locks_per_transaction (a server restart)" in parallel["msg"], parallel
    fewer = re.compile(
        r"^the backup's pg_dump takes 1 job, not 4: pg_dump locks each of the database's (\d+) tables until it ends, "
        r"more than the server's lock table is sized for \(about 460: max_locks_per_transaction 10 × 46 connections "
        r"and processes\), and a parallel one locks each a second time, in the job that dumps its rows, which the "
        r"room above that is less likely to hold; give jobs to choose, or raise max_locks_per_transaction \(a server "
        r"restart\) for parallel backups$")
    planned = call(phoenix_backup.main, tenants, check=True, dest=str(tmp_path / "default"), format="directory")
    assert planned.get("changed") is True and planned["jobs"] == 1, planned
    assert [w for w in planned.get("warnings", []) if fewer.match(w["event"]["msg"])], planned.get("warnings")
    assert not (tmp_path / "default").exists()
    made = call(phoenix_backup.main, tenants, dest=str(tmp_path / "default"), format="directory")
    assert made.get("changed") is True and made["jobs"] == 1, made.get("msg")
    said = [fewer.match(w["event"]["msg"]) for w in made.get("warnings", []) if fewer.match(w["event"]["msg"])]
    assert said, made.get("warnings")
    with tenants.connect() as conn:
        assert int(said[0].group(1)) == conn.execute(sql.SQL(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")).fetchone()[0]
    manifest = json.loads((tmp_path / "default" / "BETA" / made["backup"]["id"] / "manifest.json").read_text())
    assert {table: rows for table, rows in manifest["row_counts"].items() if table.startswith("tenant")} == counts


@pytest.mark.parametrize("tenants", [2], indirect=True)
def test_a_backup_left_to_choose_its_jobs_runs_them_in_parallel_where_they_fit(tenants, tmp_path, monkeypatch):
    monkeypatch.setattr(dump.os, "cpu_count", lambda: 4)
    made = call(phoenix_backup.main, tenants, dest=str(tmp_path), format="directory")
    assert made.get("changed") is True and made["jobs"] == 4, made.get("msg")
    assert not [w for w in made.get("warnings", []) if "job" in w["event"]["msg"]], made["warnings"]
    again = call(phoenix_backup.main, tenants, dest=str(tmp_path), format="directory", fresh_within_hours=1)
    assert again.get("changed") is False and "jobs" not in again, again
