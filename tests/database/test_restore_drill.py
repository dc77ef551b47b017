"""phoenix_restore_drill: a backup restored into a scratch database, checked and dropped, the environment's
database untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pyrage
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._backups import drill as drill_module
from ansible_collections.phoenix.platform.plugins.module_utils._backups import server_room
from ansible_collections.phoenix.platform.plugins.module_utils._backups.drill import SCRATCH_PREFIX
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._backups.restore import restore_dump
from ansible_collections.phoenix.platform.plugins.module_utils._backups.scratch import scratch_name
from ansible_collections.phoenix.platform.plugins.modules import phoenix_backup, phoenix_restore_drill
from ansible_collections.phoenix.platform.tests.helpers import (
    DiskFull,
    miscount,
    module_process,
    run_module,
    waiting_for_an_advisory_lock,
)

from worlds_fixtures import ODD_TABLES, loads_in_pieces, migrate, table_fingerprints, the_ledger

pytestmark = pytest.mark.usefixtures("clean_env")


def call(main, database, check=False, stage="BETA", **options):
    return run_module(main, dict({"db_url": database.url, "stage": stage}, **options), check=check)


def scratch_exists(database) -> bool:
    return database.query("SELECT count(*) FROM pg_database WHERE datname = %s", (scratch_name(SCRATCH_PREFIX, database.name),)) == [(1,)]


def test_a_drill_restores_checks_and_drops_its_scratch_database(data, tmp_path):
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    before = table_fingerprints(data)
    planned = call(phoenix_restore_drill.main, data, check=True, dest=str(tmp_path))
    assert planned["passed"] is None and planned["problems"] == [] and not planned["changed"], planned
    assert not scratch_exists(data)

    drilled = call(phoenix_restore_drill.main, data, dest=str(tmp_path))
    assert "failed" not in drilled, drilled.get("msg")
    assert drilled["passed"] is True and drilled["changed"] is False and drilled["problems"] == []
    assert drilled["backup"]["id"] == made["backup"]["id"] and drilled["leftover_removed"] is False
    assert drilled["scratch_database"] == scratch_name(SCRATCH_PREFIX, data.name) and drilled["duration_seconds"] > 0
    assert {name: check["status"] for name, check in drilled["checks"].items()} == {
        "database": "healthy", "schema": "healthy", "stage": "healthy", "worlds": "healthy"}
    assert drilled["checks"]["worlds"]["total"] == 1  # the backup's world, found in the restored database
    assert not scratch_exists(data)
    assert table_fingerprints(data) == before  # the environment's database, audit log included, untouched


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_drill_without_room_for_its_scratch_database_is_refused_before_it_creates_one(data, tmp_path, monkeypatch,
                                                                                        check):
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    monkeypatch.setattr(server_room.shutil, "disk_usage", DiskFull())
    refused = call(phoenix_restore_drill.main, data, check=check, dest=str(tmp_path))
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert "restoring backup %s beside database %s needs about" % (made["backup"]["id"], data.name) in refused["msg"]
    assert "Free some space, or drill on a server with room for a scratch copy" in refused["msg"], refused["msg"]
    assert not data.query("SELECT datname FROM pg_database WHERE datname = %s",
                          [scratch_name(SCRATCH_PREFIX, data.name)])


@pytest.mark.parametrize("fmt, encrypted, jobs, restored_with", [
    ("directory", False, 2, 2),
    ("directory", False, 1, 1),
    ("directory", False, None, parallel_jobs()),
    ("directory", True, None, parallel_jobs()),  # its files come decrypted through FIFOs
    ("custom", False, None, parallel_jobs()),  # in parallel too, but its tables whole
    ("custom", True, None, 1),  # through a pipe: a parallel pg_restore would need it decrypted on disk
])
def test_a_drill_restores_in_parallel_or_in_one_transaction(data, tmp_path, monkeypatch, fmt, encrypted, jobs,
                                                            restored_with):
    with data.connect() as conn:
        conn.execute(sql.SQL(ODD_TABLES))
    identity = pyrage.x25519.Identity.generate()
    call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt,
         encrypt_to=[str(identity.to_public())] if encrypted else None)
    before = table_fingerprints(data)
    loaded = loads_in_pieces(monkeypatch, the_ledger)
    restores: list[int] = []
    monkeypatch.setattr(drill_module, "restore_dump",
                        lambda *args, **options: restores.append(options["jobs"]) or restore_dump(*args, **options))
    drilled = call(phoenix_restore_drill.main, data, dest=str(tmp_path), jobs=jobs,
                   backup_identity=str(identity) if encrypted else None)
    assert drilled.get("passed") is True and drilled["problems"] == [], drilled.get("msg")
    assert restores == [restored_with]
    # in parallel, the ledger's rows came over two connections, and the server's count of them stood for the table's
    assert list(loaded.values()) == ([("ledger", 300000)] if fmt == "directory" and restored_with > 1 else [])
    assert not scratch_exists(data) and table_fingerprints(data) == before


def test_rows_loaded_in_pieces_that_disagree_with_the_manifest_fail_the_drill(data, tmp_path, monkeypatch):
    with data.connect() as conn:
        conn.execute(sql.SQL(ODD_TABLES))
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format="directory")
    miscount(tmp_path, "BETA", made["backup"]["id"], "ledger", -1)
    loaded = loads_in_pieces(monkeypatch, the_ledger)
    failed = call(phoenix_restore_drill.main, data, dest=str(tmp_path), jobs=2)
    assert failed["failed"] is True and failed["passed"] is False and list(loaded.values()) == [("ledger", 300000)]
    assert failed["msg"] == "restore drill of %s failed: ledger: 300000 row(s) restored, the manifest says 299999" % (
        made["backup"]["id"])
    assert not scratch_exists(data)


def test_a_drill_in_prod_needs_no_allow_prod(database, tmp_path):
    migrate(database, stage="PROD")
    call(phoenix_backup.main, database, stage="PROD", dest=str(tmp_path))
    drilled = call(phoenix_restore_drill.main, database, stage="PROD", dest=str(tmp_path))
    assert drilled.get("passed") is True, drilled.get("msg")


def test_a_backup_whose_rows_disagree_with_its_manifest_fails_the_drill(data, tmp_path):
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    miscount(tmp_path, "BETA", made["backup"]["id"], "Artifact", 1)
    failed = call(phoenix_restore_drill.main, data, dest=str(tmp_path))
    assert failed["failed"] and failed["passed"] is False
    assert failed["msg"] == "restore drill of %s failed: Artifact: 6 row(s) restored, the manifest says 7" % (
        made["backup"]["id"])
    assert not scratch_exists(data)


def test_a_typo_in_the_backup_id_and_a_stage_that_is_not_this_databases_are_refused(data, tmp_path):
    call(phoenix_backup.main, data, dest=str(tmp_path))
    typo = call(phoenix_restore_drill.main, data, dest=str(tmp_path), backup="backup-BETA-2026")
    assert typo["failed"] and "backup-BETA-2026" in typo["msg"], typo
    fenced = call(phoenix_restore_drill.main, data, stage="PROD", dest=str(tmp_path))
    assert fenced["failed"] and "BETA" in fenced["msg"], fenced
    no_jobs = call(phoenix_restore_drill.main, data, dest=str(tmp_path), jobs=0)
    assert no_jobs["failed"] and no_jobs["msg"] == "jobs must be from 1 to 128, got 0", no_jobs
    assert not scratch_exists(data)


def test_a_killed_drill_leaves_a_scratch_database_that_the_next_drill_removes(data, tmp_path):
    with data.connect() as conn:  # enough rows that the restore takes a moment
        conn.execute(sql.SQL("CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 300000) g"))
    call(phoenix_backup.main, data, dest=str(tmp_path))
    before = table_fingerprints(data)
    args = {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path)}
    process = module_process("phoenix_restore_drill", args, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not scratch_exists(data):
        time.sleep(0.01)
    assert scratch_exists(data), "the drill never created its scratch database"
    os.killpg(process.pid, signal.SIGKILL)  # the module and the pg_restore it runs
    process.wait()
    assert scratch_exists(data)
    again = call(phoenix_restore_drill.main, data, dest=str(tmp_path))
    assert again.get("passed") is True and again["leftover_removed"] is True, again.get("msg")
    assert not scratch_exists(data)
    assert table_fingerprints(data) == before


def test_a_second_drill_of_the_same_database_waits_for_the_first(data, tmp_path, monkeypatch):
    """Two scheduled drills that overlap: the second must not drop the first one's scratch database as a leftover."""
    call(phoenix_backup.main, data, dest=str(tmp_path))
    args = {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path)}
    seen = {}
    checked = drill_module.restored_problems

    def other_drills_start(*args_, **kwargs):  # the first drill has restored its scratch database
        impatient = module_process("phoenix_restore_drill", dict(args, lock_timeout=1), stdout=subprocess.PIPE)
        seen["impatient"] = json.loads(impatient.communicate()[0])
        seen["scratch after it"] = scratch_exists(data)
        seen["patient"] = module_process("phoenix_restore_drill", args, stdout=subprocess.PIPE)
        waiting_for_an_advisory_lock(data)
        return checked(*args_, **kwargs)
    monkeypatch.setattr(drill_module, "restored_problems", other_drills_start)
    first = call(phoenix_restore_drill.main, data, dest=str(tmp_path))
    second = json.loads(seen["patient"].communicate()[0])

    assert seen["impatient"]["failed"] is True
    assert seen["impatient"]["msg"] == ("another Phoenix run holds the 'drill:%s' lock and did not finish within 1s; "
                                        "wait for it or raise lock_timeout" % data.name)
    assert seen["scratch after it"] is True  # the first drill's, untouched
    for drilled in (first, second):
        assert drilled.get("passed") is True and drilled["leftover_removed"] is False, drilled.get("msg")
    assert not scratch_exists(data)


def test_a_scratch_database_the_server_lets_no_one_reach_fails_the_drill_naming_it(data, tmp_path, hba_rejects):
    call(phoenix_backup.main, data, dest=str(tmp_path))
    scratch = scratch_name(SCRATCH_PREFIX, data.name)
    hba_rejects(scratch)
    refused = call(phoenix_restore_drill.main, data, dest=str(tmp_path))
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"].startswith("a drill restores into a new database %s, and the server refuses this role's "
                                     "connections to it (" % scratch)
    assert refused["msg"].endswith("); allow them in pg_hba.conf (that database's name, or all)")
    assert not scratch_exists(data)
