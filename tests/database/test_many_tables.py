"""A database of many tables (a schema per tenant) and the server's lock table, which every lock of every session
shares (about max_locks_per_transaction × its connections and processes). A backup's row counts once kept a lock on
each table and each index until the end of pg_dump's snapshot, and overflowed it where pg_dump alone fits. An
in-place restore locks every object it drops and creates in its one transaction: one that cannot fit is refused
before anything is written, and one that runs out says how to get through (a swap, or more locks per transaction).

The server here has a small lock table (a few hundred locks), so that a few hundred tables stand for thousands."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

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
    return database


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


def call(main, database: Database, check: bool = False, **options):
    return run_module(main, dict({"db_url": database.url, "stage": "BETA"}, **options), check=check)


def backups_in(dest: Path) -> list[str]:
    return sorted(path.name for path in (dest / "BETA").iterdir() if path.name.startswith("backup-"))


@pytest.mark.parametrize("tenants", [40], indirect=True)
def test_a_backup_counts_as_many_tables_as_pg_dump_locks(tenants, tmp_path):
    """400 tables: pg_dump holds 400 locks; the counts, keeping one on each table and index as well, took 800
    more, which this server has no room for."""
    counts = tenant_counts(tenants)
    assert len(counts) == 400
    with tenants.connect() as conn:
        pg_dump = find_tool("pg_dump", server_major(conn))
    subprocess.run([str(pg_dump), "--format", "c", "--file", str(tmp_path / "by_hand.dump")],
                   env=libpq_environment(tenants.url), check=True, capture_output=True)  # it fits
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
    made = call(phoenix_backup.main, tenants, dest=str(tmp_path))
    assert made.get("changed") is True, made.get("msg")
    with tenants.connect() as conn:
        conn.execute(sql.SQL("DELETE FROM tenant_007.t9 WHERE id > 3"))
    after = tenant_counts(tenants)
    for check in (True, False):
        refused = call(phoenix_restore.main, tenants, check=check, dest=str(tmp_path), backup=made["backup"]["id"])
        assert refused.get("failed") is True and "Traceback" not in refused["_raw"], (check, refused)
        assert refused["msg"].startswith("restoring backup %s over database %s drops the database's objects and "
                                         "creates the dump's in one transaction, which holds a lock on each until it "
                                         "ends: " % (made["backup"]["id"], tenants.name)), refused["msg"]
        assert ("and the server's lock table holds about 460 (max_locks_per_transaction 10 × 46 connections and "
                "processes); %s; nothing was written" % WAYS_OUT) in refused["msg"]
    assert tenant_counts(tenants) == after
    assert backups_in(tmp_path) == [made["backup"]["id"]]  # no safety backup either


@pytest.mark.parametrize("tenants", [12], indirect=True)
def test_an_in_place_restore_that_runs_out_of_locks_says_how_to_get_through(tenants, tmp_path):
    """120 tables: fewer locks at least than the server's room, and more than it holds."""
    made = call(phoenix_backup.main, tenants, dest=str(tmp_path))
    assert made.get("changed") is True, made.get("msg")
    with tenants.connect() as conn:
        conn.execute(sql.SQL("DELETE FROM tenant_007.t9 WHERE id > 3"))
    after = tenant_counts(tenants)
    failed = call(phoenix_restore.main, tenants, dest=str(tmp_path), backup=made["backup"]["id"],
                  safety_backup=False)
    assert failed.get("failed") is True and "Traceback" not in failed["_raw"], failed
    assert failed["msg"].startswith("pg_restore failed (exit 1), the database was left as it was: "), failed["msg"]
    assert "out of shared memory" in failed["msg"]
    assert failed["msg"].endswith("(the restore's one transaction locks every object it drops or creates, and the "
                                  "server's lock table was full: %s)" % WAYS_OUT), failed["msg"]
    assert tenant_counts(tenants) == after
    swapped = call(phoenix_restore.main, tenants, dest=str(tmp_path), backup=made["backup"]["id"], mode="swap",
                   safety_backup=False)
    assert swapped.get("changed") is True, swapped.get("msg")
    assert tenant_counts(tenants)["tenant_007.t9"] == 10
