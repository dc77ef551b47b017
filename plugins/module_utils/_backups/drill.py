# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore drills: a backup restored into a scratch database on the same server, checked, and dropped.

The environment's database is only read (its name, and the server's version). The scratch database has one
name per environment database, so a drill killed half-way leaves a database the next drill finds and drops
before it starts; every drill drops it again when it ends, passed or failed. Two drills of the same database do
not overlap (an advisory lock in it): the second waits, rather than drop the first one's scratch database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ansible_collections.phoenix.platform.plugins.module_utils._backups import encryption, store
from ansible_collections.phoenix.platform.plugins.module_utils._backups.connection_room import (
    FittedJobs,
    fit_jobs,
    sessions_settled,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dba_objects import require_replaceable
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import dump_problems, parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._backups.extensions import dump_extensions, require_creatable
from ansible_collections.phoenix.platform.plugins.module_utils._backups.ownership import dump_owners, require_plain_owners
from ansible_collections.phoenix.platform.plugins.module_utils._backups.replication import subscriptions_left_out
from ansible_collections.phoenix.platform.plugins.module_utils._backups.restore import dump_toc, restore_dump
from ansible_collections.phoenix.platform.plugins.module_utils._backups.scratch import (
    create_scratch,
    drop_database,
    leftover_droppable,
    require_connectable,
    restored_problems,
    scratch_name,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.server_room import require_room
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import open_session
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import session_lock
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import server_major

try:
    from psycopg import sql
    from psycopg.conninfo import make_conninfo
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

SCRATCH_PREFIX = "phoenix_drill_"


@dataclass
class DrillRequest:
    backup: str
    dest: Path | None
    stage: str
    signing_key: str | None = None
    identity: str | None = None  # age identity of an encrypted backup
    jobs: int | None = None  # pg_restore's (default: _fitted_jobs); nobody sees the scratch database half-restored
    lock_timeout: int = 60  # seconds to wait for another drill of the same database


def drill(conninfo: str, request: DrillRequest, check_mode: bool,
          inspect: Callable[[str], dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Restore ``request``'s backup into the scratch database and check it: the row count of every table
    against the manifest, then ``inspect(scratch conninfo)`` (the schema, stage and world checks of a health
    report). Returns the drill's result; ``passed`` is false when any of it failed."""
    started = time.monotonic()
    backup = store.find_backup(request.dest, request.stage, request.backup)
    store.check_signature(backup, request.signing_key)
    problems = store.verify_checksums(backup)  # the stored bytes, before any of them is decrypted or read
    with open_session(conninfo, autocommit=True) as admin, \
            session_lock(admin, "drill:" + admin.info.dbname, request.lock_timeout), \
            encryption.readable(backup, request.identity, unsound=bool(problems)) as files:
        problems = problems or dump_problems(backup, files)
        scratch = scratch_name(SCRATCH_PREFIX, admin.info.dbname)
        leftover = leftover_droppable(admin, conninfo, scratch)
        result: dict[str, Any] = {"changed": False, "backup": backup.summary(store.utcnow()), "scratch_database": scratch,
                                  "leftover_removed": leftover and not check_mode, "warnings": []}
        # the scratch database goes where CREATE DATABASE ... TEMPLATE template0 puts it: template0's tablespace
        unchecked = None if problems else require_room(admin, backup, admin.info.dbname, "template0",
                                                       "drill on a server with room for a scratch copy")
        if unchecked:
            result["warnings"].append("free space for the drill's scratch database was not checked: %s" % unchecked)
        major = server_major(admin)
        if not problems:
            toc, purpose = dump_toc(major, backup, files), "a drill of backup %s" % backup.id
            require_creatable(admin, dump_extensions(toc), "a drill", "run the drill as a superuser")
            require_replaceable(admin, toc, purpose)
            result["warnings"].extend(subscriptions_left_out(toc, backup.manifest["format"], purpose))
            if backup.manifest["format"] == "plain":  # its script gives the objects to their owners
                require_plain_owners(admin, dump_owners(toc), purpose)
        if check_mode:  # nothing is created; a leftover stays for the next real drill
            return dict(result, passed=None, problems=problems)
        drop_database(admin, scratch)
        if not problems:
            create_scratch(admin, scratch, sql.SQL("TEMPLATE template0"),
                           "the scratch database of restore drills of " + admin.info.dbname)
            try:
                target = make_conninfo(conninfo, dbname=scratch)
                fitted = _fitted_jobs(admin, files, request.jobs, result)
                settled = sessions_settled(admin, fitted)
                require_connectable(target, "a drill restores", "")
                problems, result["checks"] = _check(major, target, backup, files, fitted.jobs, inspect, settled)
            finally:
                drop_database(admin, scratch)
    result.update(passed=not problems, problems=problems, duration_seconds=round(time.monotonic() - started, 3))
    return result


def _fitted_jobs(admin, files: encryption.DumpFiles, given: int | None, result: dict[str, Any]) -> FittedJobs:
    """The drill's jobs, ``given`` or left to choose: in parallel, unless that would put the dump on disk decrypted
    (an encrypted custom-format dump, in which pg_restore --jobs seeks: it is then restored in one transaction from
    the decrypting stream), as many as the role's connection limit leaves room for beside ``admin`` (why fewer, into
    ``result``'s warnings). Into ``result`` too: the jobs."""
    default = 1 if files.copied_to_seek() else parallel_jobs()
    fitted = fit_jobs(admin, default if given is None else given, "the drill's pg_restore", "drills",
                      this_database=False, given=given is not None)
    result["warnings"].extend([fitted.fewer] if fitted.fewer else [])
    result["jobs"] = fitted.jobs
    return fitted


def _check(major: int, target: str, backup: store.Backup, files: encryption.DumpFiles, jobs: int,
           inspect, settled: Callable[[], None]) -> tuple[list[str], dict[str, Any]]:
    try:
        loaded = restore_dump(major, target, backup, files, keep_history=False, jobs=jobs, settled=settled)
    except PhoenixError as exc:
        return ["the restore failed: %s" % exc.msg], {}
    problems = restored_problems(target, backup, loaded)
    settled()
    checks = inspect(target)
    problems += ["%s check: %s" % (name, check.get("message", check["status"]))
                 for name, check in sorted(checks.items()) if check["status"] == "unhealthy"]
    return problems, checks
