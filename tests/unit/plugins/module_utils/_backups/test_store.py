# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention selection and backup lookup over backup directories (manifests only, no database)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._backups import store
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def manifest(kind: str, hours_ago: float, stage: str = "BETA") -> dict:
    created = NOW - timedelta(hours=hours_ago)
    return {"kind": kind, "format": "custom", "stage": stage, "created_at": created.isoformat(),
            "files": [{"name": "db.dump", "size": 10, "sha256": "0" * 64}], "row_counts": {}}


def backup_dir(dest: Path, kind: str, hours_ago: float, stage: str = "BETA") -> Path:
    path = dest / stage / store.new_id(stage, NOW - timedelta(hours=hours_ago))
    path.mkdir(parents=True)
    (path / store.MANIFEST).write_text(json.dumps(manifest(kind, hours_ago, stage)))
    return path


def backups(*ages: tuple[str, float]) -> list[store.Backup]:
    """Backups as list_backups returns them: oldest first."""
    made = [store.Backup(Path("/b/%s-%s" % (kind, age)), manifest(kind, age)) for kind, age in ages]
    return sorted(made, key=lambda b: b.created_at)


def test_retention_prunes_only_old_backups_of_the_kind():
    found = backups(("scheduled", 24 * 10), ("scheduled", 24 * 8), ("scheduled", 24), ("manual", 24 * 30))
    pruned = store.to_prune(found, "scheduled", retention_days=7, keep_min=1, now=NOW)
    assert [b.id for b in pruned] == ["scheduled-240", "scheduled-192"]


def test_retention_keeps_the_newest_keep_min_even_when_old():
    found = backups(("scheduled", 24 * 30), ("scheduled", 24 * 20), ("scheduled", 24 * 10))
    assert [b.id for b in store.to_prune(found, "scheduled", 7, keep_min=2, now=NOW)] == ["scheduled-720"]
    assert store.to_prune(found, "scheduled", 7, keep_min=3, now=NOW) == []
    assert len(store.to_prune(found, "scheduled", 7, keep_min=0, now=NOW)) == 3


def test_latest_is_the_newest_that_is_not_a_safety_backup(tmp_path):
    scheduled = backup_dir(tmp_path, "scheduled", 5)
    backup_dir(tmp_path, "pre-restore", 1)
    backup_dir(tmp_path, "scheduled", 3, stage="PROD")
    assert store.find_backup(tmp_path, "BETA", "latest").path == scheduled


def test_a_backup_is_found_by_id_or_by_path(tmp_path):
    safety = backup_dir(tmp_path, "pre-deploy", 1)
    assert store.find_backup(tmp_path, "BETA", safety.name).path == safety  # by id, safety ones too
    assert store.find_backup(None, "BETA", str(safety)).manifest["kind"] == "pre-deploy"


def test_lookup_failures_say_what_is_missing(tmp_path):
    backup_dir(tmp_path, "pre-restore", 1)
    with pytest.raises(PhoenixError, match="no backup of BETA under .*restored by id only"):
        store.find_backup(tmp_path, "BETA", "latest")
    with pytest.raises(PhoenixError, match="backup backup-BETA-x not found"):
        store.find_backup(tmp_path, "BETA", "backup-BETA-x")
    with pytest.raises(PhoenixError, match="is not a backup directory"):
        store.find_backup(tmp_path, "BETA", str(tmp_path))
    with pytest.raises(PhoenixError, match="needs dest"):
        store.find_backup(None, "BETA", "latest")


def test_a_mistyped_id_is_answered_with_the_nearest_or_the_newest(tmp_path):
    with pytest.raises(PhoenixError, match="not found under .*; there is none$"):
        store.find_backup(tmp_path, "BETA", "backup-BETA-x")
    older, newer = backup_dir(tmp_path, "scheduled", 30), backup_dir(tmp_path, "scheduled", 2)
    typo = older.name[:-5] + older.name[-4:]  # a digit left out
    with pytest.raises(PhoenixError) as missing:
        store.find_backup(tmp_path, "BETA", typo)
    assert str(missing.value) == "backup %s not found under %s; did you mean %s?" % (typo, tmp_path / "BETA", older.name)
    with pytest.raises(PhoenixError) as missing:
        store.find_backup(tmp_path, "BETA", "nightly")
    assert str(missing.value).endswith("; the newest there is %s" % newer.name)


def test_listing_skips_partial_foreign_and_linked_directories(tmp_path):
    kept = backup_dir(tmp_path, "scheduled", 2)
    (tmp_path / "BETA" / ".partial-backup").mkdir()
    (tmp_path / "BETA" / "no-manifest").mkdir()
    (tmp_path / "BETA" / "linked").symlink_to(kept)
    wrong = backup_dir(tmp_path, "scheduled", 1)
    (wrong / store.MANIFEST).write_text(json.dumps(dict(manifest("scheduled", 1), stage="PROD")))
    assert [b.path for b in store.list_backups(tmp_path, "BETA")] == [kept]


@pytest.mark.parametrize("change, problem", [
    ({"kind": "weekly"}, "unknown kind 'weekly'"),
    ({"created_at": "2026-11-23T12:00:00"}, "created_at has no time zone"),
    ({"files": [{"name": "x"}]}, "files is not a list of {name, size, sha256}"),
    ({"row_counts": []}, "row_counts is not an object"),
])
def test_manifest_problems_are_named(change, problem):
    assert store.manifest_problem(dict(manifest("scheduled", 1), **change)) == problem
