"""Large objects through backups and restores: a restore brings back exactly the backup's, in every format and
mode; a backup counts them, and a restore into a new database is checked against that count."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ansible_collections.phoenix.platform.plugins.module_utils._backups import store
from ansible_collections.phoenix.platform.plugins.module_utils._backups.scratch import restored_problems
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_backup_info,
    phoenix_restore,
    phoenix_restore_drill,
)
from ansible_collections.phoenix.platform.tests.helpers import kill_tree, module_process, run_module

from test_playbooks import environment_database, last_message, playbook
from test_swap_restore import call
from worlds_fixtures import app_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")

SCAN_TABLE = sql.SQL("CREATE TABLE public.scan (id int PRIMARY KEY, document oid NOT NULL)")
SCANNED = sql.SQL("INSERT INTO public.scan SELECT g, lo_from_bytea(0, convert_to(repeat('page ' || g, 2000), "
                  "'UTF8')) FROM generate_series(1, 3) g")


def large_objects(database) -> list[tuple[int, str, str]]:
    """Every large object of the database: its OID, owner and the digest of its bytes."""
    return database.query("SELECT oid::bigint, pg_get_userbyid(lomowner), md5(lo_get(oid)) "
                          "FROM pg_largeobject_metadata ORDER BY 1")


@pytest.fixture
def scans(swappable):
    """The application keeps scanned documents as large objects, each pointed at by a row of public.scan."""
    with swappable.connect() as conn:
        conn.execute(SCAN_TABLE)
        conn.execute(SCANNED)
    return swappable


def rescan(database) -> None:
    """What the application does after the backup: one document rewritten, one deleted, two new ones."""
    with database.connect() as conn:
        conn.execute(sql.SQL("SELECT lo_put(document, 0, 'REWRITTEN') FROM public.scan WHERE id = 1"))
        conn.execute(sql.SQL("SELECT lo_unlink(document) FROM public.scan WHERE id = 3"))
        conn.execute(sql.SQL("DELETE FROM public.scan WHERE id = 3"))
        conn.execute(sql.SQL("INSERT INTO public.scan VALUES (4, lo_from_bytea(0, 'four')), "
                             "(5, lo_from_bytea(0, 'five'))"))


def manifest(made: dict) -> dict:
    return json.loads((Path(made["backup"]["path"]) / "manifest.json").read_text())


@pytest.mark.parametrize("mode", ["in_place", "swap"])
@pytest.mark.parametrize("fmt", ["custom", "directory", "plain"])
def test_a_restore_brings_back_exactly_the_backups_large_objects(scans, tmp_path, fmt, mode):
    before, tables = large_objects(scans), app_fingerprints(scans)
    made = call(phoenix_backup.main, scans, dest=str(tmp_path), format=fmt)
    assert manifest(made)["large_objects"] == 3
    rescan(scans)
    changed = large_objects(scans)
    assert len(changed) == 4 and changed != before

    planned = run_module(phoenix_restore.main, {"db_url": scans.url, "stage": "BETA", "dest": str(tmp_path),
                                                "mode": mode}, check=True, diff=True)
    assert planned["large_object_changes"] == {"now": 4, "backup": 3, "difference": -1}, planned.get("msg")
    assert planned["diff"]["before"]["large_objects"] == 4 and planned["diff"]["after"]["large_objects"] == 3
    assert large_objects(scans) == changed  # check mode wrote nothing

    restored = call(phoenix_restore.main, scans, dest=str(tmp_path), mode=mode, safety_backup=False)
    assert restored["changed"] is True, restored.get("msg")
    assert restored["large_object_changes"] == planned["large_object_changes"]
    # the rewritten and the deleted documents are back as they were; the new ones are gone, not left behind
    assert large_objects(scans) == before
    assert app_fingerprints(scans) == tables
    assert scans.query("SELECT details->'large_object_changes' FROM phoenix.audit_log ORDER BY id DESC LIMIT 1") == [
        ({"now": 4, "backup": 3, "difference": -1},)]


def test_a_restore_that_changes_no_count_reports_no_large_object_changes(scans, tmp_path):
    call(phoenix_backup.main, scans, dest=str(tmp_path))
    with scans.connect() as conn:
        conn.execute(sql.SQL("SELECT lo_put(document, 0, 'REWRITTEN') FROM public.scan WHERE id = 2"))
    planned = run_module(phoenix_restore.main, {"db_url": scans.url, "stage": "BETA", "dest": str(tmp_path)},
                         check=True, diff=True)
    assert planned["large_object_changes"] == {} and "large_objects" not in planned["diff"]["before"]


def test_a_restored_database_short_of_a_large_object_fails_the_check_against_the_manifest(scans, tmp_path):
    """What a swap and a drill check before they call a restore good."""
    made = call(phoenix_backup.main, scans, dest=str(tmp_path))
    backup = store.find_backup(tmp_path, "BETA", made["backup"]["id"])
    with scans.connect() as conn:  # the rows as the dump has them
        conn.execute(sql.SQL("DELETE FROM phoenix.audit_log WHERE operation = 'backup.create'"))
    assert restored_problems(scans.url, backup) == []
    scans.query("SELECT lo_unlink(document) FROM public.scan WHERE id = 2")
    assert restored_problems(scans.url, backup) == ["2 large object(s) restored, the manifest says 3"]
    older = store.Backup(backup.path, {k: v for k, v in backup.manifest.items() if k != "large_objects"})
    assert restored_problems(scans.url, older) == []  # a manifest written before the count: nothing to compare


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_a_drill_of_a_backup_with_large_objects_passes_and_leaves_them_as_they_are(scans, tmp_path, fmt):
    call(phoenix_backup.main, scans, dest=str(tmp_path), format=fmt)
    rescan(scans)
    now = large_objects(scans)
    drilled = call(phoenix_restore_drill.main, scans, dest=str(tmp_path))
    assert drilled["passed"] is True and drilled["problems"] == [], drilled.get("msg")
    assert large_objects(scans) == now  # a drill restores aside


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_an_owners_in_place_restore_over_large_objects_it_may_not_unlink_is_refused_first(
        owned_by_shop_owner, tmp_path, check):
    """Only a large object's owner (or a superuser) may unlink it: a DBA's, made as a superuser, is named before
    anything is written, not found by psql after the safety backup."""
    data = owned_by_shop_owner
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    with psycopg.connect(as_owner["db_url"], autocommit=True) as conn:
        conn.execute(SCAN_TABLE)
        conn.execute(SCANNED)
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    scanned = large_objects(data)
    assert {owner for oid, owner, digest in scanned} == {"shop_owner"}
    with data.connect() as conn:
        conn.execute(sql.SQL("SELECT lo_from_bytea(0, 'a note of the DBA')"))
        conn.execute(sql.SQL("DELETE FROM public.scan WHERE id = 1"))
    before = large_objects(data), app_fingerprints(data)

    refused = run_module(phoenix_restore.main, as_owner, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        "restoring backup %s over database %s replaces the database's large objects with the backup's, and role "
        "shop_owner may not unlink 1 of them (of role(s) postgres): only their owner or a superuser may; restore as "
        "postgres (or a member of it) or a superuser, or use mode=swap, which restores into a new database"
        % (made["backup"]["id"], data.name))
    assert (large_objects(data), app_fingerprints(data)) == before
    listed = run_module(phoenix_backup_info.main, {"dest": str(tmp_path), "stage": "BETA"})
    assert [backup["kind"] for backup in listed["backups"]] == ["manual"]  # no safety backup

    data.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE lomowner <> 'shop_owner'::regrole")
    restored = run_module(phoenix_restore.main, dict(as_owner, safety_backup=False), check=check)
    assert restored.get("changed") is True and "failed" not in restored, restored.get("msg")
    if not check:
        assert large_objects(data) == scanned


def test_an_in_place_restore_killed_after_it_unlinked_the_large_objects_leaves_them_all(scans, tmp_path):
    """The large objects are unlinked in the restore's own transaction: killed before it commits (the whole process
    tree, while its script waits to drop a table the application holds), the database keeps every one."""
    call(phoenix_backup.main, scans, dest=str(tmp_path))
    rescan(scans)
    before, tables = large_objects(scans), app_fingerprints(scans)
    restore_sessions = ("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name LIKE 'phoenix.platform.%'")
    with scans.connect() as application:
        application.autocommit = False
        application.execute(sql.SQL("SELECT count(*) FROM public.scan"))  # holds the table until it ends
        process = module_process("phoenix_restore", {"db_url": scans.url, "stage": "BETA", "dest": str(tmp_path),
                                                     "safety_backup": False},
                                 start_new_session=True, stdout=subprocess.DEVNULL)
        waiting, deadline = [], time.monotonic() + 60
        while not waiting and time.monotonic() < deadline and process.poll() is None:
            waiting = scans.query(restore_sessions + " AND wait_event_type = 'Lock'")
            time.sleep(0.02)
        kill_tree(process.pid)
        process.wait()
        application.rollback()
    assert waiting and " IF EXISTS " in waiting[0][0], waiting  # one of the drops, which come after the unlinking
    deadline = time.monotonic() + 10
    while scans.query(restore_sessions) and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the dropped connection and rolls back
    assert large_objects(scans) == before and app_fingerprints(scans) == tables


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_backup_by_a_role_that_may_not_read_a_large_object_is_refused_naming_it(
        owned_by_shop_owner, tmp_path, check):
    """pg_dump reads every large object, and a role reads only its own and those granted to it (pg_read_all_data
    does not cover them): a DBA's is named before anything is written, not found by pg_dump part-way."""
    data = owned_by_shop_owner
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    with psycopg.connect(as_owner["db_url"], autocommit=True) as conn:
        conn.execute(SCAN_TABLE)
        conn.execute(SCANNED)
    note = data.query("SELECT lo_from_bytea(0, 'a note of the DBA')::bigint")[0][0]

    refused = run_module(phoenix_backup.main, as_owner, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        "role shop_owner may not read 1 large object(s) of role(s) postgres (OID %d), and a backup holds every large "
        "object of the database: back up as their owner or a superuser, or grant shop_owner SELECT on them (GRANT "
        "SELECT ON LARGE OBJECT %d TO shop_owner); nothing was written" % (note, note))
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] in ([], [".lock"])  # the stage's lock only

    with data.connect() as conn:
        conn.execute(sql.SQL("GRANT SELECT ON LARGE OBJECT {} TO shop_owner").format(sql.Literal(note)))
    made = run_module(phoenix_backup.main, as_owner, check=check)
    assert made["changed"] is True and "failed" not in made, made.get("msg")
    if not check:
        assert manifest(made)["large_objects"] == 4
        with data.connect() as conn:
            conn.execute(sql.SQL("REVOKE SELECT ON LARGE OBJECT {} FROM shop_owner").format(sql.Literal(note)))
        fresh = run_module(phoenix_backup.main, dict(as_owner, fresh_within_hours=1))
        assert fresh["changed"] is False and fresh["fresh"] is True, fresh.get("msg")  # none to take: no refusal


@pytest.mark.slow
def test_the_restore_playbook_says_how_many_large_objects_it_brings_back(phoenix_home):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/beta").returncode == 0
    beta = environment_database(phoenix_home, "phoenix_beta")
    with beta.connect() as conn:
        conn.execute(SCAN_TABLE)
        conn.execute(SCANNED)
    backed_up = large_objects(beta)
    assert playbook(phoenix_home, "backup.yml", "-i", "inventories/beta").returncode == 0
    rescan(beta)
    planned = playbook(phoenix_home, "restore.yml", "-i", "inventories/beta", "--check")
    assert planned.returncode == 0, planned.stdout[-2000:]
    assert last_message(planned.stdout).startswith("BETA: would restore backup-BETA-")
    assert "; tables whose row count changes: 1; large objects: 4 now, 3 in the backup" in last_message(planned.stdout)
    restored = playbook(phoenix_home, "restore.yml", "-i", "inventories/beta")
    assert restored.returncode == 0, restored.stdout[-2000:]
    assert "large objects: 4 now, 3 in the backup; safety backup backup-BETA-" in last_message(restored.stdout)
    assert large_objects(beta) == backed_up
