# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup directory: ``<dest>/<STAGE>/<id>/`` with ``manifest.json`` written last.

A directory without a complete manifest is not a backup: a killed run leaves at most a
``.partial`` directory, which no listing shows and the next run removes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._files import fsync_path, sha256_file, write_json

MANIFEST = "manifest.json"
KINDS = ("scheduled", "pre-deploy", "pre-restore", "manual")
FORMATS = ("custom", "directory", "plain")
PARTIAL_SUFFIX = ".partial"


@dataclass
class Backup:
    path: Path
    manifest: dict[str, Any]

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["created_at"])

    def age_hours(self, now: datetime) -> float:
        return round((now - self.created_at).total_seconds() / 3600, 2)

    def summary(self, now: datetime) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "kind": self.manifest["kind"], "stage": self.manifest["stage"],
                "format": self.manifest["format"], "created_at": self.manifest["created_at"],
                "age_hours": self.age_hours(now), "size": sum(f["size"] for f in self.manifest["files"]),
                "verified": self.manifest.get("verified")}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id(stage: str, now: datetime) -> str:
    return "backup-%s-%s" % (stage, now.strftime("%Y%m%dT%H%M%S%fZ"))


def stage_dir(dest: Path, stage: str) -> Path:
    return dest / stage


def list_backups(dest: Path, stage: str) -> list[Backup]:
    """Complete backups of a stage, oldest first."""
    found = []
    root = stage_dir(dest, stage)
    if not root.is_dir():
        return []
    for path in root.iterdir():
        manifest = path / MANIFEST
        if path.name.startswith(".") or not manifest.is_file():
            continue
        try:
            found.append(Backup(path, json.loads(manifest.read_text())))
        except ValueError:
            continue  # an unreadable manifest is not a backup either
    return sorted(found, key=lambda b: b.manifest["created_at"])


def find_backup(dest: Path | None, stage: str, ref: str) -> Backup:
    """``latest``, a backup id under ``dest``, or a path to a backup directory."""
    if ref == "latest" or not ("/" in ref or ref.startswith(".")):
        if dest is None:
            raise PhoenixError("backup=%s needs dest (the backup root)" % ref)
        backups = list_backups(dest, stage)
        if ref == "latest":
            if not backups:
                raise PhoenixError("no backup of %s under %s" % (stage, stage_dir(dest, stage)))
            return backups[-1]
        for backup in backups:
            if backup.id == ref:
                return backup
        raise PhoenixError("backup %s not found under %s" % (ref, stage_dir(dest, stage)))
    path = Path(ref)
    try:
        return Backup(path, json.loads((path / MANIFEST).read_text()))
    except (OSError, ValueError):
        raise PhoenixError("%s is not a backup directory (no readable %s)" % (path, MANIFEST)) from None


def file_entries(root: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        digest, size = sha256_file(path)
        entries.append({"name": str(path.relative_to(root)), "size": size, "sha256": digest})
    return entries


def verify_checksums(backup: Backup) -> list[str]:
    problems = []
    for entry in backup.manifest["files"]:
        path = backup.path / entry["name"]
        if not path.is_file():
            problems.append("%s: missing" % entry["name"])
            continue
        digest, size = sha256_file(path)
        if size != entry["size"] or digest != entry["sha256"]:
            problems.append("%s: checksum mismatch" % entry["name"])
    return problems


def fsync_tree(root: Path) -> None:
    for path in list(root.rglob("*")) + [root]:
        fsync_path(path)


def secure_tree(root: Path) -> None:
    """Directories 0700, files 0600: a backup holds the whole database."""
    for path in [root] + list(root.rglob("*")):
        path.chmod(0o700 if path.is_dir() else 0o600)


def write_manifest(work: Path, manifest: dict[str, Any]) -> None:
    write_json(work / MANIFEST, manifest)
    (work / MANIFEST).chmod(0o600)


def publish(work: Path, final: Path) -> None:
    """Rename the finished backup into place, and make the rename durable."""
    os.replace(work, final)
    fsync_path(final.parent)


def remove_partials(dest: Path, stage: str) -> None:
    root = stage_dir(dest, stage)
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def to_prune(backups: Iterable[Backup], kind: str, retention_days: int, keep_min: int, now: datetime) -> list[Backup]:
    """Backups of ``kind`` older than retention_days, sparing the newest keep_min of that kind."""
    same_kind = [b for b in backups if b.manifest["kind"] == kind]
    spared = set(b.id for b in same_kind[-keep_min:]) if keep_min > 0 else set()
    limit = now - timedelta(days=retention_days)
    return [b for b in same_kind if b.created_at < limit and b.id not in spared]
