"""Backups that can be trusted: signed manifests, plain dumps that run only SQL, a re-run that cannot undo a
restore, overlapping runs, damaged directories."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading

import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._backups import store
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_backup_info,
    phoenix_health,
    phoenix_restore,
)
from ansible_collections.phoenix.platform.tests.helpers import UNREACHABLE, repo_root, run_module

from conftest import table_held
from test_backup_restore import app_fingerprints, call

pytestmark = pytest.mark.usefixtures("clean_env")
KEY = "signing-key-from-the-vault"


def rehash(path) -> None:
    """What a tamperer who can write the backup directory does after changing a file."""
    manifest = json.loads((path / "manifest.json").read_text())
    for entry in manifest["files"]:
        digest = hashlib.sha256((path / entry["name"]).read_bytes()).hexdigest()
        entry.update(sha256=digest, size=(path / entry["name"]).stat().st_size)
    (path / "manifest.json").write_text(json.dumps(manifest))


def backup(database, dest, **options):
    made = call(phoenix_backup.main, database, dest=str(dest), **options)
    assert made["changed"] is True, made
    return dest / "BETA" / made["backup"]["id"]


@pytest.mark.parametrize("payload", ["\\! touch {marker}\n", "SELECT 1; \\! touch {marker}\n",
                                     "SELECT 'x' \\gexec\n\\o |touch {marker}\n"])
def test_a_plain_dump_with_a_shell_command_is_never_run(data, tmp_path, payload):
    path = backup(data, tmp_path / "backups", format="plain")
    marker = tmp_path / "pwned"
    with open(path / "database.sql", "a") as dump:
        dump.write(payload.format(marker=marker))
    rehash(path)
    before = app_fingerprints(data)
    refused = call(phoenix_restore.main, data, backup=str(path), safety_backup=False)
    assert refused["failed"] is True and "meta-command" in refused["msg"], refused
    assert not marker.exists()
    assert app_fingerprints(data) == before


def test_a_signed_manifest_is_required_and_checked_before_anything_runs(data, tmp_path):
    dest = tmp_path / "backups"
    unsigned = backup(data, dest)
    refused = call(phoenix_restore.main, data, dest=str(dest), backup=unsigned.name, safety_backup=False,
                   backup_signing_key=KEY)
    assert refused["failed"] is True and "is not signed" in refused["msg"]
    signed = backup(data, dest, backup_signing_key=KEY)
    manifest = json.loads((signed / "manifest.json").read_text())
    assert manifest["signature"]["alg"] == "hmac-sha256" and KEY not in (signed / "manifest.json").read_text()
    manifest["format"] = "plain"  # the attack: make psql run a custom-format file, and re-hash
    (signed / "manifest.json").write_text(json.dumps(manifest))
    before = app_fingerprints(data)
    tampered = call(phoenix_restore.main, data, dest=str(dest), backup=signed.name, backup_signing_key=KEY)
    assert tampered["failed"] is True and "signature does not match" in tampered["msg"]
    assert app_fingerprints(data) == before
    assert len(store.list_backups(dest, "BETA")) == 2  # no safety backup was taken either
    listed = run_module(phoenix_backup_info.main, {"dest": str(dest), "stage": "BETA", "backup_signing_key": KEY})
    assert [b["signature_ok"] for b in listed["backups"]] == [False, False]
    good = backup(data, dest, backup_signing_key=KEY)
    restored = call(phoenix_restore.main, data, dest=str(dest), backup=good.name, backup_signing_key=KEY)
    assert restored["changed"] is True, restored
    safety = dest / "BETA" / restored["safety_backup"]["id"]
    store.check_signature(store.Backup(safety, json.loads((safety / "manifest.json").read_text())), KEY)


def test_the_signing_key_comes_from_the_environment_and_never_shows(data, tmp_path, monkeypatch):
    monkeypatch.setenv("PHOENIX_BACKUP_SIGNING_KEY", KEY)
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    assert KEY not in made["_raw"]
    path = tmp_path / "BETA" / made["backup"]["id"]
    store.check_signature(store.Backup(path, json.loads((path / "manifest.json").read_text())), KEY)


def test_latest_never_picks_a_safety_backup_so_a_rerun_restores_the_same_backup(data, tmp_path):
    dest = tmp_path / "backups"
    chosen = backup(data, dest, kind="scheduled")
    first = call(phoenix_restore.main, data, dest=str(dest))
    second = call(phoenix_restore.main, data, dest=str(dest))
    assert first["restored"]["id"] == second["restored"]["id"] == chosen.name
    assert first["safety_backup"]["kind"] == "pre-restore"
    kinds = [b["kind"] for b in run_module(phoenix_backup_info.main, {"dest": str(dest), "stage": "BETA"})["backups"]]
    assert kinds == ["scheduled", "pre-restore", "pre-restore"]
    by_id = call(phoenix_restore.main, data, dest=str(dest), backup=first["safety_backup"]["id"], safety_backup=False)
    assert by_id["restored"]["kind"] == "pre-restore"


@pytest.mark.parametrize("damage", [{}, {"created_at": 12}, {"format": "tar"}, {"kind": None}, "[]"])
def test_a_damaged_manifest_does_not_block_later_backups(data, tmp_path, damage):
    dest = tmp_path / "backups"
    good = backup(data, dest)
    broken = dest / "BETA" / "backup-BETA-broken"
    broken.mkdir()
    manifest = json.loads((good / "manifest.json").read_text())
    text = damage if isinstance(damage, str) else json.dumps({} if damage == {} else dict(manifest, **damage))
    (broken / "manifest.json").write_text(text)
    later = call(phoenix_backup.main, data, dest=str(dest), retention_days=0, keep_min=1)
    assert later["changed"] is True, later
    listed = run_module(phoenix_backup_info.main, {"dest": str(dest), "stage": "BETA", "verify": True})
    assert [b["id"] for b in listed["backups"]] == [later["backup"]["id"]]
    assert all(b["checksums_ok"] for b in listed["backups"])
    assert broken.exists()  # not ours to delete


def test_a_symlinked_backup_does_not_break_retention(data, tmp_path):
    dest = tmp_path / "backups"
    elsewhere = backup(data, tmp_path / "other")
    (dest / "BETA").mkdir(parents=True)
    (dest / "BETA" / "backup-BETA-20000101T000000000000Z").symlink_to(elsewhere)
    for _attempt in range(2):
        made = call(phoenix_backup.main, data, dest=str(dest), retention_days=0, keep_min=1)
        assert made["changed"] is True, made
    assert elsewhere.exists()
    assert len(store.list_backups(dest, "BETA")) == 1


def test_health_ignores_partial_directories(tmp_path):
    partial = tmp_path / "BETA" / ".backup-BETA-x.partial"
    partial.mkdir(parents=True)
    (partial / "manifest.json").write_text(json.dumps({"created_at": "2999-01-01T00:00:00+00:00"}))
    health = run_module(phoenix_health.main, dict(UNREACHABLE, backup_dir=str(tmp_path), fail_on="never"))
    assert health["checks"]["backups"]["status"] == "unknown"


OVERLAP_SCRIPT = """
import sys
from ansible_collections.phoenix.platform.plugins.modules import phoenix_backup
from ansible_collections.phoenix.platform.tests.helpers import run_module
result = run_module(phoenix_backup.main, {"db_url": sys.argv[1], "stage": "BETA", "dest": sys.argv[2]})
print("RESULT", result.get("failed", False), result.get("msg", ""), result.get("backup", {}).get("id"))
"""


def test_two_identical_backups_started_together_both_complete(data, tmp_path):
    dest = tmp_path / "backups"
    env = dict(os.environ, PYTHONPATH=os.path.join(repo_root(), "collections"))
    outputs: list[str] = []

    def one() -> None:
        outputs.append(subprocess.run([sys.executable, "-c", OVERLAP_SCRIPT, data.url, str(dest)], env=env,
                                      capture_output=True, text=True, timeout=120, check=False).stdout)

    runs = [threading.Thread(target=one) for _run in range(3)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(outputs) == 3 and all("RESULT False" in out for out in outputs), outputs
    listed = run_module(phoenix_backup_info.main, {"dest": str(dest), "stage": "BETA", "verify": True})
    assert len(listed["backups"]) == 3 and all(b["checksums_ok"] for b in listed["backups"])
    assert sorted(p.name for p in (dest / "BETA").iterdir() if p.name.startswith(".")) == [".lock"]


def test_a_busy_stage_lock_fails_clearly(data, tmp_path):
    dest = tmp_path / "backups"
    with store.stage_lock(dest, "BETA", 5):
        busy = call(phoenix_backup.main, data, dest=str(dest), lock_timeout=1)
    assert busy["failed"] is True and "another backup run holds" in busy["msg"]
    assert store.list_backups(dest, "BETA") == []


MIGRATION = "nightly-migration:42"


@pytest.mark.parametrize("fmt", ["custom", "directory"])
@pytest.mark.parametrize("holder", ["session", "prepared"])
def test_a_table_no_one_may_read_fails_the_backup_after_lock_timeout_naming_who_holds_it(data, tmp_path, fmt, holder):
    """pg_dump and the row counts wait for each table's lock; without a limit, a scheduled backup would wait
    without end on a transaction that never ends (one left prepared), holding the stage's lock meanwhile."""
    dest = tmp_path / "backups"
    with table_held(data, "ACCESS EXCLUSIVE", MIGRATION if holder == "prepared" else None) as table:
        refused = call(phoenix_backup.main, data, dest=str(dest), format=fmt, lock_timeout=2)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    who = (r"session \d+ of postgres \(nightly migration\)" if holder == "session"
           else re.escape("prepared transaction '%s'" % MIGRATION))
    assert re.fullmatch(re.escape("the backup waited lock_timeout=2 s for a table that someone holds so that no one "
                                  "may read it (%s by " % table) + who + re.escape(
        "); run it again once that ends, or raise lock_timeout"), refused["msg"]), refused["msg"]
    assert store.list_backups(dest, "BETA") == []
    assert sorted(p.name for p in (dest / "BETA").iterdir()) == [".lock"]  # no partial backup left
    assert call(phoenix_backup.main, data, dest=str(dest), format=fmt)["changed"] is True  # once it is released


def test_removing_a_prod_backup_needs_allow_prod(data, tmp_path):
    with data.connect() as conn:
        conn.execute(sql.SQL("UPDATE phoenix.environment SET stage = 'PROD'"))
    made = run_module(phoenix_backup.main, {"db_url": data.url, "stage": "PROD", "dest": str(tmp_path)})
    refused = run_module(phoenix_backup.main, {"db_url": data.url, "stage": "PROD", "dest": str(tmp_path),
                                               "state": "absent", "id": made["backup"]["id"]})
    assert refused["failed"] is True and "allow_prod=true" in refused["msg"]
    assert len(store.list_backups(tmp_path, "PROD")) == 1
    removed = run_module(phoenix_backup.main, {"db_url": data.url, "stage": "PROD", "dest": str(tmp_path),
                                               "state": "absent", "id": made["backup"]["id"], "allow_prod": True})
    assert removed["changed"] is True and store.list_backups(tmp_path, "PROD") == []
