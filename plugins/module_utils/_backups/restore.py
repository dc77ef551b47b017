# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a verified backup in one transaction, after a safety backup.

pg_restore runs with --single-transaction and --exit-on-error (plain dumps through psql
with the same guarantees), so a restore that fails part-way leaves the database as it was.
The audit log and the stage fence are not part of what is restored: the history of the
database survives its restores, whatever the backup's format.
"""

from __future__ import annotations

import contextlib
import getpass
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Callable, ContextManager, Iterable, Iterator, NamedTuple

from ansible_collections.phoenix.platform.plugins.module_utils._backups import encryption, large_objects, row_security, store
from ansible_collections.phoenix.platform.plugins.module_utils._backups.compression import rows_reader
from ansible_collections.phoenix.platform.plugins.module_utils._backups.connection_room import (
    fit_jobs,
    in_place_settled,
    sessions_settled,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dba_objects import require_replaceable
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import (
    DUMP_FILES,
    BackupRequest,
    dump_problems,
    ensure_backup,
    list_dump,
    parallel_jobs,
    read_plain,
    use_list,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.extensions import (
    dump_extensions,
    installed_extensions,
    is_entry_of,
    is_statement_on,
    require_creatable,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.lock_room import explained, require_lock_room
from ansible_collections.phoenix.platform.plugins.module_utils._backups.ownership import (
    dump_owners,
    owners_kept,
    require_droppable,
    require_plain_owners,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.plain_dump import without_definitions
from ansible_collections.phoenix.platform.plugins.module_utils._backups.replication import (
    LEAVE_OUT_SUBSCRIPTIONS,
    is_publication_of,
    kept_publications,
    subscriptions_left_out,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.row_counts import table_counts
from ansible_collections.phoenix.platform.plugins.module_utils._backups.split_load import BLOCK, RowsOpener, load_split
from ansible_collections.phoenix.platform.plugins.module_utils._backups.swap import (
    HISTORY_SESSIONS,
    planned_kept_drops,
    require_swap_possible,
    swap_restore,
    swap_session,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import open_session
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import require_prod_allowed
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import (
    find_tool,
    libpq_environment,
    needs_ssl,
    server_major,
    tool_said,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg.lock_watch import LockWatch
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import END_PREPARED, prepared_transactions

try:
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# TOC entries kept out of a restore: the phoenix schema itself (so --clean does not drop it),
# the audit log and the stage fence.
KEPT = re.compile(r"(?: SCHEMA - phoenix | phoenix (?:audit_log\S*|environment\S*) )")
KEPT_TABLES = ("phoenix.audit_log", "phoenix.environment")


class KeptInPlace(NamedTuple):
    """What an in-place restore leaves as the database has it, though the dump holds it too."""
    extensions: frozenset[str] = frozenset()  # see extensions
    publications: frozenset[str] = frozenset()  # see replication
    publications_of_all_tables: frozenset[str] = frozenset()


def kept_in_place(conn, toc: list[str], fmt: str, purpose: str) -> KeptInPlace:
    """What the database keeps of a dump of format ``fmt`` in an in-place restore (``purpose``)."""
    return KeptInPlace(frozenset(installed_extensions(conn)), *kept_publications(conn, toc, fmt, purpose))


@dataclass
class RestoreRequest:
    backup: str
    dest: Path | None
    stage: str
    actor: str
    safety_backup: bool = True
    allow_prod: bool = False
    allow_cross_stage: bool = False
    signing_key: str | None = None
    mode: str = "in_place"
    jobs: int | None = None  # a swap's pg_restore's (default: parallel_jobs, fitted to the role's connection limit)
    identity: str | None = None  # age identity of an encrypted backup
    encrypt_to: list[str] | None = None  # age recipients of the safety backup
    lock_timeout: int = 60  # seconds a swap waits for another swap of the same database


class Counted(NamedTuple):
    """What a database holds now, to tell what a restore changes."""
    rows: dict[str, int]  # per table
    large_objects: int


def counted(conn) -> Counted:
    return Counted(table_counts(conn), large_objects.count(conn))


def row_changes(now: dict[str, int], then: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per table: rows now, rows in the backup, and the difference a restore makes."""
    return {t: {"now": now.get(t, 0), "backup": then.get(t, 0), "difference": then.get(t, 0) - now.get(t, 0)}
            for t in sorted(set(now) | set(then)) if now.get(t, 0) != then.get(t, 0) and t not in KEPT_TABLES}


def restore_diff(rows: dict[str, dict[str, int]], objects: dict[str, int]) -> dict[str, dict[str, Any]]:
    """--diff of a restore: the row count of every table it changes, and the number of large objects when that
    changes, now and after."""
    diff: dict[str, dict[str, Any]] = {"before": {"row_counts": {t: c["now"] for t, c in rows.items()}},
                                       "after": {"row_counts": {t: c["backup"] for t, c in rows.items()}}}
    if objects:
        diff["before"]["large_objects"], diff["after"]["large_objects"] = objects["now"], objects["backup"]
    return diff


def restore(conn, conninfo: str, request: RestoreRequest, check_mode: bool) -> dict[str, Any]:
    if request.encrypt_to:
        encryption.recipients(request.encrypt_to)  # the safety backup's: a typo fails in check mode too
    backup = store.find_backup(request.dest, request.stage, request.backup)
    store.check_signature(backup, request.signing_key)  # before any byte of it is used
    backup_stage = backup.manifest["stage"]
    if backup_stage != request.stage and not request.allow_cross_stage:
        raise PhoenixError("backup %s was taken in %s, this is %s; set allow_cross_stage=true to restore it here"
                           % (backup.id, backup_stage, request.stage))
    require_prod_allowed(request.stage, request.allow_prod, "restoring a backup")
    problems = store.verify_checksums(backup)  # the stored bytes, before any of them is decrypted or read
    with encryption.readable(backup, request.identity, unsound=bool(problems)) as files:
        problems = problems or dump_problems(backup, files)
        if problems:
            raise PhoenixError("backup %s failed verification, refusing to restore it: %s"
                               % (backup.id, "; ".join(problems)))
        return _restore_verified(conn, conninfo, request, backup, files, check_mode)


def _restore_verified(conn, conninfo: str, request: RestoreRequest, backup: store.Backup,
                      files: encryption.DumpFiles, check_mode: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"changed": True, "restored": backup.summary(store.utcnow()), "safety_backup": None,
                              "mode": request.mode, "warnings": []}
    held = prepared_transactions(conn, [conn.info.dbname])
    if held:
        raise PhoenixError("database %s holds %s, which keeps its locks until it ends: a restore would wait on it "
                           "without end; %s, then run the restore again" % (conn.info.dbname, held, END_PREPARED))
    purpose = "restoring backup %s %s database %s" % (backup.id, "beside" if request.mode == "swap" else "over",
                                                      conn.info.dbname)
    row_security.require_every_row_readable(
        conn, "a restore counts the rows of every table (to report what it changes%s)"
        % (", and to check the restored database against the manifest" if request.mode == "swap" else ""), "restore")
    major = server_major(conn)
    toc = dump_toc(major, backup, files)
    result["warnings"].extend(subscriptions_left_out(toc, backup.manifest["format"], purpose))
    if request.mode == "swap":
        require_replaceable(conn, toc, purpose)
        return _swap_checked(conn, conninfo, request, backup, files, major, toc, result, check_mode, purpose)
    kept = kept_in_place(conn, toc, backup.manifest["format"], purpose)
    restored = list(restored_in_place(toc, kept))
    require_replaceable(conn, restored, purpose)
    require_droppable(conn, restored, purpose)
    require_lock_room(conn, restored, purpose)
    settled = in_place_settled(conn, request.lock_timeout > 0, purpose)
    counted_now = check_mode or not request.safety_backup  # else the safety backup counts them, in its snapshot
    now = counted(conn) if counted_now else Counted({}, large_objects.count(conn))
    if now.large_objects:
        large_objects.require_unlinkable(conn, purpose)
    changes = _report_changes(result, now, backup) if counted_now else {}
    keep_owners = _owners_kept(conn, backup, restored, result, purpose)
    conn.rollback()
    if check_mode:
        return result
    backup_stage = backup.manifest["stage"]
    if request.safety_backup:
        if request.dest is None:
            raise PhoenixError("a safety backup needs dest (or set safety_backup=false)")
        safety_request = BackupRequest(request.dest, request.stage, kind="pre-restore", actor=request.actor,
                                       signing_key=request.signing_key, encrypt_to=request.encrypt_to)
        safety = ensure_backup(conn, conninfo, safety_request, False)
        result["safety_backup"] = safety["backup"]
        now = _counted_in(safety["backup"])
        changes = _report_changes(result, now, backup)
        conn.rollback()  # no transaction of ours open while pg_restore drops and recreates the tables
    restore_dump(major, conninfo, backup, files, keep_history=True, keep_owners=keep_owners, kept=kept,
                 lock_timeout=request.lock_timeout, unlink_large_objects=now.large_objects > 0, settled=settled)
    with conn.transaction():
        if backup_stage != request.stage:
            conn.execute(sql.SQL("UPDATE phoenix.environment SET stage = %s"), [request.stage])
        record(conn, "backup.restore", request.stage, request.actor,
               dict(_audit_details(request, backup, changes), safety_backup=(result["safety_backup"] or {}).get("id")))
    return result


def _counted_in(safety: dict[str, Any]) -> Counted:
    """What the safety backup (``safety``, its summary) counted of the database: its rows and large objects now,
    counted in the snapshot it dumped, which the restore need not count again."""
    manifest = store.read_manifest(Path(safety["path"]))
    return Counted(manifest["row_counts"], manifest["large_objects"])


def _owners_kept(conn, backup: store.Backup, toc: list[str], result: dict[str, Any], purpose: str) -> bool:
    """Whether the restore (``purpose``) gives the objects of the dump (of table of contents ``toc``) back to their
    owners; a warning in ``result`` when it cannot. A plain dump's script gives them back itself, or stops."""
    if backup.manifest["format"] == "plain":
        require_plain_owners(conn, dump_owners(toc), purpose)
        return False
    kept, warning = owners_kept(conn, dump_owners(toc))
    if warning:
        result["warnings"].append(warning)
    return kept


def _report_changes(result: dict[str, Any], now: Counted, backup: store.Backup) -> dict[str, Any]:
    """What the restore changes against ``now``, into ``result`` with its --diff; returned for the audit log."""
    changes = {"row_changes": row_changes(now.rows, backup.manifest["row_counts"]),
               "large_object_changes": large_objects.changes(now.large_objects, backup.manifest.get("large_objects"))}
    result.update(changes, diff=restore_diff(changes["row_changes"], changes["large_object_changes"]))
    return changes


def _audit_details(request: RestoreRequest, backup: store.Backup, changes: dict[str, Any]) -> dict[str, Any]:
    return {"backup": backup.id, "from_stage": backup.manifest["stage"], **changes, "mode": request.mode}


def _swap_checked(conn, conninfo: str, request: RestoreRequest, backup: store.Backup, files: encryption.DumpFiles,
                  major: int, toc: list[str], result: dict[str, Any], check_mode: bool, purpose: str) -> dict[str, Any]:
    """``mode: swap``: what it needs checked before anything is written (in check mode too, which then reports
    what the swap would change and drop), under the lock that keeps a second swap of the database waiting."""
    conn.close()  # the database is renamed by this swap, or by another one that this one waits for
    with swap_session(conninfo, request.lock_timeout) as admin:
        unchecked = require_swap_possible(admin, conninfo, backup)
        require_creatable(admin, dump_extensions(toc), "mode=swap",
                          "restore as a superuser, or use mode=in_place")
        if unchecked:
            result["warnings"].append("free space for the swap's second copy of the database was not checked: %s"
                                      % unchecked)
        keep_owners = _owners_kept(admin, backup, toc, result, purpose)
        fitted = fit_jobs(admin, parallel_jobs() if request.jobs is None else request.jobs, "the swap's pg_restore",
                          "restores", this_database=False, given=request.jobs is not None)
        if fitted.room is not None and fitted.room < HISTORY_SESSIONS:
            raise PhoenixError("mode=swap carries the old database's history into the new one over a session to each, "
                               "beside its own, and %s, leaves room for %d more; raise the limit, or use mode=in_place"
                               % (fitted.limit, max(fitted.room, 0)))
        request = replace(request, jobs=fitted.jobs)
        result["warnings"].extend([fitted.fewer] if fitted.fewer else [])
        result["jobs"] = request.jobs
        if not check_mode:
            return _swap_verified(admin, conninfo, major, request, backup, files, result, keep_owners,
                                  sessions_settled(admin, fitted, HISTORY_SESSIONS),
                                  count_beside=fitted.room is None)
        plan = planned_kept_drops(admin, conninfo_to_dict(conninfo)["dbname"])
    result["dropped_kept"] = plan["dropped_kept"]
    result["warnings"].extend(plan["warnings"])
    with open_session(conninfo, lock_timeout=request.lock_timeout) as now:
        _report_changes(result, counted(now), backup)
    return result


def _swap_verified(admin, conninfo: str, major: int, request: RestoreRequest, backup: store.Backup,
                   files: encryption.DumpFiles, result: dict[str, Any], keep_owners: bool,
                   settled: Callable[[], None], count_beside: bool) -> dict[str, Any]:
    """``mode: swap``, on ``admin`` (the ``swap_session``). The old database, kept under another name, is the safety
    copy. Its rows are counted (for ``row_changes``) on a connection of their own while pg_restore fills the new
    database (``count_beside``; else before, where the role's connection limit counts it): the application is
    stopped for the whole restore, so every second saved is a second less of downtime. ``settled()``: see
    ``connection_room``."""
    def count_old() -> Counted:
        with open_session(conninfo, lock_timeout=request.lock_timeout) as old:
            return counted(old)

    def finish(new) -> None:  # in the new database's transaction, before the swap: the count has ended
        changes = _report_changes(result, counting.result(), backup)
        record(new, "backup.restore", request.stage, request.actor, _audit_details(request, backup, changes))

    with ThreadPoolExecutor(max_workers=1) as pool:
        counting = pool.submit(count_old)
        if not count_beside:
            wait([counting])  # its failure, if any, is raised where its result is taken
        swapped = swap_restore(
            admin, conninfo, request.stage, request.lock_timeout, backup, lambda target: restore_dump(
                major, target, backup, files, False, jobs=request.jobs, keep_owners=keep_owners, settled=settled),
            finish, settled)
    result["warnings"].extend(swapped.pop("warnings", []))
    result.update(swapped)
    return result


def restore_dump(major: int, conninfo: str, backup: store.Backup, files: encryption.DumpFiles, keep_history: bool,
                 jobs: int = 1, keep_owners: bool = False, kept: KeptInPlace = KeptInPlace(),
                 lock_timeout: int = 0, unlink_large_objects: bool = False,
                 settled: Callable[[], None] = lambda: None) -> dict[str, int]:
    """Restore the backup's dump into the database of ``conninfo``: in one transaction, or with ``jobs`` > 1 in
    parallel (into a database nobody else sees yet: a failure leaves it half-restored). ``keep_history`` keeps
    that database's audit log and stage fence (a restore over an environment); without it the dump is restored
    whole (into an empty database); what the database ``kept`` is then left out of it (see ``KeptInPlace``).
    ``keep_owners`` gives an archive's objects back to their owners (see ``ownership``), else the restoring role
    owns them. ``unlink_large_objects`` unlinks the database's large objects first, in the restore's transaction,
    for the dump's own to take their place (see ``large_objects``). The dump is read from ``files``, decrypted as it
    is read when encrypted. Returns the row counts the server reported for tables loaded in pieces (see
    ``_restore_in_parallel``). With ``keep_history``, the restore waits ``lock_timeout`` at most for each lock
    someone holds (a session left in a transaction, say); it is then stopped, and its transaction rolled back.
    ``settled()`` runs before each program connects, and once the last has ended (see ``connection_room``)."""
    watch = LockWatch(conninfo, lock_timeout if keep_history else 0, "restore")
    settled()  # before the watch connects: its session is the run's own too
    try:
        with watch:
            loaded = _restore_dump(major, dict(libpq_environment(conninfo), PGAPPNAME=watch.application), conninfo,
                                   backup, files, keep_history, jobs, keep_owners, kept, unlink_large_objects, settled)
        settled()
        return loaded
    except PhoenixError as exc:
        if watch.stopped:
            raise PhoenixError(
                "the restore waited lock_timeout=%d s for %s; it was stopped and its transaction rolled back, so the "
                "database is as it was. Stop the application (or end that session) and run it again, or raise "
                "lock_timeout" % (lock_timeout, watch.stopped)) from None
        if keep_history:  # in one transaction
            raise PhoenixError(explained(exc.msg), **exc.details) from None
        raise


def _restore_dump(major: int, env: dict[str, str], conninfo: str, backup: store.Backup, files: encryption.DumpFiles,
                  keep_history: bool, jobs: int, keep_owners: bool, kept: KeptInPlace,
                  unlink_large_objects: bool, settled: Callable[[], None]) -> dict[str, int]:
    flags = [LEAVE_OUT_SUBSCRIPTIONS] + ([] if keep_owners else ["--no-owner"])  # see replication
    name = DUMP_FILES[backup.manifest["format"]]
    opening = large_objects.UNLINK_ALL if unlink_large_objects else b""
    ssl = needs_ssl(conninfo)
    if backup.manifest["format"] == "plain":
        with files.stream(name) as script:
            parts = [PLAIN_PROLOGUE + opening, without_definitions(script, lambda line: is_statement_on(line, kept.extensions)),
                     PLAIN_EPILOGUE] if keep_history else [script]
            _run_script(find_tool("psql", major, ssl), env, parts)
        return {}
    reader = backup.reader_major(major)
    pg_restore = find_tool("pg_restore", reader, ssl)
    newer = reader >= SESSION_SETUP_NEWER_SINCE > major
    if jobs > 1 and not keep_history:
        return _restore_in_parallel(pg_restore, env, conninfo, backup, files, jobs, newer, flags, settled)
    selecting: ContextManager[str | None] = contextlib.nullcontext()
    if keep_history:
        selecting = use_list(restored_in_place(_listed(pg_restore, files, name), kept))
    with selecting as toc, files.program_input(name) as (dump, stdin):
        selection = ["--clean", "--if-exists", "--use-list", toc] if toc else []
        if newer or opening:
            _bridge(pg_restore, find_tool("psql", reader, ssl), env, [*selection, *flags, *dump], stdin, newer, opening)
            return {}
        completed = subprocess.run([str(pg_restore), "--single-transaction", "--exit-on-error", *flags,
                                    *selection, "--dbname", _dbname(env), *dump], stdin=stdin,
                                   env=env, capture_output=True, text=True, check=False)
    _check(completed, "pg_restore")
    return {}


def restored_in_place(toc: Iterable[str], kept: KeptInPlace) -> Iterator[str]:
    """The entries of the dump's ``pg_restore --list`` that an in-place restore restores: not the audit log and
    the stage fence, nor the extensions and publications the database keeps."""
    return (line for line in toc if not KEPT.search(line) and not is_entry_of(line, kept.extensions)
            and not is_publication_of(line, kept.publications, kept.publications_of_all_tables))


def _restore_in_parallel(pg_restore: Path, env: dict[str, str], conninfo: str, backup: store.Backup,
                         files: encryption.DumpFiles, jobs: int, newer: bool, flags: list[str],
                         settled: Callable[[], None]) -> dict[str, int]:
    """``pg_restore --jobs`` into a database nobody else sees yet (a failure leaves it half-restored). The rows of
    a directory dump's table too big for one job (``entries_to_split``) come in pieces over ``jobs`` connections
    (``split_load``): the definitions first, then the other tables' rows, the big tables' rows, and the indexes,
    constraints and triggers last. Returns the rows of the tables loaded in pieces, as the server counted them
    when their COPYs ended: nothing else writes to them, so counting them again would only read them once more."""
    name = DUMP_FILES[backup.manifest["format"]]

    def run(*arguments: str) -> None:
        settled()
        with files.program_input(name, seekable=True) as (dump, stdin):
            completed = subprocess.run([str(pg_restore), *arguments, *([] if newer else ["--exit-on-error"]),
                                        *flags, "--dbname", _dbname(env), *dump], stdin=stdin,
                                       env=env, capture_output=True, text=True, check=False)
        _check(forgiving_rejected_settings(completed) if newer else completed, "pg_restore")

    data_files = _data_files(backup)
    entries = _table_data_by_size(data_files, pg_restore, files, name) if backup.manifest["format"] == "directory" else []
    big = entries_to_split(entries, jobs)
    if not big:
        run("--jobs", str(jobs))
        return {}
    run("--section=pre-data")
    with use_list(entry for entry, size in entries if entry not in big) as rest:
        run("--section=data", "--jobs", str(jobs), "--use-list", rest)
    loaded = {}
    for entry in big:
        rows = _rows_read_here(files, data_files.get(_dump_id(entry)))
        with files.program_input(name, seekable=True) as given:  # a directory: its path, no stdin
            settled()
            counted = load_split(pg_restore, given[0], entry, conninfo, jobs, NEWER_SESSION_SETTINGS if newer else None,
                                 rows, settled)
        if counted:
            loaded[counted[0]] = counted[1]
    run("--section=post-data", "--jobs", str(jobs))
    return loaded


def entries_to_split(entries: list[tuple[str, int]], jobs: int) -> list[str]:
    """The table data that ``pg_restore --jobs`` would leave one connection loading while the others wait: more
    than a job's share of the dump (the slowest job's load is the restore's), and worth the pieces (its data
    file at least SPLIT_BYTES). Tables of similar sizes keep a connection each, as pg_restore gives them."""
    total = sum(size for entry, size in entries)
    return [entry for entry, size in entries if size >= SPLIT_BYTES and size * jobs > total]


def _table_data_by_size(data_files: dict[int, dict[str, Any]], pg_restore: Path, files: encryption.DumpFiles,
                        name: str) -> list[tuple[str, int]]:
    """The entries of a directory dump's ``pg_restore --list``, each with the size of its data file (0 for those
    that load no rows)."""
    sizes = {dump_id: data_file["size"] for dump_id, data_file in data_files.items()}
    return [(line, sizes.get(_dump_id(line), 0) if TABLE_DATA.match(line) else 0)
            for line in _listed(pg_restore, files, name) if line.strip() and not line.startswith(";")]


def _data_files(backup: store.Backup) -> dict[int, dict[str, Any]]:
    """The manifest's entries of a directory dump's table data files, by the dump id of the entry they hold."""
    return {int(found.group(1)): entry for entry in backup.manifest["files"]
            for found in [DATA_FILE.match(entry["name"])] if found}


def _dump_id(entry: str) -> int:
    return int(entry.split(";", 1)[0])


def _rows_read_here(files: encryption.DumpFiles,
                    data_file: dict[str, Any] | None) -> RowsOpener | None:
    """What opens the rows of a table data file in this process, decrypted and decompressed as they are read; None
    where it cannot decompress them (see ``compression.rows_reader``)."""
    plain = data_file and data_file["name"].removesuffix(encryption.SUFFIX)
    read = plain and rows_reader(plain)
    if not read:
        return None

    @contextlib.contextmanager
    def rows() -> Iterator[Iterator[bytes]]:
        with files.stream(plain) as stored:
            yield read(stored, BLOCK)
    return rows


def dump_toc(major: int, backup: store.Backup, files: encryption.DumpFiles) -> list[str]:
    """The lines of ``pg_restore --list`` of the backup's dump, as the restore to a server of ``major`` reads it;
    for a plain dump, its objects in the same words, without catalogs or OIDs (see ``plain_dump``)."""
    if backup.manifest["format"] == "plain":
        return read_plain(files, DUMP_FILES["plain"])[1]
    pg_restore = find_tool("pg_restore", backup.reader_major(major))
    return _listed(pg_restore, files, DUMP_FILES[backup.manifest["format"]])


def _listed(pg_restore: Path, files: encryption.DumpFiles, name: str) -> list[str]:
    """The lines of the dump's ``pg_restore --list``; a listing that failed fails the restore."""
    listing = list_dump(pg_restore, files, name)
    _check(listing, "pg_restore --list")
    return listing.stdout.splitlines(True)


def _dbname(env: dict[str, str]) -> str:
    return env.get("PGDATABASE") or env.get("PGUSER") or getpass.getuser()


# A directory dump's table data smaller than this (as stored) is never worth loading in pieces
SPLIT_BYTES = 16 << 20
TABLE_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA ")
DATA_FILE = re.compile(r"^[^/]+/(\d+)\.dat(?:\.[a-z0-9]+)*$")  # database/<entry>.dat[.zst][.age]


# pg_restore 17 and later opens every session with SET transaction_timeout, which older servers reject.
# Their archives (zstd and lz4 written by a newer pg_dump) reach an older server in one of two ways:
# - in one transaction, as a script through psql without that line; the script opens the transaction itself
#   and commits at its very end, so a pg_restore that fails part-way leaves psql a transaction it never commits;
# - in parallel (a swap's new database, which nobody else sees), directly, where that rejection is the one
#   error forgiven: every other error fails the restore.
SESSION_SETUP_NEWER_SINCE = 17
# Parallel workers print at once, and each writes a message's prefix, level and text separately: prefixes may
# interleave (``pg_restore:pg_restore: error: ...``), the texts do not. pg_restore's own words are English
# (``libpq_environment``); the server's (``ERROR:  unrecognized configuration parameter``) are in its lc_messages.
REJECTED_SETTING = re.compile(r"could not execute query: [^\n]*transaction_timeout[^\n]*\n"
                              r"Command was: SET transaction_timeout = 0;\n")
ERRORS_IGNORED = re.compile(r"errors ignored on restore: (\d+)\n")
LOG_PREFIXES = re.compile(r"pg_restore:|\b(?:error|warning):")
NEWER_SESSION_SETTINGS = re.compile(rb"^SET transaction_timeout = ")
SCRIPT_PREAMBLE = re.compile(rb"^(--.*|\\restrict .*|BEGIN;|SET .*|SELECT pg_catalog\.set_config\(.*|\s*)$")


def forgiving_rejected_settings(completed: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """A parallel pg_restore whose only errors were the older server rejecting its session settings succeeded.
    Every error is printed, but not every worker's is counted: the count may be lower, never higher."""
    rejected = len(REJECTED_SETTING.findall(completed.stderr))
    ignored = ERRORS_IGNORED.search(completed.stderr)
    rest = LOG_PREFIXES.sub("", ERRORS_IGNORED.sub("", REJECTED_SETTING.sub("", completed.stderr))).strip()
    if completed.returncode == 1 and ignored and 0 < int(ignored.group(1)) <= rejected and not rest:
        return subprocess.CompletedProcess(completed.args, 0, completed.stdout, "")
    return completed


def _bridge(pg_restore: Path, psql: Path, env: dict[str, str], arguments: list[str], stdin: BinaryIO | None,
            newer: bool, opening: bytes) -> None:
    """pg_restore's script of one transaction, run by psql (see ``opened_script``)."""
    process = subprocess.Popen([str(pg_restore), "--single-transaction", "--file", "-", *arguments], stdin=stdin,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _run_script(psql, env, [opened_script(process.stdout, newer, opening)], single_transaction=False)
    finally:
        process.stdout.close()
        stderr = process.stderr.read().decode(errors="replace")
        process.wait()
    _check(subprocess.CompletedProcess(process.args, process.returncode, "", stderr), "pg_restore")


def opened_script(script: BinaryIO, newer: bool, opening: bytes) -> Iterator[bytes]:
    """The script of a ``pg_restore --single-transaction``, less the session settings of its preamble that an older
    server lacks (``newer``), with ``opening`` run first in its transaction (right after its BEGIN). Only the
    preamble (comments, BEGIN and SETs before the first statement) is read line by line: the rows that follow are
    passed on as they are, whatever text they hold."""
    opened = False
    for line in script:
        if not SCRIPT_PREAMBLE.match(line):
            if opening and not opened:  # psql is stopped before it runs a statement outside the transaction
                raise PhoenixError("pg_restore's script runs %r before it opens its transaction" % line[:80])
            yield line
            break
        if not (newer and NEWER_SESSION_SETTINGS.match(line)):
            yield line
        if line.rstrip() == b"BEGIN;":
            opened = True
            yield opening
    yield from iter(lambda: script.read(1 << 20), b"")


# A plain dump recreates every table, the audit log and the stage fence included: psql keeps
# their rows aside first and puts them back after, all inside its single transaction.
PLAIN_PROLOGUE = b"""
CREATE TEMP TABLE phoenix_kept_audit AS SELECT * FROM phoenix.audit_log;
CREATE TEMP TABLE phoenix_kept_environment AS SELECT * FROM phoenix.environment;
"""
PLAIN_EPILOGUE = b"""
DELETE FROM phoenix.audit_log;
INSERT INTO phoenix.audit_log SELECT * FROM phoenix_kept_audit;
SELECT setval('phoenix.audit_log_id_seq', (SELECT coalesce(max(id), 0) + 1 FROM phoenix.audit_log), false);
DELETE FROM phoenix.environment;
INSERT INTO phoenix.environment SELECT * FROM phoenix_kept_environment;
"""


def _run_script(psql: Path, env: dict[str, str], parts: Iterable[bytes | BinaryIO | Iterator[bytes]],
                single_transaction: bool = True) -> None:
    """Run the parts, one after the other, as one psql script that stops at the first error; in a single
    transaction unless the script opens its own."""
    command = [str(psql), "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--file", "-"]
    if single_transaction:
        command.insert(3, "--single-transaction")
    process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        for part in parts:
            if isinstance(part, bytes):
                process.stdin.write(part)
            elif hasattr(part, "read"):
                shutil.copyfileobj(part, process.stdin, 1 << 20)
            else:
                process.stdin.writelines(part)
        process.stdin.close()
    except BrokenPipeError:  # psql stopped at an error: its message says which
        pass
    except BaseException:  # a part that cannot be read to its end must not end psql's input: psql would commit
        process.kill()
        process.communicate()
        raise
    stderr = process.stderr.read().decode(errors="replace")
    process.wait()
    _check(subprocess.CompletedProcess(command, process.returncode, "", stderr), "psql")


def _check(completed: subprocess.CompletedProcess, tool: str) -> None:
    if completed.returncode != 0:
        raise PhoenixError("%s failed (exit %d), the database was left as it was: %s"
                           % (tool, completed.returncode, tool_said(completed.stderr)))
