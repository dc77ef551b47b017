# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup directory: ``<dest>/<STAGE>/<id>/`` with ``manifest.json`` written last.

A directory without a complete manifest is not a backup: a killed run leaves at most a
``.partial`` directory, which no listing shows and the next run removes.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import hmac
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.files import fsync_path, sha256_file, write_json

MANIFEST = "manifest.json"
KINDS = ("scheduled", "pre-deploy", "pre-restore", "manual")
SAFETY_KINDS = ("pre-deploy", "pre-restore")  # taken by the collection itself; never what "latest" means
FORMATS = ("custom", "directory", "plain")
PARTIAL_SUFFIX = ".partial"
LOCK_FILE = ".lock"
SIGNATURE = "signature"
SIGNING_OPTIONS: dict[str, dict[str, Any]] = {
    "backup_signing_key": {"type": "str", "no_log": True,
                           "fallback": (env_fallback, ["PHOENIX_BACKUP_SIGNING_KEY"])},
}


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

    def reader_major(self, server_major: int) -> int:
        """The oldest pg_restore that reads this dump: the server's, or the newer pg_dump's that wrote it."""
        return max(server_major, int(self.manifest.get("pg_dump_major") or 0))

    def summary(self, now: datetime) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "kind": self.manifest["kind"], "stage": self.manifest["stage"],
                "format": self.manifest["format"], "created_at": self.manifest["created_at"],
                "age_hours": self.age_hours(now), "size": sum(f["size"] for f in self.manifest["files"]),
                "verified": self.manifest.get("verified"), "duration_seconds": self.manifest.get("duration_seconds"),
                "standby": self.manifest.get("standby")}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id(stage: str, now: datetime) -> str:
    return "backup-%s-%s" % (stage, now.strftime("%Y%m%dT%H%M%S%fZ"))


def stage_dir(dest: Path, stage: str) -> Path:
    return dest / stage


def manifest_problem(manifest: Any, stage: str | None = None) -> str | None:
    """Why a manifest cannot describe a backup, or None when it can."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if manifest.get("kind") not in KINDS:
        return "unknown kind %r" % (manifest.get("kind"),)
    if manifest.get("format") not in FORMATS:
        return "unknown format %r" % (manifest.get("format"),)
    if stage is not None and manifest.get("stage") != stage:
        return "stage %r, expected %s" % (manifest.get("stage"), stage)
    try:
        created = datetime.fromisoformat(manifest["created_at"])
    except (KeyError, TypeError, ValueError):
        return "created_at is not an ISO timestamp"
    if created.tzinfo is None:
        return "created_at has no time zone"
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("size"), int)
            and isinstance(f.get("sha256"), str) for f in files):
        return "files is not a list of {name, size, sha256}"
    if not isinstance(manifest.get("row_counts"), dict):
        return "row_counts is not an object"
    return None


def read_manifest(path: Path, stage: str | None = None) -> dict[str, Any] | None:
    """The manifest of the backup directory ``path``, or None when it has no valid one."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return None if manifest_problem(manifest, stage) else manifest


def list_backups(dest: Path, stage: str) -> list[Backup]:
    """Complete backups of a stage, oldest first: real directories (not links) with a valid manifest.

    The one discovery every caller uses (listing, retention, restore, health)."""
    found = []
    root = stage_dir(dest, stage)
    if not root.is_dir():
        return []
    for path in root.iterdir():
        if path.name.startswith(".") or path.is_symlink() or not path.is_dir():
            continue
        manifest = read_manifest(path, stage)
        if manifest is not None:
            found.append(Backup(path, manifest))
    return sorted(found, key=lambda b: b.created_at)


def find_backup(dest: Path | None, stage: str, ref: str) -> Backup:
    """``latest`` (never a safety backup), a backup id under ``dest``, or a path to a backup directory."""
    if ref == "latest" or not ("/" in ref or ref.startswith(".")):
        if dest is None:
            raise PhoenixError("backup=%s needs dest (the backup root)" % ref)
        backups = list_backups(dest, stage)
        if ref == "latest":
            chosen = [b for b in backups if b.manifest["kind"] not in SAFETY_KINDS]
            if not chosen:
                raise PhoenixError("no backup of %s under %s (safety backups of kind %s are restored by id only)"
                                   % (stage, stage_dir(dest, stage), " and ".join(SAFETY_KINDS)))
            return chosen[-1]
        for backup in backups:
            if backup.id == ref:
                return backup
        raise PhoenixError("backup %s not found under %s%s" % (ref, stage_dir(dest, stage), _nearest(ref, backups)))
    path = Path(ref)
    manifest = read_manifest(path)
    if manifest is None:
        raise PhoenixError("%s is not a backup directory (no valid %s)" % (path, MANIFEST))
    return Backup(path, manifest)


def _nearest(ref: str, backups: list[Backup]) -> str:
    """What to say after a backup id that is not there (a typo, most often): the id closest to it, or the newest."""
    close = difflib.get_close_matches(ref, [backup.id for backup in backups], n=1, cutoff=0.8)
    if close:
        return "; did you mean %s?" % close[0]
    return "; the newest there is %s" % backups[-1].id if backups else "; there is none"


def _signed_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in manifest.items() if k != SIGNATURE}, sort_keys=True,
                      separators=(",", ":")).encode()


def sign(manifest: dict[str, Any], key: str | None) -> None:
    """Add an HMAC-SHA256 of the manifest (everything but the signature itself) when a key is configured."""
    if key:
        manifest[SIGNATURE] = {"alg": "hmac-sha256",
                               "value": hmac.new(key.encode(), _signed_bytes(manifest), hashlib.sha256).hexdigest()}


def signature_problem(backup: Backup, key: str) -> str | None:
    """Why the manifest is not trusted under ``key``, or None when its signature matches."""
    signature = backup.manifest.get(SIGNATURE)
    if not isinstance(signature, dict) or signature.get("alg") != "hmac-sha256":
        return "is not signed, and a backup_signing_key is configured"
    expected = hmac.new(key.encode(), _signed_bytes(backup.manifest), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("value"))):
        return ("has a manifest whose signature does not match backup_signing_key: it was changed after it was "
                "written (or signed with another key)")
    return None


def check_signature(backup: Backup, key: str | None) -> None:
    """With a key configured, only a manifest signed with it is trusted (before any byte of the backup is used)."""
    problem = signature_problem(backup, key) if key else None
    if problem:
        raise PhoenixError("backup %s %s: refusing to use it. Only backups taken with the key are trusted"
                           % (backup.id, problem))


@contextlib.contextmanager
def stage_lock(dest: Path, stage: str, timeout_seconds: int) -> Iterator[None]:
    """An exclusive lock on the stage's backup directory, so overlapping runs wait instead of interleaving."""
    root = stage_dir(dest, stage)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    with open(root / LOCK_FILE, "a") as handle:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PhoenixError("another backup run holds %s and did not finish within %ss; wait for it or "
                                       "raise lock_timeout" % (root / LOCK_FILE, timeout_seconds)) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def write_manifest(work: Path, manifest: dict[str, Any]) -> None:
    write_json(work / MANIFEST, manifest)
    (work / MANIFEST).chmod(0o600)


def publish(work: Path, final: Path) -> None:
    """Rename the finished backup into place, and make the rename durable."""
    os.replace(work, final)
    fsync_path(final.parent)


def remove_partials(dest: Path, stage: str) -> None:
    """Partial directories of killed runs (call it holding stage_lock: every live run holds it too)."""
    root = stage_dir(dest, stage)
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX) and path.is_dir() \
                    and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)


def to_prune(backups: Iterable[Backup], kind: str, retention_days: int, keep_min: int, now: datetime) -> list[Backup]:
    """Backups of ``kind`` older than retention_days, sparing the newest keep_min of that kind."""
    same_kind = [b for b in backups if b.manifest["kind"] == kind]
    spared = set(b.id for b in same_kind[-keep_min:]) if keep_min > 0 else set()
    limit = now - timedelta(days=retention_days)
    return [b for b in same_kind if b.created_at < limit and b.id not in spared]
